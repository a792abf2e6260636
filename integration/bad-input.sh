#!/bin/bash
# Bad-input checks for clip.
#
#   integration/bad-input.sh
#
# 1. For every case in images/bad.py (built once into
#    $CLIP_TEST_WORK/images/bad):
#      expect-error: `clip index` exits non-zero (not by a signal); stderr
#        is exactly one line, starting "clip: error:", naming the layer
#        digest from cases.txt and, for KIND=stream, an offset
#        (/offset\D{0,3}[0-9]+/i); the -o file does not exist afterwards and
#        nothing else is left in the output directory.
#      expect-ok: `clip index` exits 0 and writes the -o file; each
#        "PATH<TAB>TEXT" line of NAME.cat must satisfy `clip cat` == TEXT.
# 2. Corrupt index files, made from a good index of the busybox image:
#    a byte flipped in the middle, truncated to half, truncated to 16 bytes,
#    empty, and a text file.  `clip inspect F` and `clip ls F` must each
#    exit with status 1 exactly (not 0, not a signal) and print exactly one
#    stderr line starting "clip: error:".
# 3. `clip mount` failing at start (no mountpoint) while libcurl loads in
#    the background: 150 starts, each exits 1 with one error line.
#
# Environment: CLIP, CLIP_TEST_WORK, CLIP_TEST_TIMEOUT (see lib.sh).
# Exit status: 0 all passed, 1 any failure, 2 usage/setup error.
set -euo pipefail

# shellcheck source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

need_clip
mkdir -p "$WORK"
tmpd=$(mktemp -d "$WORK/.badinput.XXXXXX")
trap 'rm -rf "$tmpd"' EXIT

# check_only_error_line ERRFILE -> prints a reason and returns 1 unless stderr is exactly one "clip: error:" line
# (stricter than lib.sh's check_one_error_line: no notes either)
check_only_error_line() {
    local n
    check_one_error_line "$1" || return 1
    n=$(grep -c '' "$1" || true)
    if [ "$n" -ne 1 ]; then
        echo "stderr has $n lines (want 1): $(head -c 300 "$1" | tr '\n' '|')"
        return 1
    fi
}

ensure_image bad || { echo "error: building bad-input layouts failed" >&2; exit 2; }
out=$tmpd/out
mkdir -p "$out"

