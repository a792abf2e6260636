#!/bin/bash
# Hook check: `clip bundle` + `clip hook` with the real runtimes (runc 1.1, crun 1.8) on the Debian image served by
# a loopback registry.
#
#   integration/hook-check.sh [TEST...]
#
# Each TEST runs with runc and then with crun (CLIP_HOOK_RUNTIMES="runc crun"):
#   basic        `sh -c 'cat /etc/os-release; id; ls /proc/self; echo hi > /tmp/x && cat /tmp/x'`: Debian's
#                os-release, uid 0, the runtime's /proc, a write through the overlay
#   nonroot      process.user 65534:65534: `id` says so; /tmp writable, /root not
#   readonly     `clip bundle --readonly`: reads work, writes to / and /tmp fail (read-only file system)
#   bindmount    a bundle bind mount at /data (not in the image) and a file bind mount inside an image folder
#                (/etc/clip-bind.txt): both visible with their contents, the image's /etc intact
#   concurrent   20 containers of the image started at once: all succeed, one image mount while they run
#   kill         detached container, `kill -9` + `delete`
#   delete-force detached container, `delete -f`
#   daemon-kill  detached container, its image daemon killed (-9), then kill + delete; the next container of the
#                image mounts it afresh and runs
#   failures     annotation naming a missing image, a malformed reference, an unreachable registry: the
#                container does not start, the runtime shows one `clip hook: container ID: ...` line
#   first-use    a hook root with no index: the hook indexes the image on first use and keeps the index (the next
#                container finds it); with an index published beside the image (`clip index --push`), a fresh
#                root uses that one instead of indexing; published with a profile recorded on a mount of the
#                image (`clip index --push --profile`), a fresh root keeps the profile and the image mount prefetches it
#   pinned       `clip bundle` of a tag writes the reference pinned to the manifest it resolved (TAG@DIGEST); after
#                the tag moves to another image (busybox), a fresh root still runs the bundled image (Debian)
#   keep-warm    --keep-warm 2 with create/start/delete (the daemon is adopted by init): the image stays mounted
#                after the container is deleted, then goes by itself within a few seconds
#   gc           a container whose runtime state is wiped (as after a crash): `clip gc` removes its overlay,
#                folders and the image mount; `clip gc` of a root that does not exist exits 0 without making it
# After every container: no mount under the clip root or the bundle, no clip daemon of that root, no container
# or image folder left, the bundle's rootfs holds only what the runtime itself made (dev, proc, sys).
set -euo pipefail

INTEG=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CLIP=${CLIP:-$INTEG/../.build/debug/clip}
. "$INTEG/lib.sh"
. "$INTEG/registry/lib.sh"

ALL_TESTS=(basic nonroot readonly bindmount concurrent kill delete-force daemon-kill failures first-use pinned keep-warm gc)
RUNTIMES=(${CLIP_HOOK_RUNTIMES:-runc crun})
CALL_TIMEOUT=120

tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=("${ALL_TESTS[@]}")
for t in "${tests[@]}"; do
    case " ${ALL_TESTS[*]} " in *" $t "*) ;; *) echo "error: unknown test $t (${ALL_TESTS[*]})" >&2; exit 2 ;; esac
done
need_clip
CLIP=$(realpath "$CLIP")
[ "$(id -u)" -eq 0 ] || { echo "error: hook-check needs root" >&2; exit 2; }
# A private mount namespace: whatever happens, no mount of ours outlives the check.
if [ -z "${CLIP_HOOKCHECK_NS:-}" ]; then
    export CLIP_HOOKCHECK_NS=1 CLIP
    exec unshare --mount --propagation private "$0" "$@"
fi
for tool in runc crun docker-registry skopeo jq; do
    command -v "$tool" >/dev/null || { echo "error: $tool not installed (integration/deps.sh)" >&2; exit 2; }
done
crun_cgroup_workaround

