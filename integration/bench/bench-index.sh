#!/usr/bin/env bash
# Index benchmark (make bench-index): `clip index` against `gzip -dc` of the
# same layer blobs, plus peak RSS, index size and index load time.
#
#   integration/bench/bench-index.sh [IMAGE...]     IMAGE: busybox debian large big
#
# Environment: CLIP (binary, default .build/release/clip), CLIP_TEST_WORK
# (images are cached in its images/, default /tmp/clip-test), BENCH_RUNS
# (default 3), and the BENCH_QUIET_* knobs of lib.sh.  Needs root (tmpfs
# mount, drop_caches).  big is ~460 MiB of blob, built once (~30 s).
#
# Method: images are built once and cached in the work dir.  Per image the
# page cache is dropped, then one unmeasured `clip index` run reads every
# blob (warm page cache from then on, the same for clip and gzip), then
# BENCH_RUNS measured pairs run interleaved, alternating which goes first,
# each after waiting for an idle machine.  The .clip files go to a tmpfs.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

CLIP=${CLIP:-$root/.build/release/clip}
# shellcheck source=../lib.sh
source "$root/integration/lib.sh" # ensure_image, _stamp; WORK and IMG (images cache)
RUNS=${BENCH_RUNS:-3}
if (($# > 0)); then images=("$@"); else images=(busybox debian large big); fi

[ -x "$CLIP" ] || { echo "bench-index: no clip binary at $CLIP (build with swift build -c release)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "bench-index: needs root (tmpfs, drop_caches)" >&2; exit 1; }
command -v jq >/dev/null || { echo "bench-index: needs jq" >&2; exit 1; }
bench_need_time
bench_init
mkdir -p "$IMG"
bench_tmpfs 1g
tmp=$BENCH_TMPFS
BENCH_LOG=$tmp/log

has_load_time=1
"$CLIP" inspect --help 2>&1 | grep -q -- --load-time || has_load_time=0

notes=()

# Builds image NAME into $IMG/NAME unless a build from the same builder
# sources is cached there (integration/lib.sh's ensure_image; big.py here),
# and sets $layout; returns 77 if the image cannot be built on this machine.
build_image() {
  local name=$1 stamp status=0
  layout=$IMG/$name
  if [ "$name" != big ]; then
    ensure_image "$name" >&2 || status=$?
  else
    stamp=$(_stamp "$here/big.py")
    if [ ! -f "$layout/index.json" ] || [ "$(cat "$IMG/.big.stamp" 2>/dev/null)" != "$stamp" ]; then
      rm -f "$IMG/.big.stamp"
      python3 "$here/big.py" "$layout" >&2 || status=$?
      ((status != 0)) || echo "$stamp" >"$IMG/.big.stamp"
    fi
  fi
  ((status == 0 || status == 77)) || { echo "bench-index: building $name failed (exit $status)" >&2; exit 1; }
  return "$status"
}

# One table row for the layout in $2.
measure() {
  local name=$1 layout=$2 out=$tmp/$1.clip json script blob i
  local -a clip_ms=() gzip_ms=() rss_kb=()

  bench_drop_caches
  "$CLIP" index "oci:$layout" -o "$out" >>"$BENCH_LOG" 2>&1 # warm-up; reads every blob
  json=$("$CLIP" inspect "$out" --json)

  # the same layer blobs, decompressed with the stock tools
  script=$tmp/decompress-$name.sh
  : >"$script"
  while read -r media digest; do
    blob=$layout/blobs/${digest%%:*}/${digest#*:}
    case $media in
      *gzip*) echo "gzip -dc '$blob' >/dev/null" ;;
      *zstd*) echo "zstd -qdc '$blob' >/dev/null" ;;
      *) echo "cat '$blob' >/dev/null" ;;
    esac >>"$script"
    bench_warm "$blob"
  done < <(jq -r '.layers[] | "\(.mediaType) \(.digest)"' <<<"$json")

  for ((i = 0; i < RUNS; i++)); do
    if ((i % 2 == 0)); then
      bench_quiet_wait; bench_run sh "$script"; gzip_ms+=("$BENCH_MS")
    fi
    bench_quiet_wait
    rm -f "$out"
    bench_run "$CLIP" index "oci:$layout" -o "$out"
    clip_ms+=("$BENCH_MS") rss_kb+=("$BENCH_RSS_KB")
    if ((i % 2 == 1)); then
      bench_quiet_wait; bench_run sh "$script"; gzip_ms+=("$BENCH_MS")
    fi
  done

  local load=n/a
  if ((has_load_time)); then
    bench_quiet_wait
    load=$("$CLIP" inspect "$out" --load-time | awk '$1 == "load-ms" { print $2 }')
  fi

  jq -r --arg name "$name" --arg clip "$(bench_median "${clip_ms[@]}")" \
    --arg gzip "$(bench_median "${gzip_ms[@]}")" --arg rss "$(bench_max "${rss_kb[@]}")" --arg load "$load" \
    '[$name, (.layers | length), ([.layers[].compressedSize] | add), .uncompressedImageBytes,
      ([.layers[].entries] | add), .mergedEntries, $clip, $gzip, $rss, .indexBytes, $load] | @tsv' <<<"$json"
}

