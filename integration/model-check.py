#!/usr/bin/env python3
"""Independent reference: merge an OCI image's layers in memory (a small
Python model of the OCI layer rules) and compare the result against an
extracted tree.

    model-check.py LAYOUT[:TAG] ROOT [--mtime-exceptions FILE] [--list]

Needs no umoci, so it also works for zstd layouts.  Model rules:
  * all whiteouts of layer N (.wh.NAME, DIR/.wh..wh..opq) apply to the
    state after layer N-1 only, wherever they sit in layer N's tar;
  * an entry replaces whatever is at its path (and everything below it),
    except dir-over-dir, which only replaces the directory's metadata;
  * a hardlink shares the inode of its target as it is at that moment;
  * missing parents are created implicitly (0755, 0:0, mtime not compared);
  * contents of top-level proc/ sys/ dev/ are ignored.
Output format and exit status are the same as compare-trees.py.  --list
prints the merged model instead of comparing.
"""

import argparse
import hashlib
import importlib.util
import io
import json
import os
import stat
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "images"))
import mkimage  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "compare_trees", os.path.join(HERE, "compare-trees.py"))
ct = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ct)

WH = b".wh."
OPQ = b".wh..wh..opq"


class Node:
    __slots__ = ("kind", "mode", "uid", "gid", "mtime_ns", "xattrs", "size",
                 "sha", "target", "rdev", "implicit")

    def __init__(self, kind, **kw):
        self.kind = kind
        self.mode, self.uid, self.gid, self.mtime_ns = 0o755, 0, 0, None
        self.xattrs, self.size, self.sha = {}, 0, None
        self.target, self.rdev, self.implicit = None, None, False
        for k, v in kw.items():
            setattr(self, k, v)


def read_blob(layout, digest):
    with open(os.path.join(layout, "blobs", "sha256",
                           digest.split(":", 1)[1]), "rb") as f:
        return f.read()


def layer_tars(layout, tag):
    with open(os.path.join(layout, "index.json")) as f:
        idx = json.load(f)
    cands = [m for m in idx["manifests"]
             if m.get("annotations", {}).get(mkimage.REF_NAME) == tag]
    if not cands:
        sys.exit("model-check: tag %r not found in %s" % (tag, layout))
    desc = cands[0]
    while desc["mediaType"] == mkimage.MT_INDEX:
        nested = json.loads(read_blob(layout, desc["digest"]))
        desc = [m for m in nested["manifests"]
                if m.get("platform", {}).get("architecture") == "amd64"][0]
    man = json.loads(read_blob(layout, desc["digest"]))
    for l in man["layers"]:
        yield mkimage.decompress(read_blob(layout, l["digest"]),
                                 l["mediaType"])


def norm(name):
    b = name.encode("utf-8", "surrogateescape") if isinstance(name, str) \
        else name
    b = os.path.normpath(b"/" + b).lstrip(b"/")
    return b if b else b"."


def parent(p):
    d = os.path.dirname(p)
    return d if d else b"."


def pax_ns(ti):
    s = ti.pax_headers.get("mtime")
    if s is None:
        return int(ti.mtime) * 10 ** 9
    neg = s.startswith("-")
    s = s.lstrip("-")
    sec, _, frac = s.partition(".")
    ns = int(sec or "0") * 10 ** 9 + int((frac + "0" * 9)[:9])
    return -ns if neg else ns


def xattrs_of(ti):
    out = {}
    for k, v in ti.pax_headers.items():
        if k.startswith("SCHILY.xattr."):
            out[k[len("SCHILY.xattr."):]] = v.encode("utf-8", "surrogateescape")
    return out


def special(p):
    top = p.split(b"/", 1)[0]
    return top in ct.SPECIAL_TOP and p != top


class Model:
    def __init__(self):
        self.state = {b".": Node("dir", implicit=True)}
        self.children = {b".": set()}   # dir path -> set of child paths

    def put(self, p, node):
        self.state[p] = node
        if p != b".":
            self.children[parent(p)].add(p)
        if node.kind == "dir":
            self.children.setdefault(p, set())

    def remove_tree(self, p, keep_self=False):
        if p not in self.state:
            return
        for c in list(self.children.get(p, ())):
            self.remove_tree(c)
        if keep_self or p == b".":
            return
        del self.state[p]
        self.children.pop(p, None)
        self.children[parent(p)].discard(p)

    def ensure_parents(self, p):
        anc = []
        d = parent(p)
        while d not in self.state:
            anc.append(d)
            d = parent(d)
        if self.state[d].kind != "dir":
            raise SystemExit("model-check: parent %r of %r is a %s (not "
                             "modelled)" % (d, p, self.state[d].kind))
        for a in reversed(anc):
            self.put(a, Node("dir", implicit=True))

    def apply_layer(self, tar_bytes):
        tf = tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:",
                          encoding="utf-8", errors="surrogateescape")
        entries = []
        for ti in tf:
            data = tf.extractfile(ti).read() if ti.isreg() else None
            entries.append((ti, norm(ti.name), data))
        # 1. whiteouts against the lower state
        for ti, p, _ in entries:
            base = os.path.basename(p)
            if base == OPQ:
                d = parent(p)
                if d in self.state and self.state[d].kind == "dir":
                    self.remove_tree(d, keep_self=True)
            elif base.startswith(WH):
                self.remove_tree(os.path.join(parent(p), base[len(WH):]))
        # 2. the entries themselves, in order
        for ti, p, data in entries:
            if os.path.basename(p).startswith(WH):
                continue
            if p != b".":
                self.ensure_parents(p)
            old = self.state.get(p)
            if ti.islnk():
                tgt = self.state.get(norm(ti.linkname))
                if tgt is None:
                    raise SystemExit("model-check: hardlink %r -> missing %r"
                                     % (p, ti.linkname))
                self.remove_tree(p)
                self.put(p, tgt)
                continue
            meta = dict(mode=ti.mode & 0o7777, uid=ti.uid, gid=ti.gid,
                        mtime_ns=pax_ns(ti), xattrs=xattrs_of(ti))
            if ti.isdir():
                if old is not None and old.kind == "dir":
                    for k, v in meta.items():
                        setattr(old, k, v)
                    old.implicit = False
                    continue
                node = Node("dir", **meta)
            elif ti.isreg():
                node = Node("file", size=len(data),
                            sha=hashlib.sha256(data).hexdigest(), **meta)
            elif ti.issym():
                node = Node("symlink",
                            target=ti.linkname.encode("utf-8",
                                                      "surrogateescape"),
                            **meta)
            elif ti.ischr() or ti.isblk():
                node = Node("chardev" if ti.ischr() else "blockdev",
                            rdev=os.makedev(ti.devmajor, ti.devminor), **meta)
            elif ti.isfifo():
                node = Node("fifo", **meta)
            else:
                raise SystemExit("model-check: unsupported entry %r type %r"
                                 % (p, ti.type))
            if p == b".":
                if node.kind != "dir":
                    raise SystemExit("model-check: root is not a dir")
            if p != b".":
                self.remove_tree(p)
            self.put(p, node)


