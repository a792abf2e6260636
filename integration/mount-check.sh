#!/bin/bash
# Mount check: `clip mount` (lazy FUSE mount) against a real registry.
#
#   integration/mount-check.sh [TEST...]
#
# TEST (default: all, in this order):
#   cli          errors: missing mountpoint, a file that is no index, a bad
#                --cache-size (exit 1, one `clip: error:` line, no mount and
#                no daemon left); `clip umount` / `clip stats` of a directory
#                that is no clip mount (exit 1, one error line); writes are
#                refused (EROFS); a busy mount: `clip umount` refuses (exit
#                1, "busy"), `--lazy` detaches, the open file still reads,
#                the daemon exits once it is closed; SIGTERM to the daemon
#                unmounts cleanly
#   tree         busybox, synthetic (the zstd layout pushed) and debian
#                (SKIP if unavailable) indexed from the loopback registry,
#                mounted with an empty cache: compare-trees.py against
#                `umoci unpack` reads every file through the mount
#                (synthetic: with the mtime exceptions file); /proc /sys /dev
#                are empty directories; also synthetic
#                from its OCI layout index (source oci:...) and busybox
#                mounted straight from its registry source (no .clip file)
#   layers       synthetic (whiteouts, opaque and re-created directories, hard links, xattrs over six layers):
#                every layer mounted alone with --layer (overlay form: whiteouts as 0/0 devices, opaque
#                directories marked), the six stacked by a read-only overlayfs: compare-trees.py against `umoci
#                unpack` (what containerd's snapshotter would show); all unmounted, daemons gone
#   lazy         debian, empty cache: `cat /etc/os-release` fetches < 10%
#                of the layer blob, and the registry access log
#                (registry/blob-reads.py) shows no full layer download;
#                `clip stats` text/--json/--prometheus
#   concurrency  debian: 16 parallel readers of overlapping big files
#                (/usr/bin/*, /usr/lib/x86_64-linux-gnu/*.so*, the apt
#                Packages list) equal umoci's (md5); nothing fetched twice
#                (whole spans + span starts fetched == files in the cache
#                dir; whole spans <= spans of image)
#   eviction     synthetic with --cache-size 8M: the whole tree read
#                (compare-trees) is still right; at the end the cache holds
#                <= 8 MiB + one span
#   remount      debian: unmount, remount with the same --cache, read the
#                same file: bytesFetched == 0 (served by cached spans, or
#                passed through to the file's copy)
#   passthrough  debian (kernel passthrough, specs/mount.md): /usr/bin/perl
#                read whole; a copy enters the cache (filesCopied, and the
#                copy's bytes equal umoci's file); after the page cache is
#                dropped, a read is passed through (passthroughOpens up,
#                `reads` unchanged) and equals umoci's; perl runs from an
#                overlayfs over the mount (mmap through passthrough); libstdc++
#                held open in the daemon-served mode while its copy appears:
#                more opens meanwhile read right (never EIO), and once it is
#                closed, the next open passes through
#   readahead    debian, empty cache: opening /usr/sbin/debugfs prefetches
#                nothing (/usr/sbin holds ~6 MB, over an eighth of the
#                budget), opening /usr/sbin/e2fsck then fetches the spans of
#                every file in /usr/sbin in the background (spansPrefetched >
#                0); one open in /usr/lib/apt/methods (~1 MB) fetches its
#                files' spans at once; reading all those files then fetches
#                nothing more and equals umoci's; with
#                --directory-readahead 0, and for /usr/bin (over 8 MiB),
#                nothing is prefetched
#   faults       debian through faultproxy.py with --timeout 6: registry
#                frozen (SIGSTOP), killed, and gone mid-read (proxy
#                --cut-after --down-after-cut): a read of an unread file
#                fails with EIO in < 30 s, the log names the file, layer
#                and span (specs/mount.md), the mount stays up, and once the
#                registry is back (same port) the same read succeeds without
#                a remount; corrupt blob bytes (--corrupt-blob): EIO, the log
#                names the file, layer and span, nothing corrupt enters the
#                cache (spans verified before the corrupt one may);
#                a full cache disk (1M tmpfs): reads still succeed and the
#                log says once that the cache cannot be written
#   nonroot      debian: nobody (setpriv 65534) reads /etc/os-release
#                (allow_other); /etc/shadow (640 root:shadow) and /root (700)
#                are refused to nobody, root reads /etc/shadow
#   overlay      debian: overlayfs with lowerdir = the mount, upper/work on a
#                tmpfs: a new file, a modified /etc/os-release and a deleted
#                /etc/issue show in the merged dir; the mount is unchanged
#   profile      debian: --record P, read files, umount: P exists when
#                `clip umount` returns, starts `clip-profile 2`, lists the
#                spans fetched; a new empty cache with --prefetch P:
#                spansPrefetched reaches the profile's span count (30 s cap)
#                and reading the files then fetches nothing
#   prefetch-all debian, empty cache, --prefetch all: spansPrefetched reaches
#                the image's span count (clip inspect --json) within 60 s,
#                the cache holds every span, a read then fetches nothing
#
# Every test unmounts what it mounted (`clip umount`, else `umount -l`),
# waits for its daemons to exit (kills them by pid, and fails, if they do
# not), unmounts its tmpfs/overlays, stops its registries and proxies and
# removes its directory; daemon logs (/run/clip/mounts/<id>.log) are moved
# to $CLIP_TEST_WORK/mount-logs/TEST-NAME.log.  At the end: no fuse.clip
# mount and no `clip mount` process that was not there at the start.
#
# The script re-executes itself in a private mount namespace (unshare -m;
# CLIP_MOUNTCHECK_NO_UNSHARE=1 to not): otherwise a mount namespace another
# process creates meanwhile (`ip netns exec`, as wan.sh and the benches do)
# copies our mounts and keeps their daemons serving after `clip umount`.
# Needs root (FUSE, tmpfs, overlay, setpriv) and /dev/fuse; tools: umoci,
# skopeo, docker-registry, jq, curl (integration/deps.sh).
# Environment: CLIP (default .build/debug/clip), CLIP_TEST_WORK (default
# /tmp/clip-test).  Exit status: 0 all passed, 1 any failure, 2 setup error.
set -euo pipefail
# After a failed fetch clip fails reads of that span at once for 1 s (the kernel's immediate retry of a failed
# readahead must not wait out a second timeout); "the registry is back" checks wait that long first.
FAIL_FAST_WAIT=1.2

INTEG=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CLIP=${CLIP:-$INTEG/../.build/debug/clip}
# shellcheck source=lib.sh
. "$INTEG/lib.sh"
# shellcheck source=registry/lib.sh
. "$INTEG/registry/lib.sh"

ALL_TESTS=(cli tree layers lazy concurrency eviction remount passthrough readahead faults nonroot overlay profile prefetch-all)
CLIP_CALL_TIMEOUT=120   # any clip command
READ_TIMEOUT=120        # any read through a mount (a hang is a failure, not a stuck harness)
FAULT_BOUND=30          # a read that must fail (--timeout 6) must do so within this many seconds
FAULT_CLIP_TIMEOUT=6
RUNDIR=/run/clip/mounts

tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=("${ALL_TESTS[@]}")
for t in "${tests[@]}"; do
    case " ${ALL_TESTS[*]} " in *" $t "*) ;; *) echo "error: unknown test $t (${ALL_TESTS[*]})" >&2; exit 2 ;; esac
done
need_clip
CLIP=$(realpath "$CLIP")
[ "$(id -u)" -eq 0 ] || { echo "error: mount-check needs root (FUSE, tmpfs, overlay)" >&2; exit 2; }
# Run in a private mount namespace: a mount namespace that another process
# creates while a mount of ours is up (e.g. `ip netns exec` in wan.sh or a
# bench) copies the mount, keeps its superblock alive after `clip umount`,
# and so keeps the daemon serving; and mounts others make meanwhile do not
# show up in our end check.
if [ -z "${CLIP_MOUNTCHECK_NS:-}" ] && [ "${CLIP_MOUNTCHECK_NO_UNSHARE:-0}" != 1 ]; then
    export CLIP_MOUNTCHECK_NS=1 CLIP
    exec unshare --mount --propagation private "$0" "$@"
fi
for tool in docker-registry skopeo umoci jq curl setpriv python3 md5sum; do
    command -v "$tool" >/dev/null || { echo "error: $tool not installed (integration/deps.sh)" >&2; exit 2; }
done
if [ -n "${CLIP_MOUNTCHECK_NS:-}" ]; then
    # drop our private copies of other clip mounts (theirs stay), so that we
    # do not keep their superblocks (and daemons) alive
    awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { t = $(i + 1); break } } t == "fuse.clip" { print $5 }' \
        /proc/self/mountinfo | while read -r m; do umount -l "$m" 2>/dev/null || true; done
fi
[ -c /dev/fuse ] || { echo "error: no /dev/fuse" >&2; exit 2; }
umask 022
mkdir -p "$WORK"
tmpd=$(realpath "$(mktemp -d "$WORK/.mountcheck.XXXXXX")")
chmod 755 "$tmpd"   # nobody must reach the mountpoints (nonroot test)
LOGKEEP=$WORK/mount-logs
mkdir -p "$LOGKEEP"

# ---------------------------------------------------------------- helpers

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f s", b - a }'; }
secs_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
errline() { head -c 300 "${1:-$tmpd/err}" | tr '\n' '|'; }

