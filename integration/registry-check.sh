#!/bin/bash
# Registry check: clip against a real OCI registry (docker-registry 2.8).
#
#   integration/registry-check.sh [TEST...]
#
# TEST (default: all, in this order):
#   oci        anonymous registry, OCI manifest (busybox): `clip index
#              docker://HOST:PORT/REPO:TAG` equals the index of the same OCI
#              layout except the recorded source; `clip extract` equals
#              `umoci unpack`; cat-check.py range reads served by the registry
#   v2s2       the same image pushed as Docker schema 2 (skopeo --format
#              v2s2: same config and layer blobs, new manifest digest and
#              media types); and a schema 2 manifest with an uncompressed
#              layer (application/vnd.docker.image.rootfs.diff.tar)
#   synthetic  6 layers: gzip, multi-member gzip, zstd, multi-frame zstd,
#              uncompressed; OCI manifest (zstd has no Docker v2 form)
#   basic      htpasswd auth: credentials from $DOCKER_CONFIG/config.json
#              `auths`, `credHelpers` and `credsStore` (a fake
#              docker-credential-cliptest on PATH); no credentials and a wrong
#              password fail with one `clip: error:` line (401/unauthorized)
#   token      bearer-token auth (token-server.py): auths; wrong password;
#              no credentials; plus a token server that gives anonymous pull
#              tokens (Docker Hub style): no credentials needed
#   multi      multi-platform index (OCI index and Docker manifest list):
#              --platform linux/arm64 / linux/amd64 / default pick the right
#              manifest (checked with `clip cat X.clip /.clip-platform`)
#   push       `clip index ... --push` publishes the index; skopeo finds it
#              at the tag sha256-<manifest hex> (subject = the image
#              manifest, artifactType application/vnd.clip.index.v1); a fresh
#              `clip index` then finds it without reading any layer blob in
#              full (registry access log) and writes the same bytes
#   faults     faultproxy.py: registry gone mid-stream (fails in bounded
#              time with one error), connection cut once (no hang), first 2
#              requests 503 (retried: success), corrupt layer bytes (proxy
#              and registry storage: exit 1, error names the layer, no -o
#              file), corrupt bytes on `clip cat` (error, not data), a
#              server that ignores Range (`clip cat` still right), missing
#              tag and repository (one error line: 404/not found/the tag)
#
# CLI contract exercised: clip index docker://HOST:PORT/REPO:TAG -o OUT.clip
# [--platform OS/ARCH] [--push] (loopback hosts use plain HTTP), clip cat
# X.clip PATH [--source docker://...], clip extract, clip inspect --json.
# Credentials: $DOCKER_CONFIG/config.json (every clip call here gets its
# own DOCKER_CONFIG, so ~/.docker never leaks in).
#
# Environment: CLIP, CLIP_TEST_WORK (default /tmp/clip-test),
# CLIP_TEST_TIMEOUT (per clip call, default 900 s; fault tests use 120 s),
# CLIP_TEST_CATS (range checks in `oci`, default 20), CLIP_TEST_SEED.
# Every test starts its own registries/proxies and stops them (trap).
# Exit status: 0 all passed, 1 any failure, 2 usage/setup error.
set -euo pipefail

INTEG=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CLIP=${CLIP:-$INTEG/../.build/debug/clip}
# shellcheck source=lib.sh
. "$INTEG/lib.sh"
# shellcheck source=registry/lib.sh
. "$INTEG/registry/lib.sh"

SEED=${CLIP_TEST_SEED:-1}
CATS=${CLIP_TEST_CATS:-20}
FAULT_TIMEOUT=120
ALL_TESTS=(oci v2s2 synthetic basic token multi push faults)
ARTIFACT_TYPE=application/vnd.clip.index.v1

tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=("${ALL_TESTS[@]}")
for t in "${tests[@]}"; do
    case " ${ALL_TESTS[*]} " in *" $t "*) ;; *) echo "error: unknown test $t (${ALL_TESTS[*]})" >&2; exit 2 ;; esac
done
need_clip
for tool in docker-registry skopeo umoci jq htpasswd openssl curl; do
    command -v "$tool" >/dev/null || { echo "error: $tool not installed (integration/deps.sh)" >&2; exit 2; }
done
mkdir -p "$WORK"
tmpd=$(mktemp -d "$WORK/.regcheck.XXXXXX")
trap 'registry_stop_all; rm -rf "$tmpd"' EXIT
trap 'exit 130' INT TERM
umask 022

# ---------------------------------------------------------------- helpers

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f s", b - a }'; }

# an empty docker config dir (no credentials at all)
NOCREDS=$tmpd/docker-nocreds
mkdir -p "$NOCREDS"
echo '{}' >"$NOCREDS/config.json"

# clipc DOCKER_CONFIG_DIR SECONDS args... -> stdout $tmpd/out, stderr $tmpd/err
clipc() {
    local dc=$1 secs=$2
    shift 2
    DOCKER_CONFIG=$dc timeout --kill-after=10 "$secs" "$CLIP" "$@" >"$tmpd/out" 2>"$tmpd/err"
}
errline() { head -c 300 "$tmpd/err" | tr '\n' '|'; }
notes() { # " (+N notes)" when stderr has lines besides the error
    local n
    n=$(grep -vc '^clip: error:' "$tmpd/err" || true)
    [ "$n" -eq 0 ] || echo " (+$n note lines)"
}

