#!/bin/bash
# Build a Debian bookworm minbase OCI image (one gzip layer).
#
#   debian.sh OUTDIR
#
# The debootstrap result is cached as a tarball outside the repository,
# $CLIP_DEBIAN_CACHE (default /var/cache/clip-test/debian-minbase.tar), and
# reused when present; delete it to rebuild.  The mirror is the first
# deb.debian.org-style "URIs:"/"deb" line for the main archive found in
# /etc/apt/sources.list{,.d/*} (override with $DEBIAN_MIRROR).
#
# Exit status 77: debootstrap or the mirror is not available (callers treat
# 77 as "skip").
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
out=${1%/}
cache=${CLIP_DEBIAN_CACHE:-/var/cache/clip-test/debian-minbase.tar}
suite=bookworm

find_mirror() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
             /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        case $f in
        *.sources)
            awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i }' "$f" ;;
        *)
            awk '$1 == "deb" { for (i = 2; i <= NF; i++)
                                 if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' "$f" ;;
        esac
    done | grep -v -e security -e updates | grep '/debian/\?$' | head -n1
}

if [ ! -s "$cache" ]; then
    command -v debootstrap >/dev/null || {
        echo "debian.sh: debootstrap not installed" >&2; exit 77; }
    mirror=${DEBIAN_MIRROR:-$(find_mirror)}
    mirror=${mirror:-http://deb.debian.org/debian}
    mirror=${mirror%/}
    if ! python3 - "$mirror/dists/$suite/Release" <<'EOF'
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=20).read(1)
except Exception as e:
    print("debian.sh: mirror unreachable: %s: %s" % (sys.argv[1], e),
          file=sys.stderr)
    sys.exit(1)
EOF
    then
        exit 77
    fi
    mkdir -p "$(dirname "$cache")"
    tmp=$(mktemp -d "$(dirname "$cache")/.debootstrap.XXXXXX")
    cleanup() {
        # debootstrap mounts proc/sys inside the target; never rm -rf
        # through a live mount
        local m
        for m in "$tmp"/root/proc "$tmp"/root/sys "$tmp"/root/dev/pts; do
            mountpoint -q "$m" 2>/dev/null && umount -l "$m" || true
        done
        rm -rf --one-file-system "$tmp"
    }
    trap cleanup EXIT
    echo "debian.sh: debootstrap --variant=minbase $suite from $mirror" >&2
    if ! debootstrap --variant=minbase "$suite" "$tmp/root" "$mirror" \
            >"$tmp/debootstrap.log" 2>&1; then
        tail -n 20 "$tmp/debootstrap.log" >&2
        echo "debian.sh: debootstrap failed" >&2
        exit 77
    fi
    for m in "$tmp"/root/proc "$tmp"/root/sys "$tmp"/root/dev/pts; do
        if mountpoint -q "$m"; then umount "$m"; fi
    done
    # a few things that differ from run to run and are of no interest
    rm -rf "$tmp"/root/var/cache/apt/archives/*.deb \
           "$tmp"/root/var/log/bootstrap.log "$tmp"/root/debootstrap
    # deterministic enough: sorted names, no atime/ctime in PAX headers,
    # numeric owners, all xattrs (tar --xattrs implies the PAX format)
    tar --numeric-owner --xattrs --xattrs-include='*' --sort=name \
        --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
        -C "$tmp/root" -cf "$tmp/rootfs.tar" .
    mv "$tmp/rootfs.tar" "$cache"
    echo "debian.sh: cached $cache" >&2
fi

parent=$(dirname "$out")
mkdir -p "$parent"
rm -rf "$out"
python3 "$here/mkimage.py" "$out" --layer "$cache:gzip" \
    --cmd '["bash"]' \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --tag latest
echo "debian: wrote $out from $cache ($(du -h "$cache" | cut -f1) tar)"
