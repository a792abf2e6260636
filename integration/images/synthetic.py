#!/usr/bin/env python3
"""Build the synthetic merge-rule test image (Python stdlib + zstd CLI).

    synthetic.py OUTDIR

writes
    OUTDIR                 OCI layout, tag "latest", 6 layers:
                             L1 PAX   gzip              base tree
                             L2 GNU   gzip-multimember  GNU longname/longlink,
                                                        implicit parents, ...
                             L3 PAX   zstd              whiteouts, opaque-before,
                                                        type changes, /proc ...
                             L4 GNU   none              opaque-after, same-layer
                                                        whiteout rules
                             L5 PAX   gzip              re-adds, hdrcharset=BINARY
                             L6 USTAR zstd-multiframe   ustar prefix field
    OUTDIR-gzip            the same image, every layer recompressed to one
                           single-stream gzip (identical diff_ids).  umoci
                           0.4.7 cannot read zstd, so this is the layout the
                           reference extraction uses.
    OUTDIR/../synthetic-mtime-exceptions.txt
                           directories whose mtime is not comparable with
                           umoci's (see MTIME_EXCEPTIONS below).

What the merged image exercises (path under /data unless noted):
  regular files      empty, small.txt, areg (typeflag NUL), big1.bin (6 MiB in
                     L1, replaced by 3 MiB in L5), big-mm.bin (20 MiB in the
                     3-member gzip layer, member boundaries inside the data),
                     big-zstd.bin (9 MiB), ustar/multi-frame.bin (5 MiB over
                     zstd frame boundaries)
  long names         long/<130 chars> (PAX path), gnu-long/<150 chars> (GNU
                     'L'), ustar/<...>/file-with-prefix-field (ustar prefix)
  long link targets  long-link-pax (PAX linkpath, 160 chars), gnu-longlink2
                     (GNU 'K'), hardlinks long/hl-to-long and
                     gnu-long/hl-to-long with >100-char link targets
  xattrs             xattr-file (user.*), xattr-binary (non-UTF-8 value,
                     hdrcharset=BINARY), xdir (on a directory),
                     /usr/bin/ping (security.capability v2,
                     cap_net_bind_service=ep), xattr-replaced (set replaced)
  modes              /usr/bin/{suid 4755,sgid 2755,both 6711,sticky-file
                     1644}, /tmp 1777, /var/shared 2775, /var/sticky 1770,
                     nomode 0000, hl2/p 4750 (setuid + hardlinks)
  owners             owned 1234:5678 (unknown uname/gname), biguid 3000000
                     (PAX uid/gid), gnu-hl/* 3000000 (GNU base-256)
  mtimes             ns everywhere in PAX layers, nsec, epoch (0), y2038
                     (2100-01-01T00:00:00.5)
  hardlinks          hl2/{p,q} + hl-q-elsewhere (3 names, 2 dirs),
                     gnu-hl/{a,b,c}; hl/one: group of 3 reduced to 1 by a
                     replacement (L3) and a whiteout (L5)
  symlinks           /bin/sh (relative), abs-link, dangling, dirlink
  devices            devs/{null c1:3, loop0 b7:0, bigminor c250:70000, fifo},
                     gnu-tty (GNU layer)
  implicit parents   /a/b/c/file, impl/x/y/file (no dir entries)
  whiteouts          wh/file1 (re-added in L5), wh/dir1 (dir), a name that
                     never existed, gnu-longlink (symlink), hl/three, a dir
                     whited out and re-created in one layer (recreate),
                     same-layer whiteout after/before its own entry (same/)
  opaque dirs        opq-before (marker before the new children, dir entry
                     re-declared), opq-after (marker last, dir not re-declared)
  type changes       t/f2d file->dir, t/d2f dir->file, t/f2s file->symlink,
                     t/d2s dir->symlink, t/s2d symlink->dir
  re-declared dir    redecl 0755 0:0 -> 0700 1000:1000, child survives
  non-UTF-8 names    caf\xe9 (GNU raw bytes), na\xefve (PAX, hdrcharset=BINARY)
  /proc /sys /dev    content in L3 (cpuinfo, self symlink, kernel/, null,
                     shm/, pts/) that clip must not serve

Every entry gets a distinct mtime (with nanoseconds in PAX layers) so that a
wrong "which layer wins" decision shows up as an mtime difference.
"""