# fuse_mounts -> mount points of every fuse.clip mount (this mount namespace)
fuse_mounts() {
    awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { t = $(i + 1); break } } t == "fuse.clip" { print $5 }' \
        /proc/self/mountinfo
}
is_clip_mounted() { fuse_mounts | grep -qxF -- "$1"; }
# is_mounted PATH: anything mounted exactly there
is_mounted() { awk -v p="$1" '$5 == p { f = 1 } END { exit !f }' /proc/self/mountinfo; }
# mounts_under DIR -> mount points at or below DIR
mounts_under() { awk -v p="$1" '$5 == p || index($5, p "/") == 1 { print $5 }' /proc/self/mountinfo; }

# daemon_pids [MP] -> pids of `clip mount` processes (for mountpoint MP, or all)
daemon_pids() {
    python3 - "$@" <<'EOF'
import os, sys
mp = sys.argv[1] if len(sys.argv) > 1 else None
for p in os.listdir("/proc"):
    if not p.isdigit():
        continue
    try:
        with open("/proc/%s/cmdline" % p, "rb") as f:
            argv = [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except OSError:
        continue
    if len(argv) < 3 or os.path.basename(argv[0]) != "clip" or argv[1] != "mount":
        continue
    if mp is None or mp in argv[2:]:
        print(p)
EOF
}
# our_daemon_pids -> `clip mount` processes with an argument below $tmpd
our_daemon_pids() { daemon_pids | while read -r p; do if tr '\0' '\n' <"/proc/$p/cmdline" 2>/dev/null | grep -q "^$tmpd/"; then echo "$p"; fi; done; }

# mount_id MP -> the 16 hex digits naming /run/clip/mounts/<id>.{sock,log}
mount_id() { printf %s "$1" | sha256sum | cut -c1-16; }
mount_log() { echo "$RUNDIR/$(mount_id "$1").log"; }

# per-test state: scratch dir, and a stack of things to undo
T_NAME=""
T_DIR=""
T_STACK=()
push_undo() { T_STACK+=("$*"); }

# wait_daemons_gone MP SECS -> 0 when no `clip mount` process for MP is left
wait_daemons_gone() {
    local mp=$1 secs=$2
    for _ in $(seq $((secs * 10))); do
        [ -z "$(daemon_pids "$mp")" ] && return 0
        sleep 0.1
    done
    [ -z "$(daemon_pids "$mp")" ]
}

kill_pid() { # TERM, 5 s, KILL
    local pid=$1
    kill -0 "$pid" 2>/dev/null || return 0
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
}

keep_log() { # MP: move its daemon log to $LOGKEEP
    local log
    log=$(mount_log "$1")
    [ -f "$log" ] || return 0
    mv -f "$log" "$LOGKEEP/$T_NAME-$(basename "$1").log" 2>/dev/null || rm -f "$log"
}

# undo_fuse MP: unmount if still mounted, make sure its daemon exits
undo_fuse() {
    local mp=$1 p
    if is_clip_mounted "$mp"; then
        timeout --kill-after=5 30 "$CLIP" umount "$mp" >/dev/null 2>&1 || true
        is_clip_mounted "$mp" && { umount -l "$mp" 2>/dev/null || true; }
        if is_clip_mounted "$mp"; then
            fail "cleanup: cannot unmount $mp"
        fi
    fi
    if ! wait_daemons_gone "$mp" 10; then
        fail "cleanup: the clip mount daemon for $mp is still running 10 s after unmount (killed)"
        for p in $(daemon_pids "$mp"); do kill_pid "$p"; done
    fi
    rm -f "$RUNDIR/$(mount_id "$mp").sock" 2>/dev/null || true
    keep_log "$mp"
}

cleanup_test() {
    local i e kind arg left
    exec 3<&- 2>/dev/null || true   # a file the cli test holds open
    for ((i = ${#T_STACK[@]} - 1; i >= 0; i--)); do
        e=${T_STACK[$i]}
        kind=${e%% *}
        arg=${e#* }
        case $kind in
        fuse) undo_fuse "$arg" ;;
        kmount) if is_mounted "$arg"; then umount "$arg" 2>/dev/null || umount -l "$arg" 2>/dev/null || true; fi ;;
        cont) kill -CONT "$arg" 2>/dev/null || true ;;
        kill) kill_pid "$arg"; wait "$arg" 2>/dev/null || true ;;
        registry) registry_stop "$arg" ;;
        proxy) faultproxy_stop "$arg" ;;
        esac
    done
    T_STACK=()
    if [ -n "$T_DIR" ] && [ -d "$T_DIR" ]; then
        left=$(mounts_under "$T_DIR")
        if [ -n "$left" ]; then
            fail "cleanup: mounts left under $T_DIR: $(echo "$left" | tr '\n' ' ') (directory kept)"
        else
            rm -rf "$T_DIR"
        fi
    fi
}

on_exit() {
    cleanup_test
    registry_stop_all
    if [ -z "$(mounts_under "$tmpd")" ]; then
        rm -rf "$tmpd"
    else
        echo "mount-check: mounts left under $tmpd, not removed" >&2
    fi
}

BASE_MOUNTS=$(fuse_mounts | sort)
trap on_exit EXIT
trap 'exit 130' INT TERM

# clipq ARGS... -> stdout $tmpd/out, stderr $tmpd/err, status of clip
clipq() { timeout --kill-after=10 "$CLIP_CALL_TIMEOUT" "$CLIP" "$@" >"$tmpd/out" 2>"$tmpd/err"; }

# expect_exit1 LABEL RC [REGEX]: clip failed with exit 1 and one error line
expect_exit1() {
    local label=$1 rc=$2 re=${3:-.} why=""
    if [ "$rc" -ne 1 ]; then
        why="exit $rc, want 1: $(errline)"
    elif ! why=$(check_one_error_line "$tmpd/err"); then
        :
    elif ! grep -qEi -- "$re" "$tmpd/err"; then
        why="error does not match /$re/: $(errline)"
    else
        why=""
    fi
    if [ -z "$why" ]; then
        pass "$label: $(grep '^clip: error:' "$tmpd/err" | head -c 200)"
    else
        fail "$label: $why"
    fi
}

# do_mount LABEL IMAGE MP [clip mount options] -> 0 when the mount is up
do_mount() {
    local label=$1 image=$2 mp=$3 rc=0 t
    shift 3
    mkdir -p "$mp"
    push_undo fuse "$mp"
    t=$(now)
    clipq mount "$image" "$mp" "$@" || rc=$?
    if [ "$rc" -ne 0 ]; then
        fail "$label: clip mount $(basename "$image") $* (exit $rc): $(errline)"
        return 1
    fi
    if ! is_clip_mounted "$mp"; then
        fail "$label: clip mount exited 0 but there is no fuse.clip mount on $mp"
        return 1
    fi
    if [ -s "$tmpd/out" ] || [ -s "$tmpd/err" ]; then
        info "$label: clip mount printed: $(cat "$tmpd/out" "$tmpd/err" | head -c 300 | tr '\n' '|')"
    fi
    info "$label: mounted $(basename "$image")${*:+ $*} on $mp ($(since "$t"))"
}

# do_umount LABEL MP -> clip umount (unless already unmounted) exits 0, the
# mount is gone, the daemon exits within 10 s
do_umount() {
    local label=$1 mp=$2 rc=0
    if is_clip_mounted "$mp"; then
        clipq umount "$mp" || rc=$?
        if [ "$rc" -ne 0 ]; then
            fail "$label: clip umount $mp (exit $rc): $(errline)"
            return 1
        fi
    fi
    if is_clip_mounted "$mp"; then
        fail "$label: clip umount exited 0 but $mp is still mounted"
        return 1
    fi
    if ! wait_daemons_gone "$mp" 10; then
        fail "$label: the daemon for $mp still runs 10 s after clip umount (pids $(daemon_pids "$mp" | tr '\n' ' '))"
        return 1
    fi
}

# stats MP -> the --json answer on stdout (status 1 if clip stats fails)
stats() { timeout --kill-after=5 30 "$CLIP" stats "$1" --json 2>"$tmpd/stats.err"; }
# stat_of MP FIELD -> the number (empty on error)
stat_of() { stats "$1" | jq -r ".$2 // empty" 2>/dev/null || true; }
stats_brief() { # MP -> one line for messages
    stats "$1" | jq -r '"fetched \(.bytesFetched) B in \(.spansFetched) spans/\(.requests) requests, hits \(.cacheHits), misses \(.cacheMisses), failures \(.failures), prefetched \(.spansPrefetched), reads \(.reads), p50/p99 \(.readLatencyP50Ms)/\(.readLatencyP99Ms) ms"' 2>/dev/null ||
        echo "clip stats failed: $(errline "$tmpd/stats.err")"
}

# poll_stat MP FIELD WANT SECS -> 0 once FIELD >= WANT; POLL_VAL = last value
POLL_VAL=""
poll_stat() {
    local mp=$1 field=$2 want=$3 secs=$4
    for _ in $(seq $((secs * 4))); do
        POLL_VAL=$(stat_of "$mp" "$field")
        [ -n "$POLL_VAL" ] && [ "$POLL_VAL" -ge "$want" ] && return 0
        sleep 0.25
    done
    POLL_VAL=$(stat_of "$mp" "$field")
    [ -n "$POLL_VAL" ] && [ "$POLL_VAL" -ge "$want" ]
}

# timed_read MP REL -> READ_RC, READ_SECS; bytes in $tmpd/read.out, stderr in $tmpd/read.err
READ_RC=0
READ_SECS=0
timed_read() {
    local t
    t=$(now)
    READ_RC=0
    timeout --kill-after=5 "$READ_TIMEOUT" cat -- "$1/$2" >"$tmpd/read.out" 2>"$tmpd/read.err" || READ_RC=$?
    READ_SECS=$(secs_since "$t")
}