# expect_error LABEL RC OUTFILE REGEX [exact-exit]
#   RC from a clipc call that must have failed: not 0, not a signal/timeout,
#   one error line matching REGEX (grep -Ei), no OUTFILE left behind
expect_error() {
    local label=$1 rc=$2 outf=$3 re=$4 exact=${5:-} why=""
    if [ "$rc" -eq 0 ]; then
        why="exit 0, want an error"
    elif [ "$rc" -ge 124 ]; then
        why="exit $rc (timeout or signal)"
    elif [ -n "$exact" ] && [ "$rc" -ne "$exact" ]; then
        why="exit $rc, want $exact: $(errline)"
    elif ! why=$(check_one_error_line "$tmpd/err"); then
        :
    elif ! grep -qEi -- "$re" "$tmpd/err"; then
        why="error does not match /$re/: $(errline)"
    elif [ -n "$outf" ] && [ -e "$outf" ]; then
        why="-o file $outf exists after the failure"
    else
        why=""
    fi
    if [ -z "$why" ]; then
        pass "$label: $(grep '^clip: error:' "$tmpd/err" | head -c 200)$(notes)"
    else
        fail "$label: $why"
    fi
}

# layout_index NAME OUT [clip index args] -> OUT = clip index of the OCI layout
layout_index() {
    local name=$1 out=$2 rc=0 t
    shift 2
    t=$(now)
    clipc "$NOCREDS" "$TIMEOUT" index "oci:$IMG/$name:latest" -o "$out" "$@" || rc=$?
    if [ "$rc" -ne 0 ]; then
        fail "reference: clip index oci:$name $* (exit $rc): $(errline)"
        return 1
    fi
    info "reference: clip index oci:$name${*:+ $*} ($(since "$t"))"
}

# inspect_json X.clip OUT.json [JQ] -> clip inspect --json minus what depends
# on the source string (.source; the image frame and file size contain it)
inspect_json() {
    local f=$1 out=$2 filter=${3:-.}
    DOCKER_CONFIG=$NOCREDS "$CLIP" inspect "$f" --json 2>"$tmpd/err" |
        jq -S "del(.source, .indexBytes, .imageFrameBytes) | $filter" >"$out"
}

# same_index LABEL REGISTRY.clip LAYOUT.clip [JQ applied to both]
same_index() {
    local label=$1 a=$2 b=$3 filter=${4:-.}
    if ! inspect_json "$a" "$tmpd/a.json" "$filter" || ! inspect_json "$b" "$tmpd/b.json" "$filter"; then
        fail "$label: clip inspect --json failed: $(errline)"
        return 1
    fi
    if diff -u "$tmpd/b.json" "$tmpd/a.json" >"$tmpd/diff"; then
        pass "$label: clip inspect --json equals the OCI layout's (except source)"
    else
        fail "$label: clip inspect --json differs from the OCI layout's"
        head -n 30 "$tmpd/diff" | sed 's/^/    /'
        return 1
    fi
}

# extract_compare LABEL X.clip REFNAME [compare-trees args]
extract_compare() {
    local label=$1 f=$2 refname=$3 rc=0 t
    shift 3
    rm -rf "$tmpd/tree"
    t=$(now)
    clipc "$NOCREDS" "$TIMEOUT" extract "$f" "$tmpd/tree" || rc=$?
    if [ "$rc" -ne 0 ]; then
        fail "$label: clip extract (exit $rc): $(errline)"
        return 1
    fi
    if python3 "$INTEG/compare-trees.py" "$REF/$refname/rootfs" "$tmpd/tree" "$@" >"$tmpd/cmp" 2>&1; then
        pass "$label: clip extract equals umoci unpack ($(tail -n1 "$tmpd/cmp"); $(since "$t"))"
    else
        fail "$label: clip extract differs from umoci unpack ($(tail -n1 "$tmpd/cmp"))"
        head -n 30 "$tmpd/cmp" | sed 's/^/    /'
    fi
    rm -rf "$tmpd/tree"
}

# cat_check LABEL X.clip REFNAME COUNT [--source SRC]  (clip cat reads the
# blobs from the registry recorded in X.clip, or from SRC; credentials from
# $CAT_DOCKER_CONFIG, default none)
cat_check() {
    local label=$1 f=$2 refname=$3 count=$4 clipbin=$CLIP t
    t=$(now)
    if [ "${5:-}" = --source ]; then
        clipbin=$tmpd/clip-via-source
        printf '#!/bin/sh\nexec "%s" "$@" --source "%s"\n' "$CLIP" "$6" >"$clipbin"
        chmod +x "$clipbin"
    fi
    if DOCKER_CONFIG=${CAT_DOCKER_CONFIG:-$NOCREDS} python3 "$INTEG/cat-check.py" "$clipbin" "$f" "$REF/$refname/rootfs" \
        --count "$count" --seed "$SEED" --errfile "$tmpd/caterr" >"$tmpd/cat" 2>&1; then
        pass "$label: $(tail -n1 "$tmpd/cat") ($(since "$t"))"
    else
        fail "$label: $(tail -n1 "$tmpd/cat")"
        head -n 10 "$tmpd/cat" | sed 's/^/    /'
    fi
}

