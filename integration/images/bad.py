#!/usr/bin/env python3
"""Build bad-input OCI layouts for `clip index` error handling tests.

    bad.py OUTDIR

Every case is its own layout OUTDIR/NAME (tag "latest").  Each has two
layers: a good gzip layer first and then the layer under test, so an error
message must name the *second* layer's digest.

OUTDIR/cases.txt, one line per case, fields separated by one space:

    NAME expect-error DIGEST KIND
    NAME expect-ok - -

  DIGEST  the layer digest (as in the manifest) that the single
          "clip: error:" line must name;
  KIND    "stream" - an error found while decoding the layer stream; the
                     error line must also give the offset;
          "layer"  - a whole-layer problem (digest/size/diff_id mismatch,
                     missing blob, bad path), no offset required.

OUTDIR/NAME.cat (expect-ok cases only, optional): lines "PATH<TAB>TEXT";
`clip cat IMAGE PATH` must print exactly TEXT plus a newline.

Cases:
  gzip-truncated            gzip blob cut at 60%; digest/size describe the
                            truncated blob, so only inflate can notice
  gzip-corrupt              bytes in the middle of the deflate data changed
                            so that inflate fails; digest fixed up
  gzip-corrupt-bad-digest   same corrupt blob, but stored under the original
                            (now wrong) digest
  gzip-bad-crc              deflate data fine, CRC32 in the gzip trailer wrong
  zstd-truncated            zstd blob cut at 60%, digest fixed up
  digest-mismatch           valid gzip layer whose sha256 differs from the
                            manifest digest (size and diff_id match the blob)
  size-mismatch             manifest size is one byte more than the blob
  missing-blob              manifest names a blob that is not in blobs/
  diffid-mismatch           config rootfs.diff_ids[1] is not the sha256 of
                            the uncompressed layer
  tar-bad-checksum          2nd tar header's checksum field is wrong
  tar-bad-octal-size        size field contains a non-octal digit
  tar-negative-size         size field is GNU base-256 and negative
  tar-huge-size             size field is base-256 2**62 (beyond the stream)
  tar-truncated             uncompressed layer cut in the middle of file data
  dotdot                    entry named "../x"
  dotdot-nested             entry named "a/../../x"
  absolute-path (ok)        entry named "/abs/x".  NOT an error: like umoci
                            (CleanPath) and every container runtime, clip
                            confines it to the image root as "abs/x".
  tar-no-eof-marker (ok)    tar stream ends right after the last entry's
                            data, without the two zero blocks (Go's
                            archive/tar, GNU tar and umoci accept this)
  empty-layer (ok)          a layer that is just the end-of-archive marker
"""

import gzip
import io
import os
import shutil
import sys
import tarfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mkimage  # noqa: E402
from mkimage import sha256, MT_LAYER_GZIP, MT_LAYER_ZSTD, MT_LAYER_TAR  # noqa


def mktar(entries, fmt=tarfile.GNU_FORMAT, eof=True):
    """entries: list of (name, bytes-content | None for dir)."""
    buf = io.BytesIO()
    t = tarfile.open(fileobj=buf, mode="w", format=fmt)
    for name, data in entries:
        ti = tarfile.TarInfo(name)
        ti.mtime = 1700000000
        ti.uname = ti.gname = ""
        if data is None:
            ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            t.addfile(ti)
        else:
            ti.mode, ti.size = 0o644, len(data)
            t.addfile(ti, io.BytesIO(data))
    t.close()
    raw = buf.getvalue()
    if not eof:
        # cut the end-of-archive blocks and tarfile's record padding
        end = 0
        for off in range(0, len(raw), 512):
            if raw[off:off + 512] != b"\0" * 512:
                end = off + 512
        raw = raw[:end]
    return raw


def fix_checksum(hdr):
    hdr = bytearray(hdr)
    hdr[148:156] = b" " * 8
    hdr[148:156] = b"%06o\0 " % sum(hdr)
    return bytes(hdr)


