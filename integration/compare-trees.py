#!/usr/bin/env python3
"""Compare two extracted root filesystems entry by entry.

    compare-trees.py REF_ROOT OUR_ROOT [--mtime-exceptions FILE]
                     [--no-root-mtime]

Walks both trees with lstat (names handled as bytes, symlinks never
followed) and compares, for every path present in either tree:

    existence, type, mode (incl. setuid/setgid/sticky), uid, gid,
    size (regular files), mtime in ns, xattrs (trusted.* ignored),
    content sha256 (regular files), symlink target, rdev (char/block
    devices), hardlink groups (the set of paths sharing an inode must be
    the same set in both trees).

Directory mtimes are not compared for paths listed in the exceptions file
(one path per line, relative to the root, "." for the root itself; text
after '#' is a comment).  Only the existence and type of the top-level
proc, sys and dev directories are compared; everything below them is
ignored.

Each difference is printed as one line "PATH: field ref=X ours=Y"; then a
summary line.  Exit status: 0 identical, 1 differences, 2 usage error.
"""

import argparse
import hashlib
import os
import stat
import sys

SPECIAL_TOP = {b"proc", b"sys", b"dev"}


def show(b):
    """Printable form of a bytes path/value (non-UTF-8 bytes as \\xNN)."""
    if isinstance(b, bytes):
        return b.decode("utf-8", "backslashreplace")
    return str(b)