# registry_index LABEL DOCKER_CONFIG REF OUT [clip args] -> 0 on success
registry_index() {
    local label=$1 dc=$2 ref=$3 out=$4 rc=0 t
    shift 4
    rm -f "$out"
    t=$(now)
    clipc "$dc" "$TIMEOUT" index "docker://$ref" -o "$out" "$@" || rc=$?
    if [ "$rc" -ne 0 ]; then
        fail "$label: clip index docker://$ref${*:+ $*} (exit $rc): $(errline)"
        return 1
    fi
    if [ ! -s "$out" ]; then
        fail "$label: clip index docker://$ref wrote no $out"
        return 1
    fi
    pass "$label: clip index docker://$ref${*:+ $*} ($(stat -c %s "$out") bytes, $(since "$t"))"
}

# docker_config DIR auths HOST USER:PASS | helpers HOST | store
docker_config() {
    local dir=$1 kind=$2
    mkdir -p "$dir"
    case $kind in
    auths) jq -n --arg h "$3" --arg a "$(printf %s "$4" | base64 -w0)" \
        '{auths: {($h): {auth: $a}}}' >"$dir/config.json" ;;
    helpers) jq -n --arg h "$3" '{credHelpers: {($h): "cliptest"}}' >"$dir/config.json" ;;
    store) jq -n '{credsStore: "cliptest"}' >"$dir/config.json" ;;
    esac
}

# the fake credential helper docker-credential-cliptest: answers `get` for
# $CLIPTEST_HOST with clip/clip-secret, logs every call to $CLIPTEST_LOG
HELPER_BIN=$tmpd/helper-bin
mkdir -p "$HELPER_BIN"
cat >"$HELPER_BIN/docker-credential-cliptest" <<'EOF'
#!/bin/sh
server=$(cat)
echo "$1 $server" >>"$CLIPTEST_LOG"
case $1 in
get)
    case $server in
    *"$CLIPTEST_HOST"*)
        printf '{"ServerURL":"%s","Username":"clip","Secret":"clip-secret"}\n' "$server"
        exit 0 ;;
    esac
    echo "credentials not found in native keychain"
    exit 1 ;;
*) exit 0 ;;
esac
EOF
chmod +x "$HELPER_BIN/docker-credential-cliptest"

# log_lines FILE -> its line count once it has stopped growing (the registry
# writes an access line after the response, maybe after the client is done)
log_lines() {
    local a b=-1
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        a=$(wc -l <"$1")
        [ "$a" = "$b" ] && break
        b=$a
        sleep 0.2
    done
    echo "$a"
}

image_layers() { # REF [--creds U:P] -> "DIGEST:SIZE" lines of the manifest's layers
    local ref=$1 creds=()
    [ "${2:-}" = --creds ] && creds=(--creds "$3")
    skopeo inspect --raw --tls-verify=false "${creds[@]}" "docker://$ref" |
        jq -r '.layers[] | "\(.digest):\(.size)"'
}

need_image() {
    local rc=0
    ensure_image "$1" || rc=$?
    [ "$rc" -eq 0 ] || { fail "building image $1 failed (exit $rc)"; return 1; }
}

# ---------------------------------------------------------------- tests

test_oci() {
    local t ref_clip r
    need_image busybox && ensure_ref busybox || { fail "oci: busybox image/reference"; return; }
    registry_start oci >/dev/null || { fail "oci: registry_start"; return; }
    t=$(now)
    registry_push "$IMG/busybox:latest" "$REGISTRY_OCI/busybox:latest" || { fail "oci: skopeo push"; return; }
    info "oci: pushed busybox as OCI ($(since "$t"))"
    r=$REGISTRY_OCI/busybox:latest
    ref_clip=$tmpd/busybox-oci.clip
    layout_index busybox "$ref_clip" || return
    registry_index oci "$NOCREDS" "$r" "$tmpd/oci.clip" || return
    same_index oci "$tmpd/oci.clip" "$ref_clip"
    extract_compare oci "$tmpd/oci.clip" busybox
    cat_check "oci: clip cat from the registry" "$tmpd/oci.clip" busybox "$CATS"
}

