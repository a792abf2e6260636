#!/bin/bash
# Build a Debian bookworm minbase + python3 OCI image: two gzip layers, the minbase rootfs of debian.sh and a
# second layer holding what `apt-get install --no-install-recommends python3` changed.
#
#   debian-python.sh OUTDIR
#
# The second layer is made once and cached as a tarball beside the minbase one, $CLIP_DEBIAN_PYTHON_CACHE (default
# /var/cache/clip-test/debian-python3.tar); delete it to rebuild.  It is built in an overlayfs over the unpacked
# minbase tar (upper = the new layer): apt-get update + install in a chroot of the merged folder (host /dev and
# /etc/resolv.conf bound in, /proc mounted), then the upper folder becomes an OCI layer: overlay whiteouts (0/0
# character devices) become `.wh.NAME` files, opaque folders get `.wh..wh..opq`, trusted.overlay.* xattrs are
# dropped, and the apt lists and package caches are removed.  The mirror is the one in the minbase's sources.list
# (deb.debian.org) unless $DEBIAN_MIRROR.
#
# Exit status 77: the minbase image cannot be built or the mirror is unreachable (callers treat 77 as "skip").
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
out=${1%/}
base=${CLIP_DEBIAN_CACHE:-/var/cache/clip-test/debian-minbase.tar}
cache=${CLIP_DEBIAN_PYTHON_CACHE:-/var/cache/clip-test/debian-python3.tar}
suite=bookworm
[ "$(id -u)" = 0 ] || { echo "debian-python.sh: needs root (overlayfs, chroot)" >&2; exit 1; }

if [ ! -s "$base" ]; then
    # debian.sh makes the minbase cache (or exits 77); its layout is not needed here
    scratch=$(mktemp -d)
    rc=0
    bash "$here/debian.sh" "$scratch/debian" >&2 || rc=$?
    rm -rf "$scratch"
    [ "$rc" -eq 0 ] || exit "$rc"
fi

if [ ! -s "$cache" ]; then
    mirror=${DEBIAN_MIRROR:-$(tar -xOf "$base" ./etc/apt/sources.list | awk '$1 == "deb" { print $2; exit }')}
    mirror=${mirror:-http://deb.debian.org/debian}
    mirror=${mirror%/}
    if ! python3 - "$mirror/dists/$suite/Release" <<'EOF'
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=20).read(1)
except Exception as e:
    print("debian-python.sh: mirror unreachable: %s: %s" % (sys.argv[1], e), file=sys.stderr)
    sys.exit(1)
EOF
    then
        exit 77
    fi
    mkdir -p "$(dirname "$cache")"
    tmp=$(mktemp -d "$(dirname "$cache")/.debian-python.XXXXXX")
    merged=$tmp/merged
    cleanup() {
        local m
        for m in "$merged/proc" "$merged/dev" "$merged/etc/resolv.conf" "$merged"; do
            mountpoint -q "$m" 2>/dev/null && umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
        done
        rm -rf --one-file-system "$tmp"
    }
    trap cleanup EXIT
    mkdir -p "$tmp/lower" "$tmp/upper" "$tmp/work" "$merged"
    tar --numeric-owner --xattrs --xattrs-include='*' -xpf "$base" -C "$tmp/lower"
    chmod --reference="$tmp/lower" "$tmp/upper"
    mount -t overlay overlay -o "lowerdir=$tmp/lower,upperdir=$tmp/upper,workdir=$tmp/work" "$merged"
    mount -t proc proc "$merged/proc"
    mount --bind /dev "$merged/dev"
    mount --bind -o ro /etc/resolv.conf "$merged/etc/resolv.conf"
    echo "debian-python.sh: apt-get install python3 from $mirror" >&2
    if [ -n "${DEBIAN_MIRROR:-}" ]; then
        echo "deb $mirror $suite main" >"$merged/etc/apt/sources.list"
    fi
    if ! env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C DEBIAN_FRONTEND=noninteractive \
        chroot "$merged" sh -c 'apt-get update -q && apt-get install -y -q --no-install-recommends python3' \
        >"$tmp/apt.log" 2>&1; then
        tail -n 20 "$tmp/apt.log" >&2
        echo "debian-python.sh: apt-get failed" >&2
        exit 77
    fi
    if [ -n "${DEBIAN_MIRROR:-}" ]; then
        tar -xOf "$base" ./etc/apt/sources.list >"$merged/etc/apt/sources.list"
    fi
    for m in "$merged/etc/resolv.conf" "$merged/dev" "$merged/proc" "$merged"; do umount "$m"; done
    # upper -> OCI layer folder: whiteouts, opaque markers, no overlay xattrs, no apt lists or caches
    python3 - "$tmp/upper" <<'EOF'
import os, stat, sys
top = sys.argv[1]
for junk in ("var/lib/apt/lists", "var/cache/apt"):
    d = os.path.join(top, junk)
    for dirpath, dirs, files in os.walk(d):
        for f in files:
            if not (junk.endswith("lists") and dirpath == d and f == "lock"):
                os.unlink(os.path.join(dirpath, f))
for dirpath, dirs, files in os.walk(top):
    for name in dirs + files + [""]:
        p = os.path.join(dirpath, name) if name else dirpath
        st = os.lstat(p)
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            os.unlink(p)
            open(os.path.join(dirpath, ".wh." + name), "w").close()
            continue
        if stat.S_ISLNK(st.st_mode):
            continue
        for x in os.listxattr(p, follow_symlinks=False):
            if x == "trusted.overlay.opaque" and os.getxattr(p, x) == b"y":
                open(os.path.join(p, ".wh..wh..opq"), "w").close()
            if x.startswith("trusted.overlay."):
                os.removexattr(p, x, follow_symlinks=False)
EOF
    touch -r "$tmp/lower" "$tmp/upper"
    tar --numeric-owner --xattrs --xattrs-include='*' --sort=name \
        --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
        -C "$tmp/upper" -cf "$tmp/layer.tar" .
    mv "$tmp/layer.tar" "$cache"
    echo "debian-python.sh: cached $cache" >&2
fi

parent=$(dirname "$out")
mkdir -p "$parent"
rm -rf "$out"
python3 "$here/mkimage.py" "$out" --layer "$base:gzip" --layer "$cache:gzip" \
    --cmd '["python3"]' \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --tag latest
echo "debian-python: wrote $out from $base and $cache ($(du -h "$cache" | cut -f1) tar)"