def groups(state):
    by_id = {}
    for p, n in state.items():
        if n.kind != "dir":
            by_id.setdefault(id(n), set()).add(p)
    out = {}
    for g in by_id.values():
        fs = frozenset(g)
        for p in g:
            out[p] = fs
    return out


def compare(model, root, exceptions, report=print):
    state = {p: n for p, n in model.state.items() if not special(p)}
    tree = ct.walk(root)
    rootb = os.fsencode(root)
    mg, tg = groups(state), ct.hardlink_groups(tree, rootb)
    nd = 0

    def diff(p, field, a, b):
        nonlocal nd
        nd += 1
        report("%s: %s model=%s tree=%s" % (ct.show(p), field, a, b))

    for p in sorted(set(state) | set(tree)):
        n, st = state.get(p), tree.get(p)
        if n is None or st is None:
            diff(p, "exists", "yes" if n else "no", "yes" if st else "no")
            continue
        kind = ct.ftype(st.st_mode)
        if n.kind != kind:
            diff(p, "type", n.kind, kind)
            continue
        if p in ct.SPECIAL_TOP:
            continue
        full = os.path.join(rootb, p) if p != b"." else rootb
        if kind != "symlink" and n.mode != stat.S_IMODE(st.st_mode):
            diff(p, "mode", "%04o" % n.mode, ct.fmt_mode(st.st_mode))
        if n.uid != st.st_uid:
            diff(p, "uid", n.uid, st.st_uid)
        if n.gid != st.st_gid:
            diff(p, "gid", n.gid, st.st_gid)
        if not n.implicit and not (kind == "dir" and p in exceptions) \
                and n.mtime_ns != st.st_mtime_ns:
            diff(p, "mtime_ns", n.mtime_ns, st.st_mtime_ns)
        tx = ct.xattrs(full)
        if {k: v for k, v in n.xattrs.items()
                if not k.startswith("trusted.")} != tx:
            diff(p, "xattrs", ct.fmt_xattrs(n.xattrs), ct.fmt_xattrs(tx))
        if kind == "file":
            if n.size != st.st_size:
                diff(p, "size", n.size, st.st_size)
            elif n.sha != ct.digest(full):
                diff(p, "sha256", n.sha, ct.digest(full))
        elif kind == "symlink" and n.target != os.readlink(full):
            diff(p, "target", ct.show(n.target), ct.show(os.readlink(full)))
        elif kind in ("chardev", "blockdev") and n.rdev != st.st_rdev:
            diff(p, "rdev", n.rdev, st.st_rdev)
        if kind != "dir":
            a = mg.get(p, frozenset([p]))
            b = tg.get(p, frozenset([p]))
            if a != b:
                diff(p, "hardlinks", ct.fmt_group(a), ct.fmt_group(b))
    return nd, len(set(state) | set(tree))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("layout", help="LAYOUT_DIR[:TAG]")
    ap.add_argument("root", nargs="?")
    ap.add_argument("--mtime-exceptions")
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    layout, tag = a.layout, "latest"
    if ":" in os.path.basename(layout):
        layout, tag = layout.rsplit(":", 1)
    m = Model()
    for t in layer_tars(layout, tag):
        m.apply_layer(t)
    if a.list or not a.root:
        for p in sorted(m.state):
            n = m.state[p]
            print("%-8s %04o %d:%d %s %s%s" % (
                n.kind, n.mode, n.uid, n.gid,
                "implicit" if n.implicit else n.mtime_ns, ct.show(p),
                " -> " + ct.show(n.target) if n.target else ""))
        return 0
    nd, n = compare(m, a.root, ct.load_exceptions(a.mtime_exceptions))
    print("model-check: %d difference(s) in %d path(s) compared" % (nd, n))
    return 1 if nd else 0


if __name__ == "__main__":
    sys.exit(main())
