#!/usr/bin/env bash
# The README's main job on a default that needs nothing outside this machine: build a small busybox image as an OCI
# layout, index it in one pass, list and read it through the index (each read decodes only the spans it needs), and
# extract the whole root filesystem, checked entry by entry against `umoci unpack` of the same image.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CLIP=${CLIP:-$here/../.build/release/clip}
work=$(mktemp -d /tmp/clip-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "build a busybox image (OCI layout, one gzip layer)"
"$here/images/busybox.sh" "$work/busybox" >/dev/null
du -sh "$work/busybox/blobs"

step "clip index oci:$work/busybox:latest -o busybox.clip"
/usr/bin/time -f "indexed in %e s, peak RSS %M KB" "$CLIP" index "oci:$work/busybox:latest" -o "$work/busybox.clip"

step "clip inspect busybox.clip"
"$CLIP" inspect "$work/busybox.clip"

step "clip ls -l busybox.clip /etc"
"$CLIP" ls -l "$work/busybox.clip" /etc

step "clip cat busybox.clip /etc/passwd"
"$CLIP" cat "$work/busybox.clip" /etc/passwd

step "clip extract busybox.clip rootfs, compared with umoci unpack"
"$CLIP" extract "$work/busybox.clip" "$work/rootfs"
umoci unpack --image "$work/busybox:latest" "$work/reference" >/dev/null 2>&1
python3 "$here/compare-trees.py" "$work/reference/rootfs" "$work/rootfs"
"$work/rootfs/bin/busybox" echo "the extracted busybox runs: $("$work/rootfs/bin/busybox" uname -m)"
