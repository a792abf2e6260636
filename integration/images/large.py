#!/usr/bin/env python3
"""Build a large-entry-count image for the index load benchmark.

    large.py OUTDIR [--entries 100000]

Two gzip layers (GNU format, deterministic):
  L1  ~90% of the entries: DIRS top-level dirs, each with SUBDIRS
      subdirectories, each holding small files (0..96 bytes) plus a few
      symlinks;
  L2  the rest: new files in new and existing dirs, overwrites of some L1
      files, a few whiteouts and one opaque directory.
Total file content is a few MB; the tar is mostly headers.
"""

import argparse
import io
import os
import shutil
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mkimage  # noqa: E402

MTIME = 1700000000


class W:
    def __init__(self):
        self.buf = io.BytesIO()
        self.t = tarfile.open(fileobj=self.buf, mode="w",
                              format=tarfile.GNU_FORMAT)
        self.n = 0

    def _ti(self, name, typ, mode):
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.mtime = typ, mode, MTIME + self.n
        ti.uname = ti.gname = ""
        self.n += 1
        return ti

    def dir(self, name):
        self.t.addfile(self._ti(name, tarfile.DIRTYPE, 0o755))

    def file(self, name, data):
        ti = self._ti(name, tarfile.REGTYPE, 0o644)
        ti.size = len(data)
        self.t.addfile(ti, io.BytesIO(data))

    def symlink(self, name, target):
        ti = self._ti(name, tarfile.SYMTYPE, 0o777)
        ti.linkname = target
        self.t.addfile(ti)

    def done(self):
        self.t.close()
        return self.buf.getvalue()


def content(name, k):
    return ((name + "\n") * (k % 4))[: (k * 7) % 97].encode()


def build(outdir, entries):
    l1_target = entries * 9 // 10
    dirs = max(1, int(round((l1_target / 1000) ** 0.5 * 3)))
    subdirs = 10
    per_sub = max(1, l1_target // (dirs * subdirs) - 1)

    w = W()
    k = 0
    for i in range(dirs):
        w.dir("d%03d" % i)
        for j in range(subdirs):
            sub = "d%03d/s%02d" % (i, j)
            w.dir(sub)
            for f in range(per_sub):
                if w.n >= l1_target:
                    break
                name = "%s/f%05d.txt" % (sub, f)
                if f % 50 == 49:
                    w.symlink(name, "f%05d.txt" % (f - 1))
                else:
                    w.file(name, content(name, k))
                k += 1
    l1 = w.done()
    n1 = w.n

    w = W()
    remaining = max(0, entries - n1)
    w.dir("new")
    i = 0
    while w.n < remaining * 8 // 10:
        if i % 100 == 0:
            w.dir("new/n%04d" % (i // 100))
        name = "new/n%04d/g%03d" % (i // 100, i % 100)
        w.file(name, content(name, i))
        i += 1
    i = 0
    while w.n < remaining:
        d, s = i % dirs, (i // dirs) % subdirs
        f = i // (dirs * subdirs)
        if f >= per_sub:
            break
        name = "d%03d/s%02d/f%05d.txt" % (d, s, f)
        if i % 97 == 0:
            w.file("d%03d/s%02d/.wh.f%05d.txt" % (d, s, f), b"")
        else:
            w.file(name, b"overwritten in layer 2\n")
        i += 1
    w.file("d000/s00/.wh..wh..opq", b"")
    w.file("d000/s00/only-this", b"opaque dir\n")
    l2 = w.done()

    outdir = outdir.rstrip("/")
    if os.path.exists(outdir):
        shutil.rmtree(outdir)
    cfg = mkimage.Config(cmd=["/bin/true"])
    mkimage.write_layout(outdir, [mkimage.Image(
        [mkimage.Layer(l1, "gzip", comment="large L1"),
         mkimage.Layer(l2, "gzip", comment="large L2")], cfg)], "latest")
    print("large: wrote %s (%d + %d tar entries, %.1f MiB tar)"
          % (outdir, n1, w.n, (len(l1) + len(l2)) / (1 << 20)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--entries", type=int, default=100000)
    a = ap.parse_args()
    build(a.outdir, a.entries)


if __name__ == "__main__":
    main()