umask 022
mkdir -p "$WORK"
tmpd=$(realpath "$(mktemp -d "$WORK/.hookcheck.XXXXXX")")
ROOT=$tmpd/clip          # the hook's state root
STATE=$tmpd/runtime      # the runtimes' own state (--root)
cleanup() {
    for rt in "${RUNTIMES[@]}"; do
        for id in $("$rt" --root "$STATE/$rt" list -q 2>/dev/null); do
            timeout 30 "$rt" --root "$STATE/$rt" delete -f "$id" >/dev/null 2>&1 || true
        done
    done
    pkill -9 -f -- "--lease-root $ROOT" 2>/dev/null || true
    "$CLIP" gc --root "$ROOT" --force >/dev/null 2>&1 || true
    registry_stop_all
    cp "$ROOT/hook.log" "$WORK/hook-check.log" 2>/dev/null || true
    rm -rf "$tmpd"
    crun_cgroup_undo
}
trap cleanup EXIT

ensure_image debian || { echo "error: the Debian image is not available (debootstrap failed)" >&2; exit 1; }
ensure_image busybox || { echo "error: the busybox image is not available" >&2; exit 1; }
registry_start hook
IMAGE=docker://$REGISTRY_HOOK/debian:bookworm
registry_push "$IMG/debian:latest" "$REGISTRY_HOOK/debian:bookworm" >/dev/null

# bundle NAME [clip bundle options] [-- command]: a bundle of $IMAGE whose hooks keep nothing warm (so cleanliness is
# exact).
bundle() {
    local dir=$tmpd/bundles/$1
    shift
    rm -rf "$dir"
    timeout "$CALL_TIMEOUT" "$CLIP" bundle "$IMAGE" "$dir" --root "$ROOT" --keep-warm 0 "$@" >/dev/null 2>"$tmpd/bundle.err" ||
        { echo "clip bundle failed: $(head -c 300 "$tmpd/bundle.err")"; return 1; }
    echo "$dir"
}

# edit BUNDLE JQ-FILTER: rewrite config.json
edit() { jq "$2" "$1/config.json" >"$1/config.json.new" && mv "$1/config.json.new" "$1/config.json"; }

# rt RUNTIME ARGS...: the runtime with its private state folder and a time limit
rt() { local r=$1; shift; timeout "$CALL_TIMEOUT" "$r" --root "$STATE/$r" "$@"; }

clip_mounts() { grep -E " ($ROOT|$tmpd/bundles)[/ ]" /proc/self/mountinfo | awk '{ print $5 }' || true; }
daemons() { pgrep -f -- "--lease-root $ROOT" || true; }

# assert_clean WHAT BUNDLE [RUNTIME-MADE]: nothing of the container is left (waits briefly for daemons to go);
# RUNTIME-MADE: a regex of further rootfs names the runtime itself created (mountpoints of bundle mounts)
assert_clean() {
    local what=$1 dir=$2 made=${3:-} left=""
    for _ in $(seq 50); do [ -z "$(daemons)" ] && break; sleep 0.1; done
    [ -z "$(clip_mounts)" ] || left+=" mounts: $(clip_mounts | tr '\n' ' ')"
    [ -z "$(daemons)" ] || left+=" daemons: $(daemons | tr '\n' ' ')"
    [ -z "$(ls -A "$ROOT/containers" 2>/dev/null)" ] || left+=" containers/: $(ls -A "$ROOT/containers")"
    [ -z "$(ls -A "$ROOT/images" 2>/dev/null)" ] || left+=" images/: $(ls -A "$ROOT/images")"
    local extra
    extra=$(ls -A "$dir/rootfs" 2>/dev/null | grep -vxE "dev|proc|sys${made:+|$made}" || true)
    [ -z "$extra" ] || left+=" rootfs: $(echo "$extra" | tr '\n' ' ')"
    if [ -z "$left" ]; then pass "$what: nothing left behind"; else fail "$what: left behind:$left"; fi
}

t_basic() {
    local r=$1 b out
    b=$(bundle basic -- sh -c 'cat /etc/os-release; id; ls /proc/self; echo hi > /tmp/x && cat /tmp/x') || { fail "$r basic: $b"; return; }
    if out=$(rt "$r" run -b "$b" "basic-$r" 2>"$tmpd/err"); then
        if grep -q 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"' <<<"$out" && grep -q '^uid=0(root) gid=0(root)' <<<"$out" &&
            grep -qx 'status' <<<"$out" && grep -qx 'mountinfo' <<<"$out" && [ "$(tail -n1 <<<"$out")" = hi ]; then
            pass "$r basic: os-release, id, /proc/self, write through the overlay"
        else
            fail "$r basic: unexpected output: $(head -c 400 <<<"$out" | tr '\n' '|')"
        fi
    else
        fail "$r basic: run failed: $(head -c 400 "$tmpd/err" | tr '\n' '|')"
    fi
    assert_clean "$r basic" "$b"
}

