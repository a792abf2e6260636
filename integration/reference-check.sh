#!/bin/bash
# Reference check: clip's extraction must equal umoci's, entry by entry.
#
#   integration/reference-check.sh [IMAGE...]
#
# IMAGE: busybox synthetic synthetic-gzip debian large (default: all but
# large; debian is skipped with exit-77 semantics when the mirror is
# unreachable and no cached tarball exists).
#
# Per image:
#   1. build the image once into $CLIP_TEST_WORK/images (rebuilt only when
#      its builder script changes)
#   2. umoci unpack the reference (synthetic's reference is synthetic-gzip:
#      umoci 0.4.7 cannot read zstd layers), cached in $CLIP_TEST_WORK/ref
#   3. $CLIP index oci:DIR:latest -o NAME.clip
#   4. $CLIP extract NAME.clip NAME.ours
#   5. compare-trees.py REF/rootfs NAME.ours   (synthetic: with the mtime
#      exceptions file written by synthetic.py)
#   6. model-check.py DIR NAME.ours            (independent in-memory merge)
#   7. cat-check.py: 50 random `clip cat | dd` byte ranges vs the reference
#
# Environment: CLIP, CLIP_TEST_WORK (default /tmp/clip-test),
# CLIP_TEST_SEED (cat-check seed, default 1), CLIP_TEST_CATS (default 50),
# CLIP_TEST_TIMEOUT (per clip call, default 900 s), CLIP_TEST_KEEP=1 keeps
# the extracted trees of passing images.
# Exit status: 0 all passed (skips allowed), 1 any failure, 2 usage/setup.
set -euo pipefail

# shellcheck source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

SEED=${CLIP_TEST_SEED:-1}
CATS=${CLIP_TEST_CATS:-50}

images=("$@")
[ ${#images[@]} -gt 0 ] || images=(busybox synthetic synthetic-gzip debian)
need_clip
command -v umoci >/dev/null || { echo "error: umoci not installed" >&2; exit 2; }
mkdir -p "$RUN"

# temp files for one step's output; removed on exit
tmpd=$(mktemp -d "$WORK/.refcheck.XXXXXX")
trap 'rm -rf "$tmpd"' EXIT
umask 022

check_image() {
    local name=$1 layout reflayout exc=() rc=0 clipf ours log nfail0=$NFAIL
    layout=$IMG/$name
    reflayout=$name
    case $name in
    synthetic)
        reflayout=synthetic-gzip
        exc=(--mtime-exceptions "$IMG/synthetic-mtime-exceptions.txt") ;;
    synthetic-gzip)
        exc=(--mtime-exceptions "$IMG/synthetic-mtime-exceptions.txt") ;;
    esac

    ensure_image "$name" || rc=$?
    if [ "$rc" -eq 77 ]; then skip "$name: image not available"; return; fi
    if [ "$rc" -ne 0 ]; then fail "$name: building the image failed"; return; fi
    if ! ensure_ref "$reflayout"; then
        fail "$name: umoci unpack of $reflayout failed"; return
    fi

    clipf=$RUN/$name.clip
    ours=$RUN/$name.ours
    log=$RUN/$name.log
    rm -rf "$clipf" "$ours"
    : >"$log"

    info "$name: clip index"
    rc=0
    run_clip "$tmpd/out" "$tmpd/err" index "oci:$layout:latest" -o "$clipf" || rc=$?
    if [ "$rc" -ne 0 ]; then
        fail "$name: clip index (exit $rc): $(head -c 400 "$tmpd/err")"
        return
    fi
    [ -s "$clipf" ] || { fail "$name: clip index wrote no $clipf"; return; }
    pass "$name: clip index ($(stat -c %s "$clipf") bytes)"

    info "$name: clip extract"
    rc=0
    run_clip "$tmpd/out" "$tmpd/err" extract "$clipf" "$ours" || rc=$?
    if [ "$rc" -ne 0 ]; then
        fail "$name: clip extract (exit $rc): $(head -c 400 "$tmpd/err")"
        return
    fi
    pass "$name: clip extract"

    if python3 "$INTEG/compare-trees.py" "$REF/$reflayout/rootfs" "$ours" \
            "${exc[@]}" >"$tmpd/cmp" 2>&1; then
        pass "$name: compare-trees vs umoci ($(tail -n1 "$tmpd/cmp"))"
    else
        fail "$name: compare-trees vs umoci ($(tail -n1 "$tmpd/cmp"))"
        head -n 40 "$tmpd/cmp" | sed 's/^/    /'
    fi
    cat "$tmpd/cmp" >>"$log"

    if python3 "$INTEG/model-check.py" "$layout:latest" "$ours" "${exc[@]}" \
            >"$tmpd/model" 2>&1; then
        pass "$name: model-check ($(tail -n1 "$tmpd/model"))"
    else
        fail "$name: model-check ($(tail -n1 "$tmpd/model"))"
        head -n 40 "$tmpd/model" | sed 's/^/    /'
    fi
    cat "$tmpd/model" >>"$log"

    if python3 "$INTEG/cat-check.py" "$CLIP" "$clipf" "$REF/$reflayout/rootfs" \
            --count "$CATS" --seed "$SEED" --errfile "$tmpd/caterr" \
            >"$tmpd/cat" 2>&1; then
        pass "$name: $(tail -n1 "$tmpd/cat")"
    else
        fail "$name: $(tail -n1 "$tmpd/cat")"
        head -n 20 "$tmpd/cat" | sed 's/^/    /'
    fi
    cat "$tmpd/cat" >>"$log"

    if [ "${CLIP_TEST_KEEP:-0}" != 1 ] && [ "$NFAIL" -eq "$nfail0" ]; then
        rm -rf "$ours"
    fi
}

for name in "${images[@]}"; do
    case $name in
    busybox|synthetic|synthetic-gzip|debian|large) ;;
    *) echo "error: unknown image $name" >&2; exit 2 ;;
    esac
    info "image $name"
    check_image "$name"
done

echo "==== reference-check: $NPASS passed, $NFAIL failed, $NSKIP skipped"
[ "$NFAIL" -eq 0 ]