import io
import os
import random
import shutil
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mkimage  # noqa: E402

MiB = 1 << 20

# ---------------------------------------------------------------------------
# Directories whose mtime cannot be compared with umoci's result.
#
# 1. implicit parents (no tar entry anywhere): the OCI spec leaves their
#    metadata undefined; umoci creates them with mkdir(0777 & ~umask), owner
#    root, mtime = extraction time.
# 2. the nearest *existing* ancestor of an implicit parent: umoci's mkdir of
#    the implicit child bumps its mtime and umoci never restores it (it only
#    restores the immediate parent of each entry, and that one did not exist).
#    Here: "." (a/b/c/file in L2) and "data" (data/impl/x/y/file in L2).
#    Neither is re-declared by a later layer.
MTIME_EXCEPTIONS = [
    # (path, reason)
    (".", "ancestor of implicit parent 'a' created in L2"),
    ("a", "implicit parent (L2 a/b/c/file)"),
    ("a/b", "implicit parent (L2 a/b/c/file)"),
    ("a/b/c", "implicit parent (L2 a/b/c/file)"),
    ("data", "ancestor of implicit parent 'data/impl' created in L2"),
    ("data/impl", "implicit parent (L2 data/impl/x/y/file)"),
    ("data/impl/x", "implicit parent (L2 data/impl/x/y/file)"),
    ("data/impl/x/y", "implicit parent (L2 data/impl/x/y/file)"),
    # 3. a directory re-added in a layer that still has lower-layer children,
    #    hit later in the same tar by a whiteout of itself or an opaque marker
    #    in its parent: umoci keeps the re-added dir (it is in its
    #    "upperPaths"), descends and deletes the lower children, which bumps
    #    the dir's mtime to the extraction time; nothing restores it.
    ("data/opq-after/keepdir", "re-added in L4, lower child removed by the"
     " opaque marker that follows it in L4"),
    ("data/wh/redir", "re-added in L4, lower child removed by the whiteout"
     " .wh.redir that follows it in L4"),
]

# security.capability, VFS_CAP_REVISION_2 with VFS_CAP_FLAGS_EFFECTIVE:
# magic_etc=0x02000001, permitted[0]=1<<10 (CAP_NET_BIND_SERVICE),
# inheritable[0]=0, permitted[1]=0, inheritable[1]=0  (= "cap_net_bind_service=ep")
CAP_NET_BIND_SERVICE = bytes.fromhex("01000002" "00040000" "00000000"
                                     "00000000" "00000000")

LONG_DIR_NAME = "this-is-a-very-long-directory-name-" + "x" * 40   # 75 chars


class Clock:
    """Hands out distinct, increasing mtimes."""

    def __init__(self, start=1600000000):
        self.t = start
        self.n = 0

    def next(self, ns=True):
        self.t += 3600 + 17
        self.n += 1
        if ns:
            return "%d.%09d" % (self.t, (self.n * 123456789 + 7) % 10 ** 9)
        return self.t


CLOCK = Clock()


