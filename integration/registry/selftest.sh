#!/bin/bash
# Self-test of the registry harness, without clip: registries in the three
# auth modes (skopeo push + pull, curl), faultproxy.py modes (curl), and
# wan.sh up/down leaving nothing behind.
#
#   integration/registry/selftest.sh [--no-wan]
#
# PASS/FAIL lines; exit 1 on any failure.  Needs root for the WAN part.
set -euo pipefail

# shellcheck source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

wan=1
[ "${1:-}" = --no-wan ] && wan=0
mkdir -p "$WORK"
tmpd=$(mktemp -d "$WORK/.regselftest.XXXXXX")
trap 'registry_stop_all; rm -rf "$tmpd"' EXIT
trap 'exit 130' INT TERM

check() { # LABEL COMMAND... -> PASS/FAIL
    local label=$1
    shift
    if "$@" >"$tmpd/check.out" 2>&1; then
        pass "$label"
    else
        fail "$label: $(head -c 300 "$tmpd/check.out" | tr '\n' '|')"
    fi
}
eq() { [ "$1" = "$2" ] || { echo "got '$1', want '$2'"; return 1; }; }

ensure_image busybox || { echo "error: busybox image" >&2; exit 2; }
B=$IMG/busybox:latest
mdigest=sha256:$(sha256sum <"$IMG/busybox/blobs/sha256/$(jq -r '.manifests[0].digest' "$IMG/busybox/index.json" | cut -d: -f2)" | cut -d' ' -f1)
layer=$(jq -r '.layers[0].digest' "$IMG/busybox/blobs/sha256/${mdigest#sha256:}")
lsize=$(jq -r '.layers[0].size' "$IMG/busybox/blobs/sha256/${mdigest#sha256:}")
OCI_ACCEPT='Accept: application/vnd.oci.image.manifest.v1+json'

# ---- registries
for mode in none basic token; do
    info "registry --auth $mode"
    registry_start "st$mode" --auth "$mode" >/dev/null || { fail "registry_start --auth $mode"; continue; }
    v=REGISTRY_ST$(_reg_var "$mode")
    addr=${!v}
    cv=${v}_CREDS
    creds=${!cv:-}
    pc=()
    [ -n "$creds" ] && pc=(--creds "$creds")
    check "$mode: skopeo push" registry_push "$B" "$addr/busybox:latest" "${pc[@]}"
    check "$mode: manifest digest preserved" eq "$(registry_manifest_digest "$addr/busybox:latest" "${pc[@]}")" "$mdigest"
    sc=()
    [ -n "$creds" ] && sc=(--src-creds "$creds")
    rm -rf "$tmpd/pull"
    check "$mode: skopeo pull" skopeo copy -q --src-tls-verify=false "${sc[@]}" \
        "docker://$addr/busybox:latest" "oci:$tmpd/pull:latest"
    if [ "$mode" != none ]; then
        check "$mode: no credentials -> refused" \
            bash -c '! skopeo inspect --raw --tls-verify=false "docker://$1" 2>/dev/null' _ "$addr/busybox:latest"
        check "$mode: wrong password -> refused" \
            bash -c '! skopeo inspect --raw --tls-verify=false --creds clip:wrong "docker://$1" 2>/dev/null' _ "$addr/busybox:latest"
    fi
    case $mode in
    basic)
        check "basic: curl -u" eq "$(curl -s -o /dev/null -w '%{http_code}' -u "$creds" -H "$OCI_ACCEPT" \
            "http://$addr/v2/busybox/manifests/latest")" 200 ;;
    token)
        rv=${v}_REALM
        tok=$(curl -s -u "$creds" "${!rv}?service=$REGISTRY_SERVICE&scope=repository:busybox:pull" | jq -r .token)
        check "token: curl with a bearer token" eq "$(curl -s -o /dev/null -w '%{http_code}' \
            -H "Authorization: Bearer $tok" -H "$OCI_ACCEPT" "http://$addr/v2/busybox/manifests/latest")" 200
        check "token: token server without credentials -> 401" eq "$(curl -s -o /dev/null -w '%{http_code}' \
            "${!rv}?service=$REGISTRY_SERVICE&scope=repository:busybox:pull")" 401
        ;;
    esac
done
registry_stop_all

# ---- faultproxy
info "faultproxy"
registry_start stfp >/dev/null || { fail "registry_start"; exit 1; }
R=$REGISTRY_STFP
registry_push "$B" "$R/busybox:latest"
U=v2/busybox/blobs/$layer
curl -s -o "$tmpd/blob" "http://$R/$U"

faultproxy_start log "$R" 2>/dev/null
check "proxy: whole blob" cmp "$tmpd/blob" <(curl -s "http://$FAULTPROXY_LOG/$U")
check "proxy: range 206" eq "$(curl -s -o /dev/null -w '%{http_code} %{size_download}' -r 100-199 "http://$FAULTPROXY_LOG/$U")" "206 100"
check "proxy: keep-alive (3 requests, 1 connection)" eq "$(curl -s -o /dev/null -o /dev/null -o /dev/null \
    -w '%{num_connects}' "http://$FAULTPROXY_LOG/v2/" "http://$FAULTPROXY_LOG/$U" "http://$FAULTPROXY_LOG/v2/")" 100