t_nonroot() {
    local r=$1 b out
    b=$(bundle nonroot -- sh -c 'id; echo ok > /tmp/y && cat /tmp/y; touch /root/z 2>&1 || echo denied') || { fail "$r nonroot: $b"; return; }
    edit "$b" '.process.user = {uid: 65534, gid: 65534}'
    if out=$(rt "$r" run -b "$b" "nonroot-$r" 2>"$tmpd/err"); then
        if grep -q '^uid=65534(nobody) gid=65534(nogroup)' <<<"$out" && grep -qx ok <<<"$out" && grep -qx denied <<<"$out"; then
            pass "$r nonroot: uid 65534 reads the image, writes /tmp, is refused /root"
        else
            fail "$r nonroot: unexpected output: $(tr '\n' '|' <<<"$out")"
        fi
    else
        fail "$r nonroot: run failed: $(head -c 400 "$tmpd/err" | tr '\n' '|')"
    fi
    assert_clean "$r nonroot" "$b"
}

t_readonly() {
    local r=$1 b out
    b=$(bundle readonly --readonly -- sh -c 'head -n1 /etc/os-release; touch /etc/x 2>&1; touch /tmp/x 2>&1; true') || { fail "$r readonly: $b"; return; }
    if out=$(rt "$r" run -b "$b" "readonly-$r" 2>"$tmpd/err"); then
        if grep -q '^PRETTY_NAME=' <<<"$out" && [ "$(grep -c 'Read-only file system' <<<"$out")" -eq 2 ]; then
            pass "$r readonly: reads work, writes to /etc and /tmp are refused"
        else
            fail "$r readonly: unexpected output: $(tr '\n' '|' <<<"$out")"
        fi
    else
        fail "$r readonly: run failed: $(head -c 400 "$tmpd/err" | tr '\n' '|')"
    fi
    assert_clean "$r readonly" "$b"
}

