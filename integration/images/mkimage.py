#!/usr/bin/env python3
"""Minimal, deterministic OCI image-layout writer (Python stdlib only).

Library use (from the other builders in this directory):

    import mkimage
    layers = [mkimage.Layer(tar_bytes, "gzip"),
              mkimage.Layer(tar_bytes2, "gzip-multimember", members=3),
              mkimage.Layer(tar_bytes3, "zstd"),
              mkimage.Layer(tar_bytes4, "none")]
    cfg = mkimage.Config(entrypoint=["/bin/sh"], cmd=["-c", "true"],
                         env=["PATH=/usr/bin:/bin"], workdir="/", user="0:0")
    mkimage.write_layout("OUTDIR", [mkimage.Image(layers, cfg)], tag="latest")

    # multi-platform: index.json -> nested image index -> one manifest per
    # platform (linux/amd64 and linux/arm64 here)
    mkimage.write_layout("OUTDIR", [mkimage.Image(l1, cfg, arch="amd64"),
                                    mkimage.Image(l2, cfg, arch="arm64",
                                                  variant="v8")],
                         tag="latest", multi_platform=True)

Command line:

    mkimage.py OUTDIR --layer ROOTFS.tar[:COMPRESSION] [--layer ...]
               [--tag latest] [--entrypoint JSON] [--cmd JSON]
               [--env K=V ...] [--workdir DIR] [--user USER]
               [--arch amd64] [--multi-platform]

COMPRESSION is one of: gzip (default), gzip-multimember[:N] (N concatenated
gzip members, split at arbitrary non-block-aligned points; default N=3),
zstd, zstd-multiframe[:N] (N concatenated zstd frames), none.

--multi-platform writes a nested image index with a linux/amd64 and a
linux/arm64 (variant v8) manifest.  Both use the given layers plus one extra
small uncompressed layer that contains /.clip-platform whose content is the
architecture name ("amd64\n" / "arm64\n"), so a test can tell which manifest
was selected.

Everything is deterministic: gzip headers carry mtime 0 and no file name,
JSON is serialised with sorted keys, the config "created" date is fixed.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import zlib

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
REF_NAME = "org.opencontainers.image.ref.name"
CREATED = "2024-01-01T00:00:00Z"

COMPRESSIONS = ("gzip", "gzip-multimember", "zstd", "zstd-multiframe", "none")


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


# --------------------------------------------------------------------------
# compression


def gzip_single(data, level=6):
    """One gzip member, mtime 0, no FNAME, OS byte 255 (Python's default)."""
    return gzip.compress(data, compresslevel=level, mtime=0)


def split_points(length, parts):
    """Deterministic, deliberately unaligned split points (not multiples of
    512 and not at tar header boundaries in general)."""
    if parts <= 1 or length == 0:
        return []
    pts = []
    for i in range(1, parts):
        p = (length * i) // parts
        p += 37 * i + 1  # knock it off any 512-byte boundary
        p = min(max(p, 1), length - 1) if length > 1 else 0
        pts.append(p)
    return sorted(set(pts))


def split(data, parts):
    pts = [0] + split_points(len(data), parts) + [len(data)]
    return [data[a:b] for a, b in zip(pts, pts[1:])]


def gzip_multimember(data, members=3, level=6):
    """Several gzip members concatenated (RFC 1952 section 2.2).  The
    uncompressed stream is split at arbitrary byte offsets, so a member
    boundary usually falls in the middle of a tar header or file."""
    return b"".join(gzip_single(chunk, level) for chunk in split(data, members))


def zstd_compress(data, level=3):
    r = subprocess.run(["zstd", "-q", "-c", "-%d" % level, "--no-progress"],
                       input=data, stdout=subprocess.PIPE, check=True)
    return r.stdout


def zstd_multiframe(data, frames=3, level=3):
    return b"".join(zstd_compress(chunk, level) for chunk in split(data, frames))


def compress(data, compression, parts=3):
    """Return (blob bytes, layer media type)."""
    if compression == "gzip":
        return gzip_single(data), MT_LAYER_GZIP
    if compression == "gzip-multimember":
        return gzip_multimember(data, parts), MT_LAYER_GZIP
    if compression == "zstd":
        return zstd_compress(data), MT_LAYER_ZSTD
    if compression == "zstd-multiframe":
        return zstd_multiframe(data, parts), MT_LAYER_ZSTD
    if compression == "none":
        return bytes(data), MT_LAYER_TAR
    raise ValueError("unknown compression %r" % compression)


def decompress(blob, media_type):
    """Inverse of compress() (used for recompression / sanity checks)."""
    if media_type == MT_LAYER_TAR:
        return blob
    if media_type == MT_LAYER_GZIP:
        return gzip.decompress(blob)  # handles multi-member
    if media_type == MT_LAYER_ZSTD:
        r = subprocess.run(["zstd", "-q", "-d", "-c"], input=blob,
                           stdout=subprocess.PIPE, check=True)
        return r.stdout
    raise ValueError("unknown media type %r" % media_type)


# --------------------------------------------------------------------------
# model


class Layer:
    def __init__(self, tar_bytes, compression="gzip", members=3,
                 comment=None):
        if compression not in COMPRESSIONS:
            raise ValueError("unknown compression %r" % compression)
        self.tar = bytes(tar_bytes)
        self.compression = compression
        self.members = members
        self.comment = comment or compression

    @property
    def diff_id(self):
        return sha256(self.tar)


class Config:
    def __init__(self, entrypoint=None, cmd=None, env=None, workdir=None,
                 user=None, labels=None):
        self.entrypoint = entrypoint
        self.cmd = cmd
        self.env = env
        self.workdir = workdir
        self.user = user
        self.labels = labels

    def image_config(self):
        c = {}
        if self.entrypoint is not None:
            c["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            c["Cmd"] = list(self.cmd)
        if self.env is not None:
            c["Env"] = list(self.env)
        if self.workdir is not None:
            c["WorkingDir"] = self.workdir
        if self.user is not None:
            c["User"] = self.user
        if self.labels:
            c["Labels"] = dict(self.labels)
        return c


class Image:
    def __init__(self, layers, config=None, os_="linux", arch="amd64",
                 variant=None):
        self.layers = list(layers)
        self.config = config or Config()
        self.os = os_
        self.arch = arch
        self.variant = variant

    def platform(self):
        p = {"architecture": self.arch, "os": self.os}
        if self.variant:
            p["variant"] = self.variant
        return p


# --------------------------------------------------------------------------
# layout writer (low level pieces are public so bad.py can misuse them)


class Layout:
    def __init__(self, outdir):
        self.outdir = outdir
        self.blobdir = os.path.join(outdir, "blobs", "sha256")
        os.makedirs(self.blobdir, exist_ok=True)
        with open(os.path.join(outdir, "oci-layout"), "w") as f:
            f.write('{"imageLayoutVersion":"1.0.0"}')

    def put_blob_at(self, digest, data):
        """Write data under an arbitrary digest name (may be a lie)."""
        assert digest.startswith("sha256:")
        path = os.path.join(self.blobdir, digest[len("sha256:"):])
        with open(path, "wb") as f:
            f.write(data)
        return path

    def put_blob(self, data, media_type, annotations=None):
        d = sha256(data)
        self.put_blob_at(d, data)
        desc = {"mediaType": media_type, "digest": d, "size": len(data)}
        if annotations:
            desc["annotations"] = dict(annotations)
        return desc

    def put_json(self, obj, media_type):
        return self.put_blob(canonical_json(obj), media_type)

    def write_index(self, descriptors):
        idx = {"schemaVersion": 2, "mediaType": MT_INDEX,
               "manifests": descriptors}
        with open(os.path.join(self.outdir, "index.json"), "wb") as f:
            f.write(canonical_json(idx))

    def put_layer(self, layer):
        blob, mt = compress(layer.tar, layer.compression, layer.members)
        return self.put_blob(blob, mt)

    def put_image(self, image, layer_descs=None, diff_ids=None):
        """Write layers, config and manifest; return manifest descriptor
        (without annotations/platform)."""
        if layer_descs is None:
            layer_descs = [self.put_layer(l) for l in image.layers]
        if diff_ids is None:
            diff_ids = [l.diff_id for l in image.layers]
        cfg = {
            "created": CREATED,
            "architecture": image.arch,
            "os": image.os,
            "config": image.config.image_config(),
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": CREATED,
                         "created_by": "mkimage.py: %s" % l.comment}
                        for l in image.layers],
        }
        if image.variant:
            cfg["variant"] = image.variant
        cfg_desc = self.put_json(cfg, MT_CONFIG)
        manifest = {"schemaVersion": 2, "mediaType": MT_MANIFEST,
                    "config": cfg_desc, "layers": layer_descs}
        return self.put_json(manifest, MT_MANIFEST)


