#!/usr/bin/env python3
"""Build the "big" benchmark image: one gzip layer, ~1 GiB of tar.

    big.py OUTDIR [--mib 1024]

The tar (GNU format) holds a few thousand files under data/dNNN/: 97% small
(32 B .. 32 KiB, log-uniform), 3% large (32 KiB .. 32 MiB, log-uniform) that
carry most of the bytes, plus a symlink and a hard link per directory.  Each
file's content is one of

    random   incompressible                   (30% of large files)
    text     random words, ~3:1 with gzip -6  (35% of large, 60% of small)
    records  log lines, ~8:1                  (25% of large, 40% of small)
    zeros    all zero bytes                   (10% of large)

taken from pools generated once from a fixed seed, so the output is
deterministic.  The tar is streamed into `pigz -6 -n` (`gzip -6 -n` without
pigz); the layout is built in OUTDIR.tmp and renamed to OUTDIR when complete.
"""

import argparse
import hashlib
import math
import os
import random
import shutil
import subprocess
import sys
import tarfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "images"))
import mkimage  # noqa: E402

MiB = 1 << 20
MTIME = 1700000000
SEED = 20240101


def text_pool(rng, size):
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    vocab = ["".join(rng.choices(letters, k=rng.randint(2, 10))) for _ in range(4096)]
    weights = [1.0 / (i + 1) for i in range(len(vocab))]  # Zipf-like
    words = rng.choices(vocab, weights=weights, k=size // 5)
    lines = [" ".join(words[i:i + 12]) for i in range(0, len(words), 12)]
    return ("\n".join(lines).encode() * 2)[:size]


def record_pool(rng, size):
    out, n, t = [], 0, 0
    while n < size:
        t += rng.randint(0, 3)
        line = ("2024-01-%02d %02d:%02d:%02d host%02d api[%d]: GET /v1/items/%08x status=%d bytes=%d %dms\n"
                % (1 + t // 86400 % 28, t // 3600 % 24, t // 60 % 60, t % 60, rng.randint(0, 15),
                   rng.randint(100, 999), rng.getrandbits(32), rng.choice((200, 200, 200, 304, 404)),
                   rng.randint(0, 99999), rng.randint(0, 500))).encode()
        out.append(line)
        n += len(line)
    return b"".join(out)[:size]


def take(rng, pool, n):
    parts = []
    while n > 0:
        k = min(n, len(pool) // 2)
        off = rng.randrange(0, len(pool) - k + 1)
        parts.append(pool[off:off + k])
        n -= k
    return b"".join(parts)


def log_uniform(rng, lo, hi):
    return int(math.exp(rng.uniform(math.log(lo), math.log(hi))))


class TarOut:
    """Minimal streaming tar writer that hashes what it writes (the diff_id)."""

    def __init__(self, stream):
        self.stream, self.hash, self.size, self.entries = stream, hashlib.sha256(), 0, 0

    def _write(self, data):
        self.hash.update(data)
        self.stream.write(data)
        self.size += len(data)

    def add(self, name, typ, mode, data=b"", linkname=""):
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.mtime, ti.size = typ, mode, MTIME + self.entries, len(data)
        ti.linkname, ti.uname, ti.gname = linkname, "root", "root"
        self._write(ti.tobuf(format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape"))
        if data:
            self._write(data)
            if len(data) % 512:
                self._write(b"\0" * (512 - len(data) % 512))
        self.entries += 1

    def close(self):
        self._write(b"\0" * 1024)


def build(outdir, mib):
    rng = random.Random(SEED)
    pools = {"text": text_pool(rng, 16 * MiB), "records": record_pool(rng, 8 * MiB)}

    def content(kind, n):
        if kind == "random":
            return rng.randbytes(n)
        if kind == "zeros":
            return bytes(n)
        return take(rng, pools[kind], n)

    tmp = outdir + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    layout = mkimage.Layout(tmp)
    blob_tmp = os.path.join(tmp, "layer.tar.gz")
    compressor = ["pigz", "-6", "-n", "-c"] if shutil.which("pigz") else ["gzip", "-6", "-n", "-c"]
    with open(blob_tmp, "wb") as blob_out:
        proc = subprocess.Popen(compressor, stdin=subprocess.PIPE, stdout=blob_out)
        tar = TarOut(proc.stdin)
        target, files, d = mib * MiB, 0, -1
        tar.add("data", tarfile.DIRTYPE, 0o755)
        while tar.size < target:
            if files % 64 == 0:
                d += 1
                tar.add("data/d%03d" % d, tarfile.DIRTYPE, 0o755)
            name = "data/d%03d/f%05d" % (d, files)
            if rng.random() < 0.97:
                kind = rng.choices(("text", "records"), (60, 40))[0]
                data = content(kind, log_uniform(rng, 32, 32 * 1024))
            else:
                kind = rng.choices(("random", "text", "records", "zeros"), (30, 35, 25, 10))[0]
                data = content(kind, log_uniform(rng, 32 * 1024, 32 * MiB))
            tar.add(name + "." + kind, tarfile.REGTYPE, 0o644, data)
            if files % 64 == 1:
                prev = "f%05d.%s" % (files, kind)
                tar.add(name + ".sym", tarfile.SYMTYPE, 0o777, linkname=prev)
                tar.add(name + ".hard", tarfile.LNKTYPE, 0o644, linkname=name + "." + kind)
            files += 1
        tar.close()
        proc.stdin.close()
        if proc.wait() != 0:
            sys.exit("big: %s failed" % compressor[0])

    h = hashlib.sha256()
    with open(blob_tmp, "rb") as f:
        for chunk in iter(lambda: f.read(4 * MiB), b""):
            h.update(chunk)
    blob_size = os.path.getsize(blob_tmp)
    os.rename(blob_tmp, os.path.join(layout.blobdir, h.hexdigest()))
    desc = {"mediaType": mkimage.MT_LAYER_GZIP, "digest": "sha256:" + h.hexdigest(), "size": blob_size}
    image = mkimage.Image([mkimage.Layer(b"", "none", comment="big.py %d MiB" % mib)],
                          mkimage.Config(cmd=["/bin/true"]))
    manifest = layout.put_image(image, layer_descs=[desc], diff_ids=["sha256:" + tar.hash.hexdigest()])
    manifest["annotations"] = {mkimage.REF_NAME: "latest"}
    layout.write_index([manifest])
    shutil.rmtree(outdir, ignore_errors=True)
    os.rename(tmp, outdir)
    print("big: wrote %s (%d tar entries, %.1f MiB tar, %.1f MiB gzip)"
          % (outdir, tar.entries, tar.size / MiB, blob_size / MiB))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--mib", type=int, default=1024)
    a = ap.parse_args()
    build(a.outdir.rstrip("/"), a.mib)


if __name__ == "__main__":
    main()
