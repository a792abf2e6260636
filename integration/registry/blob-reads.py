#!/usr/bin/env python3
"""Summarise blob reads from a registry access log or a faultproxy log.

    blob-reads.py LOG [--from-line N] [--layer DIGEST:SIZE ...]
                  [--forbid-full] [--require-full]

LOG is either docker-registry's stdout (access lines in combined log
format: ... "GET /v2/REPO/blobs/DIGEST HTTP/1.1" STATUS BYTES ...; its
logfmt lines are skipped) or a faultproxy.py --log file (METHOD PATH RANGE
STATUS BYTES ...).  Only lines after the first N are read (--from-line,
e.g. `wc -l < LOG` taken before the step being measured).

Prints one line per blob digest that was read (GET requests, statuses,
body bytes) and a total line.  For every --layer DIGEST:SIZE, a read is
"full" when any GET of it answered 200 with a body, or the bytes served for
it add up to SIZE or more.
  --forbid-full   exit 1 if any listed layer was read in full
  --require-full  exit 1 unless every listed layer was read in full (a
                  sanity check that the log is being parsed)
"""

import argparse
import re
import sys
from collections import OrderedDict

COMBINED = re.compile(r'"(?P<m>[A-Z]+) (?P<p>\S+) HTTP/[0-9.]+" (?P<s>\d{3}) (?P<b>\d+|-)')
PROXY = re.compile(r'^(?P<m>[A-Z]+) (?P<p>/\S*) (?P<r>\S+) (?P<s>\d{3}) (?P<b>\d+)')
BLOB = re.compile(r'/v2/(?P<repo>.+)/blobs/(?P<d>sha256:[0-9a-f]{64})')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("log")
    ap.add_argument("--from-line", type=int, default=0)
    ap.add_argument("--layer", action="append", default=[])
    ap.add_argument("--forbid-full", action="store_true")
    ap.add_argument("--require-full", action="store_true")
    a = ap.parse_args()
    layers = OrderedDict()
    for spec in a.layer:
        d, _, size = spec.rpartition(":")
        layers[d] = int(size)
    reads = OrderedDict()
    nreq = 0
    with open(a.log, errors="replace") as f:
        for i, line in enumerate(f):
            if i < a.from_line:
                continue
            m = COMBINED.search(line) or PROXY.match(line)
            if not m:
                continue
            nreq += 1
            b = BLOB.search(m.group("p"))
            if not b or m.group("m") != "GET":
                continue
            r = reads.setdefault(b.group("d"), {"n": 0, "bytes": 0, "status": {}})
            r["n"] += 1
            n = 0 if m.group("b") == "-" else int(m.group("b"))
            r["bytes"] += n
            st = m.group("s")
            r["status"][st] = r["status"].get(st, 0) + 1
            if st == "200" and n > 0:
                r["full200"] = True
    full = []
    for d, r in reads.items():
        kind = ""
        if d in layers:
            is_full = r.get("full200") or r["bytes"] >= layers[d]
            kind = " layer of %d bytes: %s" % (layers[d], "FULL" if is_full else "partial")
            if is_full:
                full.append(d)
        st = ",".join("%sx%d" % (k, v) for k, v in sorted(r["status"].items()))
        print("%s: %d GET (%s), %d bytes%s" % (d, r["n"], st, r["bytes"], kind))
    print("total: %d requests, %d blob GETs, %d blob bytes; %d of %d layers read in full"
          % (nreq, sum(r["n"] for r in reads.values()),
             sum(r["bytes"] for r in reads.values()), len(full), len(layers)))
    if a.forbid_full and full:
        return 1
    if a.require_full and len(full) != len(layers):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