t_bindmount() {
    local r=$1 b out
    mkdir -p "$tmpd/hostdata"
    echo "from the host" >"$tmpd/hostdata/note"
    echo "bound file" >"$tmpd/bound.txt"
    b=$(bundle bindmount -- sh -c 'cat /data/note; cat /etc/clip-bind.txt; head -n1 /etc/os-release; ls /etc | wc -l') || { fail "$r bindmount: $b"; return; }
    edit "$b" ".mounts += [{destination: \"/data\", type: \"bind\", source: \"$tmpd/hostdata\", options: [\"rbind\", \"ro\"]},
        {destination: \"/etc/clip-bind.txt\", type: \"bind\", source: \"$tmpd/bound.txt\", options: [\"bind\", \"ro\"]}]"
    if out=$(rt "$r" run -b "$b" "bind-$r" 2>"$tmpd/err"); then
        if grep -qx 'from the host' <<<"$out" && grep -qx 'bound file' <<<"$out" && grep -q '^PRETTY_NAME=' <<<"$out" &&
            [ "$(tail -n1 <<<"$out")" -gt 20 ]; then
            pass "$r bindmount: /data and /etc/clip-bind.txt from the bundle, the image's /etc around them"
        else
            fail "$r bindmount: unexpected output: $(tr '\n' '|' <<<"$out")"
        fi
    else
        fail "$r bindmount: run failed: $(head -c 400 "$tmpd/err" | tr '\n' '|')"
    fi
    assert_clean "$r bindmount" "$b" 'data|etc'
}

t_concurrent() {
    local r=$1 b i ok=0 peak=0 n pids=()
    b=$(bundle concurrent -- sh -c 'sleep 3; head -n1 /etc/os-release') || { fail "$r concurrent: $b"; return; }
    for i in $(seq 20); do
        (
            rc=0
            rt "$r" run -b "$b" "conc-$r-$i" >"$tmpd/conc.$i.out" 2>"$tmpd/conc.$i.err" || rc=$?
            echo "$rc" >"$tmpd/conc.$i.rc"
        ) &
        pids+=($!)
    done
    for _ in $(seq 40); do
        n=$(grep -c " $ROOT/images/.*fuse.clip" /proc/self/mountinfo || true)
        [ "$n" -gt "$peak" ] && peak=$n
        sleep 0.1
    done
    wait "${pids[@]}" || true
    local why=""
    for i in $(seq 20); do
        if [ "$(cat "$tmpd/conc.$i.rc")" = 0 ] && grep -q '^PRETTY_NAME=' "$tmpd/conc.$i.out"; then
            ok=$((ok + 1))
        elif [ -z "$why" ]; then
            why="container $i: rc $(cat "$tmpd/conc.$i.rc"): $(head -c 300 "$tmpd/conc.$i.err" "$tmpd/conc.$i.out" | tr '\n' '|')"
        fi
    done
    if [ "$ok" -eq 20 ] && [ "$peak" -eq 1 ]; then
        pass "$r concurrent: 20 containers at once all ran, on one image mount"
    else
        fail "$r concurrent: $ok/20 ran, image mounts seen at once: $peak ($why)"
    fi
    assert_clean "$r concurrent" "$b"
}

# start_detached RUNTIME ID BUNDLE: runs a long-lived container in the background (runtime's -d)
start_detached() { rt "$1" run -d -b "$3" "$2" </dev/null >"$tmpd/$2.out" 2>"$tmpd/$2.err"; }

t_kill() {
    local r=$1 b
    b=$(bundle kill -- sleep 1000) || { fail "$r kill: $b"; return; }
    if start_detached "$r" "kill-$r" "$b"; then
        rt "$r" kill "kill-$r" KILL
        for _ in $(seq 50); do rt "$r" state "kill-$r" 2>/dev/null | grep -q '"stopped"' && break; sleep 0.1; done
        rt "$r" delete "kill-$r" && pass "$r kill: kill -9 and delete" || fail "$r kill: delete failed"
    else
        fail "$r kill: start failed: $(head -c 300 "$tmpd/kill-$r.err")"
    fi
    assert_clean "$r kill" "$b"
}

t_delete_force() {
    local r=$1 b
    b=$(bundle delforce -- sleep 1000) || { fail "$r delete-force: $b"; return; }
    if start_detached "$r" "delf-$r" "$b"; then
        rt "$r" delete -f "delf-$r" && pass "$r delete-force: delete -f of a running container" || fail "$r delete-force: delete -f failed"
    else
        fail "$r delete-force: start failed: $(head -c 300 "$tmpd/delf-$r.err")"
    fi
    assert_clean "$r delete-force" "$b"
}

t_daemon_kill() {
    local r=$1 b b2 pid out
    b=$(bundle dkill -- sleep 1000) || { fail "$r daemon-kill: $b"; return; }
    if start_detached "$r" "dkill-$r" "$b"; then
        pid=$(cat "$ROOT"/images/*/pid 2>/dev/null | head -n1)
        if [ -n "$pid" ] && grep -qP '^Seccomp:\t2' "/proc/$pid/status" && grep -q '^NoNewPrivs:\s*1' "/proc/$pid/status"; then
            pass "$r daemon-kill: the image daemon runs confined (seccomp filter, no_new_privs)"
        else
            fail "$r daemon-kill: the image daemon is not confined: $(grep -E 'Seccomp|NoNewPrivs' "/proc/$pid/status" 2>/dev/null | tr '\n' ' ')"
        fi
        # It keeps the front of its executable (what hook starts read from the file) mapped, shared, and locked.
        local exe kept=""
        exe=$(readlink -f "/proc/$pid/exe" 2>/dev/null)
        for _ in $(seq 20); do
            kept=$(awk -v f="$exe" '$6 == f && $2 == "r--s" && $3 == "00000000"' "/proc/$pid/maps" 2>/dev/null)
            [ -z "$kept" ] || break
            sleep 0.1
        done
        if [ -n "$kept" ] && grep -qP '^VmLck:\s*[1-9]' "/proc/$pid/status"; then
            pass "$r daemon-kill: the image daemon keeps its executable's start-up pages cached ($(grep VmLck "/proc/$pid/status" | tr -s ' \t' ' '))"
        else
            fail "$r daemon-kill: no locked start-up mapping of $exe in the image daemon: $kept"
        fi
        if [ -n "$pid" ] && kill -9 "$pid"; then
            rt "$r" kill "dkill-$r" KILL || true
            for _ in $(seq 50); do rt "$r" state "dkill-$r" 2>/dev/null | grep -q '"stopped"' && break; sleep 0.1; done
            rt "$r" delete "dkill-$r" && pass "$r daemon-kill: image daemon killed, container deleted" ||
                fail "$r daemon-kill: delete failed"
        else
            fail "$r daemon-kill: no image daemon to kill"
        fi
    else
        fail "$r daemon-kill: start failed: $(head -c 300 "$tmpd/dkill-$r.err")"
    fi
    assert_clean "$r daemon-kill" "$b"
    b2=$(bundle dkill2 -- head -n1 /etc/os-release) || { fail "$r daemon-kill: $b2"; return; }
    if out=$(rt "$r" run -b "$b2" "dkill2-$r" 2>"$tmpd/err") && grep -q '^PRETTY_NAME=' <<<"$out"; then
        pass "$r daemon-kill: the next container mounts the image afresh"
    else
        fail "$r daemon-kill: the next container failed: $(head -c 300 "$tmpd/err" | tr '\n' '|')"
    fi
    assert_clean "$r daemon-kill (next)" "$b2"
}

# expect_failure RUNTIME NAME IMAGE-ANNOTATION WANT-REGEX
expect_failure() {
    local r=$1 name=$2 image=$3 want=$4 b lines
    b=$(bundle "fail-$name" -- true) || { fail "$r failures $name: $b"; return; }
    edit "$b" ".annotations[\"org.clip.image\"] = \"$image\""
    if rt "$r" run -b "$b" "fail-$name-$r" >/dev/null 2>"$tmpd/err"; then
        fail "$r failures $name: the container started"
    else
        lines=$(grep -o 'clip hook: container [^:]*: .*' "$tmpd/err" | sed 's/\\n.*//' || true)
        if [ "$(grep -c . <<<"$lines")" -eq 1 ] && grep -qE "$want" <<<"$lines"; then
            pass "$r failures $name: refused with: $(head -c 160 <<<"$lines")"
        else
            fail "$r failures $name: want one 'clip hook: container ...' line matching /$want/, got: $(head -c 400 "$tmpd/err" | tr '\n' '|')"
        fi
    fi
    rt "$r" delete -f "fail-$name-$r" >/dev/null 2>&1 || true
    assert_clean "$r failures $name" "$b"
}

t_failures() {
    local r=$1
    expect_failure "$r" missing "docker://$REGISTRY_HOOK/no-such-image:latest" 'not found|unknown|404'
    expect_failure "$r" malformed "docker://$REGISTRY_HOOK/UPPER CASE!!" 'reference|invalid|malformed'
    expect_failure "$r" unreachable "docker://127.0.0.1:9/debian:bookworm" 'refused|connect|unavailable'
}

# rooted BUNDLE ROOT: point the bundle's hooks at another state root
rooted() { edit "$1" ".hooks[][].args |= (. as \$a | [range(length)] | map(if . > 0 and \$a[. - 1] == \"--root\" then \"$2\" else \$a[.] end))"; }

# first_use_profile RUNTIME BUNDLE ROOT: a profile recorded on a mount of the image, published with the index
# (`clip index --push --profile`): a fresh root keeps it beside the index and the image mount prefetches it
first_use_profile() {
    local r=$1 b=$2 root=$3 mnt=$tmpd/record-$1 out
    mkdir -p "$mnt"
    if ! "$CLIP" mount "$tmpd/pushed.clip" "$mnt" --cache "$tmpd/record-cache" --record "$tmpd/profile" 2>"$tmpd/err" ||
        ! head -n1 "$mnt/etc/os-release" >/dev/null || ! "$CLIP" umount "$mnt" 2>>"$tmpd/err" ||
        ! "$CLIP" index "$IMAGE" -o "$tmpd/pushed.clip" --push --ignore-published --profile "$tmpd/profile" >/dev/null 2>>"$tmpd/err"; then
        fail "$r first-use: recording or publishing a profile failed: $(head -c 300 "$tmpd/err")"
        "$CLIP" umount "$mnt" >/dev/null 2>&1 || true
        return
    fi
    edit "$b" '.process.args = ["sh", "-c", "sleep 1; head -n1 /etc/os-release"]'
    rooted "$b" "$root"
    if out=$(rt "$r" run -b "$b" "prof-$r" 2>"$tmpd/err") && grep -q '^PRETTY_NAME=' <<<"$out" &&
        grep -q 'using the index published for .*, with its profile' "$root/hook.log" &&
        [ -s "$(ls "$root"/indexes/*.clip 2>/dev/null | head -n1).profile" ] &&
        grep -qE "prefetched [1-9][0-9]* spans from the profile $root/indexes/" /run/clip/mounts/*.log; then
        pass "$r first-use: the profile published with the index is kept beside it and prefetched at mount time"
    else
        fail "$r first-use: published profile not used: $(head -c 200 "$tmpd/err" | tr '\n' '|') $(grep -v 'ready in\|cleaned' "$root/hook.log" 2>/dev/null | tail -n3 | tr '\n' '|')"
    fi
    "$CLIP" gc --root "$root" --force >/dev/null 2>&1 || true
    rm -rf "$tmpd/record-cache"
}

t_first_use() {
    local r=$1 b out fresh=$tmpd/fresh-$r published=$tmpd/published-$r
    b=$(bundle firstuse -- head -n1 /etc/os-release) || { fail "$r first-use: $b"; return; }
    rooted "$b" "$fresh"
    if out=$(rt "$r" run -b "$b" "first-$r" 2>"$tmpd/err") && grep -q '^PRETTY_NAME=' <<<"$out" &&
        grep -q 'index of .* kept in' "$fresh/hook.log" && [ -n "$(ls "$fresh"/indexes/*.clip 2>/dev/null)" ]; then
        pass "$r first-use: the hook indexed the image on first use and kept the index"
    else
        fail "$r first-use: $(head -c 300 "$tmpd/err" | tr '\n' '|') $(grep -v 'ready in\|cleaned' "$fresh/hook.log" 2>/dev/null | tail -n3 | tr '\n' '|')"
    fi
    if rt "$r" run -b "$b" "first2-$r" >/dev/null 2>&1 && [ "$(grep -c 'index of .* kept in' "$fresh/hook.log")" -eq 1 ]; then
        pass "$r first-use: the next container uses the kept index"
    else
        fail "$r first-use: the second container indexed again or failed"
    fi
    "$CLIP" gc --root "$fresh" --force >/dev/null 2>&1 || true
    rooted "$b" "$published"
    if ! "$CLIP" index "$IMAGE" -o "$tmpd/pushed.clip" --push --ignore-published >/dev/null 2>"$tmpd/err"; then
        fail "$r first-use: clip index --push failed: $(head -c 300 "$tmpd/err")"
    elif out=$(rt "$r" run -b "$b" "pub-$r" 2>"$tmpd/err") && grep -q '^PRETTY_NAME=' <<<"$out" &&
        grep -q 'using the index published' "$published/hook.log"; then
        pass "$r first-use: a fresh root uses the index published beside the image"
    else
        fail "$r first-use: published index not used: $(grep -v 'ready in\|cleaned' "$published/hook.log" 2>/dev/null | tail -n3 | tr '\n' '|')"
    fi
    "$CLIP" gc --root "$published" --force >/dev/null 2>&1 || true
    first_use_profile "$r" "$b" "$tmpd/profiled-$r"
    rooted "$b" "$ROOT"
    assert_clean "$r first-use" "$b"
}

t_pinned() {
    local r=$1 b fresh=$tmpd/pinned-$1 image out
    registry_push "$IMG/debian:latest" "$REGISTRY_HOOK/debian:moving" >/dev/null
    b=$(IMAGE=docker://$REGISTRY_HOOK/debian:moving bundle pinned -- head -n1 /etc/os-release) ||
        { fail "$r pinned: $b"; return; }
    image=$(jq -r '.annotations["org.clip.image"]' "$b/config.json")
    if [[ $image == "docker://$REGISTRY_HOOK/debian:moving@sha256:"* ]]; then
        pass "$r pinned: the bundle names $image"
    else
        fail "$r pinned: the bundle names $image, want the tag pinned to its manifest (debian:moving@sha256:…)"
    fi
    registry_push "$IMG/busybox:latest" "$REGISTRY_HOOK/debian:moving" >/dev/null
    rooted "$b" "$fresh"
    if out=$(rt "$r" run -b "$b" "pinned-$r" 2>"$tmpd/err") && grep -q '^PRETTY_NAME=.*Debian' <<<"$out"; then
        pass "$r pinned: after the tag moved to busybox, a fresh root runs the bundled Debian image"
    else
        fail "$r pinned: $(head -c 300 "$tmpd/err" | tr '\n' '|') $(grep -v 'ready in\|cleaned' "$fresh/hook.log" 2>/dev/null | tail -n3 | tr '\n' '|')"
    fi
    "$CLIP" gc --root "$fresh" --force >/dev/null 2>&1 || true
    rooted "$b" "$ROOT"
    assert_clean "$r pinned" "$b"
}

t_keep_warm() {
    local r=$1 b mounted=0 gone=0
    b=$(bundle keepwarm -- true) || { fail "$r keep-warm: $b"; return; }
    edit "$b" '(.hooks[][].args) |= map(if . == "0" then "2" else . end)'
    if rt "$r" create -b "$b" "warm-$r" </dev/null >/dev/null 2>"$tmpd/err" && rt "$r" start "warm-$r" &&
        sleep 0.5 && rt "$r" delete "warm-$r"; then
        [ -n "$(grep " $ROOT/images/.*fuse.clip" /proc/self/mountinfo)" ] && mounted=1
        for _ in $(seq 80); do [ -z "$(daemons)" ] && { gone=1; break; }; sleep 0.1; done
        if [ "$mounted" = 1 ] && [ "$gone" = 1 ]; then
            pass "$r keep-warm: the image stayed mounted after delete, then went by itself"
        else
            fail "$r keep-warm: mounted after delete: $mounted, gone within 8 s: $gone"
        fi
    else
        fail "$r keep-warm: create/start/delete failed: $(head -c 300 "$tmpd/err" | tr '\n' '|')"
    fi
    assert_clean "$r keep-warm" "$b"
}

t_gc() {
    local r=$1 b left
    b=$(bundle gc -- sleep 1000) || { fail "$r gc: $b"; return; }
    if start_detached "$r" "gc-$r" "$b"; then
        # a crash of everything: the container's processes die, the runtime forgets it, poststop never runs
        kill -9 "$(rt "$r" state "gc-$r" | jq -r .pid)" || true
        rm -rf "${STATE:?}/$r/gc-$r"
        sleep 0.5
        left=$(ls "$ROOT/containers")
        if "$CLIP" gc --root "$ROOT" >"$tmpd/gc.out" 2>&1 && grep -q "removed container gc-$r" "$tmpd/gc.out" && [ "$left" = "gc-$r" ]; then
            pass "$r gc: removes a crashed container's overlay and folders"
        else
            fail "$r gc: $(tr '\n' '|' <"$tmpd/gc.out") (containers before: $left)"
        fi
    else
        fail "$r gc: start failed: $(head -c 300 "$tmpd/gc-$r.err")"
    fi
    assert_clean "$r gc" "$b"
    if "$CLIP" gc --root "$tmpd/no-such-root" >"$tmpd/gc.out" 2>&1 && grep -q "nothing to collect" "$tmpd/gc.out" &&
        [ ! -e "$tmpd/no-such-root" ]; then
        pass "$r gc: a root that does not exist has nothing to collect and is not made"
    else
        fail "$r gc: on a missing root: $(tr '\n' '|' <"$tmpd/gc.out"), exists afterwards: $([ -e "$tmpd/no-such-root" ] && echo yes || echo no)"
    fi
}

for r in "${RUNTIMES[@]}"; do
    info "$r $("$r" --version | head -n1)"
    mkdir -p "$STATE/$r"
    for t in "${tests[@]}"; do "t_${t//-/_}" "$r"; done
done

echo "hook-check: $NPASS passed, $NFAIL failed, $NSKIP skipped"
[ "$NFAIL" -eq 0 ]