info "bad layouts ($IMG/bad)"
while read -r name expect digest kind; do
    [ -n "$name" ] || continue
    case $name in \#*) continue ;; esac
    layout=$IMG/bad/$name
    target=$out/$name.clip
    rc=0
    run_clip "$tmpd/stdout" "$tmpd/stderr" index "oci:$layout:latest" -o "$target" || rc=$?
    if [ "$expect" = expect-error ]; then
        why=""
        if [ "$rc" -eq 0 ]; then
            why="exit 0, want an error"
        elif [ "$rc" -ge 124 ]; then
            why="exit $rc (signal or timeout)"
        elif ! why=$(check_only_error_line "$tmpd/stderr"); then
            :
        elif ! grep -qF -- "$digest" "$tmpd/stderr"; then
            why="error does not name $digest: $(head -c 300 "$tmpd/stderr")"
        elif [ "$kind" = stream ] && ! grep -qiE 'offset[^0-9]{0,3}[0-9]+' "$tmpd/stderr"; then
            why="stream error without an offset: $(head -c 300 "$tmpd/stderr")"
        elif [ -e "$target" ]; then
            why="-o file $target exists after the failure"
        elif [ -n "$(ls -A "$out")" ]; then
            why="leftovers in the output dir: $(ls -A "$out" | tr '\n' ' ')"
        else
            why=""
        fi
        if [ -z "$why" ]; then
            pass "bad $name: $(head -c 200 "$tmpd/stderr")"
        else
            fail "bad $name: $why"
        fi
    else
        if [ "$rc" -ne 0 ]; then
            fail "bad $name: exit $rc, want success: $(head -c 300 "$tmpd/stderr")"
        elif [ ! -s "$target" ]; then
            fail "bad $name: no index written"
        else
            bad=""
            if [ -f "$IMG/bad/$name.cat" ]; then
                while IFS=$'\t' read -r path text; do
                    crc=0
                    run_clip "$tmpd/cat" "$tmpd/caterr" cat "$target" "$path" || crc=$?
                    if [ "$crc" -ne 0 ]; then
                        bad="$bad; clip cat $path exit $crc: $(head -c 200 "$tmpd/caterr")"
                    elif ! printf '%s\n' "$text" | cmp -s - "$tmpd/cat"; then
                        bad="$bad; clip cat $path: got $(head -c 100 "$tmpd/cat" | od -An -c | tr -s ' \n' ' ')"
                    fi
                done <"$IMG/bad/$name.cat"
            fi
            if [ -z "$bad" ]; then pass "bad $name: indexed OK"; else fail "bad $name${bad}"; fi
        fi
    fi
    rm -rf "${out:?}"/* "$out"/.[!.]* 2>/dev/null || true
done <"$IMG/bad/cases.txt"

info "corrupt index files"
rc=0
ensure_image busybox || rc=$?
if [ "$rc" -ne 0 ]; then
    fail "corrupt-index: cannot build the busybox image"
else
    good=$tmpd/good.clip
    rc=0
    run_clip "$tmpd/stdout" "$tmpd/stderr" index "oci:$IMG/busybox:latest" -o "$good" || rc=$?
    if [ "$rc" -ne 0 ]; then
        fail "corrupt-index: indexing busybox failed (exit $rc): $(head -c 300 "$tmpd/stderr")"
    else
        rc=0
        run_clip "$tmpd/stdout" "$tmpd/stderr" ls "$good" || rc=$?
        if [ "$rc" -ne 0 ]; then
            fail "corrupt-index: clip ls of the GOOD index failed (exit $rc)"
        fi
        size=$(stat -c %s "$good")
        python3 - "$good" "$tmpd" <<'EOF'
import sys, os
good, d = sys.argv[1], sys.argv[2]
data = open(good, "rb").read()
mid = len(data) // 2
flipped = bytearray(data)
flipped[mid] ^= 0xFF
variants = {
    "flip-middle": bytes(flipped),
    "truncated-half": data[:mid],
    "truncated-16": data[:16],
    "empty": b"",
    "text": b"this is not a clip index\n" * 10,
}
for k, v in variants.items():
    with open(os.path.join(d, "corrupt-%s.clip" % k), "wb") as f:
        f.write(v)
EOF
        for variant in flip-middle truncated-half truncated-16 empty text; do
            f=$tmpd/corrupt-$variant.clip
            for cmd in inspect ls; do
                rc=0
                run_clip "$tmpd/stdout" "$tmpd/stderr" "$cmd" "$f" || rc=$?
                if [ "$rc" -ne 1 ]; then
                    fail "corrupt-index $variant: clip $cmd exit $rc (want 1): $(head -c 200 "$tmpd/stderr")"
                elif ! why=$(check_only_error_line "$tmpd/stderr"); then
                    fail "corrupt-index $variant: clip $cmd: $why"
                else
                    pass "corrupt-index $variant: clip $cmd: $(head -c 160 "$tmpd/stderr")"
                fi
            done
        done
        echo "     (good index: $size bytes)"

        # A mount daemon that fails at start while libcurl loads in the background (a registry source and --warm):
        # its exit must wait for the load, never run the libraries' destructors under it (a crash in ~1 of 40 starts
        # before). 150 starts, each must exit 1 with its one error line.
        info "mount failing while libcurl loads"
        bad=""
        for i in $(seq 150); do
            rc=0
            run_clip "$tmpd/stdout" "$tmpd/stderr" mount "$good" "$tmpd/no-such-dir" --foreground --plain-http \
                --source docker://127.0.0.1:9/none:latest --warm /bin/sh --cache "$tmpd/cache" || rc=$?
            if [ "$rc" -ne 1 ]; then
                bad="start $i: exit $rc (want 1): $(head -c 200 "$tmpd/stderr")"
                break
            elif ! why=$(check_only_error_line "$tmpd/stderr"); then
                bad="start $i: $why"
                break
            fi
        done
        if [ -z "$bad" ]; then
            pass "mount failing while libcurl loads: 150 starts, each exit 1: $(head -c 120 "$tmpd/stderr")"
        else
            fail "mount failing while libcurl loads: $bad"
        fi
    fi
fi

echo "==== bad-input: $NPASS passed, $NFAIL failed"
[ "$NFAIL" -eq 0 ]
