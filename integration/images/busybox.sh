#!/bin/bash
# Build a small busybox-static OCI image.
#
#   busybox.sh OUTDIR
#
# rootfs: /bin/busybox (from the busybox-static package) and one symlink
# (-> /bin/busybox) per applet at the path `busybox --list-full` gives
# (bin/, sbin/, usr/bin/, usr/sbin/), /etc/passwd, /etc/group, /root (0700),
# /tmp (1777), empty /proc /sys /dev.  One gzip layer, GNU tar format,
# deterministic (sorted names, owner 0:0, mtime 2023-11-14).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
out=${1%/}
bb=${BUSYBOX:-/bin/busybox}
if ! "$bb" --list-full >/dev/null 2>&1; then
    echo "busybox.sh: $bb not usable (install busybox-static)" >&2
    exit 77
fi

parent=$(dirname "$out")
mkdir -p "$parent"
tmp=$(mktemp -d "$parent/.busybox-build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
root=$tmp/rootfs
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,proc,sys,dev,home}
install -m 0755 "$bb" "$root/bin/busybox"
"$bb" --list-full | while IFS= read -r applet; do
    [ "$applet" = bin/busybox ] && continue
    ln -s /bin/busybox "$root/$applet"
done
cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
daemon:x:1:
tty:x:5:
nogroup:x:65534:
EOF
chmod 0755 "$root" "$root"/{bin,sbin,usr,usr/bin,usr/sbin,etc,home,dev,sys}
chmod 0644 "$root/etc/passwd" "$root/etc/group"
chmod 0700 "$root/root"
chmod 1777 "$root/tmp"
chmod 0555 "$root/proc"

tar --sort=name --format=gnu --numeric-owner --owner=0 --group=0 \
    --mtime=@1700000000 -C "$root" -cf "$tmp/layer.tar" .

rm -rf "$out"
python3 "$here/mkimage.py" "$out" --layer "$tmp/layer.tar:gzip" \
    --cmd '["sh"]' --env PATH=/usr/sbin:/usr/bin:/sbin:/bin --workdir / \
    --tag latest
echo "busybox: wrote $out ($(wc -l < <("$bb" --list-full)) applets)"