test_v2s2() {
    local t ref_clip r mt
    need_image busybox && ensure_ref busybox || { fail "v2s2: busybox image/reference"; return; }
    registry_start v2s2 >/dev/null || { fail "v2s2: registry_start"; return; }
    t=$(now)
    registry_push_v2s2 "$IMG/busybox:latest" "$REGISTRY_V2S2/busybox:v2" || { fail "v2s2: skopeo push"; return; }
    r=$REGISTRY_V2S2/busybox:v2
    mt=$(skopeo inspect --raw --tls-verify=false "docker://$r" | jq -r .mediaType)
    info "v2s2: pushed busybox as $mt ($(since "$t"))"
    ref_clip=$tmpd/busybox-oci.clip
    layout_index busybox "$ref_clip" || return
    registry_index v2s2 "$NOCREDS" "$r" "$tmpd/v2s2.clip" || return
    # same config and layer blobs; the manifest digest and media types differ
    same_index v2s2 "$tmpd/v2s2.clip" "$ref_clip" 'del(.manifestDigest) | del(.layers[].mediaType)'
    local want got
    want=$(registry_manifest_digest "$r")
    got=$(DOCKER_CONFIG=$NOCREDS "$CLIP" inspect "$tmpd/v2s2.clip" --json | jq -r .manifestDigest)
    if [ "$want" = "$got" ]; then
        pass "v2s2: manifestDigest is the Docker manifest's ($got)"
    else
        fail "v2s2: manifestDigest $got, want the registry's $want"
    fi
    got=$(DOCKER_CONFIG=$NOCREDS "$CLIP" inspect "$tmpd/v2s2.clip" --json | jq -r '[.layers[].mediaType] | unique | join(",")')
    if [ "$got" = application/vnd.docker.image.rootfs.diff.tar.gzip ]; then
        pass "v2s2: layer media type $got"
    else
        fail "v2s2: layer media types '$got', want application/vnd.docker.image.rootfs.diff.tar.gzip"
    fi
    extract_compare v2s2 "$tmpd/v2s2.clip" busybox
    cat_check "v2s2: clip cat from the registry" "$tmpd/v2s2.clip" busybox 10

    # an uncompressed Docker layer (application/vnd.docker.image.rootfs.diff.tar,
    # what skopeo/podman write when they reuse an uncompressed blob): the
    # multi image's arm64 manifest rewritten as Docker schema 2 by hand
    ensure_multi_image || { fail "v2s2: building the multi-platform image"; return; }
    registry_push_all "$IMG/multi:latest" "$REGISTRY_V2S2/plain:oci" || { fail "v2s2: skopeo push multi"; return; }
    local idx arm
    idx=$(jq -r '.manifests[0].digest' "$IMG/multi/index.json")
    arm=$(jq -r '.manifests[] | select(.platform.architecture == "arm64") | .digest' \
        "$IMG/multi/blobs/sha256/${idx#sha256:}")
    jq -c '.mediaType = "application/vnd.docker.distribution.manifest.v2+json"
        | .config.mediaType = "application/vnd.docker.container.image.v1+json"
        | .layers[].mediaType |= {
            "application/vnd.oci.image.layer.v1.tar+gzip": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "application/vnd.oci.image.layer.v1.tar": "application/vnd.docker.image.rootfs.diff.tar"}[.]' \
        "$IMG/multi/blobs/sha256/${arm#sha256:}" >"$tmpd/plain.json"
    if ! curl -sf -o /dev/null -X PUT -H 'Content-Type: application/vnd.docker.distribution.manifest.v2+json' \
        --data-binary @"$tmpd/plain.json" "http://$REGISTRY_V2S2/v2/plain/manifests/docker"; then
        fail "v2s2: PUT of the hand-made schema 2 manifest"
        return
    fi
    registry_index "v2s2: uncompressed Docker layer" "$NOCREDS" "$REGISTRY_V2S2/plain:docker" "$tmpd/plain.clip" &&
        platform_is "v2s2: uncompressed Docker layer" "$tmpd/plain.clip" arm64
}

test_synthetic() {
    local t ref_clip r exc=(--mtime-exceptions "$IMG/synthetic-mtime-exceptions.txt")
    need_image synthetic && ensure_ref synthetic-gzip || { fail "synthetic: image/reference"; return; }
    registry_start synthetic >/dev/null || { fail "synthetic: registry_start"; return; }
    t=$(now)
    registry_push "$IMG/synthetic:latest" "$REGISTRY_SYNTHETIC/synthetic:latest" || { fail "synthetic: skopeo push"; return; }
    info "synthetic: pushed ($(since "$t"))"
    r=$REGISTRY_SYNTHETIC/synthetic:latest
    ref_clip=$tmpd/synthetic-oci.clip
    layout_index synthetic "$ref_clip" || return
    registry_index synthetic "$NOCREDS" "$r" "$tmpd/synthetic.clip" || return
    same_index synthetic "$tmpd/synthetic.clip" "$ref_clip"
    extract_compare synthetic "$tmpd/synthetic.clip" synthetic-gzip "${exc[@]}"
    cat_check "synthetic: clip cat from the registry" "$tmpd/synthetic.clip" synthetic-gzip 10
}