def blob(seed, size):
    """Deterministic pseudo-random, partly compressible data: 64 KiB chunks,
    every third one random, the others repetitive text."""
    rng = random.Random(seed)
    out = bytearray()
    i = 0
    while len(out) < size:
        if i % 3 == 0:
            out += rng.randbytes(65536)
        else:
            line = ("seed %d chunk %d: the quick brown fox jumps over the lazy"
                    " dog %08x\n" % (seed, i, rng.getrandbits(32))).encode()
            out += (line * (65536 // len(line) + 1))[:65536]
        i += 1
    return bytes(out[:size])


def _s(name):
    return name.decode("utf-8", "surrogateescape") if isinstance(name, bytes) \
        else name


class TB:
    """Small wrapper around tarfile that writes fully specified entries."""

    def __init__(self, fmt, prefix=""):
        self.fmt = fmt
        self.prefix = prefix
        self.buf = io.BytesIO()
        self.t = tarfile.open(fileobj=self.buf, mode="w", format=fmt,
                              encoding="utf-8", errors="surrogateescape")
        self.names = []

    def _ti(self, name, typ, mode, uid=0, gid=0, mtime=None, xattrs=None,
            uname="", gname="", pax=None):
        name = _s(name)
        if name not in (".", "./"):
            name = self.prefix + name
        ti = tarfile.TarInfo(name)
        ti.type = typ
        ti.mode = mode
        ti.uname = uname
        ti.gname = gname
        ph = {}
        if mtime is None:
            mtime = CLOCK.next(ns=self.fmt == tarfile.PAX_FORMAT)
        if isinstance(mtime, str):
            if self.fmt != tarfile.PAX_FORMAT:
                raise ValueError("fractional mtime needs PAX")
            ti.mtime = int(mtime.split(".")[0])
            ph["mtime"] = mtime
        else:
            ti.mtime = mtime
        ti.uid = uid
        ti.gid = gid
        if uid >= 8 ** 7 and self.fmt == tarfile.PAX_FORMAT:
            ph["uid"] = str(uid)
            ti.uid = 0
        if gid >= 8 ** 7 and self.fmt == tarfile.PAX_FORMAT:
            ph["gid"] = str(gid)
            ti.gid = 0
        if xattrs:
            if self.fmt != tarfile.PAX_FORMAT:
                raise ValueError("xattrs need PAX")
            for k, v in xattrs.items():
                ph["SCHILY.xattr." + k] = v.decode("utf-8", "surrogateescape")
        if pax:
            ph.update(pax)
        ti.pax_headers = ph
        self.names.append(name)
        return ti

    def dir(self, name, mode=0o755, **kw):
        self.t.addfile(self._ti(name, tarfile.DIRTYPE, mode, **kw))

    def file(self, name, data=b"", mode=0o644, typ=tarfile.REGTYPE, **kw):
        if isinstance(data, str):
            data = data.encode()
        ti = self._ti(name, typ, mode, **kw)
        ti.size = len(data)
        self.t.addfile(ti, io.BytesIO(data))

    def symlink(self, name, target, **kw):
        ti = self._ti(name, tarfile.SYMTYPE, 0o777, **kw)
        ti.linkname = _s(target)
        self.t.addfile(ti)

    def hardlink(self, name, target, mode=0o644, **kw):
        ti = self._ti(name, tarfile.LNKTYPE, mode, **kw)
        ti.linkname = self.prefix + _s(target)
        self.t.addfile(ti)

    def dev(self, name, typ, major, minor, mode=0o666, **kw):
        ti = self._ti(name, typ, mode, **kw)
        ti.devmajor = major
        ti.devminor = minor
        self.t.addfile(ti)

    def whiteout(self, dirname, victim):
        self.file(dirname.rstrip("/") + "/.wh." + victim, b"", mode=0o644)

    def opaque(self, dirname):
        self.file(dirname.rstrip("/") + "/.wh..wh..opq", b"", mode=0o644)

    def close(self):
        self.t.close()
        return self.buf.getvalue()


# ---------------------------------------------------------------------------
# layers

def layer1():
    """PAX, './'-prefixed names like GNU tar -C ROOT -c . ; plain gzip."""
    t = TB(tarfile.PAX_FORMAT, prefix="./")
    t.dir("./", 0o755)
    for d in ("bin", "etc", "usr", "usr/bin", "var", "data"):
        t.dir(d)
    t.dir("tmp", 0o1777)
    t.dir("proc", 0o555)
    t.dir("sys", 0o555)
    t.dir("dev", 0o755)
    t.file("etc/hostname", "synthetic-v1\n")
    t.file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"
           "user:x:1000:1000::/home/user:/bin/sh\n")
    t.file("etc/shadow", "root:*:19000:0:99999:7:::\n", mode=0o640, gid=42)
    # regular files
    t.file("data/empty", b"")
    t.file("data/small.txt", "hello, clip\n")
    t.file("data/big1.bin", blob(1, 6 * MiB + 1))
    t.file("data/areg", "old-style regular file, typeflag NUL\n",
           typ=tarfile.AREGTYPE)
    # modes
    t.file("usr/bin/suid", "#!/bin/true\n", mode=0o4755)
    t.file("usr/bin/sgid", "#!/bin/true\n", mode=0o2755, gid=50)
    t.file("usr/bin/both", "#!/bin/true\n", mode=0o6711, uid=0, gid=0)
    t.file("usr/bin/sticky-file", "x\n", mode=0o1644)
    t.dir("var/shared", 0o2775, uid=1000, gid=1000)
    t.dir("var/sticky", 0o1770, uid=0, gid=100)
    t.dir("var/private", 0o700, uid=1000, gid=1000)
    t.file("var/private/secret", "s3cret\n", mode=0o600, uid=1000, gid=1000)
    # ownership
    t.file("data/owned", "owned\n", mode=0o600, uid=1234, gid=5678,
           uname="nosuchuser", gname="nosuchgroup")
    t.file("data/biguid", "big uid via PAX\n", uid=3000000, gid=3000001)
    # mtimes
    t.file("data/nsec", "nsec\n", mtime="1234567890.123456789")
    t.file("data/epoch", "epoch\n", mtime=0)
    t.file("data/y2038", "after 2038\n", mtime="4102444800.5")
    # xattrs
    t.file("usr/bin/ping", "#!/bin/true\n", mode=0o755,
           xattrs={"security.capability": CAP_NET_BIND_SERVICE})
    t.file("data/xattr-file", "xattrs\n",
           xattrs={"user.foo": b"bar", "user.two": b"second value"})
    t.file("data/xattr-binary", "binary xattr value\n",
           xattrs={"user.bin": b"\x80\xff\x00\x01abc"})
    t.file("data/xattr-replaced", "v1\n", xattrs={"user.foo": b"old"})
    t.dir("data/xdir", 0o755, xattrs={"user.dirattr": b"on a dir"})
    t.file("data/xdir/inner", "inner\n")
    # symlinks
    t.symlink("bin/sh", "busybox")
    t.file("bin/busybox", "#!/not/really\n", mode=0o755)
    t.symlink("data/abs-link", "/etc/hostname")
    t.symlink("data/dangling", "../does/not/exist")
    t.symlink("data/dirlink", "../usr")
    # PAX long path / linkpath
    t.dir("data/long")
    t.file("data/long/" + LONG_DIR_NAME + "-pax-file-name-" + "y" * 40,
           "pax long name\n")
    t.symlink("data/long-link-pax", "/" + "/".join(["target-component-%02d" % i
                                                     for i in range(8)]))
    # hardlink group of 3
    t.dir("data/hl")
    t.file("data/hl/one", "hardlinked content\n", mode=0o640, uid=7, gid=8)
    t.hardlink("data/hl/two", "data/hl/one", mode=0o640, uid=7, gid=8)
    t.hardlink("data/hl/three", "data/hl/one", mode=0o640, uid=7, gid=8)
    # a second group of 3 that survives unchanged; one name is in another dir
    t.dir("data/hl2")
    t.file("data/hl2/p", "second group\n", mode=0o4750, uid=0, gid=10)
    t.hardlink("data/hl2/q", "data/hl2/p", mode=0o4750, gid=10)
    t.hardlink("data/hl-q-elsewhere", "data/hl2/p", mode=0o4750, gid=10)
    # hardlink whose target path is > 100 chars (PAX linkpath)
    t.hardlink("data/long/hl-to-long", "data/long/" + LONG_DIR_NAME
               + "-pax-file-name-" + "y" * 40)
    # devices, fifo
    t.dir("data/devs")
    t.dev("data/devs/null", tarfile.CHRTYPE, 1, 3, 0o666)
    t.dev("data/devs/loop0", tarfile.BLKTYPE, 7, 0, 0o660, gid=6)
    t.dev("data/devs/bigminor", tarfile.CHRTYPE, 250, 70000, 0o600)
    t.dev("data/devs/fifo", tarfile.FIFOTYPE, 0, 0, 0o644)
    # type-change victims
    t.dir("data/t")
    t.file("data/t/f2d", "file, becomes a dir in L3\n")
    t.dir("data/t/d2f")
    t.file("data/t/d2f/child1", "gone in L3\n")
    t.dir("data/t/d2f/sub")
    t.file("data/t/d2f/sub/child2", "gone in L3\n")
    t.file("data/t/f2s", "file, becomes a symlink in L3\n")
    t.dir("data/t/d2s")
    t.file("data/t/d2s/child", "gone in L4\n")
    t.symlink("data/t/s2d", "f2d")
    # whiteout victims
    t.dir("data/wh")
    t.file("data/wh/file1", "whited out in L3, re-added in L5\n")
    t.dir("data/wh/dir1")
    t.file("data/wh/dir1/a", "gone\n")
    t.dir("data/wh/dir1/deeper")
    t.file("data/wh/dir1/deeper/b", "gone\n")
    t.file("data/wh/keep", "stays\n")
    t.dir("data/wh/redir")
    t.file("data/wh/redir/old", "gone (whiteout of the re-added dir in L4)\n")
    # opaque victims
    t.dir("data/opq-before")
    t.file("data/opq-before/a", "gone\n")
    t.dir("data/opq-before/sub")
    t.file("data/opq-before/sub/c", "gone\n")
    t.dir("data/opq-after")
    t.file("data/opq-after/x", "gone\n")
    t.file("data/opq-after/y", "replaced in L4\n")
    t.dir("data/opq-after/olddir")
    t.file("data/opq-after/olddir/z", "gone\n")
    t.dir("data/opq-after/keepdir")
    t.file("data/opq-after/keepdir/old", "gone\n")
    # re-declared directory
    t.dir("data/redecl", 0o755)
    t.file("data/redecl/child", "survives the re-declaration\n")
    # whiteout + recreate in one layer, same-layer whiteout
    t.dir("data/recreate")
    t.file("data/recreate/old", "gone\n")
    t.dir("data/same")
    t.file("data/same/redo", "v1\n")
    t.file("data/same/redo2", "v1\n")
    return t.close()


def layer2():
    """GNU format, no './' prefix; gzip with 3 members."""
    t = TB(tarfile.GNU_FORMAT)
    t.file("data/big-mm.bin", blob(2, 20 * MiB + 3))
    # GNU longname / longlink
    t.dir("data/gnu-long")
    t.file("data/gnu-long/" + LONG_DIR_NAME + "-gnu-file-name-" + "z" * 60,
           "gnu long name\n")
    # hardlink whose target path is > 100 chars (GNU 'K' longlink record)
    t.hardlink("data/gnu-long/hl-to-long", "data/gnu-long/" + LONG_DIR_NAME
               + "-gnu-file-name-" + "z" * 60)
    t.symlink("data/gnu-longlink", "../" + "/".join(
        ["gnu-target-component-%02d" % i for i in range(7)]))   # gone in L5
    t.symlink("data/gnu-longlink2", "/" + "/".join(
        ["second-gnu-target-%02d" % i for i in range(8)]))
    # non-UTF-8 name
    t.file(b"data/caf\xe9", "latin-1 name\n")
    # second hardlink group (GNU) + base-256 uid
    t.dir("data/gnu-hl")
    t.file("data/gnu-hl/a", "gnu hardlink\n", mode=0o600, uid=3000000,
           gid=3000000)
    t.hardlink("data/gnu-hl/b", "data/gnu-hl/a", mode=0o600, uid=3000000,
               gid=3000000)
    t.hardlink("data/gnu-hl/c", "data/gnu-hl/a", mode=0o600, uid=3000000,
               gid=3000000)
    t.dev("data/gnu-tty", tarfile.CHRTYPE, 5, 0, 0o620, gid=5)
    t.file("data/nomode", "mode 0000\n", mode=0)
    # implicit parents: no entries for a, a/b, a/b/c, data/impl, ...
    t.file("a/b/c/file", "implicit parents\n")
    t.file("data/impl/x/y/file", "implicit parents under data\n")
    return t.close()


def layer3():
    """PAX; zstd."""
    t = TB(tarfile.PAX_FORMAT)
    t.file("data/big-zstd.bin", blob(3, 9 * MiB + 5))
    # change a file inside etc/ without re-declaring etc/
    t.file("etc/hostname", "synthetic-v3\n")
    # whiteouts of a file, a directory, a name that never existed
    t.whiteout("data/wh", "file1")
    t.whiteout("data/wh", "dir1")
    t.whiteout("data/wh", "never-existed")
    # opaque marker BEFORE the directory's other entries (dir re-declared)
    t.dir("data/opq-before", 0o750)
    t.opaque("data/opq-before")
    t.file("data/opq-before/new1", "new in L3\n")
    t.dir("data/opq-before/newdir")
    t.file("data/opq-before/newdir/new2", "new in L3\n")
    # type changes
    t.dir("data/t/f2d", 0o711)
    t.file("data/t/f2d/inside", "now a dir\n")
    t.file("data/t/d2f", "was a directory\n", mode=0o600)
    t.symlink("data/t/f2s", "f2d/inside")
    t.dir("data/t/s2d", 0o755)     # symlink -> dir
    t.file("data/t/s2d/child", "symlink became a dir\n")
    # directory re-declared with new mode/owner (children must survive)
    t.dir("data/redecl", 0o700, uid=1000, gid=1000)
    # replace one member of the hardlink group: group becomes {one, three}
    t.file("data/hl/two", "no longer a hardlink\n", mode=0o644)
    # xattr set replaced along with the file
    t.file("data/xattr-replaced", "v3\n", xattrs={"user.other": b"new"})
    # things under /proc, /sys, /dev that clip must not serve
    t.file("proc/cpuinfo", "processor: 0\n")
    t.symlink("proc/self", "1")
    t.dir("proc/1")
    t.file("proc/1/status", "Name: init\n")
    t.dir("sys/kernel")
    t.file("sys/kernel/hostname", "nope\n")
    t.dev("dev/null", tarfile.CHRTYPE, 1, 3, 0o666)
    t.dir("dev/shm", 0o1777)
    t.dir("dev/pts", 0o755)
    return t.close()


def layer4():
    """GNU format; uncompressed."""
    t = TB(tarfile.GNU_FORMAT)
    # opaque marker AFTER the directory's other entries (dir not re-declared)
    t.file("data/opq-after/y", "new y from L4\n")
    t.file("data/opq-after/z", "new z from L4\n")
    t.dir("data/opq-after/newdir")
    t.file("data/opq-after/newdir/n", "new\n")
    t.dir("data/opq-after/keepdir", 0o751)      # re-added, lower child 'old'
    t.file("data/opq-after/keepdir/fresh", "new\n")
    t.opaque("data/opq-after")
    # a directory re-added in this layer, then whited out later in the same
    # layer: the whiteout only hits the lower layers, so redir survives with
    # just 'fresh'
    t.dir("data/wh/redir", 0o750)
    t.file("data/wh/redir/fresh", "new in L4\n")
    t.whiteout("data/wh", "redir")
    # whiteout a directory and recreate it in the same layer
    t.whiteout("data", "recreate")
    t.dir("data/recreate", 0o755)
    t.file("data/recreate/new", "only this survives\n")
    # same-layer whiteout after an entry of the same name: entry survives
    t.file("data/same/redo", "v4, survives its own layer's whiteout\n")
    t.whiteout("data/same", "redo")
    # same-layer whiteout before an entry of the same name
    t.whiteout("data/same", "redo2")
    t.file("data/same/redo2", "v4\n")
    # dir -> symlink
    t.symlink("data/t/d2s", "f2d")
    return t.close()


def layer5():
    """PAX; plain gzip."""
    t = TB(tarfile.PAX_FORMAT)
    t.file("data/wh/file1", "re-added in L5\n")
    t.whiteout("data", "gnu-longlink")
    t.whiteout("data/hl", "three")   # group is now just {one}
    # non-UTF-8 name in a PAX layer: tarfile emits hdrcharset=BINARY
    t.file(b"data/na\xefve", "binary pax path\n")
    t.file("etc/motd", "welcome to the synthetic image\n")
    t.file("data/big1.bin", blob(5, 3 * MiB + 7))  # overwrite L1's big file
    return t.close()


def layer6():
    """USTAR (names split into prefix+name); zstd with several frames."""
    t = TB(tarfile.USTAR_FORMAT)
    t.dir("data/ustar")
    t.dir("data/ustar/" + LONG_DIR_NAME)
    deep = "data/ustar/" + LONG_DIR_NAME + "/ustar-prefix-split"
    t.dir(deep)
    t.file(deep + "/file-with-prefix-field", "ustar prefix\n")
    t.file("data/ustar/multi-frame.bin", blob(6, 5 * MiB + 11))
    t.symlink("data/ustar/link", "multi-frame.bin")
    return t.close()


LAYERS = [
    (layer1, "gzip", "L1 PAX base"),
    (layer2, "gzip-multimember", "L2 GNU longnames, implicit parents"),
    (layer3, "zstd", "L3 PAX whiteouts, opaque-before, type changes"),
    (layer4, "none", "L4 GNU opaque-after, same-layer whiteouts"),
    (layer5, "gzip", "L5 PAX re-adds"),
    (layer6, "zstd-multiframe", "L6 USTAR prefix"),
]

def build(outdir):
    outdir = os.path.abspath(outdir.rstrip("/"))
    parent = os.path.dirname(outdir)
    gzdir = outdir + "-gzip"
    for d in (outdir, gzdir):
        if os.path.exists(d):
            shutil.rmtree(d)
    tars = [(fn(), comp, comment) for fn, comp, comment in LAYERS]
    cfg = mkimage.Config(entrypoint=["/bin/sh"], cmd=["-c", "echo synthetic"],
                         env=["PATH=/usr/bin:/bin", "CLIP_TEST=synthetic"],
                         workdir="/data", user="1000:1000",
                         labels={"org.example.clip-test": "synthetic"})
    layers = [mkimage.Layer(tb, comp, members=3, comment=c)
              for tb, comp, c in tars]
    mkimage.write_layout(outdir, [mkimage.Image(layers, cfg)], "latest")
    gz = [mkimage.Layer(tb, "gzip", comment=c + " (recompressed gzip)")
          for tb, comp, c in tars]
    mkimage.write_layout(gzdir, [mkimage.Image(gz, cfg)], "latest")

    with open(os.path.join(parent, "synthetic-mtime-exceptions.txt"),
              "w") as f:
        f.write("# directories whose mtime is not compared (see synthetic.py)\n")
        for p, why in MTIME_EXCEPTIONS:
            f.write("%s\t# %s\n" % (p, why))
    total = sum(len(tb) for tb, _, _ in tars)
    print("synthetic: wrote %s and %s (%d layers, %.1f MiB uncompressed)"
          % (outdir, gzdir, len(tars), total / MiB))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: synthetic.py OUTDIR")
    build(sys.argv[1])
