#!/usr/bin/env bash
# The README's main job on a default that needs nothing outside this machine: build a Debian image (debootstrap from
# Debian's mirror, else a busybox image), serve it from a local registry, index it straight from the registry in one
# streaming pass, publish the index beside the image, and run a container on it with runc through the clip hook —
# then show what the hook did and how little of the image was fetched.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CLIP=${CLIP:-$here/../.build/release/clip}
export CLIP_TEST_WORK=${CLIP_TEST_WORK:-/tmp/clip-test}
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=registry/lib.sh
. "$here/registry/lib.sh"

work=$(mktemp -d /tmp/clip-demo.XXXXXX)
cleanup() {
  runc --root "$work/runc" delete -f clip-demo >/dev/null 2>&1 || true
  "$CLIP" gc --root "$work/clip" --force >/dev/null 2>&1 || true
  registry_stop_all
  rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

image=debian
step "build a Debian bookworm minbase image (debootstrap; busybox if the mirror is unreachable)"
if ! ensure_image debian >/dev/null 2>&1; then
  image=busybox
  ensure_image busybox >/dev/null
fi
layout=$IMG/$image
du -sh "$layout/blobs" | sed 's/\t/  /'

step "serve it from a local registry (docker-registry on 127.0.0.1)"
registry_start demo >/dev/null
registry_push "$layout:latest" "$REGISTRY_DEMO/$image:latest" >/dev/null
ref="docker://$REGISTRY_DEMO/$image:latest"
echo "$ref"

step "clip index $ref --push   (one streaming pass; the index is published beside the image)"
/usr/bin/time -f "indexed in %e s, peak RSS %M KB" "$CLIP" index "$ref" -o "$work/image.clip" --push --ignore-published
"$CLIP" inspect "$work/image.clip" | tail -4

step "clip bundle $ref $work/bundle   (runc spec defaults + the image's config + the clip hooks)"
"$CLIP" bundle "$ref" "$work/bundle" --root "$work/clip" --keep-warm 0 -- \
  sh -c 'head -n2 /etc/os-release; id; echo "written in the container" > /tmp/note && cat /tmp/note; ls /usr/bin | wc -l'
jq -c '.hooks.createRuntime[0].args, .annotations' "$work/bundle/config.json"

step "runc run   (the createRuntime hook mounts the image lazily; poststop cleans up)"
from=$(wc -l <"$REGISTRY_DEMO_LOG")
start=$(date +%s.%N)
runc --root "$work/runc" run -b "$work/bundle" clip-demo
awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "container ran and exited in %.2f s\n", b - a }'

step "what the hook did ($work/clip/hook.log)"
sed 's/^[^ ]* \[[0-9]*\] //' "$work/clip/hook.log"

step "what was fetched from the registry for the run"
size=$(jq '[.layers[].compressedSize] | add' <("$CLIP" inspect "$work/image.clip" --json))
reads=$(python3 "$here/registry/blob-reads.py" "$REGISTRY_DEMO_LOG" --from-line "$from" | tail -n1)
echo "$reads"
fetched=$(sed -n 's/.* \([0-9]*\) blob bytes.*/\1/p' <<<"$reads")
awk -v f="$fetched" -v s="$size" 'BEGIN { printf "fetched %.1f MB of a %.1f MB image (%.1f%%)\n", f/1e6, s/1e6, 100*f/s }'
left=$(grep -c " $work/" /proc/self/mountinfo || true)
echo "mounts left behind: $left; containers left: $(ls "$work/clip/containers" | wc -l)"