test_basic() {
    local r host ref_clip dc rc
    need_image busybox || return
    registry_start basic --auth basic >/dev/null || { fail "basic: registry_start"; return; }
    host=$REGISTRY_BASIC
    r=$host/busybox:latest
    registry_push "$IMG/busybox:latest" "$r" --creds "$REGISTRY_BASIC_CREDS" || { fail "basic: skopeo push"; return; }
    ref_clip=$tmpd/busybox-oci.clip
    layout_index busybox "$ref_clip" || return

    dc=$tmpd/dc-basic-auths
    docker_config "$dc" auths "$host" "$REGISTRY_BASIC_CREDS"
    registry_index "basic (config.json auths)" "$dc" "$r" "$tmpd/basic.clip" &&
        same_index "basic (config.json auths)" "$tmpd/basic.clip" "$ref_clip"

    export CLIPTEST_HOST=$host CLIPTEST_LOG=$tmpd/helper.log
    for kind in helpers store; do
        : >"$CLIPTEST_LOG"
        dc=$tmpd/dc-basic-$kind
        docker_config "$dc" "$kind" "$host"
        rc=0
        PATH=$HELPER_BIN:$PATH registry_index "basic (config.json $kind)" "$dc" "$r" "$tmpd/basic-$kind.clip" || rc=1
        if grep -q '^get ' "$CLIPTEST_LOG"; then
            pass "basic (config.json $kind): docker-credential-cliptest get was called ($(head -n1 "$CLIPTEST_LOG"))"
        else
            fail "basic (config.json $kind): docker-credential-cliptest get was not called"
        fi
        [ "$rc" -eq 0 ] && same_index "basic (config.json $kind)" "$tmpd/basic-$kind.clip" "$ref_clip"
    done

    rc=0
    clipc "$NOCREDS" "$FAULT_TIMEOUT" index "docker://$r" -o "$tmpd/basic-nocreds.clip" || rc=$?
    expect_error "basic: no credentials" "$rc" "$tmpd/basic-nocreds.clip" '401|unauthori[sz]ed|authenticat|credential'
    dc=$tmpd/dc-basic-wrong
    docker_config "$dc" auths "$host" "clip:wrong-password"
    rc=0
    clipc "$dc" "$FAULT_TIMEOUT" index "docker://$r" -o "$tmpd/basic-wrong.clip" || rc=$?
    expect_error "basic: wrong password" "$rc" "$tmpd/basic-wrong.clip" '401|unauthori[sz]ed'
}

test_token() {
    local r host ref_clip dc rc
    need_image busybox && ensure_ref busybox || { fail "token: busybox image/reference"; return; }
    registry_start token --auth token >/dev/null || { fail "token: registry_start"; return; }
    host=$REGISTRY_TOKEN
    r=$host/busybox:latest
    registry_push "$IMG/busybox:latest" "$r" --creds "$REGISTRY_TOKEN_CREDS" || { fail "token: skopeo push"; return; }
    ref_clip=$tmpd/busybox-oci.clip
    layout_index busybox "$ref_clip" || return

    dc=$tmpd/dc-token-auths
    docker_config "$dc" auths "$host" "$REGISTRY_TOKEN_CREDS"
    : >"$REGISTRY_TOKEN_TOKEN_LOG"
    if registry_index "token (config.json auths)" "$dc" "$r" "$tmpd/token.clip"; then
        same_index "token (config.json auths)" "$tmpd/token.clip" "$ref_clip"
        if grep -q 'user=clip .*status=200' "$REGISTRY_TOKEN_TOKEN_LOG"; then
            pass "token: clip got its token from the token server ($(grep -c status=200 "$REGISTRY_TOKEN_TOKEN_LOG") tokens)"
        else
            fail "token: no successful token request in the token server's log"
        fi
        CAT_DOCKER_CONFIG=$dc cat_check "token: clip cat with a bearer token" "$tmpd/token.clip" busybox 5
    fi

    dc=$tmpd/dc-token-wrong
    docker_config "$dc" auths "$host" "clip:wrong-password"
    rc=0
    clipc "$dc" "$FAULT_TIMEOUT" index "docker://$r" -o "$tmpd/token-wrong.clip" || rc=$?
    expect_error "token: wrong password" "$rc" "$tmpd/token-wrong.clip" '401|unauthori[sz]ed'
    rc=0
    clipc "$NOCREDS" "$FAULT_TIMEOUT" index "docker://$r" -o "$tmpd/token-nocreds.clip" || rc=$?
    expect_error "token: no credentials" "$rc" "$tmpd/token-nocreds.clip" '401|unauthori[sz]ed|authenticat|credential'

    registry_start tokenanon --auth token --anonymous-pull >/dev/null || { fail "token: registry_start --anonymous-pull"; return; }
    registry_push "$IMG/busybox:latest" "$REGISTRY_TOKENANON/busybox:latest" --creds "$REGISTRY_TOKENANON_CREDS" ||
        { fail "token (anonymous pull): skopeo push"; return; }
    registry_index "token (anonymous pull token, no credentials)" "$NOCREDS" \
        "$REGISTRY_TOKENANON/busybox:latest" "$tmpd/token-anon.clip" &&
        same_index "token (anonymous pull token)" "$tmpd/token-anon.clip" "$ref_clip"
}

host_arch() {
    case $(uname -m) in
    x86_64) echo amd64 ;;
    aarch64|arm64) echo arm64 ;;
    *) uname -m ;;
    esac
}

# platform_is LABEL X.clip ARCH -> clip cat X.clip /.clip-platform == ARCH
platform_is() {
    local label=$1 f=$2 want=$3 rc=0 got
    clipc "$NOCREDS" "$TIMEOUT" cat "$f" /.clip-platform || rc=$?
    got=$(cat "$tmpd/out")
    if [ "$rc" -eq 0 ] && [ "$got" = "$want" ]; then
        pass "$label: /.clip-platform is $want"
    else
        fail "$label: clip cat /.clip-platform: exit $rc, '$got', want '$want' $(errline)"
    fi
}