rows=$tmp/rows.tsv
: >"$rows"
for name in "${images[@]}"; do
  if ! build_image "$name"; then
    notes+=("$name: skipped (its builder cannot run here: exit 77)")
    continue
  fi
  echo "bench-index: measuring $name" >&2
  measure "$name" "$layout" >>"$rows"
done

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo
echo "clip index vs gzip -dc — warm page cache (blobs read into memory first; caches dropped before each image), .clip output on tmpfs"
echo "median of $RUNS interleaved runs; peak RSS = max over runs; $(nproc) cores, ${cpu:-unknown CPU}; $CLIP"
echo
awk -F'\t' -v OFS='' '
  BEGIN {
    MiB = 1048576
    hdr = "%-8s %6s %9s %9s %8s %8s %9s %9s %6s %8s %8s %10s %7s %7s %8s\n"
    row = "%-8s %6d %9.1f %9.1f %8d %8d %9.3f %9.3f %5.2fx %8.1f %8.1f %10d %7.1f %6.3f%% %8s\n"
    printf hdr, "image", "layers", "comp MiB", "tar MiB", "entries", "merged", "index s", "gzip -dc", "ratio",
      "MiB/s", "RSS MiB", "index B", "B/entry", "index%", "load ms"
  }
  {
    clip = $7 / 1000; gz = $8 / 1000
    printf row, $1, $2, $3 / MiB, $4 / MiB, $5, $6, clip, gz, (gz > 0 ? clip / gz : 0),
      (clip > 0 ? $4 / MiB / clip : 0), $9 / 1024, $10, ($5 > 0 ? $10 / $5 : 0),
      ($4 > 0 ? 100 * $10 / $4 : 0), $11
  }' "$rows"
echo
echo "targets: index <= 0.5x gzip -dc; index <= 0.5% of uncompressed; peak RSS < 64 MiB on the 1 GiB layer; load of 100k entries < 50 ms"
awk -F'\t' '
  function verdict(ok) { return ok ? "ok" : "MISSED" }
  {
    r = ($8 > 0 ? $7 / $8 : 0); p = ($4 > 0 ? 100 * $10 / $4 : 0)
    if (r > worst_r) { worst_r = r; worst_r_img = $1 }
    if (p > worst_p) { worst_p = p; worst_p_img = $1 }
    if ($1 == "big") big_rss = $9 / 1024
    if ($1 == "large") large_load = $11
  }
  END {
    if (NR == 0) exit
    out = sprintf("results: worst ratio %.2fx (%s) %s; worst index %.3f%% (%s) %s", worst_r, worst_r_img,
      verdict(worst_r <= 0.5), worst_p, worst_p_img, verdict(worst_p <= 0.5))
    out = out (big_rss != "" ? sprintf("; big RSS %.1f MiB %s", big_rss, verdict(big_rss < 64)) : "; big: not run")
    if (large_load == "") out = out "; large: not run"
    else if (large_load == "n/a") out = out "; large load: n/a"
    else out = out sprintf("; large load %.2f ms %s", large_load, verdict(large_load < 50))
    print out
  }' "$rows"
((has_load_time)) || notes+=("load ms: n/a, this clip has no 'inspect --load-time'")
((BENCH_NOISY_RUNS == 0)) || notes+=("$BENCH_NOISY_RUNS runs started on a busy machine (idle wait capped at ${BENCH_QUIET_MAX}s)")
for note in "${notes[@]}"; do echo "note: $note"; done
