# shellcheck shell=bash
# Registry helpers for the integration tests (source, don't run).
#
#   registry_start NAME [--auth none|basic|token] [--storage DIR]
#                  [--anonymous-pull] [--token-header x5c|kid|both]
#                  [--netns NS --addr IP:PORT]
#       Starts Debian's `docker-registry serve CONFIG` (distribution 2.8) on
#       127.0.0.1 with an ephemeral port (or ADDR inside network namespace
#       NS), config/storage/logs under $CLIP_TEST_WORK/registry/NAME, waits
#       until /v2/ answers (200, or 401 with auth), and exports (NAME upper-
#       cased, non-alphanumerics -> _):
#         REGISTRY_NAME          127.0.0.1:PORT
#         REGISTRY_NAME_LOG      registry stdout+stderr: access log lines in
#                                combined log format ("GET /v2/... HTTP/1.1"
#                                STATUS BYTES) plus its own logfmt lines
#         REGISTRY_NAME_DIR      its directory; _STORAGE its storage root
#         REGISTRY_NAME_CREDS    clip:clip-secret (basic and token), and
#         REGISTRY_NAME_USER / _PASSWORD
#         REGISTRY_NAME_REALM    token realm URL (token), _TOKEN_LOG its log
#       The same assignments are written to $dir/env (registry_env NAME
#       re-exports them, e.g. in another shell).
#       --auth basic: htpasswd (bcrypt), user clip / password clip-secret.
#       --auth token: auth.token (realm = token-server.py started here,
#         service clip-test-registry, issuer clip-test-issuer, rootcertbundle
#         = a self-signed RSA cert made with openssl); requests without
#         credentials get 401 from the token server unless --anonymous-pull.
#       --storage DIR: use DIR as the storage root (kept by registry_stop).
#   registry_stop NAME      kill it (and its token server), remove its dir
#   registry_stop_all       stop every registry and faultproxy this shell
#                           ($$) started: trap 'registry_stop_all' EXIT
#   registry_addr NAME      print HOST:PORT
#   registry_env NAME       export the variables above again
#
#   registry_push LAYOUT_DIR:TAG REGISTRY/REPO:TAG [--creds USER:PASS]
#                 [--format oci|v2s2] [--all]
#       skopeo copy oci:LAYOUT_DIR:TAG docker://REGISTRY/REPO:TAG over plain
#       HTTP; --format oci (default, with --preserve-digests: otherwise
#       skopeo gzips uncompressed layers) keeps the OCI manifest byte for byte,
#       --format v2s2 converts to Docker schema 2 (no zstd layers);
#       --all copies every manifest of a multi-platform index.
#   registry_push_v2s2 SRC DEST [...]   = registry_push --format v2s2
#   registry_push_all SRC DEST [...]    = registry_push --all (multi-platform)
#   registry_manifest_digest REGISTRY/REPO:TAG [--creds U:P]
#       sha256:... of the raw manifest (what the tag points at)
#
#   faultproxy_start NAME HOST:PORT [--no-log] [faultproxy.py flags...]
#       starts faultproxy.py in front of HOST:PORT; exports FAULTPROXY_NAME
#       (127.0.0.1:PORT) and FAULTPROXY_NAME_LOG (its --log file: on unless
#       --no-log, which leaves plain byte forwarding when no HTTP mode is
#       asked for)
#   faultproxy_stop NAME
#
#   ensure_multi_image      builds $IMG/multi: mkimage.py --multi-platform
#                           over the busybox rootfs (linux/amd64 and
#                           linux/arm64/v8, /.clip-platform marker each)

if ! declare -F ensure_image >/dev/null; then
    # shellcheck source=../lib.sh
    . "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"
fi
REGISTRY_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REGISTRY_WORK=$WORK/registry
REGISTRY_USER=clip
REGISTRY_PASSWORD=clip-secret
REGISTRY_SERVICE=clip-test-registry
REGISTRY_ISSUER=clip-test-issuer

_reg_var() { echo "$1" | tr '[:lower:]' '[:upper:]' | tr -c 'A-Z0-9\n' '_'; }

# _reg_kill PID: TERM, wait up to 5 s, then KILL
_reg_kill() {
    local pid=$1
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
}

