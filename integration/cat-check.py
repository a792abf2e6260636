#!/usr/bin/env python3
"""Random byte-range checks of `clip cat` against a reference tree.

    cat-check.py CLIP IMAGE.clip REF_ROOT [--count 50] [--seed N]

For COUNT (path, offset, length) triples it runs

    CLIP cat IMAGE.clip /PATH | dd iflag=skip_bytes,count_bytes,fullblock skip=OFF count=LEN

(the rest of clip's output is drained, so clip never sees SIGPIPE) and
compares the bytes with REF_ROOT/PATH[OFF:OFF+LEN].  clip must exit 0.

Choice of triples: first every file whose name is not valid UTF-8 (up to
5, whole file), one empty file and the largest file (whole); then about a third of the checks go to files larger than
1 MiB, with ranges that straddle multiples of 1 MiB (and so any power-of-two
span boundary up to 1 MiB granularity); the rest are random regular files
with random offsets (sometimes 0, sometimes reaching past EOF) and lengths
from 1 byte to several MiB.  Every file under top-level proc/ sys/ dev/ is
left out.  Prints one line per failure and a summary; exit 1 on failure.
"""

import argparse
import os
import random
import stat
import subprocess
import sys

MiB = 1 << 20
SCRIPT = r'''
"$1" cat "$2" "$3" 2>"$6" |
  { dd iflag=skip_bytes,count_bytes,fullblock skip="$4" count="$5" bs=1M status=none
    cat >/dev/null; }
exit "${PIPESTATUS[0]}"
'''


def regular_files(root):
    rootb = os.fsencode(root)
    out = []
    for dirpath, dirnames, filenames in os.walk(rootb):
        rel = os.path.relpath(dirpath, rootb)
        if rel == b".":
            dirnames[:] = [d for d in dirnames
                           if d not in (b"proc", b"sys", b"dev")]
        for f in filenames:
            p = os.path.join(dirpath, f)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                out.append((os.path.relpath(p, rootb), st.st_size))
    out.sort()
    return out


def utf8(b):
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def plan(files, count, rng):
    big = [f for f in files if f[1] > MiB]
    checks = []
    # fixed picks first: names that are not UTF-8 (path arguments must be
    # passed through as bytes), an empty file, the largest file in full
    for p, size in [f for f in files if not utf8(f[0])][:5]:
        checks.append((p, size, 0, size + 1))
    empty = [f for f in files if f[1] == 0]
    if empty:
        checks.append((empty[0][0], 0, 0, 10))
    largest = max(files, key=lambda f: f[1])
    checks.append((largest[0], largest[1], 0, largest[1]))
    checks = checks[:count]
    n_big = count // 3 if big else 0
    for _ in range(min(n_big, count - len(checks))):
        p, size = rng.choice(big)
        k = rng.randint(1, size // MiB)
        off = max(0, k * MiB - rng.randint(1, 70000))
        checks.append((p, size, off, rng.randint(1, 140000)))
    nonempty = [f for f in files if f[1] > 0] or files
    while len(checks) < count:
        p, size = rng.choice(nonempty if rng.random() < 0.9 else files)
        r = rng.random()
        if r < 0.15:
            off = 0
        elif r < 0.25:
            off = max(0, size - rng.randint(0, 64))   # reaches past EOF
        else:
            off = rng.randint(0, max(0, size - 1))
        kind = rng.random()
        if kind < 0.5:
            ln = rng.randint(1, 4096)
        elif kind < 0.85:
            ln = rng.randint(1, MiB)
        else:
            ln = rng.randint(MiB, 9 * MiB)
        checks.append((p, size, off, ln))
    return checks


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("clip")
    ap.add_argument("image")
    ap.add_argument("ref_root")
    ap.add_argument("--count", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--errfile", default=None,
                    help="where clip's stderr goes (default IMAGE.cat-err)")
    a = ap.parse_args()
    errfile = a.errfile or a.image + ".cat-err"
    rng = random.Random(a.seed)
    files = regular_files(a.ref_root)
    if not files:
        print("cat-check: no regular files in %s" % a.ref_root)
        return 1
    failures = 0
    checks = plan(files, a.count, rng)
    rootb = os.fsencode(a.ref_root)
    for p, size, off, ln in checks:
        with open(os.path.join(rootb, p), "rb") as f:
            f.seek(off)
            want = f.read(ln)
        path = b"/" + p
        r = subprocess.run(["bash", "-c", SCRIPT, "cat-check", a.clip,
                            a.image, path, str(off), str(ln), errfile],
                           stdout=subprocess.PIPE)
        shown = path.decode("utf-8", "backslashreplace")
        if r.returncode != 0:
            try:
                with open(errfile, "rb") as f:
                    msg = f.read().decode("utf-8", "replace").strip()
            except OSError:
                msg = ""
            print("FAIL cat %s [%d,+%d): clip exit %d: %s"
                  % (shown, off, ln, r.returncode, msg[:300]))
            failures += 1
        elif r.stdout != want:
            at = next((i for i, (x, y) in enumerate(zip(r.stdout, want))
                       if x != y), min(len(r.stdout), len(want)))
            print("FAIL cat %s [%d,+%d) of %d: got %d bytes, want %d, first "
                  "difference at +%d" % (shown, off, ln, size, len(r.stdout),
                                         len(want), at))
            failures += 1
    try:
        os.unlink(errfile)
    except OSError:
        pass
    print("cat-check: %d range checks (seed %d) over %d files, %d failed"
          % (len(checks), a.seed, len(files), failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
