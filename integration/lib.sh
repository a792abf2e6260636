# shellcheck shell=bash
# Shared helpers for reference-check.sh and bad-input.sh (source, don't run).
#
# Environment:
#   CLIP             clip binary (default /work/main/.build/debug/clip)
#   CLIP_TEST_WORK   work dir for images, references and results
#                    (default /tmp/clip-test)
#   CLIP_TEST_TIMEOUT  seconds allowed per clip invocation (default 900)

INTEG=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
IMAGES_SRC=$INTEG/images
CLIP=${CLIP:-/work/main/.build/debug/clip}
WORK=${CLIP_TEST_WORK:-/tmp/clip-test}
TIMEOUT=${CLIP_TEST_TIMEOUT:-900}
IMG=$WORK/images
REF=$WORK/ref
RUN=$WORK/run

NFAIL=0
NPASS=0
NSKIP=0
pass() { NPASS=$((NPASS + 1)); echo "PASS $*"; }
fail() { NFAIL=$((NFAIL + 1)); echo "FAIL $*"; }
skip() { NSKIP=$((NSKIP + 1)); echo "SKIP $*"; }
info() { echo "---- $*"; }

need_clip() {
    if [ ! -x "$CLIP" ]; then
        echo "error: clip binary not found: $CLIP (set \$CLIP)" >&2
        exit 2
    fi
}

# run a clip command with a timeout; usage: run_clip OUTFILE ERRFILE args...
run_clip() {
    local out=$1 err=$2
    shift 2
    timeout --kill-after=10 "$TIMEOUT" "$CLIP" "$@" >"$out" 2>"$err"
}

# stamp of the builder sources for an image, so edited builders rebuild
_stamp() {
    cat "$IMAGES_SRC/mkimage.py" "$@" | sha256sum | cut -d' ' -f1
}

# ensure_image NAME -> builds $IMG/NAME (and friends) if missing or stale.
# Returns 0 when available, 77 when not available (debian, debian-python without mirror).
ensure_image() {
    local name=$1 stamp builder rc=0
    mkdir -p "$IMG"
    case $name in
    synthetic|synthetic-gzip) name=synthetic; builder=$IMAGES_SRC/synthetic.py ;;
    busybox) builder=$IMAGES_SRC/busybox.sh ;;
    debian)  builder=$IMAGES_SRC/debian.sh ;;
    debian-python) builder=$IMAGES_SRC/debian-python.sh ;;
    large)   builder=$IMAGES_SRC/large.py ;;
    bad)     builder=$IMAGES_SRC/bad.py ;;
    *) echo "ensure_image: unknown image $name" >&2; return 2 ;;
    esac
    stamp=$(_stamp "$builder")
    if [ -f "$IMG/$name/index.json" ] || [ -f "$IMG/$name/cases.txt" ]; then
        if [ "$(cat "$IMG/.$name.stamp" 2>/dev/null)" = "$stamp" ]; then
            return 0
        fi
    fi
    info "building image $name"
    rm -f "$IMG/.$name.stamp"
    case $builder in
    *.py) python3 "$builder" "$IMG/$name" || rc=$? ;;
    *.sh) bash "$builder" "$IMG/$name" || rc=$? ;;
    esac
    [ "$rc" -eq 0 ] || return "$rc"
    echo "$stamp" >"$IMG/.$name.stamp"
}

# ensure_ref LAYOUT_NAME -> umoci bundle at $REF/LAYOUT_NAME (rootfs inside),
# re-created when the layout's manifest changed.
ensure_ref() {
    local name=$1 layout=$IMG/$1 want have
    want=$(sha256sum "$layout/index.json" | cut -d' ' -f1)
    have=$(cat "$REF/.$name.digest" 2>/dev/null || true)
    if [ "$want" = "$have" ] && [ -d "$REF/$name/rootfs" ]; then
        return 0
    fi
    mkdir -p "$REF"
    rm -rf "$REF/$name" "$REF/.$name.digest"
    info "umoci unpack $name"
    # umoci creates implicit parent dirs with mkdir(0777) & ~umask
    (umask 022 && umoci unpack --image "$layout:latest" "$REF/$name") \
        >"$REF/.$name.log" 2>&1 || {
        cat "$REF/.$name.log" >&2
        return 1
    }
    echo "$want" >"$REF/.$name.digest"
}

# check_one_error_line STDERR_FILE: prints why and returns 1 unless stderr holds exactly one "clip: error:" line,
# last, with only other "clip: " lines (notes) before it.
check_one_error_line() {
    local f=$1 n
    n=$(grep -c '^clip: error:' "$f" || true)
    if [ "$n" -ne 1 ]; then
        echo "stderr has $n 'clip: error:' lines (want 1): $(head -c 300 "$f" | tr '\n' '|')"
        return 1
    fi
    if ! tail -n1 "$f" | grep -q '^clip: error:'; then
        echo "the error is not the last stderr line: $(tail -c 300 "$f" | tr '\n' '|')"
        return 1
    fi
    if grep -v '^clip: ' "$f" | grep -q .; then
        echo "stderr has lines that are not 'clip: ...': $(grep -v '^clip: ' "$f" | head -c 300 | tr '\n' '|')"
        return 1
    fi
}

# crun_cgroup_workaround: crun 1.8 refuses a hybrid cgroup setup whose v2 hierarchy still holds the hugetlb
# controller ("cgroups in hybrid mode not supported"): bind hugetlb to a v1 hierarchy. Call it inside a private
# mount namespace (the mount goes with it); crun_cgroup_undo removes the folder it made under /sys/fs/cgroup.
CRUN_CGROUP_MADE=""
crun_cgroup_workaround() {
    [ -d /sys/fs/cgroup/unified ] || return 0
    grep -q ' /sys/fs/cgroup/hugetlb ' /proc/self/mountinfo && return 0
    if [ ! -d /sys/fs/cgroup/hugetlb ]; then
        mkdir /sys/fs/cgroup/hugetlb 2>/dev/null && CRUN_CGROUP_MADE=/sys/fs/cgroup/hugetlb
    fi
    mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb 2>/dev/null || true
}
crun_cgroup_undo() {
    [ -n "$CRUN_CGROUP_MADE" ] || return 0
    umount /sys/fs/cgroup/hugetlb 2>/dev/null || true
    rmdir "$CRUN_CGROUP_MADE" 2>/dev/null || true
}
