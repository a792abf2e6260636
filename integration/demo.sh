#!/usr/bin/env bash
# The README's main job on a default that needs nothing outside this machine: build a Debian image (debootstrap from
# Debian's mirror, else a busybox image), serve it from a local registry, index it straight from the registry in one
# streaming pass, publish the index beside the image, mount it lazily and run a program from it — then show how
# little of the image was fetched.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CLIP=${CLIP:-$here/../.build/release/clip}
export CLIP_TEST_WORK=${CLIP_TEST_WORK:-/tmp/clip-test}
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=registry/lib.sh
. "$here/registry/lib.sh"

work=$(mktemp -d /tmp/clip-demo.XXXXXX)
mnt=$work/mnt
cleanup() {
  "$CLIP" umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
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

step "clip index $ref --push   (one streaming pass, index published beside the image)"
/usr/bin/time -f "indexed in %e s, peak RSS %M KB" "$CLIP" index "$ref" -o "$work/image.clip" --push --ignore-published
"$CLIP" inspect "$work/image.clip" | tail -4

step "clip mount $ref   (the published index is found; no layer is downloaded)"
mkdir -p "$mnt"
"$CLIP" mount "$ref" "$mnt" --cache "$work/cache"
ls "$mnt"

step "run programs from the lazily mounted image"
chroot "$mnt" /bin/sh -c 'cat /etc/os-release | head -2; ls /usr/bin | wc -l | sed "s/^/programs in \/usr\/bin: /"'

step "what was fetched"
"$CLIP" stats "$mnt"
size=$(jq '[.layers[].compressedSize] | add' <("$CLIP" inspect "$work/image.clip" --json))
fetched=$(jq .bytesFetched <("$CLIP" stats "$mnt" --json))
awk -v f="$fetched" -v s="$size" 'BEGIN { printf "fetched %.1f MB of a %.1f MB image (%.1f%%)\n", f/1e6, s/1e6, 100*f/s }'