test_multi() {
    local r t ref_arm tag fmt
    ensure_multi_image || { fail "multi: building the multi-platform image"; return; }
    registry_start multi >/dev/null || { fail "multi: registry_start"; return; }
    t=$(now)
    # the Docker list first: once the uncompressed marker blob is in the
    # registry, skopeo reuses it (even across repositories) and lists it as
    # ...rootfs.diff.tar instead of gzipping it (the v2s2 test covers that)
    registry_push_all "$IMG/multi:latest" "$REGISTRY_MULTI/multi-docker:v2s2" --format v2s2 ||
        { fail "multi: skopeo push --all --format v2s2"; return; }
    registry_push_all "$IMG/multi:latest" "$REGISTRY_MULTI/multi:oci" || { fail "multi: skopeo push --all"; return; }
    info "multi: pushed an OCI index and a Docker manifest list ($(since "$t"))"
    ref_arm=$tmpd/multi-oci-arm64.clip
    layout_index multi "$ref_arm" --platform linux/arm64 || return
    for tag in oci v2s2; do
        r=$REGISTRY_MULTI/multi:$tag
        [ "$tag" = v2s2 ] && r=$REGISTRY_MULTI/multi-docker:$tag
        info "multi:$tag is $(skopeo inspect --raw --tls-verify=false "docker://$r" | jq -r .mediaType)"
        if registry_index "multi:$tag arm64" "$NOCREDS" "$r" "$tmpd/multi-$tag-arm64.clip" --platform linux/arm64; then
            platform_is "multi:$tag --platform linux/arm64" "$tmpd/multi-$tag-arm64.clip" arm64
            if [ "$tag" = oci ]; then
                same_index "multi:oci arm64" "$tmpd/multi-oci-arm64.clip" "$ref_arm"
            else
                # skopeo gzipped the uncompressed marker layer: compare what
                # does not depend on compression (the config has the diff IDs)
                same_index "multi:v2s2 arm64" "$tmpd/multi-v2s2-arm64.clip" "$ref_arm" \
                    '{configDigest, platform, cmd, env, mergedEntries, uncompressedImageBytes,
                      layers: [.layers[] | {diffID, uncompressedSize, entries}]}'
            fi
        fi
        registry_index "multi:$tag amd64" "$NOCREDS" "$r" "$tmpd/multi-$tag-amd64.clip" --platform linux/amd64 &&
            platform_is "multi:$tag --platform linux/amd64" "$tmpd/multi-$tag-amd64.clip" amd64
        registry_index "multi:$tag default platform" "$NOCREDS" "$r" "$tmpd/multi-$tag-default.clip" &&
            platform_is "multi:$tag default platform ($(host_arch))" "$tmpd/multi-$tag-default.clip" "$(host_arch)"
    done
}