# read_ok LABEL MP REL REFNAME -> reads REL through the mount, compares with umoci's
read_ok() {
    local label=$1 mp=$2 rel=$3 refname=$4
    timed_read "$mp" "$rel"
    if [ "$READ_RC" -ne 0 ]; then
        fail "$label: cat /$rel: exit $READ_RC after $READ_SECS s: $(errline "$tmpd/read.err")"
        return 1
    fi
    if ! cmp -s "$tmpd/read.out" "$REF/$refname/rootfs/$rel"; then
        fail "$label: /$rel differs from umoci's ($(stat -c %s "$tmpd/read.out") bytes read)"
        return 1
    fi
    pass "$label: /$rel ($(stat -c %s "$tmpd/read.out") bytes, $READ_SECS s) equals umoci's"
}

# read_eio LABEL MP REL -> the read fails with EIO within FAULT_BOUND seconds
read_eio() {
    local label=$1 mp=$2 rel=$3
    timed_read "$mp" "$rel"
    if [ "$READ_RC" -eq 0 ]; then
        fail "$label: cat /$rel succeeded ($(stat -c %s "$tmpd/read.out") bytes in $READ_SECS s), want EIO"
        return 1
    fi
    if [ "$READ_RC" -ge 124 ]; then
        fail "$label: cat /$rel hung (timeout after $READ_SECS s, exit $READ_RC)"
        return 1
    fi
    if ! grep -q 'Input/output error' "$tmpd/read.err"; then
        fail "$label: cat /$rel failed (exit $READ_RC) but not with EIO: $(errline "$tmpd/read.err")"
        return 1
    fi
    if awk -v s="$READ_SECS" -v b="$FAULT_BOUND" 'BEGIN { exit !(s >= b) }'; then
        fail "$label: cat /$rel failed with EIO only after $READ_SECS s (bound $FAULT_BOUND s, --timeout $FAULT_CLIP_TIMEOUT)"
        return 1
    fi
    pass "$label: cat /$rel fails with EIO after $READ_SECS s"
}

# log_names LABEL LOG REL LHEX: the log's line about the failed read of
# /REL names the file, the layer (LHEX) and the span
log_names() {
    local label=$1 log=$2 rel=$3 lhex=$4 line
    line=$(grep -F "read of /$rel failed" "$log" | tail -n1)
    if [ -z "$line" ]; then
        fail "$label: the mount log has no line about the failed read of /$rel: $(tail -c 300 "$log" | tr '\n' '|')"
    elif echo "$line" | grep -q "${lhex:0:12}" && echo "$line" | grep -Eqi 'spans?[^a-z]'; then
        pass "$label: the log names the file, layer and span: $(echo "$line" | cut -c22- | head -c 250)"
    else
        fail "$label: the log line does not name the file, the layer ${lhex:0:12} and the span: $(echo "$line" | cut -c22- | head -c 300)"
    fi
}

# still_up LABEL MP REFNAME CACHED_REL: mount listed, stats answer, a cached file reads
still_up() {
    local label=$1 mp=$2 refname=$3 rel=$4 why=""
    if ! is_clip_mounted "$mp"; then
        why="no longer mounted"
    elif ! ls "$mp/etc" >/dev/null 2>&1; then
        why="ls /etc fails"
    elif ! stats "$mp" >/dev/null; then
        why="clip stats fails: $(errline "$tmpd/stats.err")"
    elif ! timeout 30 cmp -s "$mp/$rel" "$REF/$refname/rootfs/$rel"; then
        why="the already-read /$rel no longer reads right"
    fi
    if [ -z "$why" ]; then
        pass "$label: the mount stays up (ls, clip stats, /$rel)"
    else
        fail "$label: $why"
    fi
}

# cache_files DIR -> number of span files; cache_bytes DIR -> their bytes
cache_files() { find "$1" -type f 2>/dev/null | wc -l; }
cache_bytes() { find "$1" -type f -printf '%s\n' 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'; }

# runtime_dirs_empty LABEL MP: /proc, /sys, /dev (where the image has them)
# are empty directories in the mount
runtime_dirs_empty() {
    local label=$1 mp=$2 x bad="" seen=""
    for x in proc sys dev; do
        [ -e "$mp/$x" ] || continue
        seen="$seen /$x"
        if [ ! -d "$mp/$x" ] || [ -n "$(ls -A "$mp/$x")" ]; then
            bad="$bad /$x ($(find "$mp/$x" -mindepth 1 -maxdepth 1 -printf '%f ' 2>&1 | head -c 100))"
        fi
    done
    if [ -n "$bad" ]; then
        fail "$label: runtime directories are not empty:$bad"
    else
        pass "$label: runtime directories are empty:${seen:- none in the image}"
    fi
}

# compare_mount LABEL MP REFNAME [compare-trees args]
compare_mount() {
    local label=$1 mp=$2 refname=$3 t f
    shift 3
    t=$(now)
    if python3 "$INTEG/compare-trees.py" "$REF/$refname/rootfs" "$mp" "$@" >"$tmpd/cmp" 2>&1; then
        pass "$label: the mount equals umoci unpack ($(tail -n1 "$tmpd/cmp"); $(since "$t"))"
    else
        fail "$label: the mount differs from umoci unpack ($(tail -n1 "$tmpd/cmp"))"
        head -n 30 "$tmpd/cmp" | sed 's/^/    /'
    fi
    f=$(stat_of "$mp" failures)
    if [ "$f" = 0 ]; then
        info "$label: $(stats_brief "$mp")"
    else
        fail "$label: clip stats failures '$f' after reading the tree ($(stats_brief "$mp"))"
    fi
}

errno_of() { python3 -c 'import errno, sys; print(getattr(errno, sys.argv[1]))' "$1"; }
# xattr_answer LABEL FILE ERRNO: getxattr of a name no file has fails with ERRNO (EOPNOTSUPP: the kernel was told
# the filesystem has no xattrs and answers itself; ENODATA: it asked the daemon)
xattr_answer() {
    local got
    got=$(python3 -c 'import os, sys
try:
    os.getxattr(sys.argv[1], "user.clip-absent", follow_symlinks=False); print("found")
except OSError as e:
    print(e.errno)' "$2" 2>&1)
    if [ "$got" = "$3" ]; then
        pass "$1: getxattr of an absent name fails with errno $3"
    else
        fail "$1: getxattr of an absent name gave '$got', expected errno $3"
    fi
}

log_lines() { # FILE -> its line count once it stopped growing
    local a b=-1
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        a=$(wc -l <"$1")
        [ "$a" = "$b" ] && break
        b=$a
        sleep 0.2
    done
    echo "$a"
}

# ---------------------------------------------------------------- images

refname_of() { case $1 in synthetic) echo synthetic-gzip ;; *) echo "$1" ;; esac; }
exceptions_of() { case $1 in synthetic) echo "--mtime-exceptions $IMG/synthetic-mtime-exceptions.txt" ;; esac; }

# the shared registry (storage in $tmpd/storage, also used by the faults
# test's own registry); stopped at exit
shared_registry() {
    [ -n "${REGISTRY_MOUNT:-}" ] && return 0
    registry_start mount --storage "$tmpd/storage" >/dev/null
}

# need_indexed NAME -> 0 with $tmpd/NAME.clip indexed from the shared
# registry (built, unpacked by umoci, pushed and indexed once per run);
# 77 when the image is not available; else 1 (after a FAIL line)
declare -A INDEXED=()
need_indexed() {
    local name=$1 rc=0 t
    [ -n "${INDEXED[$name]:-}" ] && return "${INDEXED[$name]}"
    INDEXED[$name]=1
    ensure_image "$name" || rc=$?
    if [ "$rc" -eq 77 ]; then INDEXED[$name]=77; return 77; fi
    [ "$rc" -eq 0 ] || { fail "image $name: build failed (exit $rc)"; return 1; }
    ensure_ref "$(refname_of "$name")" || { fail "image $name: umoci unpack failed"; return 1; }
    shared_registry || { fail "registry_start failed"; return 1; }
    t=$(now)
    registry_push "$IMG/$name:latest" "$REGISTRY_MOUNT/$name:latest" || { fail "image $name: skopeo push failed"; return 1; }
    rc=0
    clipq index "docker://$REGISTRY_MOUNT/$name:latest" -o "$tmpd/$name.clip" || rc=$?
    if [ "$rc" -ne 0 ] || [ ! -s "$tmpd/$name.clip" ]; then
        fail "image $name: clip index docker://$REGISTRY_MOUNT/$name:latest (exit $rc): $(errline)"
        return 1
    fi
    "$CLIP" inspect "$tmpd/$name.clip" --json >"$tmpd/$name.json"
    info "image $name: pushed and indexed from the registry ($(jq '[.layers[].spans] | add' "$tmpd/$name.json") spans; $(since "$t"))"
    INDEXED[$name]=0
}

# need_debian -> 0, or SKIP/FAIL for the current test and 1
need_debian() {
    local rc=0
    need_indexed debian || rc=$?
    [ "$rc" -eq 0 ] && return 0
    [ "$rc" -eq 77 ] && skip "$T_NAME: the debian image is not available"
    return 1
}

total_spans() { jq '[.layers[].spans] | add' "$tmpd/$1.json"; }
layer_digest() { jq -r ".layers[${2:-0}].digest" "$tmpd/$1.json"; }
layer_size() { jq -r ".layers[${2:-0}].compressedSize" "$tmpd/$1.json"; }