def patch_header(tar, index, field_off, value, keep_checksum=True):
    """Overwrite bytes of the index-th 512-byte header block."""
    off = index * 512
    hdr = bytearray(tar[off:off + 512])
    hdr[field_off:field_off + len(value)] = value
    hdr = bytes(hdr)
    if keep_checksum:
        hdr = fix_checksum(hdr)
    return tar[:off] + hdr + tar[off + 512:]


BIG = bytes((i * 7 + (i >> 8)) & 0xFF for i in range(300000))  # compressible-ish


def base_layer():
    return mktar([("base", None), ("base/hello", b"hello from the good layer\n")])


def payload_tar():
    return mktar([("data", None), ("data/a.txt", b"A" * 1000 + b"\n"),
                  ("data/big.bin", BIG), ("data/z.txt", b"zzz\n")])


def corrupt_deflate(blob):
    """Change bytes in the middle of the deflate data until inflate itself
    (not the CRC check) fails.  Deterministic."""
    mid = len(blob) // 2
    for delta in range(0, len(blob) // 2 - 20):
        for pos in (mid + delta, mid - delta):
            b = bytearray(blob)
            for k in range(4):
                b[pos + k] ^= 0xA5
            try:
                zlib.decompressobj(wbits=31).decompress(bytes(b))
            except zlib.error as e:
                if "invalid" in str(e):
                    return bytes(b), pos
    raise RuntimeError("could not corrupt deflate stream")


class Case:
    def __init__(self, outdir, name):
        self.name = name
        self.dir = os.path.join(outdir, name)
        self.lay = mkimage.Layout(self.dir)
        self.base = base_layer()
        self.base_desc = self.lay.put_blob(mkimage.gzip_single(self.base),
                                           MT_LAYER_GZIP)

    def finish(self, desc, diff_id, image=None):
        image = image or mkimage.Image([], mkimage.Config(cmd=["/bin/true"]))
        image.layers = [mkimage.Layer(self.base, "gzip", comment="good"),
                        mkimage.Layer(b"", "none", comment=self.name)]
        m = self.lay.put_image(image, layer_descs=[self.base_desc, desc],
                               diff_ids=[sha256(self.base), diff_id])
        m["annotations"] = {mkimage.REF_NAME: "latest"}
        self.lay.write_index([m])
        return desc["digest"]


def build(outdir):
    outdir = outdir.rstrip("/")
    if os.path.exists(outdir):
        shutil.rmtree(outdir)
    os.makedirs(outdir)
    lines = []

    def err(name, digest, kind):
        lines.append("%s expect-error %s %s" % (name, digest, kind))

    def ok(name, cat=None):
        lines.append("%s expect-ok - -" % name)
        if cat:
            with open(os.path.join(outdir, name + ".cat"), "w") as f:
                for p, text in cat:
                    f.write("%s\t%s\n" % (p, text))

    tar = payload_tar()
    gz = mkimage.gzip_single(tar)

    c = Case(outdir, "gzip-truncated")
    err(c.name, c.finish(c.lay.put_blob(gz[:len(gz) * 6 // 10],
                                        MT_LAYER_GZIP), sha256(tar)), "stream")

    bad, _pos = corrupt_deflate(gz)
    c = Case(outdir, "gzip-corrupt")
    err(c.name, c.finish(c.lay.put_blob(bad, MT_LAYER_GZIP), sha256(tar)),
        "stream")

    c = Case(outdir, "gzip-corrupt-bad-digest")
    d = sha256(gz)
    c.lay.put_blob_at(d, bad)
    err(c.name, c.finish({"mediaType": MT_LAYER_GZIP, "digest": d,
                          "size": len(bad)}, sha256(tar)), "stream")

    c = Case(outdir, "gzip-bad-crc")
    b = bytearray(gz)
    b[-8] ^= 0xFF
    err(c.name, c.finish(c.lay.put_blob(bytes(b), MT_LAYER_GZIP),
                         sha256(tar)), "stream")

    c = Case(outdir, "zstd-truncated")
    zs = mkimage.zstd_compress(tar)
    err(c.name, c.finish(c.lay.put_blob(zs[:len(zs) * 6 // 10],
                                        MT_LAYER_ZSTD), sha256(tar)), "stream")

    c = Case(outdir, "digest-mismatch")
    other = mktar([("data", None), ("data/a.txt", b"B" * 1000 + b"\n"),
                   ("data/big.bin", BIG), ("data/z.txt", b"zzz\n")])
    ogz = mkimage.gzip_single(other)
    d = sha256(gz)
    c.lay.put_blob_at(d, ogz)
    err(c.name, c.finish({"mediaType": MT_LAYER_GZIP, "digest": d,
                          "size": len(ogz)}, sha256(other)), "layer")

    c = Case(outdir, "size-mismatch")
    desc = c.lay.put_blob(gz, MT_LAYER_GZIP)
    desc["size"] += 1
    err(c.name, c.finish(desc, sha256(tar)), "layer")

    c = Case(outdir, "missing-blob")
    desc = {"mediaType": MT_LAYER_GZIP, "digest": sha256(gz), "size": len(gz)}
    err(c.name, c.finish(desc, sha256(tar)), "layer")

    c = Case(outdir, "diffid-mismatch")
    err(c.name, c.finish(c.lay.put_blob(gz, MT_LAYER_GZIP),
                         sha256(tar + b"x")), "layer")

    # tar header corruption; header 0 is "data/", header 1 is "data/a.txt"
    def tar_case(name, t, kind="stream", compression="gzip"):
        c = Case(outdir, name)
        blob, mt = mkimage.compress(t, compression)
        err(name, c.finish(c.lay.put_blob(blob, mt), sha256(t)), kind)

    t = bytearray(tar)
    t[512 + 148:512 + 154] = b"%06o" % ((int(bytes(t[512 + 148:512 + 154]), 8)
                                          + 1) & 0o777777)
    tar_case("tar-bad-checksum", bytes(t))
    tar_case("tar-bad-octal-size",
             patch_header(tar, 1, 124, b"0000000179\0"))
    tar_case("tar-negative-size",
             patch_header(tar, 1, 124, b"\xff" * 11 + b"\xf0"))
    tar_case("tar-huge-size",
             patch_header(tar, 1, 124, b"\x80" + (1 << 62).to_bytes(11, "big")))
    tar_case("tar-truncated", tar[:512 * 2 + 600], compression="none")
    tar_case("dotdot", mktar([("ok", b"fine\n"), ("../x", b"escape\n")]),
             kind="layer")
    tar_case("dotdot-nested",
             mktar([("a", None), ("a/../../x", b"escape\n")]), kind="layer")

    # expect-ok cases
    c = Case(outdir, "absolute-path")
    t = mktar([("/abs", None), ("/abs/x", b"confined\n")])
    c.finish(c.lay.put_blob(mkimage.gzip_single(t), MT_LAYER_GZIP), sha256(t))
    ok(c.name, cat=[("/abs/x", "confined"), ("/base/hello",
                                              "hello from the good layer")])

    c = Case(outdir, "tar-no-eof-marker")
    t = mktar([("noeof", None), ("noeof/f", b"no end-of-archive marker\n")],
              eof=False)
    assert len(t) % 512 == 0 and t[-512:] != b"\0" * 512
    c.finish(c.lay.put_blob(mkimage.gzip_single(t), MT_LAYER_GZIP), sha256(t))
    ok(c.name, cat=[("/noeof/f", "no end-of-archive marker")])

    c = Case(outdir, "empty-layer")
    t = b"\0" * 1024
    c.finish(c.lay.put_blob(mkimage.gzip_single(t), MT_LAYER_GZIP), sha256(t))
    ok(c.name, cat=[("/base/hello", "hello from the good layer")])

    with open(os.path.join(outdir, "cases.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("bad: wrote %d cases to %s" % (len(lines), outdir))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: bad.py OUTDIR")
    build(sys.argv[1])