# check_published REF MANIFEST_DIGEST A.clip -> the artifact at the tag
# sha256-<hex>: a referrers index (OCI 1.1 tag schema) listing it, or the
# artifact manifest itself; subject and artifactType must be right
check_published() {
    local repo=${1%:*} mdigest=$2 tag raw mt art adigest subj atype
    tag=sha256-${mdigest#sha256:}
    if ! raw=$(skopeo inspect --raw --tls-verify=false "docker://$repo:$tag" 2>"$tmpd/skerr"); then
        fail "push: no manifest at $repo:$tag: $(head -c 300 "$tmpd/skerr")"
        return 1
    fi
    mt=$(echo "$raw" | jq -r '.mediaType // ""')
    if [ "$mt" = application/vnd.oci.image.index.v1+json ]; then
        # OCI 1.1 referrers tag schema: the tag holds an index of referrers
        adigest=$(echo "$raw" | jq -r --arg t "$ARTIFACT_TYPE" \
            '[.manifests[] | select(.artifactType == $t)][0].digest // ""')
        if [ -z "$adigest" ]; then
            fail "push: $tag is a referrers index without an $ARTIFACT_TYPE entry: $(echo "$raw" | head -c 300)"
            return 1
        fi
        art=$(skopeo inspect --raw --tls-verify=false "docker://$repo@$adigest") ||
            { fail "push: cannot fetch the artifact $adigest"; return 1; }
        info "push: $tag is a referrers index (tag schema) -> artifact $adigest"
    else
        art=$raw
        info "push: $tag is the artifact manifest itself ($mt)"
    fi
    subj=$(echo "$art" | jq -r '.subject.digest // ""')
    atype=$(echo "$art" | jq -r '.artifactType // .config.mediaType // ""')
    if [ "$subj" = "$mdigest" ] && [ "$atype" = "$ARTIFACT_TYPE" ]; then
        pass "push: artifact at $tag: subject $subj, artifactType $atype"
    else
        fail "push: artifact at $tag: subject '$subj' (want $mdigest), artifactType '$atype' (want $ARTIFACT_TYPE)"
    fi
    local ldigest lmt
    lmt=$(echo "$art" | jq -r '.layers[0].mediaType // ""')
    ldigest=$(echo "$art" | jq -r '.layers[0].digest // ""')
    info "push: artifact layers: $(echo "$art" | jq -c '[.layers[]? | {mediaType, size}]')"
    if [ -n "$ldigest" ] && curl -sf -o "$tmpd/published.bin" "http://${repo%%/*}/v2/${repo#*/}/blobs/$ldigest"; then
        if cmp -s "$tmpd/published.bin" "$3"; then
            info "push: the published blob ($lmt) is byte-identical to A.clip"
        else
            info "push: the published blob ($lmt, $(stat -c %s "$tmpd/published.bin") bytes) differs from A.clip ($(stat -c %s "$3") bytes)"
        fi
    fi
}

test_push() {
    local r t mdigest from layers=() l rc
    need_image busybox || return
    registry_start push >/dev/null || { fail "push: registry_start"; return; }
    r=$REGISTRY_PUSH/busybox:latest
    registry_push "$IMG/busybox:latest" "$r" || { fail "push: skopeo push"; return; }
    mdigest=$(registry_manifest_digest "$r")
    while read -r l; do layers+=(--layer "$l"); done < <(image_layers "$r")

    from=$(log_lines "$REGISTRY_PUSH_LOG")
    registry_index "push: A" "$NOCREDS" "$r" "$tmpd/A.clip" --push || return
    log_lines "$REGISTRY_PUSH_LOG" >/dev/null
    if python3 "$INTEG/registry/blob-reads.py" "$REGISTRY_PUSH_LOG" --from-line "$from" \
        "${layers[@]}" --require-full >"$tmpd/reads" 2>&1; then
        info "push: A read every layer: $(tail -n1 "$tmpd/reads")"
    else
        # sanity check of the log parsing, not of clip
        fail "push: the access log does not show A reading the layers ($(tail -n1 "$tmpd/reads"))"
    fi
    check_published "$r" "$mdigest" "$tmpd/A.clip"

    from=$(log_lines "$REGISTRY_PUSH_LOG")
    registry_index "push: B (discovery)" "$NOCREDS" "$r" "$tmpd/B.clip" || return
    log_lines "$REGISTRY_PUSH_LOG" >/dev/null
    if python3 "$INTEG/registry/blob-reads.py" "$REGISTRY_PUSH_LOG" --from-line "$from" \
        "${layers[@]}" --forbid-full >"$tmpd/reads" 2>&1; then
        pass "push: B read no layer blob in full ($(tail -n1 "$tmpd/reads"))"
    else
        fail "push: B read layer blobs in full ($(tail -n1 "$tmpd/reads"))"
        sed 's/^/    /' "$tmpd/reads" | head -n 10
    fi
    if cmp -s "$tmpd/A.clip" "$tmpd/B.clip"; then
        pass "push: B.clip is byte-identical to A.clip ($(stat -c %s "$tmpd/B.clip") bytes)"
    else
        rc=0
        same_index "push: B vs A" "$tmpd/B.clip" "$tmpd/A.clip" >/dev/null || rc=1
        fail "push: B.clip differs from A.clip (inspect --json $([ $rc -eq 0 ] && echo equal || echo differs))"
    fi
}

test_faults() {
    local r t rc ref_clip layer lhex blobfile
    need_image busybox && ensure_ref busybox || { fail "faults: busybox image/reference"; return; }
    registry_start faults >/dev/null || { fail "faults: registry_start"; return; }
    r=$REGISTRY_FAULTS
    registry_push "$IMG/busybox:latest" "$r/busybox:latest" || { fail "faults: skopeo push"; return; }
    layer=$(image_layers "$r/busybox:latest" | head -n1 | cut -d: -f1,2)
    lhex=${layer#sha256:}
    ref_clip=$tmpd/busybox-oci.clip
    layout_index busybox "$ref_clip" || return

    # registry gone mid-stream: the layer GET is cut after 300 kB, then the
    # proxy refuses every connection
    faultproxy_start down "$r" --cut-after 300000 --down-after-cut --blob-filter "$lhex" || return
    t=$(now)
    rc=0
    clipc "$NOCREDS" "$FAULT_TIMEOUT" index "docker://$FAULTPROXY_DOWN/busybox:latest" -o "$tmpd/down.clip" || rc=$?
    expect_error "faults: registry gone mid-stream ($(since "$t"))" "$rc" "$tmpd/down.clip" '.'
    grep -q 'cut@' "$FAULTPROXY_DOWN_LOG" || fail "faults: the proxy never cut a layer GET (clip read no layer?)"
    faultproxy_stop down

    # cut once per connection (registry stays up): no hang; success (e.g. by
    # resuming with Range) or one clean error
    faultproxy_start cut "$r" --cut-after 300000 --blob-filter "$lhex" || return
    t=$(now)
    rc=0
    clipc "$NOCREDS" "$FAULT_TIMEOUT" index "docker://$FAULTPROXY_CUT/busybox:latest" -o "$tmpd/cut.clip" || rc=$?
    if [ "$rc" -eq 0 ]; then
        pass "faults: connection cut after 300 kB, registry up: recovered ($(grep -c 'cut@' "$FAULTPROXY_CUT_LOG") cuts, $(since "$t"))"
        same_index "faults: cut and recovered" "$tmpd/cut.clip" "$ref_clip"
    else
        expect_error "faults: connection cut after 300 kB, registry up: failed cleanly ($(since "$t"))" \
            "$rc" "$tmpd/cut.clip" '.'
    fi
    faultproxy_stop cut

    # the first two requests answer 503: retried
    faultproxy_start ff "$r" --fail-first 2 || return
    t=$(now)
    if registry_index "faults: first 2 requests 503" "$NOCREDS" "$FAULTPROXY_FF/busybox:latest" "$tmpd/ff.clip"; then
        same_index "faults: after 503s" "$tmpd/ff.clip" "$ref_clip"
    fi
    info "faults: proxy log: $(awk '{print $4}' "$FAULTPROXY_FF_LOG" | sort | uniq -c | tr -s ' \n' ' ')"
    faultproxy_stop ff

    # corrupt layer bytes on the wire: exit 1, error names the layer, no -o
    faultproxy_start corrupt "$r" --corrupt-blob --blob-filter "$lhex" || return
    rc=0
    clipc "$NOCREDS" "$FAULT_TIMEOUT" index "docker://$FAULTPROXY_CORRUPT/busybox:latest" -o "$tmpd/corrupt.clip" || rc=$?
    expect_error "faults: corrupt layer (proxy)" "$rc" "$tmpd/corrupt.clip" "$lhex" 1

    # a good index, then `clip cat` through the corrupting proxy: error, not data
    if registry_index "faults: clean index" "$NOCREDS" "$r/busybox:latest" "$tmpd/clean.clip"; then
        rc=0
        clipc "$NOCREDS" "$FAULT_TIMEOUT" cat "$tmpd/clean.clip" /bin/busybox \
            --source "docker://$FAULTPROXY_CORRUPT/busybox:latest" || rc=$?
        expect_error "faults: clip cat of corrupt bytes" "$rc" "" '.'
        if [ "$rc" -ne 0 ] && [ -s "$tmpd/out" ] && cmp -s "$tmpd/out" "$REF/busybox/rootfs/bin/busybox"; then
            fail "faults: clip cat printed the whole file and still failed"
        fi

        # a server that ignores Range: clip cat still returns the right bytes
        faultproxy_start norange "$r" --ignore-range || return
        cat_check "faults: Range ignored (200 + whole blob)" "$tmpd/clean.clip" busybox 10 \
            --source "docker://$FAULTPROXY_NORANGE/busybox:latest"
        if grep -q range-stripped "$FAULTPROXY_NORANGE_LOG"; then
            info "faults: $(grep -c range-stripped "$FAULTPROXY_NORANGE_LOG") Range headers stripped"
        else
            fail "faults: clip sent no Range request through the proxy (the test proves nothing)"
        fi
        faultproxy_stop norange
    fi
    faultproxy_stop corrupt

    # corrupt blob in the registry's storage (the registry does not check)
    blobfile=$REGISTRY_FAULTS_STORAGE/docker/registry/v2/blobs/sha256/${lhex:0:2}/$lhex/data
    if [ -f "$blobfile" ]; then
        python3 - "$blobfile" <<'EOF'
import sys
p = sys.argv[1]
with open(p, "r+b") as f:
    f.seek(0, 2)
    mid = f.tell() // 2
    f.seek(mid)
    b = f.read(1)
    f.seek(mid)
    f.write(bytes([b[0] ^ 0xFF]))
EOF
        rc=0
        clipc "$NOCREDS" "$FAULT_TIMEOUT" index "docker://$r/busybox:latest" -o "$tmpd/corrupt2.clip" || rc=$?
        expect_error "faults: corrupt layer (registry storage)" "$rc" "$tmpd/corrupt2.clip" "$lhex" 1
    else
        fail "faults: layer blob not found in the registry storage ($blobfile)"
    fi

    # missing tag / repository
    rc=0
    clipc "$NOCREDS" "$FAULT_TIMEOUT" index "docker://$r/busybox:no-such-tag" -o "$tmpd/notag.clip" || rc=$?
    expect_error "faults: missing tag" "$rc" "$tmpd/notag.clip" '404|not found|unknown|no-such-tag'
    rc=0
    clipc "$NOCREDS" "$FAULT_TIMEOUT" index "docker://$r/no-such-repo:latest" -o "$tmpd/norepo.clip" || rc=$?
    expect_error "faults: missing repository" "$rc" "$tmpd/norepo.clip" '404|not found|unknown|no-such-repo'
}

# ---------------------------------------------------------------- main

T0=$(now)
for name in "${tests[@]}"; do
    info "test $name"
    t=$(now)
    nfail0=$NFAIL
    "test_$name" || true
    registry_stop_all
    info "test $name: $([ "$NFAIL" -eq "$nfail0" ] && echo ok || echo FAILED) ($(since "$t"))"
done

echo "==== registry-check: $NPASS passed, $NFAIL failed, $NSKIP skipped ($(since "$T0"))"
[ "$NFAIL" -eq 0 ]
