#!/bin/bash
# An emulated WAN registry: ~20 ms round trip, 1 Gbit/s.
#
#   integration/registry/wan.sh up [--delay-ms 10] [--rate 1gbit]
#                                  [--auth none|basic|token] [--storage DIR]
#                                  [--log] [--listen 127.0.0.1:PORT]
#   integration/registry/wan.sh down
#   integration/registry/wan.sh status     (exit 1 when not up)
#   integration/registry/wan.sh check      (curl timings, direct vs WAN)
#
# This kernel has no netem, so (as ARCHITECTURE.md suggests):
#   * network namespace `clipwan`, veth pair clipwan0 (host, 10.203.0.1/30)
#     <-> clipwan1 (namespace, 10.203.0.2/30);
#   * `tbf` rate limit (default 1gbit) on both ends of the veth, so both
#     directions are shaped;
#   * docker-registry (registry/lib.sh registry_start, name `wan`) listening
#     on 10.203.0.2:5000 inside the namespace;
#   * faultproxy.py --delay-ms 10 in the host namespace on 127.0.0.1
#     (ephemeral port unless --listen) forwarding to 10.203.0.2:5000: every
#     chunk is held 10 ms in each direction, so each round trip gets ~20 ms.
#     Plain byte forwarding unless --log (then HTTP-aware, one line per
#     request in $CLIP_TEST_WORK/registry/proxy-wan/access.log).
# Clients use the printed 127.0.0.1:PORT (loopback: plain HTTP).
# CLIP_WAN_NS=NAME and CLIP_WAN_NET=A.B.C give a second, independent link
# (namespace NAME, veth NAME0/NAME1 on A.B.C.1/30 <-> A.B.C.2/30, registry
# and proxy named NAME, state in $CLIP_TEST_WORK/NAME), e.g. for a benchmark
# running beside the tests; the defaults are clipwan, 10.203.0 and "wan".
# `up` prints that address on stdout (and writes it, with the registry's
# variables, to $CLIP_TEST_WORK/wan/env: WAN_ADDR, WAN_REGISTRY, REGISTRY_WAN*).
# `down` kills the proxy, the registry (and its token server), any other
# process left in the namespace, deletes the namespace and the veth pair,
# and removes $CLIP_TEST_WORK/wan and the registry's dir (not --storage).
set -euo pipefail

# shellcheck source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

NS=${CLIP_WAN_NS:-clipwan}
NET=${CLIP_WAN_NET:-10.203.0}
HOSTIF=${NS}0
NSIF=${NS}1
HOSTIP=$NET.1
NSIP=$NET.2
PORT=5000
NAME=wan # registry and faultproxy name (registry/lib.sh)
[ "$NS" = clipwan ] || NAME=$NS
STATE=$WORK/$NAME

usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

is_up() { ip netns list 2>/dev/null | grep -qw "^$NS"; }

wan_down() {
    faultproxy_stop "$NAME" || true
    registry_stop "$NAME" || true
    local p
    if is_up; then
        for p in $(ip netns pids "$NS" 2>/dev/null); do
            _reg_kill "$p"
        done
        ip netns del "$NS" 2>/dev/null || true
    fi
    ip link del "$HOSTIF" 2>/dev/null || true
    rm -rf "$STATE"
}

wan_up() {
    local delay=10 rate=1gbit auth=none storage=() log=--no-log listen=()
    while [ $# -gt 0 ]; do
        case $1 in
        --delay-ms) delay=$2; shift 2 ;;
        --rate) rate=$2; shift 2 ;;
        --auth) auth=$2; shift 2 ;;
        --storage) storage=(--storage "$2"); shift 2 ;;
        --log) log=""; shift ;;
        --listen) listen=(--listen "$2"); shift 2 ;;
        *) usage ;;
        esac
    done
    if is_up; then
        echo "wan.sh: already up (wan.sh down first)" >&2
        [ -f "$STATE/env" ] && { . "$STATE/env"; echo "$WAN_ADDR"; }
        return 1
    fi
    trap 'echo "wan.sh: up failed, cleaning up" >&2; wan_down' ERR
    mkdir -p "$STATE"
    ip netns add "$NS"
    ip link add "$HOSTIF" type veth peer name "$NSIF"
    ip link set "$NSIF" netns "$NS"
    ip addr add "$HOSTIP/30" dev "$HOSTIF"
    ip link set "$HOSTIF" up
    ip netns exec "$NS" ip link set lo up
    ip netns exec "$NS" ip addr add "$NSIP/30" dev "$NSIF"
    ip netns exec "$NS" ip link set "$NSIF" up
    tc qdisc add dev "$HOSTIF" root tbf rate "$rate" burst 512kb latency 50ms
    ip netns exec "$NS" tc qdisc add dev "$NSIF" root tbf rate "$rate" burst 512kb latency 50ms
    registry_start "$NAME" --netns "$NS" --addr "$NSIP:$PORT" --auth "$auth" "${storage[@]}"
    # shellcheck disable=SC2086
    faultproxy_start "$NAME" "$NSIP:$PORT" $log --delay-ms "$delay" "${listen[@]}"
    local pv lv
    pv=FAULTPROXY_$(_reg_var "$NAME")
    lv=${pv}_LOG
    {
        cat "$REGISTRY_WORK/$NAME/env"
        echo "export WAN_ADDR=${!pv}"
        echo "export WAN_REGISTRY=$NSIP:$PORT"
        echo "export WAN_PROXY_LOG=${!lv}"
    } >"$STATE/env"
    trap - ERR
    echo "${!pv}"
}

wan_check() {
    is_up && [ -f "$STATE/env" ] || { echo "wan.sh: not up" >&2; return 1; }
    # shellcheck disable=SC1091
    . "$STATE/env"
    local a t
    for a in "$WAN_REGISTRY" "$WAN_ADDR"; do
        # 5 requests on one connection; connect time and mean per request
        t=$(curl -s -o /dev/null -o /dev/null -o /dev/null -o /dev/null -o /dev/null \
            -w '%{time_total}\n' "http://$a/v2/" "http://$a/v2/" "http://$a/v2/" \
            "http://$a/v2/" "http://$a/v2/" | awk '{s+=$1} END {printf "%.1f", s*1000/NR}')
        echo "GET /v2/ via $a: $t ms per request (keep-alive, mean of 5)"
    done
}

case ${1:-} in
up) shift; wan_up "$@" ;;
down) wan_down ;;
status)
    if is_up && [ -f "$STATE/env" ]; then . "$STATE/env"; echo "$WAN_ADDR"; else exit 1; fi ;;
check) wan_check ;;
*) usage ;;
esac