def write_layout(outdir, images, tag="latest", multi_platform=False):
    """Write an OCI image layout.  Single image: index.json points at the
    manifest.  multi_platform=True: index.json points at a nested image index
    that lists one manifest per image with its platform."""
    lay = Layout(outdir)
    ann = {REF_NAME: tag}
    if not multi_platform:
        if len(images) != 1:
            raise ValueError("several images need multi_platform=True")
        desc = lay.put_image(images[0])
        desc["annotations"] = ann
        lay.write_index([desc])
        return lay
    descs = []
    for img in images:
        d = lay.put_image(img)
        d["platform"] = img.platform()
        descs.append(d)
    nested = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": descs}
    idesc = lay.put_json(nested, MT_INDEX)
    idesc["annotations"] = ann
    lay.write_index([idesc])
    return lay


def platform_marker_layer(arch):
    """A tiny uncompressed layer holding /.clip-platform = arch."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        data = (arch + "\n").encode()
        ti = tarfile.TarInfo(".clip-platform")
        ti.size = len(data)
        ti.mode = 0o644
        ti.mtime = 1700000000
        t.addfile(ti, io.BytesIO(data))
    return Layer(buf.getvalue(), "none", comment="platform marker " + arch)


# --------------------------------------------------------------------------
# CLI


def parse_layer_arg(s):
    path, comp, n = s, "gzip", 3
    # the compression suffix is recognised only if it is a known name
    if ":" in s:
        head, tail = s.rsplit(":", 1)
        if tail.isdigit() and ":" in head:
            head2, tail2 = head.rsplit(":", 1)
            if tail2 in COMPRESSIONS:
                return head2, tail2, int(tail)
        if tail in COMPRESSIONS:
            path, comp = head, tail
    return path, comp, n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--layer", action="append", required=True,
                    metavar="TAR[:COMPRESSION[:N]]")
    ap.add_argument("--tag", default="latest")
    ap.add_argument("--entrypoint", type=json.loads, metavar="JSON")
    ap.add_argument("--cmd", type=json.loads, metavar="JSON")
    ap.add_argument("--env", action="append", metavar="K=V")
    ap.add_argument("--workdir")
    ap.add_argument("--user")
    ap.add_argument("--arch", default="amd64")
    ap.add_argument("--multi-platform", action="store_true")
    a = ap.parse_args(argv)

    layers = []
    for spec in a.layer:
        path, comp, n = parse_layer_arg(spec)
        with open(path, "rb") as f:
            layers.append(Layer(f.read(), comp, n,
                                comment="%s %s" % (os.path.basename(path),
                                                   comp)))
    cfg = Config(entrypoint=a.entrypoint, cmd=a.cmd, env=a.env,
                 workdir=a.workdir, user=a.user)
    if a.multi_platform:
        images = [Image(layers + [platform_marker_layer("amd64")], cfg,
                        arch="amd64"),
                  Image(layers + [platform_marker_layer("arm64")], cfg,
                        arch="arm64", variant="v8")]
        write_layout(a.outdir, images, a.tag, multi_platform=True)
    else:
        write_layout(a.outdir, [Image(layers, cfg, arch=a.arch)], a.tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