# overlay_on LABEL LOWER MERGED: an overlayfs over LOWER at MERGED, upper and work dirs on a
# fresh tmpfs under $T_DIR/t (both unmounted by the test's undo stack)
overlay_on() {
    local label=$1 lower=$2 merged=$3 t=$T_DIR/t
    mkdir -p "$t" "$merged"
    mount -t tmpfs -o size=64M,mode=0755 clip-test-upper "$t" || { fail "$label: mount tmpfs"; return 1; }
    push_undo kmount "$t"
    mkdir -p "$t/upper" "$t/work"
    if ! mount -t overlay overlay -o "lowerdir=$lower,upperdir=$t/upper,workdir=$t/work" "$merged" 2>"$tmpd/err"; then
        fail "$label: mount -t overlay with lowerdir=$lower: $(errline)"
        return 1
    fi
    push_undo kmount "$merged"
}

# debian files the tests read
D_SMALL=etc/os-release                        # a symlink to ../usr/lib/os-release
D_BIG=usr/bin/perl                            # 3.8 MB
D_BASH=usr/bin/bash
D_LIBC=usr/lib/x86_64-linux-gnu/libc.so.6
D_STDCXX=usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30

# ---------------------------------------------------------------- tests

test_cli() {
    local d=$T_DIR rc mp pid
    need_indexed busybox || return
    mkdir -p "$d/empty"

    rc=0
    clipq mount "$tmpd/busybox.clip" "$d/no-such-dir" --cache "$d/cache" || rc=$?
    expect_exit1 "cli: mount on a missing mountpoint" "$rc" 'no-such-dir|not a directory|no such'
    printf 'not an index\n' >"$d/garbage.clip"
    rc=0
    clipq mount "$d/garbage.clip" "$d/empty" --cache "$d/cache" || rc=$?
    expect_exit1 "cli: mount of a file that is no index" "$rc"
    rc=0
    clipq mount "$tmpd/busybox.clip" "$d/empty" --cache "$d/cache" --cache-size 8Q || rc=$?
    expect_exit1 "cli: mount with --cache-size 8Q" "$rc" '8Q|size'
    if is_clip_mounted "$d/empty" || [ -n "$(daemon_pids "$d/empty")" ] || [ -n "$(daemon_pids "$d/no-such-dir")" ]; then
        fail "cli: a failed clip mount left a mount or a daemon behind"
        push_undo fuse "$d/empty"
    else
        pass "cli: failed mounts leave no mount and no daemon"
    fi
    keep_log "$d/no-such-dir"
    keep_log "$d/empty"
    rc=0
    clipq umount "$d/empty" || rc=$?
    expect_exit1 "cli: umount of a directory that is not mounted" "$rc"
    rc=0
    clipq stats "$d/empty" || rc=$?
    expect_exit1 "cli: stats of a directory that is not mounted" "$rc"

    # busy: clip umount refuses (exit 1, hint at --lazy), --lazy detaches,
    # the open file still reads, and the daemon goes once it is closed
    mp=$d/busy
    if do_mount "cli: busy" "$tmpd/busybox.clip" "$mp" --cache "$d/cache"; then
        exec 3<"$mp/etc/passwd"
        rc=0
        clipq umount "$mp" || rc=$?
        expect_exit1 "cli: umount of a busy mount" "$rc" 'busy'
        rc=0
        clipq umount "$mp" --lazy || rc=$?
        if [ "$rc" -eq 0 ] && ! is_clip_mounted "$mp"; then
            pass "cli: umount --lazy of a busy mount detaches it"
        else
            fail "cli: umount --lazy: exit $rc, $(is_clip_mounted "$mp" && echo still mounted): $(errline)"
        fi
        if cmp -s <(cat <&3) "$REF/busybox/rootfs/etc/passwd"; then
            pass "cli: a file opened before umount --lazy still reads"
        else
            fail "cli: a file opened before umount --lazy no longer reads right"
        fi
        exec 3<&-
        if wait_daemons_gone "$mp" 10; then
            pass "cli: the daemon exits once the last open file is closed"
        else
            fail "cli: the daemon still runs 10 s after the last file of a lazily unmounted mount was closed"
        fi
    fi

    mp=$d/mnt
    do_mount "cli" "$tmpd/busybox.clip" "$mp" --cache "$d/cache" || return
    rc=0
    touch "$mp/new-file" 2>"$tmpd/err" || rc=$?
    if [ "$rc" -ne 0 ] && grep -q 'Read-only file system' "$tmpd/err"; then
        pass "cli: writes are refused (EROFS)"
    else
        fail "cli: touch in the mount: exit $rc, $(errline), want EROFS"
    fi
    # SIGTERM to the daemon unmounts cleanly
    pid=$(daemon_pids "$mp" | head -n1)
    if [ -z "$pid" ]; then
        fail "cli: no clip mount process for $mp"
        return
    fi
    kill -TERM "$pid"
    if wait_daemons_gone "$mp" 10 && ! is_clip_mounted "$mp"; then
        pass "cli: SIGTERM to the daemon (pid $pid) unmounts and it exits"
    else
        fail "cli: SIGTERM to the daemon (pid $pid): mounted=$(is_clip_mounted "$mp" && echo yes || echo no), running=$(kill -0 "$pid" 2>/dev/null && echo yes || echo no)"
    fi
    if [ -e "$RUNDIR/$(mount_id "$mp").sock" ]; then
        fail "cli: the stats socket $RUNDIR/$(mount_id "$mp").sock is left after SIGTERM"
    fi
}

test_tree() {
    local d=$T_DIR name rc refname exc mp
    for name in busybox synthetic debian; do
        rc=0
        need_indexed "$name" || rc=$?
        if [ "$rc" -eq 77 ]; then skip "tree: $name image not available"; continue; fi
        [ "$rc" -eq 0 ] || continue
        refname=$(refname_of "$name")
        # shellcheck disable=SC2207
        exc=($(exceptions_of "$name"))
        mp=$d/$name
        do_mount "tree: $name" "$tmpd/$name.clip" "$mp" --cache "$d/cache-$name" || continue
        compare_mount "tree: $name via the registry, empty cache" "$mp" "$refname" "${exc[@]}"
        runtime_dirs_empty "tree: $name" "$mp"
        case $name in
        busybox) xattr_answer "tree: busybox (no xattr in the image)" "$mp/bin/busybox" "$(errno_of EOPNOTSUPP)" ;;
        synthetic) xattr_answer "tree: synthetic (xattrs)" "$mp/data/xattr-file" "$(errno_of ENODATA)" ;;
        esac
        do_umount "tree: $name" "$mp" && pass "tree: $name unmounted, daemon gone"
    done

    # synthetic from the OCI layout (source oci:...)
    if [ "${INDEXED[synthetic]:-1}" = 0 ]; then
        rc=0
        clipq index "oci:$IMG/synthetic:latest" -o "$d/synthetic-oci.clip" || rc=$?
        if [ "$rc" -ne 0 ]; then
            fail "tree: clip index oci:synthetic (exit $rc): $(errline)"
        elif do_mount "tree: synthetic (oci layout)" "$d/synthetic-oci.clip" "$d/synthetic-oci" --cache "$d/cache-oci"; then
            compare_mount "tree: synthetic from its OCI layout (source oci:)" "$d/synthetic-oci" synthetic-gzip \
                --mtime-exceptions "$IMG/synthetic-mtime-exceptions.txt"
            do_umount "tree: synthetic (oci layout)" "$d/synthetic-oci"
        fi
    fi
    # busybox straight from its registry source
    if [ "${INDEXED[busybox]:-1}" = 0 ]; then
        if do_mount "tree: busybox (source)" "docker://$REGISTRY_MOUNT/busybox:latest" "$d/busybox-src" --cache "$d/cache-src"; then
            compare_mount "tree: busybox mounted from docker://…/busybox:latest" "$d/busybox-src" busybox
            do_umount "tree: busybox (source)" "$d/busybox-src"
        fi
    fi
}