def ftype(mode):
    for test, name in ((stat.S_ISREG, "file"), (stat.S_ISDIR, "dir"),
                       (stat.S_ISLNK, "symlink"), (stat.S_ISCHR, "chardev"),
                       (stat.S_ISBLK, "blockdev"), (stat.S_ISFIFO, "fifo"),
                       (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "unknown"


def walk(root):
    """Return {relpath(bytes): lstat} for everything under root (root
    itself is b".").  Contents of top-level proc/sys/dev are skipped."""
    root = os.fsencode(root)
    out = {b".": os.lstat(root)}
    stack = [b""]
    while stack:
        rel = stack.pop()
        full = os.path.join(root, rel) if rel else root
        with os.scandir(full) as it:
            for e in it:
                r = os.path.join(rel, e.name) if rel else e.name
                st = os.lstat(os.path.join(root, r))
                out[r] = st
                if stat.S_ISDIR(st.st_mode) and not (not rel and
                                                     e.name in SPECIAL_TOP):
                    stack.append(r)
    return out


def skipped_detail(rel):
    return rel in SPECIAL_TOP


def xattrs(path):
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for n in names:
        if n.startswith("trusted."):
            continue
        try:
            out[n] = os.getxattr(path, n, follow_symlinks=False)
        except OSError as e:
            out[n] = "<error %s>" % e.strerror
    return out


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def hardlink_groups(tree, root):
    """{relpath: frozenset(relpaths sharing the inode)} for non-directories
    with st_nlink > 1 (as seen inside the tree)."""
    by_ino = {}
    for rel, st in tree.items():
        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
            by_ino.setdefault((st.st_dev, st.st_ino), set()).add(rel)
    out = {}
    for group in by_ino.values():
        fs = frozenset(group)
        for rel in group:
            out[rel] = fs
    return out


def load_exceptions(path):
    ex = set()
    if not path:
        return ex
    with open(path, "rb") as f:
        for line in f:
            line = line.split(b"#", 1)[0].strip()
            if not line:
                continue
            line = line.strip(b"/")
            if line in (b"", b"."):
                ex.add(b".")
            else:
                ex.add(os.path.normpath(line))
    return ex


def fmt_mode(m):
    return "%04o" % stat.S_IMODE(m)


def fmt_xattrs(x):
    return "{" + ", ".join("%s=%r" % (k, v) for k, v in sorted(x.items())) + "}"


def fmt_group(g):
    return "{" + ",".join(sorted(show(p) for p in g)) + "}"


def compare(ref_root, our_root, exceptions, root_mtime=True, report=print):
    ref_b, our_b = os.fsencode(ref_root), os.fsencode(our_root)
    ref, ours = walk(ref_root), walk(our_root)
    ref_hl, our_hl = hardlink_groups(ref, ref_b), hardlink_groups(ours, our_b)
    ndiff = 0

    def diff(rel, field, a, b):
        nonlocal ndiff
        ndiff += 1
        report("%s: %s ref=%s ours=%s" % (show(rel), field, a, b))

    for rel in sorted(set(ref) | set(ours)):
        a, b = ref.get(rel), ours.get(rel)
        if a is None or b is None:
            diff(rel, "exists", "yes" if a else "no", "yes" if b else "no")
            continue
        ta, tb = ftype(a.st_mode), ftype(b.st_mode)
        if ta != tb:
            diff(rel, "type", ta, tb)
            continue
        if skipped_detail(rel):
            continue  # top-level proc/sys/dev: existence and type only
        pa = os.path.join(ref_b, rel) if rel != b"." else ref_b
        pb = os.path.join(our_b, rel) if rel != b"." else our_b
        if ta != "symlink" and stat.S_IMODE(a.st_mode) != stat.S_IMODE(b.st_mode):
            diff(rel, "mode", fmt_mode(a.st_mode), fmt_mode(b.st_mode))
        if a.st_uid != b.st_uid:
            diff(rel, "uid", a.st_uid, b.st_uid)
        if a.st_gid != b.st_gid:
            diff(rel, "gid", a.st_gid, b.st_gid)
        skip_mtime = ta == "dir" and (rel in exceptions or
                                      (rel == b"." and not root_mtime))
        if not skip_mtime and a.st_mtime_ns != b.st_mtime_ns:
            diff(rel, "mtime_ns", a.st_mtime_ns, b.st_mtime_ns)
        xa, xb = xattrs(pa), xattrs(pb)
        if xa != xb:
            diff(rel, "xattrs", fmt_xattrs(xa), fmt_xattrs(xb))
        if ta == "file":
            if a.st_size != b.st_size:
                diff(rel, "size", a.st_size, b.st_size)
            else:
                da, db = digest(pa), digest(pb)
                if da != db:
                    diff(rel, "sha256", da, db)
            ga = ref_hl.get(rel, frozenset([rel]))
            gb = our_hl.get(rel, frozenset([rel]))
            if ga != gb:
                diff(rel, "hardlinks", fmt_group(ga), fmt_group(gb))
        elif ta == "symlink":
            la, lb = os.readlink(pa), os.readlink(pb)
            if la != lb:
                diff(rel, "target", show(la), show(lb))
        elif ta in ("chardev", "blockdev"):
            if a.st_rdev != b.st_rdev:
                diff(rel, "rdev",
                     "%d:%d" % (os.major(a.st_rdev), os.minor(a.st_rdev)),
                     "%d:%d" % (os.major(b.st_rdev), os.minor(b.st_rdev)))
        if ta != "file" and ta != "dir":
            # hardlinked specials/symlinks are legal in tar too
            ga = ref_hl.get(rel, frozenset([rel]))
            gb = our_hl.get(rel, frozenset([rel]))
            if ga != gb:
                diff(rel, "hardlinks", fmt_group(ga), fmt_group(gb))
    return ndiff, len(set(ref) | set(ours))


def main():
    ap = argparse.ArgumentParser(
        description="Compare two extracted rootfs trees entry by entry.")
    ap.add_argument("ref_root")
    ap.add_argument("our_root")
    ap.add_argument("--mtime-exceptions", metavar="FILE",
                    help="directories whose mtime is not compared")
    ap.add_argument("--no-root-mtime", action="store_true",
                    help="do not compare the mtime of the root directory")
    a = ap.parse_args()
    for d in (a.ref_root, a.our_root):
        if not os.path.isdir(d):
            print("compare-trees: not a directory: %s" % d, file=sys.stderr)
            return 2
    ex = load_exceptions(a.mtime_exceptions)
    ndiff, n = compare(a.ref_root, a.our_root, ex,
                       root_mtime=not a.no_root_mtime)
    print("compare-trees: %d difference(s) in %d path(s) compared "
          "(%d mtime exception(s))" % (ndiff, n, len(ex)))
    return 1 if ndiff else 0


if __name__ == "__main__":
    sys.exit(main())
