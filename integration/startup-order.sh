#!/usr/bin/env bash
# Writes Sources/clip/startup-order.txt: the functions a container start runs in the clip binary, which the release
# link places first in .text (lld --symbol-ordering-file, Package.swift), so that a hook started with its pages out of
# the page cache reads them with one or two faults instead of one per 8 MiB stretch of a 30 MB .text.
#
#   integration/startup-order.sh            (make startup-order; root, perf, runc; the release binary built)
#
# Method: a bundle of the Debian image (ensure_image debian, served by a loopback registry with its index published:
# what `clip index --push` gives a fleet) run by runc three times —
# cold (the hook mounts the image and starts its daemon, which warms the command), then twice warm (the image
# mounted: the hooks a node runs for every container) — with the block device's read-ahead off and the page cache
# dropped before each, so that every first touch of a page of the binary is a fault of its own; `perf record -e
# page-faults` follows runc's children. Each text page the runs' clip processes faulted is named by the function at
# the fault (perf's symbol + offset, rebased with nm); every function overlapping such a page goes into the list, in
# order of first fault: the warm runs' first (what every container start runs), then what the cold run added (a new
# image's mount daemon).
# Symbols the next build no longer has are ignored by the linker, so a stale list only costs speed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
CLIP=${CLIP:-$root/.build/release/clip}
# shellcheck source=lib.sh
source "$here/lib.sh" # ensure_image, IMG, WORK
# shellcheck source=registry/lib.sh
source "$here/registry/lib.sh" # registry_start, registry_push, registry_stop_all
OUT=${STARTUP_ORDER_OUT:-$root/Sources/clip/startup-order.txt}
for tool in perf runc nm; do command -v "$tool" >/dev/null || { echo "startup-order: needs $tool" >&2; exit 1; }; done
[ -x "$CLIP" ] || { echo "startup-order: no $CLIP (make release first)" >&2; exit 1; }

ensure_image debian
tmp=$(mktemp -d /tmp/clip-startup-order.XXXXXX)
device=$(findmnt -n -o SOURCE --target "$CLIP" | sed 's|^/dev/||; s|[0-9]*$||')
ra_file=/sys/block/$device/queue/read_ahead_kb
ra_saved=$(cat "$ra_file" 2>/dev/null || echo "")
cleanup() {
  runc --root "$tmp/state" delete -f order1 >/dev/null 2>&1 || true
  "$tmp/cold/clip" gc --root "$tmp/clip" --force >/dev/null 2>&1 || "$CLIP" gc --root "$tmp/clip" --force >/dev/null 2>&1 || true
  [ -z "$ra_saved" ] || echo "$ra_saved" >"$ra_file"
  registry_stop_all
  [ -n "${STARTUP_ORDER_KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT

registry_start order
registry_push "$IMG/debian:latest" "$REGISTRY_ORDER/debian:latest"
"$CLIP" index "docker://$REGISTRY_ORDER/debian:latest" -o "$tmp/debian.clip" --push >/dev/null
"$CLIP" bundle "docker://$REGISTRY_ORDER/debian:latest" "$tmp/bundle" --root "$tmp/setup" --keep-warm 60 -- /bin/true \
  >/dev/null
"$CLIP" gc --root "$tmp/setup" --force >/dev/null 2>&1 || true
# The runs' own root, empty: the first run looks the image up and fetches its published index, as a new node does.
jq --arg r "$tmp/clip" --arg s "$tmp/setup" '.hooks[][].args |= map(if . == $s then $r else . end)' \
  "$tmp/bundle/config.json" >"$tmp/c.json"
mv "$tmp/c.json" "$tmp/bundle/config.json"
# Two copies of the binary: the cold run's (its hooks and the image daemon it starts) and the warm runs' — the daemon
# keeps its pages cached, and the kernel maps cached neighbours of a faulting page without a fault of their own, so
# the warm runs' hooks must not share its file.
mkdir -p "$tmp/cold" "$tmp/warm"
cp "$CLIP" "$tmp/cold/clip"
cp "$CLIP" "$tmp/warm/clip"
[ -z "$ra_saved" ] || echo 0 >"$ra_file"
for run in 1 2 3; do
  binary=$tmp/warm/clip
  [ "$run" != 1 ] || binary=$tmp/cold/clip
  jq --arg b "$binary" '.process.terminal = false | .hooks[][].path = $b' "$tmp/bundle/config.json" >"$tmp/c.json"
  mv "$tmp/c.json" "$tmp/bundle/config.json"
  sync
  echo 3 >/proc/sys/vm/drop_caches
  record=(perf record -q -e page-faults -c 1 -d -o "$tmp/faults-$run.data" --)
  "${record[@]}" runc --root "$tmp/state" run -b "$tmp/bundle" "order$run" </dev/null >/dev/null 2>"$tmp/run-$run.log"
done
[ -z "$ra_saved" ] || echo "$ra_saved" >"$ra_file"

# Text faults of the clip processes (perf script lines "COMM ADDR ADDR-SYMBOL (DSO) IP SYMBOL+OFFSET (DSO)"): a fault on
# the faulting instruction's own page, in the binary, names its page by SYMBOL+OFFSET; nm gives the symbol's address.
for run in 2 3 1; do
  perf script -i "$tmp/faults-$run.data" --no-demangle -F comm,ip,sym,symoff,dso,addr 2>/dev/null
done >"$tmp/faults"
nm -S --defined-only "$CLIP" >"$tmp/symbols"
python3 - "$tmp/faults" "$tmp/symbols" "$OUT" <<'PYTHON'
import sys
from collections import defaultdict

faults, symbols, out = sys.argv[1:]
address, on_page = {}, defaultdict(list)
for line in open(symbols):
    fields = line.split()
    if len(fields) != 4 or fields[2] not in "tTwW":
        continue
    start, size, name = int(fields[0], 16), int(fields[1], 16), fields[3]
    address[name] = start
    for page in range(start // 4096, (start + max(size, 1) - 1) // 4096 + 1):
        on_page[page].append(name)
pages, listed, order = set(), set(), []
for line in open(faults):
    fields = line.split()
    if len(fields) < 7 or fields[0] != "clip" or not fields[-1].endswith("/clip)") or "+0x" not in fields[-2]:
        continue
    if int(fields[1], 16) // 4096 != int(fields[-3], 16) // 4096:
        continue  # a data fault
    name, offset = fields[-2].rsplit("+0x", 1)
    if name not in address:
        continue
    page = (address[name] + int(offset, 16)) // 4096
    if page in pages:
        continue
    pages.add(page)
    for symbol in on_page[page]:
        if symbol not in listed:
            listed.add(symbol)
            order.append(symbol)
with open(out, "w") as file:
    file.write("".join(symbol + "\n" for symbol in order))
print(f"startup-order: {len(order)} functions on {len(pages)} text pages -> {out}", file=sys.stderr)
PYTHON