check "proxy: PUT with Expect: 100-continue (2 MB upload)" bash -c '
    head -c 2000000 /dev/urandom >"$2/up"
    loc=$(curl -s -D - -o /dev/null -X POST "http://$1/v2/up/blobs/uploads/" | tr -d "\r" | awk "tolower(\$1)==\"location:\"{print \$2}")
    case $loc in http*) ;; *) loc=http://$1$loc ;; esac
    d=sha256:$(sha256sum <"$2/up" | cut -d" " -f1)
    code=$(curl -s -o /dev/null -w "%{http_code}" -X PUT -H "Content-Type: application/octet-stream" \
        --data-binary @"$2/up" "$loc&digest=$d")
    [ "$code" = 201 ] && curl -s "http://$1/v2/up/blobs/$d" | cmp - "$2/up"' _ "$FAULTPROXY_LOG" "$tmpd"
check "proxy: chunked upload (skopeo push through the proxy)" registry_push "$B" "$FAULTPROXY_LOG/viaproxy:latest"
check "proxy: log line" grep -q "^GET /$U bytes=100-199 206 100 " "$FAULTPROXY_LOG_LOG"

faultproxy_start ir "$R" --ignore-range 2>/dev/null
check "--ignore-range: 200 + whole blob" eq "$(curl -s -o /dev/null -w '%{http_code} %{size_download}' -r 100-199 \
    "http://$FAULTPROXY_IR/$U")" "200 $lsize"

faultproxy_start cut "$R" --cut-after 300000 2>/dev/null
rc=0
n=$(curl -s -o /dev/null -w '%{size_download}' "http://$FAULTPROXY_CUT/$U") || rc=$?
check "--cut-after 300000: curl error after 300000 bytes" eq "$rc $n" "18 300000"
check "--cut-after: a small range on a new connection still works" \
    eq "$(curl -s -o /dev/null -w '%{http_code}' -r 0-99 "http://$FAULTPROXY_CUT/$U")" 206

faultproxy_start down "$R" --cut-after 300000 --down-after-cut --blob-filter "${layer#sha256:}" 2>/dev/null
check "--down-after-cut: /v2/ before" eq "$(curl -s -o /dev/null -w '%{http_code}' "http://$FAULTPROXY_DOWN/v2/")" 200
curl -s -o /dev/null "http://$FAULTPROXY_DOWN/$U" || true
rc=0
curl -s -o /dev/null "http://$FAULTPROXY_DOWN/v2/" || rc=$?
check "--down-after-cut: connection refused after the cut" eq "$rc" 7

faultproxy_start cor "$R" --corrupt-blob 2>/dev/null
check "--corrupt-blob: digest differs" bash -c '[ "sha256:$(curl -s "http://$1/$2" | sha256sum | cut -d" " -f1)" != "$3" ]' \
    _ "$FAULTPROXY_COR" "$U" "$layer"
check "--corrupt-blob: exactly one byte differs" eq "$(cmp -l "$tmpd/blob" <(curl -s "http://$FAULTPROXY_COR/$U") | wc -l)" 1
check "--corrupt-blob: manifests untouched" eq "sha256:$(curl -s -H "$OCI_ACCEPT" \
    "http://$FAULTPROXY_COR/v2/busybox/manifests/latest" | sha256sum | cut -d' ' -f1)" "$mdigest"

faultproxy_start ff "$R" --fail-first 2 2>/dev/null
codes=""
for _ in 1 2 3; do codes="$codes$(curl -s -o /dev/null -w '%{http_code}' "http://$FAULTPROXY_FF/v2/") "; done
check "--fail-first 2: 503 503 200" eq "$codes" "503 503 200 "

faultproxy_start d "$R" --no-log --delay-ms 10 2>/dev/null
ms() { curl -s -o /dev/null -o /dev/null -o /dev/null -w '%{time_total}\n' "http://$1/v2/" "http://$1/v2/" "http://$1/v2/" |
    awk '{s+=$1} END {printf "%d", s*1000/NR}'; }
dms=$(ms "$FAULTPROXY_D")
check "--delay-ms 10: ${dms} ms per request (want 18..40)" bash -c '[ "$1" -ge 18 ] && [ "$1" -le 40 ]' _ "$dms"

faultproxy_start rate "$R" --no-log --rate-mbit 40 2>/dev/null
t=$(curl -s -o /dev/null -w '%{time_total}' "http://$FAULTPROXY_RATE/$U")
want=$(awk -v s="$lsize" 'BEGIN { printf "%.3f", s * 8 / 40e6 }')
check "--rate-mbit 40: ${t} s for $lsize bytes (want >= 0.8 x $want s)" awk -v t="$t" -v w="$want" 'BEGIN { exit !(t >= 0.8 * w) }'
registry_stop_all

# ---- WAN
if [ "$wan" = 1 ]; then
    info "wan.sh"
    if addr=$("$REGISTRY_LIB/wan.sh" up 2>"$tmpd/wan.err"); then
        pass "wan.sh up: $addr"
        check "wan: push" registry_push "$B" "$addr/busybox:latest"
        w=$(ms "$addr")
        check "wan: ${w} ms per request (want 18..40)" bash -c '[ "$1" -ge 18 ] && [ "$1" -le 40 ]' _ "$w"
        check "wan: tbf on the veth" bash -c 'tc qdisc show dev clipwan0 | grep -q tbf'
    else
        fail "wan.sh up: $(head -c 300 "$tmpd/wan.err")"
    fi
    "$REGISTRY_LIB/wan.sh" down
    check "wan.sh down: no namespace" bash -c '! ip netns list | grep -qw clipwan'
    check "wan.sh down: no veth" bash -c '! ip link show clipwan0 2>/dev/null'
    check "wan.sh down: no state" bash -c '[ ! -e "$1/wan" ] && [ ! -e "$1/registry/wan" ] && [ ! -e "$1/registry/proxy-wan" ]' _ "$WORK"
fi

echo "==== registry selftest: $NPASS passed, $NFAIL failed"
[ "$NFAIL" -eq 0 ]