# _reg_wait_line FILE REGEX SECONDS PID -> prints the first matching line
_reg_wait_line() {
    local f=$1 re=$2 secs=$3 pid=$4 line
    for _ in $(seq $((secs * 10))); do
        line=$(grep -m1 -E "$re" "$f" 2>/dev/null || true)
        if [ -n "$line" ]; then echo "$line"; return 0; fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

registry_env() {
    local dir=$REGISTRY_WORK/$1
    [ -f "$dir/env" ] || { echo "registry_env: no registry $1" >&2; return 1; }
    # shellcheck disable=SC1091
    . "$dir/env"
}

registry_addr() {
    local v
    v=REGISTRY_$(_reg_var "$1")
    registry_env "$1" || return 1
    echo "${!v}"
}

registry_start() {
    local name=$1 auth=none storage="" anon="" header=x5c netns="" addr=""
    shift
    while [ $# -gt 0 ]; do
        case $1 in
        --auth) auth=$2; shift 2 ;;
        --storage) storage=$2; shift 2 ;;
        --anonymous-pull) anon=--anonymous-pull; shift ;;
        --token-header) header=$2; shift 2 ;;
        --netns) netns=$2; shift 2 ;;
        --addr) addr=$2; shift 2 ;;
        *) echo "registry_start: unknown option $1" >&2; return 2 ;;
        esac
    done
    case $auth in none|basic|token) ;; *) echo "registry_start: bad --auth $auth" >&2; return 2 ;; esac
    local dir=$REGISTRY_WORK/$name var pid tpid line port realm="" code
    var=REGISTRY_$(_reg_var "$name")
    if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
        echo "registry_start: $name is already running" >&2
        return 1
    fi
    rm -rf "$dir"
    mkdir -p "$dir/auth"
    [ -n "$storage" ] || storage=$dir/storage
    mkdir -p "$storage"
    echo "$$" >"$dir/owner"
    if [ "$storage" != "$dir/storage" ]; then echo "$storage" >"$dir/external-storage"; fi
    [ -n "$addr" ] || addr=127.0.0.1:0

    local authcfg=""
    case $auth in
    basic)
        htpasswd -Bbn "$REGISTRY_USER" "$REGISTRY_PASSWORD" >"$dir/auth/htpasswd" 2>/dev/null
        authcfg="auth:
  htpasswd:
    realm: clip-test-basic
    path: $dir/auth/htpasswd"
        ;;
    token)
        openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 2 \
            -subj "/CN=clip-test-token-signer" \
            -keyout "$dir/auth/key.pem" -out "$dir/auth/cert.pem" >/dev/null 2>&1 || {
            echo "registry_start: openssl key generation failed" >&2; return 1; }
        python3 "$REGISTRY_LIB/token-server.py" --key "$dir/auth/key.pem" \
            --cert "$dir/auth/cert.pem" --issuer "$REGISTRY_ISSUER" \
            --service "$REGISTRY_SERVICE" --header "$header" $anon \
            --user "$REGISTRY_USER:$REGISTRY_PASSWORD" \
            --log "$dir/token.log" </dev/null >"$dir/token.out" 2>&1 &
        tpid=$!
        echo "$tpid" >"$dir/token.pid"
        line=$(_reg_wait_line "$dir/token.out" '^listening on ' 10 "$tpid") || {
            echo "registry_start: token server did not start: $(cat "$dir/token.out")" >&2
            return 1; }
        realm="http://${line#listening on }/token"
        authcfg="auth:
  token:
    realm: $realm
    service: $REGISTRY_SERVICE
    issuer: $REGISTRY_ISSUER
    rootcertbundle: $dir/auth/cert.pem"
        ;;
    esac

    cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
  fields:
    service: registry-$name
storage:
  filesystem:
    rootdirectory: $storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $addr
  secret: clip-test-http-secret
  headers:
    X-Content-Type-Options: [nosniff]
$authcfg
EOF
    if [ -n "$netns" ]; then
        ip netns exec "$netns" docker-registry serve "$dir/config.yml" \
            </dev/null >"$dir/registry.log" 2>&1 &
    else
        docker-registry serve "$dir/config.yml" </dev/null >"$dir/registry.log" 2>&1 &
    fi
    pid=$!
    echo "$pid" >"$dir/pid"
    line=$(_reg_wait_line "$dir/registry.log" 'msg="listening on [^"]*:[0-9]+"' 15 "$pid") || {
        echo "registry_start: $name did not start:" >&2
        tail -n 5 "$dir/registry.log" >&2
        registry_stop "$name"
        return 1
    }
    port=$(echo "$line" | sed -E 's/.*msg="listening on [^"]*:([0-9]+)".*/\1/')
    case $addr in *:0) addr=${addr%:0}:$port ;; esac
    for _ in $(seq 100); do
        code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://$addr/v2/" || true)
        case $code in 200|401) break ;; esac
        sleep 0.1
    done
    case $code in
    200|401) ;;
    *) echo "registry_start: $name: GET /v2/ answers '$code'" >&2; registry_stop "$name"; return 1 ;;
    esac

    {
        echo "export $var=$addr"
        echo "export ${var}_LOG=$dir/registry.log"
        echo "export ${var}_DIR=$dir"
        echo "export ${var}_STORAGE=$storage"
        echo "export ${var}_AUTH=$auth"
        if [ "$auth" != none ]; then
            echo "export ${var}_USER=$REGISTRY_USER"
            echo "export ${var}_PASSWORD=$REGISTRY_PASSWORD"
            echo "export ${var}_CREDS=$REGISTRY_USER:$REGISTRY_PASSWORD"
        fi
        if [ "$auth" = token ]; then
            echo "export ${var}_REALM=$realm"
            echo "export ${var}_TOKEN_LOG=$dir/token.log"
        fi
    } >"$dir/env"
    registry_env "$name"
    echo "registry $name: $addr (auth $auth, pid $pid)" >&2
}