test_layers() {
    local d=$T_DIR rc digests digest i=0 lowers="" stack mp ok=1
    rc=0
    need_indexed synthetic || rc=$?
    if [ "$rc" -ne 0 ]; then skip "layers: synthetic image not available"; return; fi
    mapfile -t digests < <("$CLIP" inspect "$tmpd/synthetic.clip" --json | jq -r '.layers[].digest')
    for digest in "${digests[@]}"; do
        mp=$d/layer$i
        do_mount "layers: layer $((i + 1)) alone" "$tmpd/synthetic.clip" "$mp" --cache "$d/cache" --layer "$digest" || { ok=0; break; }
        lowers="$mp${lowers:+:$lowers}"
        i=$((i + 1))
    done
    stack=$d/stack
    mkdir -p "$stack"
    if [ "$ok" = 1 ] && mount -t overlay overlay -o "lowerdir=$lowers" "$stack" 2>"$tmpd/err"; then
        push_undo kmount "$stack"
        if python3 "$INTEG/compare-trees.py" "$REF/synthetic-gzip/rootfs" "$stack" \
            --mtime-exceptions "$IMG/synthetic-mtime-exceptions.txt" >"$tmpd/cmp" 2>&1; then
            pass "layers: ${#digests[@]} layer mounts under overlayfs equal umoci unpack ($(tail -n1 "$tmpd/cmp"))"
        else
            fail "layers: the stacked layer mounts differ from umoci unpack ($(tail -n1 "$tmpd/cmp"))"
            head -n 20 "$tmpd/cmp" | sed 's/^/    /'
        fi
        umount "$stack" || fail "layers: umount of the overlay"
    else
        fail "layers: could not stack the layer mounts: $(errline)"
    fi
    for ((i = 0; i < ${#digests[@]}; i++)); do do_umount "layers: layer $((i + 1))" "$d/layer$i"; done
}

test_lazy() {
    local d=$T_DIR mp from digest size bf limit out
    need_debian || return
    mp=$d/mnt
    digest=$(layer_digest debian)
    size=$(layer_size debian)
    from=$(log_lines "$REGISTRY_MOUNT_LOG")
    do_mount "lazy" "$tmpd/debian.clip" "$mp" --cache "$d/cache" || return
    read_ok "lazy: debian" "$mp" "$D_SMALL" debian || return
    bf=$(stat_of "$mp" bytesFetched)
    limit=$((size / 10))
    if [ -n "$bf" ] && [ "$bf" -gt 0 ] && [ "$bf" -lt "$limit" ]; then
        pass "lazy: bytesFetched $bf < 10% of the $size-byte layer ($(stats_brief "$mp"))"
    else
        fail "lazy: bytesFetched '$bf', want 0 < it < $limit (10% of the layer; $(stats_brief "$mp"))"
    fi
    log_lines "$REGISTRY_MOUNT_LOG" >/dev/null
    if python3 "$INTEG/registry/blob-reads.py" "$REGISTRY_MOUNT_LOG" --from-line "$from" \
        --layer "$digest:$size" --forbid-full >"$tmpd/reads" 2>&1; then
        pass "lazy: the registry served no full layer blob ($(tail -n1 "$tmpd/reads"))"
    else
        fail "lazy: the registry served the layer blob in full ($(tail -n1 "$tmpd/reads"))"
        sed 's/^/    /' "$tmpd/reads" | head -n 5
    fi
    if ! grep -q "${digest#sha256:}" "$tmpd/reads"; then
        fail "lazy: the access log shows no GET of the layer blob at all (log parsing?)"
    fi
    # the three output forms
    out=$(timeout 30 "$CLIP" stats "$mp" 2>&1) || true
    if echo "$out" | grep -q "fetched: *$bf bytes"; then
        pass "lazy: clip stats (text) says fetched $bf bytes"
    else
        fail "lazy: clip stats (text): $(echo "$out" | head -c 300 | tr '\n' '|')"
    fi
    out=$(timeout 30 "$CLIP" stats "$mp" --prometheus 2>&1) || true
    if echo "$out" | grep -Eq "^clip_fetched_bytes_total(\{[^}]*\})? $bf\$"; then
        pass "lazy: clip stats --prometheus has clip_fetched_bytes_total $bf"
    else
        fail "lazy: clip stats --prometheus: $(echo "$out" | head -c 300 | tr '\n' '|')"
    fi
    out=$(stats "$mp")
    if echo "$out" | jq -e '[.bytesFetched, .spansFetched, .requests, .cacheHits, .cacheMisses, .failures,
            .spansPrefetched, .reads, .readLatencyP50Ms, .readLatencyP90Ms, .readLatencyP99Ms]
            | all(type == "number")' >/dev/null 2>&1; then
        pass "lazy: clip stats --json has every field"
    else
        fail "lazy: clip stats --json lacks fields: $(echo "$out" | head -c 300)"
    fi
    do_umount "lazy" "$mp"
}

test_concurrency() {
    local d=$T_DIR mp n i pids=() rc bad=0 sf ss fc cf total refroot
    need_debian || return
    refroot=$REF/debian/rootfs
    mp=$d/mnt
    # the files: big binaries and libraries, plus the 50 MB apt list
    (cd "$refroot" && find usr/bin usr/lib/x86_64-linux-gnu -maxdepth 1 -type f \
        \( -path 'usr/bin/*' -o -name '*.so*' \) | sort
        find var/lib/apt/lists -maxdepth 1 -type f -name '*Packages' | sort) >"$d/all"
    n=$(wc -l <"$d/all")
    (cd "$refroot" && xargs -d '\n' -a "$d/all" md5sum) >"$d/ref.md5"
    info "concurrency: $n files, $(cd "$refroot" && xargs -d '\n' -a "$d/all" stat -c %s | awk '{ s += $1 } END { print s }') bytes"
    # reader i: half of the list, starting at i/16 of it (wrapping): every
    # file is read by about 8 readers, in different orders
    for i in $(seq 0 15); do
        awk -v n="$n" -v i="$i" '{ a[NR - 1] = $0 } END { s = int(i * n / 16); for (k = 0; k < int((n + 1) / 2); k++) print a[(s + k) % n] }' \
            "$d/all" >"$d/list.$i"
    done
    do_mount "concurrency" "$tmpd/debian.clip" "$mp" --cache "$d/cache" || return
    for i in $(seq 0 15); do
        (cd "$mp" && timeout --kill-after=5 600 xargs -d '\n' -a "$d/list.$i" md5sum) >"$d/out.$i" 2>"$d/err.$i" &
        pids+=($!)
    done
    for i in $(seq 0 15); do
        rc=0
        wait "${pids[$i]}" || rc=$?
        if [ "$rc" -ne 0 ]; then
            fail "concurrency: reader $i exit $rc: $(errline "$d/err.$i")"
            bad=1
            continue
        fi
        if [ "$(wc -l <"$d/out.$i")" -ne "$(wc -l <"$d/list.$i")" ] ||
            ! awk 'NR == FNR { m[$2] = $1; next } m[$2] != $1 { print; bad++ } END { exit bad > 0 }' \
                "$d/ref.md5" "$d/out.$i" >"$d/bad.$i"; then
            fail "concurrency: reader $i read wrong bytes: $(head -n 3 "$d/bad.$i" | tr '\n' '|')"
            bad=1
        fi
    done
    [ "$bad" -eq 0 ] && pass "concurrency: 16 parallel readers, each $(wc -l <"$d/list.0") files: every md5 equals umoci's"
    info "concurrency: $(stats_brief "$mp")"
    [ "$(stat_of "$mp" failures)" = 0 ] || fail "concurrency: clip stats failures = $(stat_of "$mp" failures)"
    total=$(total_spans debian)
    for _ in $(seq 40); do # spans and file copies are written in the background: wait until that settles
        sf=$(stat_of "$mp" spansFetched)
        ss=$(stat_of "$mp" spanStartsFetched)
        fc=$(stat_of "$mp" filesCopied)
        cf=$(cache_files "$d/cache")
        [ -n "$sf" ] && [ -n "$ss" ] && [ -n "$fc" ] && [ "$((sf + ss + fc))" -eq "$cf" ] && break
        sleep 0.25
    done
    if [ -n "$sf" ] && [ -n "$ss" ] && [ -n "$fc" ] && [ "$sf" -le "$total" ] && [ "$((sf + ss + fc))" -eq "$cf" ] && [ "$sf" -gt 0 ]; then
        pass "concurrency: nothing fetched twice ($sf whole spans + $ss span starts + $fc file copies == $cf cache files; $sf <= $total spans)"
    else
        fail "concurrency: spansFetched '$sf' + spanStartsFetched '$ss' + filesCopied '$fc', cache files $cf, image spans $total (want the sum == cache files, spansFetched <= spans)"
    fi
    do_umount "concurrency" "$mp"
}

test_eviction() {
    local d=$T_DIR mp rc limit bytes files mon maxspan maxseen
    rc=0
    need_indexed synthetic || rc=$?
    [ "$rc" -eq 0 ] || return
    mp=$d/mnt
    mkdir -p "$d/cache"
    # sample the cache size while the tree is read
    (
        mx=0 mf=0
        while :; do
            s=$(find "$d/cache" -type f -printf '%s\n' 2>/dev/null | awk '{ s += $1; if ($1 > m) m = $1 } END { print s + 0, m + 0 }')
            read -r sz big <<<"$s"
            [ "$sz" -gt "$mx" ] && mx=$sz
            [ "$big" -gt "$mf" ] && mf=$big
            echo "$mx $mf" >"$d/max.tmp" && mv -f "$d/max.tmp" "$d/max"
            sleep 0.2
        done
    ) &
    mon=$!
    push_undo kill "$mon"
    do_mount "eviction" "$tmpd/synthetic.clip" "$mp" --cache "$d/cache" --cache-size 8M || return
    compare_mount "eviction: synthetic with --cache-size 8M" "$mp" synthetic-gzip \
        --mtime-exceptions "$IMG/synthetic-mtime-exceptions.txt"
    sleep 0.5
    kill "$mon" 2>/dev/null || true
    wait "$mon" 2>/dev/null || true
    read -r maxseen maxspan <"$d/max" || { maxseen=0; maxspan=0; }
    [ "$maxspan" -gt $((4 << 20)) ] || maxspan=$((4 << 20))
    bytes=$(cache_bytes "$d/cache")
    files=$(cache_files "$d/cache")
    limit=$(((8 << 20) + maxspan))
    info "eviction: $(stat_of "$mp" spansFetched) span fetches (the image has $(total_spans synthetic) spans, $(jq '[.layers[].uncompressedSize] | add' "$tmpd/synthetic.json") tar bytes); largest cache size seen $maxseen bytes"
    if [ "$bytes" -le "$limit" ]; then
        pass "eviction: the cache holds $bytes bytes in $files spans (<= 8 MiB + one span = $limit)"
    else
        fail "eviction: the cache holds $bytes bytes in $files spans (> 8 MiB + one span = $limit)"
    fi
    if [ "$(($(stat_of "$mp" spansFetched) + $(stat_of "$mp" spanStartsFetched) + $(stat_of "$mp" filesCopied)))" -le "$files" ]; then
        fail "eviction: $(stat_of "$mp" spansFetched) spans + $(stat_of "$mp" spanStartsFetched) starts fetched + $(stat_of "$mp" filesCopied) file copies <= $files cache files: nothing was evicted, the test proves nothing"
    fi
    do_umount "eviction" "$mp"
}

test_remount() {
    local d=$T_DIR mp bf
    need_debian || return
    mp=$d/mnt
    do_mount "remount: first mount" "$tmpd/debian.clip" "$mp" --cache "$d/cache" || return
    read_ok "remount: first mount" "$mp" "$D_BASH" debian || return
    bf=$(stat_of "$mp" bytesFetched)
    info "remount: first mount fetched $bf bytes; cache $(cache_files "$d/cache") spans"
    do_umount "remount: first mount" "$mp" || return
    do_mount "remount: second mount" "$tmpd/debian.clip" "$mp" --cache "$d/cache" || return
    read_ok "remount: second mount" "$mp" "$D_BASH" debian || return
    bf=$(stat_of "$mp" bytesFetched)
    # bash is over 1 MiB: its copy was made on the first mount, so the read may pass through to it (no span lookup)
    if [ "$bf" = 0 ] && [ "$(($(stat_of "$mp" cacheHits) + $(stat_of "$mp" passthroughOpens)))" -gt 0 ]; then
        pass "remount: the same read after a remount with the same cache fetched nothing ($(stats_brief "$mp"), passthrough opens $(stat_of "$mp" passthroughOpens))"
    else
        fail "remount: bytesFetched '$bf' after the remount, want 0, served from the cache or its copy ($(stats_brief "$mp"), passthrough opens $(stat_of "$mp" passthroughOpens))"
    fi
    do_umount "remount: second mount" "$mp"
}

test_passthrough() {
    local d=$T_DIR mp m reads opens size copy rc out
    need_debian || return
    mp=$d/mnt
    m=$d/merged
    do_mount "passthrough" "$tmpd/debian.clip" "$mp" --cache "$d/cache" || return
    read_ok "passthrough: first read (spans fetched)" "$mp" "$D_BIG" debian || return
    if poll_stat "$mp" filesCopied 1 20; then
        pass "passthrough: a copy of /$D_BIG entered the cache once it was read whole"
    else
        fail "passthrough: filesCopied '$POLL_VAL' 20 s after /$D_BIG was read whole, want 1"
        return
    fi
    [ "$(stat_of "$mp" passthroughOpens)" = 0 ] || fail "passthrough: an open passed through before any copy existed"
    size=$(stat -c %s "$REF/debian/rootfs/$D_BIG")
    copy=$(find "$d/cache" -type f -size "${size}c" | head -n 1)
    if [ -n "$copy" ] && cmp -s "$copy" "$REF/debian/rootfs/$D_BIG"; then
        pass "passthrough: the copy ${copy#"$d/cache/"} holds umoci's /$D_BIG"
    else
        fail "passthrough: no cache file of $size bytes equals umoci's /$D_BIG (found '${copy#"$d/cache/"}')"
    fi
    reads=$(stat_of "$mp" reads)
    opens=$(stat_of "$mp" passthroughOpens)
    echo 1 >/proc/sys/vm/drop_caches # a daemon-served open would have to ask again
    read_ok "passthrough: read after the page cache was dropped" "$mp" "$D_BIG" debian || return
    if [ "$(stat_of "$mp" passthroughOpens)" -gt "$opens" ] && [ "$(stat_of "$mp" reads)" = "$reads" ]; then
        pass "passthrough: the open passed through, the daemon served no read ($(stat_of "$mp" passthroughOpens) passthrough opens, reads $reads)"
    else
        fail "passthrough: passthroughOpens $opens -> $(stat_of "$mp" passthroughOpens), reads $reads -> $(stat_of "$mp" reads) (want opens up, reads unchanged)"
    fi

    # A program mapped from a passthrough file, through an overlayfs stacked on the mount.
    overlay_on passthrough "$mp" "$m" || return
    out=$(timeout 60 "$m/lib64/ld-linux-x86-64.so.2" --library-path "$m/usr/lib/x86_64-linux-gnu" "$m/$D_BIG" \
        -e 'print 6 * 7' 2>"$tmpd/err") || true
    if [ "$out" = 42 ]; then
        pass "passthrough: /$D_BIG runs from an overlayfs over the mount (printed 42)"
    else
        fail "passthrough: /$D_BIG from the overlayfs printed '$out': $(errline)"
    fi
    umount "$m" || fail "passthrough: umount the overlay"

    # An inode is never open both ways: opens while a daemon-served one is held stay daemon-served.
    opens=$(stat_of "$mp" passthroughOpens)
    exec 3<"$mp/$D_STDCXX"
    rc=0
    cmp -s "$mp/$D_STDCXX" "$REF/debian/rootfs/$D_STDCXX" || rc=1 # read whole: its copy is made meanwhile
    poll_stat "$mp" filesCopied 2 20 || rc=2
    echo 1 >/proc/sys/vm/drop_caches
    cmp -s "$mp/$D_STDCXX" "$REF/debian/rootfs/$D_STDCXX" || rc=3 # while fd 3 is open
    [ "$(stat_of "$mp" passthroughOpens)" = "$opens" ] || rc=4
    exec 3<&-
    if [ "$rc" -eq 0 ]; then
        pass "passthrough: /$D_STDCXX read right while held open as its copy appeared (filesCopied $POLL_VAL, no passthrough open meanwhile)"
    else
        fail "passthrough: /$D_STDCXX while held open: step $rc failed (1, 3: bytes differ; 2: no copy; 4: an open passed through)"
    fi
    for _ in $(seq 20); do # the release of fd 3 reaches the daemon after close returns
        sleep 0.1
        cmp -s "$mp/$D_STDCXX" "$REF/debian/rootfs/$D_STDCXX" || { rc=5; break; }
        [ "$(stat_of "$mp" passthroughOpens)" -gt "$opens" ] && break
    done
    if [ "$rc" -eq 0 ] && [ "$(stat_of "$mp" passthroughOpens)" -gt "$opens" ]; then
        pass "passthrough: once closed, /$D_STDCXX opens with passthrough and reads right"
    else
        fail "passthrough: after closing, /$D_STDCXX: rc $rc, passthroughOpens $opens -> $(stat_of "$mp" passthroughOpens)"
    fi
    grep -q 'passthrough refused' "$(mount_log "$mp")" 2>/dev/null && fail "passthrough: the log says passthrough was refused"
    do_umount "passthrough" "$mp"
}

# nothing_prefetched LABEL MP: a second later, the mount has prefetched no span
nothing_prefetched() {
    sleep 1
    if [ "$(stat_of "$2" spansPrefetched)" = 0 ]; then
        pass "$1: nothing prefetched"
    else
        fail "$1: spansPrefetched $(stat_of "$2" spansPrefetched), want 0"
    fi
}

test_readahead() {
    local d=$T_DIR mp bf rel bad=0
    need_debian || return
    mp=$d/mnt
    do_mount "readahead" "$tmpd/debian.clip" "$mp" --cache "$d/cache" || return
    # /usr/sbin's files hold ~6 MB: more than an eighth of the 8 MiB budget, so read ahead at the second open only
    read_ok "readahead: first open in /usr/sbin" "$mp" usr/sbin/debugfs debian || return
    nothing_prefetched "readahead: one file opened in /usr/sbin (~6 MB of files)" "$mp"
    read_ok "readahead: second open in /usr/sbin" "$mp" usr/sbin/e2fsck debian || return
    if poll_stat "$mp" spansPrefetched 1 20; then
        pass "readahead: opening a second file in /usr/sbin prefetched $POLL_VAL span(s) of its files"
    else
        fail "readahead: spansPrefetched '$POLL_VAL' 20 s after a second file in /usr/sbin was opened, want > 0"
    fi
    sleep 1 # the rest of the directory's spans settle
    # /usr/lib/apt/methods' files hold ~1 MB (at most an eighth of the budget): read ahead at the first open
    local before
    before=$(stat_of "$mp" spansPrefetched)
    read_ok "readahead: first open in /usr/lib/apt/methods" "$mp" usr/lib/apt/methods/copy debian || return
    if poll_stat "$mp" spansPrefetched "$((before + 1))" 20; then
        pass "readahead: one file opened in /usr/lib/apt/methods (a small directory) prefetched its spans: $before -> $POLL_VAL"
    else
        fail "readahead: spansPrefetched '$POLL_VAL' 20 s after one file in /usr/lib/apt/methods was opened, want > $before"
    fi
    sleep 1
    bf=$(stat_of "$mp" bytesFetched)
    while read -r rel; do
        cmp -s "$mp/$rel" "$REF/debian/rootfs/$rel" || { fail "readahead: /$rel differs from umoci's"; bad=1; }
    done < <(cd "$REF/debian/rootfs" && find usr/lib/apt/methods usr/sbin -maxdepth 1 -type f)
    if [ "$bad" -eq 0 ] && [ "$(stat_of "$mp" bytesFetched)" = "$bf" ]; then
        pass "readahead: every file in /usr/lib/apt/methods and /usr/sbin equals umoci's and reading them fetched nothing more ($bf bytes in all)"
    else
        fail "readahead: reading the files of /usr/lib/apt/methods and /usr/sbin: bytesFetched $bf -> $(stat_of "$mp" bytesFetched), bad $bad"
    fi
    do_umount "readahead" "$mp" || return
    rm -rf "$d/cache"
    do_mount "readahead: off" "$tmpd/debian.clip" "$mp" --cache "$d/cache" --directory-readahead 0 || return
    read_ok "readahead: off" "$mp" etc/hostname debian || return
    read_ok "readahead: off" "$mp" etc/debian_version debian || return
    nothing_prefetched "readahead: with --directory-readahead 0, two files opened in /etc" "$mp"
    do_umount "readahead: off" "$mp" || return
    rm -rf "$d/cache"
    do_mount "readahead: big directory" "$tmpd/debian.clip" "$mp" --cache "$d/cache" || return
    read_ok "readahead: /usr/bin is over 8 MiB" "$mp" usr/bin/true debian || return
    read_ok "readahead: /usr/bin is over 8 MiB" "$mp" usr/bin/cat debian || return
    nothing_prefetched "readahead: /usr/bin/true and cat opened (/usr/bin holds more than 8 MiB)" "$mp"
    do_umount "readahead: big directory" "$mp"
}

test_faults() {
    local d=$T_DIR mp digest lhex port pid src log n rc
    need_debian || return
    digest=$(layer_digest debian)
    lhex=${digest#sha256:}

    # ---- (a) registry frozen, then killed; back on the same port
    registry_start fa --storage "$tmpd/storage" >/dev/null || { fail "faults: registry_start fa"; return; }
    push_undo registry fa
    port=${REGISTRY_FA##*:}
    faultproxy_start pa "$REGISTRY_FA" || { fail "faults: faultproxy_start pa"; return; }
    push_undo proxy pa
    src=docker://$FAULTPROXY_PA/debian:latest
    mp=$d/a
    do_mount "faults (a)" "$tmpd/debian.clip" "$mp" --cache "$d/cache-a" --source "$src" \
        --timeout "$FAULT_CLIP_TIMEOUT" || return
    read_ok "faults (a): registry up" "$mp" "$D_SMALL" debian || return

    pid=$(cat "$REGISTRY_FA_DIR/pid")
    push_undo cont "$pid"
    kill -STOP "$pid"
    read_eio "faults (a): registry frozen (SIGSTOP)" "$mp" "$D_STDCXX"
    kill -CONT "$pid"
    sleep "$FAIL_FAST_WAIT"  # clip answers a just-failed span with EIO at once for 1 s (specs/mount.md)
    log_names "faults (a): registry frozen" "$(mount_log "$mp")" "$D_STDCXX" "$lhex"
    info "faults (a): the failed cat made $(grep -cF "read of /$D_STDCXX failed" "$(mount_log "$mp")") failed reads in the log (the kernel retries a failed readahead), each up to --timeout $FAULT_CLIP_TIMEOUT"
    read_ok "faults (a): registry resumed, same read" "$mp" "$D_STDCXX" debian

    registry_stop fa
    read_eio "faults (a): registry killed" "$mp" "$D_BIG"
    log_names "faults (a): registry killed" "$(mount_log "$mp")" "$D_BIG" "$lhex"
    still_up "faults (a): registry killed" "$mp" debian "$D_SMALL"
    if registry_start fa --storage "$tmpd/storage" --addr "127.0.0.1:$port" >/dev/null; then
        sleep "$FAIL_FAST_WAIT"
        read_ok "faults (a): registry restarted on port $port, same read without remount" "$mp" "$D_BIG" debian
    else
        fail "faults (a): cannot restart the registry on port $port"
    fi
    n=$(stat_of "$mp" failures)
    if [ -n "$n" ] && [ "$n" -ge 2 ]; then
        info "faults (a): $(stats_brief "$mp")"
    else
        fail "faults (a): clip stats failures '$n' after two failed reads ($(stats_brief "$mp"))"
    fi
    do_umount "faults (a)" "$mp"

    # ---- (a') the registry goes away in the middle of a blob response
    faultproxy_start pcut "$REGISTRY_MOUNT" --cut-after 300000 --down-after-cut --blob-filter "$lhex" ||
        { fail "faults: faultproxy_start pcut"; return; }
    push_undo proxy pcut
    port=${FAULTPROXY_PCUT##*:}
    mp=$d/cut
    do_mount "faults (cut)" "$tmpd/debian.clip" "$mp" --cache "$d/cache-cut" \
        --source "docker://$FAULTPROXY_PCUT/debian:latest" --timeout "$FAULT_CLIP_TIMEOUT" || return
    read_eio "faults (cut): registry gone mid-response" "$mp" "$D_BIG"
    grep -q 'cut@' "$FAULTPROXY_PCUT_LOG" ||
        fail "faults (cut): the proxy never cut a blob response (log: $(head -c 300 "$FAULTPROXY_PCUT_LOG" | tr '\n' '|'))"
    if is_clip_mounted "$mp" && stats "$mp" >/dev/null; then
        pass "faults (cut): the mount stays up"
    else
        fail "faults (cut): the mount is gone or clip stats fails"
    fi
    if faultproxy_start pup "$REGISTRY_MOUNT" --listen "127.0.0.1:$port"; then
        push_undo proxy pup
        sleep "$FAIL_FAST_WAIT"
        read_ok "faults (cut): registry back on port $port, same read without remount" "$mp" "$D_BIG" debian
    else
        fail "faults (cut): cannot start a proxy on port $port again"
    fi
    do_umount "faults (cut)" "$mp"

    # ---- (b) corrupt blob bytes
    faultproxy_start pcor "$REGISTRY_MOUNT" --corrupt-blob --blob-filter "$lhex" ||
        { fail "faults: faultproxy_start pcor"; return; }
    push_undo proxy pcor
    mp=$d/cor
    log=$(mount_log "$mp")
    do_mount "faults (corrupt)" "$tmpd/debian.clip" "$mp" --cache "$d/cache-cor" \
        --source "docker://$FAULTPROXY_PCOR/debian:latest" --timeout "$FAULT_CLIP_TIMEOUT" || return
    read_eio "faults (corrupt): corrupt blob bytes" "$mp" "$D_BIG"
    grep -q 'corrupt@' "$FAULTPROXY_PCOR_LOG" || fail "faults (corrupt): the proxy corrupted nothing"
    log_names "faults (corrupt)" "$log" "$D_BIG" "$lhex"
    read_eio "faults (corrupt): read again (the failure is not cached)" "$mp" "$D_BIG"
    # A request for several spans serves each as it is verified: spans before the corrupt byte may be cached, and
    # must then be the layer's own bytes there (files are <layer>/<start>-<end> of the decoded tar stream).
    gzip -dc "$IMG/debian/blobs/sha256/$lhex" >"$d/layer.tar"
    local f bad=0 cached=0 range
    while read -r f; do
        cached=$((cached + 1))
        range=${f##*/}
        dd if="$d/layer.tar" iflag=skip_bytes,count_bytes skip="${range%-*}" count=$((${range#*-} - ${range%-*})) \
            status=none | cmp -s - "$f" || bad=$((bad + 1))
    done < <(find "$d/cache-cor" -type f)
    rm -f "$d/layer.tar"
    if [ "$bad" -eq 0 ]; then
        pass "faults (corrupt): nothing corrupt entered the cache ($cached verified spans cached, each the layer's bytes)"
    else
        fail "faults (corrupt): $bad of the $cached cached files differ from the layer's bytes"
    fi
    do_umount "faults (corrupt)" "$mp"

    # ---- (c) the cache disk is full
    mkdir -p "$d/tiny"
    mount -t tmpfs -o size=1M,mode=0755 clip-test-tiny "$d/tiny" || { fail "faults (full): mount tmpfs"; return; }
    push_undo kmount "$d/tiny"
    mp=$d/full
    log=$(mount_log "$mp")
    do_mount "faults (full disk)" "$tmpd/debian.clip" "$mp" --cache "$d/tiny/cache" || return
    rc=0
    read_ok "faults (full disk)" "$mp" "$D_SMALL" debian || rc=1
    read_ok "faults (full disk)" "$mp" "$D_BIG" debian || rc=1
    read_ok "faults (full disk)" "$mp" "$D_BASH" debian || rc=1
    read_ok "faults (full disk)" "$mp" "$D_LIBC" debian || rc=1
    n=$(grep -c 'cannot write the span cache' "$log" || true)
    if [ "$n" -eq 1 ]; then
        pass "faults (full disk): the log says once: $(grep -m1 'cannot write the span cache' "$log" | head -c 250)"
    else
        fail "faults (full disk): 'cannot write the span cache' appears $n times in the log (want 1): $(tail -c 400 "$log" | tr '\n' '|')"
    fi
    n=$(find "$d/tiny/cache" -type f 2>/dev/null | grep -Evc '/[0-9a-f]{64}/[0-9]+-[0-9]+$' || true)
    if [ "$n" -eq 0 ]; then
        pass "faults (full disk): no temporary files left in the cache ($(cache_files "$d/tiny/cache") span files, $(df --output=used -B1 "$d/tiny" | tail -n1 | tr -d ' ') bytes used)"
    else
        fail "faults (full disk): $n temporary files left in the cache: $(find "$d/tiny/cache" -type f | head -n 3 | tr '\n' ' ')"
    fi
    do_umount "faults (full disk)" "$mp"
}

test_nonroot() {
    local d=$T_DIR mp rc
    need_debian || return
    mp=$d/mnt
    do_mount "nonroot" "$tmpd/debian.clip" "$mp" --cache "$d/cache" || return
    rc=0
    setpriv --reuid=65534 --regid=65534 --clear-groups cat "$mp/$D_SMALL" >"$tmpd/out" 2>"$tmpd/err" || rc=$?
    if [ "$rc" -eq 0 ] && cmp -s "$tmpd/out" "$REF/debian/rootfs/$D_SMALL"; then
        pass "nonroot: nobody reads /$D_SMALL (allow_other)"
    else
        fail "nonroot: nobody cat /$D_SMALL: exit $rc: $(errline)"
    fi
    info "nonroot: /etc/shadow in the mount: $(stat -c '%a %U:%G' "$mp/etc/shadow")"
    rc=0
    setpriv --reuid=65534 --regid=65534 --clear-groups cat "$mp/etc/shadow" >"$tmpd/out" 2>"$tmpd/err" || rc=$?
    if [ "$rc" -ne 0 ] && grep -q 'Permission denied' "$tmpd/err" && [ ! -s "$tmpd/out" ]; then
        pass "nonroot: nobody is refused /etc/shadow (640 root:shadow): $(errline)"
    else
        fail "nonroot: nobody cat /etc/shadow: exit $rc, $(stat -c %s "$tmpd/out") bytes, $(errline)"
    fi
    rc=0
    setpriv --reuid=65534 --regid=65534 --clear-groups ls "$mp/root" >"$tmpd/out" 2>"$tmpd/err" || rc=$?
    if [ "$rc" -ne 0 ] && grep -q 'Permission denied' "$tmpd/err"; then
        pass "nonroot: nobody is refused a listing of /root (700)"
    else
        fail "nonroot: nobody ls /root: exit $rc, $(errline)"
    fi
    read_ok "nonroot: root reads /etc/shadow" "$mp" etc/shadow debian
    do_umount "nonroot" "$mp"
}

test_overlay() {
    local d=$T_DIR mp m ok=1 rc
    need_debian || return
    mp=$d/mnt
    m=$d/merged
    do_mount "overlay" "$tmpd/debian.clip" "$mp" --cache "$d/cache" || return
    overlay_on overlay "$mp" "$m" || return
    rc=0
    { echo "written in the overlay" >"$m/new-file" &&
        echo 'CLIP_TEST="modified"' >>"$m/$D_SMALL" &&
        rm "$m/etc/issue"; } 2>"$tmpd/err" || rc=$?
    if [ "$rc" -ne 0 ]; then
        fail "overlay: writing through the overlay: $(errline)"
        ok=0
    fi
    if [ "$(cat "$m/new-file" 2>/dev/null)" = "written in the overlay" ] &&
        [ "$(tail -n1 "$m/$D_SMALL")" = 'CLIP_TEST="modified"' ] &&
        [ "$(head -c "$(stat -L -c %s "$REF/debian/rootfs/$D_SMALL")" "$m/$D_SMALL" | md5sum)" = "$(md5sum <"$REF/debian/rootfs/$D_SMALL")" ] &&
        [ ! -e "$m/etc/issue" ] && [ -e "$m/etc/issue.net" ]; then
        pass "overlay: the merged dir shows the new file, the modified /$D_SMALL and no /etc/issue"
    else
        fail "overlay: the merged dir does not show the changes (new-file: $(head -c 80 "$m/new-file" 2>&1), os-release tail: $(tail -n1 "$m/$D_SMALL" 2>&1), issue: $(ls "$m/etc/issue" 2>&1))"
        ok=0
    fi
    if [ ! -e "$mp/new-file" ] && cmp -s "$mp/$D_SMALL" "$REF/debian/rootfs/$D_SMALL" &&
        cmp -s "$mp/etc/issue" "$REF/debian/rootfs/etc/issue"; then
        pass "overlay: the FUSE mount is unchanged (no new-file, /$D_SMALL and /etc/issue as in the image)"
    else
        fail "overlay: the FUSE mount changed"
    fi
    if umount "$m" 2>"$tmpd/err"; then
        [ "$ok" -eq 1 ] && pass "overlay: unmounted the overlay"
    else
        fail "overlay: umount of the overlay: $(errline)"
    fi
    do_umount "overlay" "$mp"
}

test_profile() {
    local d=$T_DIR mp p f files=("$D_SMALL" "$D_BASH" "$D_LIBC" "$D_BIG") sf ss nspans bf0 bf1 sf0 rc
    need_debian || return
    mp=$d/mnt
    p=$d/profile
    do_mount "profile: record" "$tmpd/debian.clip" "$mp" --cache "$d/cache1" --record "$p" || return
    for f in "${files[@]}"; do read_ok "profile: record" "$mp" "$f" debian || return; done
    sf=$(stat_of "$mp" spansFetched)
    ss=$(stat_of "$mp" spanStartsFetched)
    rc=0
    clipq umount "$mp" || rc=$?
    if [ "$rc" -ne 0 ]; then
        fail "profile: clip umount (exit $rc): $(errline)"
        return
    fi
    if [ -s "$p" ]; then
        pass "profile: the profile exists when clip umount returns"
    else
        fail "profile: no profile $p when clip umount returned"
    fi
    do_umount "profile: record" "$mp" || return
    if [ ! -s "$p" ]; then
        fail "profile: no profile $p after the daemon exited"
        return
    fi
    nspans=$(($(wc -l <"$p") - 1))
    if [ "$(head -n1 "$p")" = "clip-profile 2" ] &&
        tail -n +2 "$p" | grep -Evq '^sha256:[0-9a-f]{64} [0-9]+-[0-9]+$'; then
        fail "profile: malformed profile: $(head -c 300 "$p" | tr '\n' '|')"
    elif [ "$(head -n1 "$p")" != "clip-profile 2" ]; then
        fail "profile: first line '$(head -n1 "$p")', want 'clip-profile 2'"
    elif [ "$nspans" -lt "$sf" ] || [ "$nspans" -gt "$((sf + ss))" ] || [ "$nspans" -lt 1 ]; then
        fail "profile: $nspans spans in the profile, but the recording mount fetched $sf whole spans and $ss starts (empty cache)"
    else
        pass "profile: clip-profile 2 with $nspans spans (the spans the reads fetched: $sf whole, $ss starts)"
    fi
    [ "$nspans" -ge 1 ] || return

    do_mount "profile: replay" "$tmpd/debian.clip" "$mp" --cache "$d/cache2" --prefetch "$p" || return
    if poll_stat "$mp" spansPrefetched "$nspans" 30; then
        pass "profile: spansPrefetched reached $POLL_VAL (profile: $nspans)"
    else
        fail "profile: spansPrefetched '$POLL_VAL' after 30 s, want $nspans ($(stats_brief "$mp"))"
        return
    fi
    bf0=$(stat_of "$mp" bytesFetched)
    sf0=$(stat_of "$mp" spansFetched)
    for f in "${files[@]}"; do read_ok "profile: replay" "$mp" "$f" debian || return; done
    bf1=$(stat_of "$mp" bytesFetched)
    if [ "$bf1" = "$bf0" ] && [ "$(stat_of "$mp" spansFetched)" = "$sf0" ]; then
        pass "profile: reading the recorded files after the prefetch fetched nothing (bytesFetched $bf1)"
    else
        fail "profile: bytesFetched $bf0 -> $bf1, spansFetched $sf0 -> $(stat_of "$mp" spansFetched) while reading prefetched files"
    fi
    do_umount "profile: replay" "$mp"
}

test_prefetch_all() {
    local d=$T_DIR mp total t bf0 n log
    need_debian || return
    mp=$d/mnt
    total=$(total_spans debian)
    log=$(mount_log "$mp")
    t=$(now)
    do_mount "prefetch-all" "$tmpd/debian.clip" "$mp" --cache "$d/cache" --prefetch all || return
    if poll_stat "$mp" spansPrefetched "$total" 60; then
        pass "prefetch-all: spansPrefetched reached $POLL_VAL = the image's $total spans ($(since "$t"))"
    else
        fail "prefetch-all: spansPrefetched '$POLL_VAL' after 60 s, want $total ($(stats_brief "$mp"))"
        return
    fi
    # spans reach the disk cache in the background, after they were fetched and counted (specs/mount.md)
    for _ in $(seq 50); do
        n=$(cache_files "$d/cache")
        [ "$n" -lt "$total" ] || break
        sleep 0.2
    done
    if [ "$n" -eq "$total" ]; then
        pass "prefetch-all: the cache holds all $n spans"
    else
        fail "prefetch-all: the cache holds $n span files, want $total"
    fi
    bf0=$(stat_of "$mp" bytesFetched)
    read_ok "prefetch-all" "$mp" "$D_BIG" debian
    if [ "$(stat_of "$mp" bytesFetched)" = "$bf0" ]; then
        pass "prefetch-all: a read after the prefetch fetched nothing ($bf0 bytes fetched in all, layer $(layer_size debian))"
    else
        fail "prefetch-all: bytesFetched $bf0 -> $(stat_of "$mp" bytesFetched) on a read after the prefetch"
    fi
    sleep 0.5
    grep -q 'prefetch of the whole image done' "$log" || info "prefetch-all: the log does not say the prefetch is done"
    do_umount "prefetch-all" "$mp"
}

# ---------------------------------------------------------------- main

T0=$(now)
for name in "${tests[@]}"; do
    info "test $name"
    t=$(now)
    nfail0=$NFAIL
    T_NAME=$name
    T_DIR=$tmpd/$name
    T_STACK=()
    mkdir -p "$T_DIR"
    "test_${name//-/_}" || true
    cleanup_test
    T_DIR=""
    info "test $name: $([ "$NFAIL" -eq "$nfail0" ] && echo ok || echo FAILED) ($(since "$t"))"
done

registry_stop_all
left=$(comm -13 <(echo "$BASE_MOUNTS") <(fuse_mounts | sort) | grep . || true)
if [ -z "$left" ]; then
    pass "end: no fuse.clip mount left"
else
    fail "end: fuse.clip mounts left: $(echo "$left" | tr '\n' ' ')"
fi
left=$(our_daemon_pids)
if [ -z "$left" ]; then
    pass "end: no clip mount process left"
else
    fail "end: clip mount processes left: $(for p in $left; do tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null; echo; done | head -c 400)"
fi

echo "==== mount-check: $NPASS passed, $NFAIL failed, $NSKIP skipped ($(since "$T0"))"
[ "$NFAIL" -eq 0 ]