registry_stop() {
    local name=$1 dir=$REGISTRY_WORK/$1 var
    [ -d "$dir" ] || return 0
    _reg_kill "$(cat "$dir/pid" 2>/dev/null)"
    _reg_kill "$(cat "$dir/token.pid" 2>/dev/null)"
    rm -rf "$dir"
    var=REGISTRY_$(_reg_var "$name")
    unset "$var" "${var}_LOG" "${var}_DIR" "${var}_STORAGE" "${var}_AUTH" "${var}_USER" \
        "${var}_PASSWORD" "${var}_CREDS" "${var}_REALM" "${var}_TOKEN_LOG"
}

faultproxy_start() {
    local name=$1 upstream=$2 dir pid line var log=()
    shift 2
    dir=$REGISTRY_WORK/proxy-$name
    var=FAULTPROXY_$(_reg_var "$name")
    rm -rf "$dir"
    mkdir -p "$dir"
    echo "$$" >"$dir/owner"
    if [ "${1:-}" = --no-log ]; then
        shift
    else
        log=(--log "$dir/access.log")
        : >"$dir/access.log"
    fi
    python3 "$REGISTRY_LIB/faultproxy.py" --upstream "$upstream" "${log[@]}" "$@" \
        </dev/null >"$dir/out" 2>"$dir/err" &
    pid=$!
    echo "$pid" >"$dir/pid"
    line=$(_reg_wait_line "$dir/out" '^[0-9]+$' 10 "$pid") || {
        echo "faultproxy_start: $name did not start: $(cat "$dir/err")" >&2
        return 1; }
    export "$var=127.0.0.1:$line"
    export "${var}_LOG=$dir/access.log"
    echo "faultproxy $name: 127.0.0.1:$line -> $upstream (${log[*]} $*)" >&2
}

faultproxy_stop() {
    local name=$1 dir=$REGISTRY_WORK/proxy-$1 var
    [ -d "$dir" ] || return 0
    _reg_kill "$(cat "$dir/pid" 2>/dev/null)"
    rm -rf "$dir"
    var=FAULTPROXY_$(_reg_var "$name")
    unset "$var" "${var}_LOG"
}

registry_stop_all() {
    local d n
    for d in "$REGISTRY_WORK"/*/; do
        [ -f "$d/owner" ] || continue
        [ "$(cat "$d/owner")" = "$$" ] || continue
        n=$(basename "$d")
        case $n in
        proxy-*) faultproxy_stop "${n#proxy-}" ;;
        *) registry_stop "$n" ;;
        esac
    done
}

registry_push() {
    local src=$1 dest=$2 creds=() fmt=oci all=()
    shift 2
    while [ $# -gt 0 ]; do
        case $1 in
        --creds) creds=(--dest-creds "$2"); shift 2 ;;
        --format) fmt=$2; shift 2 ;;
        --all) all=(--all); shift ;;
        *) echo "registry_push: unknown option $1" >&2; return 2 ;;
        esac
    done
    # skopeo gzips uncompressed layers on the way to a registry unless told
    # to keep the digests (impossible when converting to v2s2)
    local keep=()
    [ "$fmt" = oci ] && keep=(--preserve-digests)
    skopeo copy -q --dest-tls-verify=false --format "$fmt" "${keep[@]}" "${all[@]}" "${creds[@]}" \
        "oci:$src" "docker://$dest"
}
registry_push_v2s2() { local s=$1 d=$2; shift 2; registry_push "$s" "$d" --format v2s2 "$@"; }
registry_push_all() { local s=$1 d=$2; shift 2; registry_push "$s" "$d" --all "$@"; }

registry_manifest_digest() {
    local ref=$1 creds=()
    [ "${2:-}" = --creds ] && creds=(--creds "$3")
    echo "sha256:$(skopeo inspect --raw --tls-verify=false "${creds[@]}" "docker://$ref" |
        sha256sum | cut -d' ' -f1)"
}

ensure_multi_image() {
    local out=$IMG/multi stamp layer tmp
    ensure_image busybox || return $?
    layer=$(jq -r '.layers[0].digest' "$IMG/busybox/blobs/sha256/$(jq -r '.manifests[0].digest' \
        "$IMG/busybox/index.json" | cut -d: -f2)")
    stamp=$(sha256sum <"$IMAGES_SRC/mkimage.py" | cut -d' ' -f1)-$layer
    if [ -f "$out/index.json" ] && [ "$(cat "$IMG/.multi.stamp" 2>/dev/null)" = "$stamp" ]; then
        return 0
    fi
    info "building image multi"
    rm -rf "$out" "$IMG/.multi.stamp"
    tmp=$(mktemp -d "$IMG/.multi-build.XXXXXX")
    gzip -dc "$IMG/busybox/blobs/sha256/${layer#sha256:}" >"$tmp/rootfs.tar"
    python3 "$IMAGES_SRC/mkimage.py" "$out" --layer "$tmp/rootfs.tar:gzip" \
        --cmd '["sh"]' --env PATH=/usr/sbin:/usr/bin:/sbin:/bin --multi-platform || {
        rm -rf "$tmp"; return 1; }
    rm -rf "$tmp"
    echo "$stamp" >"$IMG/.multi.stamp"
}
