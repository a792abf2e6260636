#!/usr/bin/env bash
# Registry benchmark: `clip index docker://…` against a plain download
# (`skopeo copy docker://… oci:DIR`) and a plain pull (that copy plus
# `umoci unpack`), from a loopback registry and from one behind an emulated
# WAN link, with the bytes each fetched; and the latency of one span read
# (`clip cat` of a small file: one range request, ~4 MiB of output).
#
#   integration/bench/bench-registry.sh [IMAGE...]     IMAGE: busybox debian
#
# Environment: CLIP (binary, default .build/release/clip), CLIP_TEST_WORK
# (images are cached in its images/, registries live in its registry/,
# default /tmp/clip-test), BENCH_RUNS (index/copy/pull runs, default 3),
# BENCH_CAT_RUNS (span reads, default 5), BENCH_WAN_DELAY_MS (per direction,
# default 10: ~20 ms round trip), BENCH_WAN_RATE (default 1gbit), and the
# BENCH_QUIET_* knobs of lib.sh.  Needs root (tmpfs, network namespace,
# drop_caches), docker-registry, skopeo, umoci, jq, iproute2, curl.
#
# Method: one registry on 127.0.0.1 ("local") and one in network namespace
# clipbreg behind registry/wan.sh's link ("wan": tbf rate limit both ways,
# faultproxy --delay-ms in front; CLIP_WAN_NS/CLIP_WAN_NET keep it apart from
# the tests' clipwan link).  Every image is pushed to both; the registries'
# blob files are read into the page cache once (the registry is the remote
# side: its disk is not what is measured).  Per image and registry,
# BENCH_RUNS rounds of index / copy / pull run interleaved (the order
# rotates), each after waiting for an idle machine, each writing to a fresh
# tmpfs.  Bytes fetched = body bytes of the GETs in the registry's access log
# during the run (manifest, config and blobs).  Span read: `clip cat` of a
# small file through the index made from that registry, beside the same
# `clip cat --source oci:LAYOUT` (same checkpoint, same inflate, no network),
# BENCH_CAT_RUNS interleaved pairs; added latency = registry − layout − the
# span's compressed bytes at the link rate (wan only), in round trips of the
# link (measured with curl: keep-alive GET /v2/ through the proxy minus the
# same request straight to the registry).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

CLIP=${CLIP:-$root/.build/release/clip}
# shellcheck source=../registry/lib.sh
source "$root/integration/registry/lib.sh" # registry_*, and ../lib.sh: ensure_image, WORK, IMG
RUNS=${BENCH_RUNS:-3}
CAT_RUNS=${BENCH_CAT_RUNS:-5}
WAN_DELAY_MS=${BENCH_WAN_DELAY_MS:-10}
WAN_RATE=${BENCH_WAN_RATE:-1gbit}
if (($# > 0)); then images=("$@"); else images=(busybox debian); fi

[ -x "$CLIP" ] || { echo "bench-registry: no clip binary at $CLIP (build with swift build -c release)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "bench-registry: needs root (tmpfs, network namespace)" >&2; exit 1; }
for tool in jq skopeo umoci docker-registry ip tc curl; do
  command -v "$tool" >/dev/null || { echo "bench-registry: needs $tool" >&2; exit 1; }
done
bench_need_time
bench_init
bench_tmpfs 512m
tmp=$BENCH_TMPFS
BENCH_LOG=$tmp/log
notes=()

# Client-side state of the copy and pull runs: a fresh tmpfs per run.
pull=$(mktemp -d "${TMPDIR:-/tmp}/clip-bench-pull.XXXXXX")
bench_on_exit rmdir "$pull"
unmount_if() { ! mountpoint -q "$1" || umount "$1"; }
bench_on_exit unmount_if "$pull"
fresh_pull_fs() {
  unmount_if "$pull"
  mount -t tmpfs -o size=1g,mode=0755 clip-bench-pull "$pull"
}

# Registries: local on 127.0.0.1, wan in its own namespace.
wan=$root/integration/registry/wan.sh
export CLIP_WAN_NS=clipbreg CLIP_WAN_NET=10.203.7
bench_on_exit registry_stop_all
bench_on_exit "$wan" down # runs before registry_stop_all
echo "bench-registry: starting the registries" >&2
registry_start bench-registry >>"$BENCH_LOG" 2>&1
local_addr=$REGISTRY_BENCH_REGISTRY local_log=$REGISTRY_BENCH_REGISTRY_LOG local_storage=$REGISTRY_BENCH_REGISTRY_STORAGE
if "$wan" status >/dev/null 2>&1; then
  echo "bench-registry: taking down a $CLIP_WAN_NS link left by an earlier run" >&2
  "$wan" down
fi
"$wan" up --delay-ms "$WAN_DELAY_MS" --rate "$WAN_RATE" >>"$BENCH_LOG" 2>&1
# shellcheck disable=SC1090,SC1091
source "$WORK/$CLIP_WAN_NS/env" # WAN_ADDR (the proxy), WAN_REGISTRY (direct), REGISTRY_CLIPBREG_*
# shellcheck disable=SC2153 # from the env file
wan_addr=$WAN_ADDR wan_log=$REGISTRY_CLIPBREG_LOG wan_storage=$REGISTRY_CLIPBREG_STORAGE

# Mean ms of 5 keep-alive GET /v2/ on one connection.
get_ms() {
  curl -s -o /dev/null -o /dev/null -o /dev/null -o /dev/null -o /dev/null -w '%{time_total}\n' \
    "http://$1/v2/" "http://$1/v2/" "http://$1/v2/" "http://$1/v2/" "http://$1/v2/" |
    awk '{ s += $1 } END { printf "%.2f", s * 1000 / NR }'
}
rtts=()
for _ in 1 2 3 4 5; do
  via=$(get_ms "$wan_addr") direct=$(get_ms "$WAN_REGISTRY")
  rtts+=("$(awk -v a="$via" -v b="$direct" 'BEGIN { printf "%.2f", a - b }')")
done
rtt_ms=$(bench_median "${rtts[@]}")
rate_bps=$(awk -v r="$WAN_RATE" 'BEGIN {
  n = r + 0; u = tolower(r); sub(/^[0-9.]+/, "", u)
  m = (u ~ /^g/) ? 1e9 : (u ~ /^m/) ? 1e6 : (u ~ /^k/) ? 1e3 : 1
  print n * m }')

# Body bytes and number of requests in access log $1 after line $2 (GETs for bytes);
# waits for the log to stop growing first (the registry writes it after answering).
log_bytes() {
  local log=$1 from=$2 size prev=-1 i
  for ((i = 0; i < 30; i++)); do
    size=$(stat -c %s "$log")
    [ "$size" != "$prev" ] || break
    prev=$size
    sleep 0.1
  done
  awk -v from="$from" 'NR > from && match($0, /"(GET|HEAD) [^"]*" [0-9]+ [0-9-]+/) {
      s = substr($0, RSTART, RLENGTH); n = split(s, f, " "); r++
      if (f[1] == "\"GET" && f[n] != "-") b += f[n]
    } END { printf "%d %d\n", b, r }' "$log"
}
log_lines() { wc -l <"$1"; }

# span-read file per image: small, inside one span
span_file() {
  case $1 in
    debian) echo /etc/os-release ;;
    *) echo /etc/passwd ;;
  esac
}

# One row: IMAGE REG ADDR LOG -> TSV on stdout.
measure() {
  local name=$1 reg=$2 addr=$3 log=$4 ref out i j k from b plain=()
  ref=$addr/$name:latest
  out=$tmp/$name-$reg.clip
  [ "$reg" = local ] || plain=(--plain-http)
  local -a idx_ms=() idx_b=() idx_rss=() copy_ms=() copy_b=() pull_ms=() pull_b=() cat_ms=() base_ms=() cat_b=()
  local copy_sh=$tmp/copy.sh pull_sh=$tmp/pull.sh
  printf 'exec skopeo copy -q --src-tls-verify=false %q %q\n' "docker://$ref" "oci:$pull/oci:latest" >"$copy_sh"
  {
    printf 'skopeo copy -q --src-tls-verify=false %q %q\n' "docker://$ref" "oci:$pull/oci:latest"
    printf 'umask 022\nexec umoci unpack --image %q %q\n' "$pull/oci:latest" "$pull/bundle"
  } >"$pull_sh"

  for ((i = 0; i < RUNS; i++)); do
    for ((j = 0; j < 3; j++)); do
      k=$(((i + j) % 3))
      case $k in
        0)
          rm -f "$out"
          bench_quiet_wait
          from=$(log_lines "$log")
          bench_run "$CLIP" index "docker://$ref" "${plain[@]}" -o "$out" --ignore-published
          idx_ms+=("$BENCH_MS") idx_rss+=("$BENCH_RSS_KB")
          read -r b _ < <(log_bytes "$log" "$from"); idx_b+=("$b")
          ;;
        1)
          fresh_pull_fs
          bench_quiet_wait
          from=$(log_lines "$log")
          bench_run sh "$copy_sh"
          copy_ms+=("$BENCH_MS")
          read -r b _ < <(log_bytes "$log" "$from"); copy_b+=("$b")
          ;;
        2)
          fresh_pull_fs
          bench_quiet_wait
          from=$(log_lines "$log")
          bench_run sh "$pull_sh"
          pull_ms+=("$BENCH_MS")
          read -r b _ < <(log_bytes "$log" "$from"); pull_b+=("$b")
          ;;
      esac
    done
  done
  unmount_if "$pull"

  # one span read: through the registry, and from the local layout (no network)
  local path
  path=$(span_file "$name")
  "$CLIP" cat "$out" "$path" --source "oci:$IMG/$name:latest" >/dev/null # warm the layout blob and the binary
  for ((i = 0; i < CAT_RUNS; i++)); do
    for ((j = 0; j < 2; j++)); do
      if (((i + j) % 2 == 0)); then
        bench_quiet_wait
        from=$(log_lines "$log")
        bench_run "$CLIP" cat "$out" "$path"
        cat_ms+=("$BENCH_MS")
        read -r b _ < <(log_bytes "$log" "$from"); cat_b+=("$b")
      else
        bench_quiet_wait
        bench_run "$CLIP" cat "$out" "$path" --source "oci:$IMG/$name:latest"
        base_ms+=("$BENCH_MS")
      fi
    done
  done

  local comp
  comp=$("$CLIP" inspect "$out" --json | jq '[.layers[].compressedSize] | add')
  printf '%s\t' "$name" "$reg" "$comp" \
    "$(bench_median "${idx_ms[@]}")" "$(bench_median "${idx_b[@]}")" "$(bench_max "${idx_rss[@]}")" \
    "$(bench_median "${copy_ms[@]}")" "$(bench_median "${copy_b[@]}")" \
    "$(bench_median "${pull_ms[@]}")" "$(bench_median "${pull_b[@]}")" \
    "$(bench_median "${cat_ms[@]}")" "$(bench_median "${base_ms[@]}")" "$(bench_median "${cat_b[@]}")"
  echo "$path"
}

rows=$tmp/rows.tsv
: >"$rows"
for name in "${images[@]}"; do
  status=0
  ensure_image "$name" >&2 || status=$?
  if ((status == 77)); then
    notes+=("$name: skipped (its builder cannot run here: exit 77)")
    continue
  fi
  ((status == 0)) || { echo "bench-registry: building $name failed (exit $status)" >&2; exit 1; }
  echo "bench-registry: pushing $name" >&2
  registry_push "$IMG/$name:latest" "$local_addr/$name:latest"
  registry_push "$IMG/$name:latest" "$wan_addr/$name:latest"
  find "$local_storage" "$wan_storage" -type f -exec cat {} + >/dev/null # the remote side's page cache
  for reg in local wan; do
    echo "bench-registry: measuring $name ($reg)" >&2
    if [ "$reg" = local ]; then
      measure "$name" local "$local_addr" "$local_log" >>"$rows"
    else
      measure "$name" wan "$wan_addr" "$wan_log" >>"$rows"
    fi
  done
done

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo
echo "clip index from a registry vs skopeo copy (download only) vs skopeo copy + umoci unpack (plain pull); one span read (clip cat)"
echo "local: docker-registry on 127.0.0.1; wan: registry in netns $CLIP_WAN_NS, tbf $WAN_RATE, faultproxy --delay-ms $WAN_DELAY_MS (measured RTT ${rtt_ms} ms)"
echo "median of $RUNS rotated runs (index, copy, pull; fresh tmpfs each) and of $CAT_RUNS interleaved span-read pairs; MiB = GET body bytes in the registry log"
echo "$(nproc) cores, ${cpu:-unknown CPU}; $CLIP"
echo
awk -F'\t' -v rtt="$rtt_ms" -v bps="$rate_bps" '
  BEGIN {
    MiB = 1048576
    hdr = "%-8s %-5s %8s %8s %8s %7s %8s %8s %6s %8s %6s %17s %7s %7s %8s %8s %5s\n"
    row = "%-8s %-5s %8.2f %8.3f %8.2f %7.1f %8.3f %8.2f %5.2fx %8.3f %5.2fx %17s %7.1f %7.1f %8.1f %8.1f %5s\n"
    printf hdr, "image", "reg", "comp MiB", "index s", "idx MiB", "RSS MiB", "copy s", "copy MiB", "ratio",
      "pull s", "ratio", "span file", "cat ms", "base ms", "span KiB", "added ms", "RTTs"
  }
  {
    idx = $4 / 1000; copy = $7 / 1000; pull = $9 / 1000
    xfer = ($2 == "wan" && bps > 0) ? $13 * 8 / bps * 1000 : 0
    added = $11 - $12 - xfer
    printf row, $1, $2, $3 / MiB, idx, $5 / MiB, $6 / 1024, copy, $8 / MiB, (copy > 0 ? idx / copy : 0),
      pull, (pull > 0 ? idx / pull : 0), $14, $11, $12, $13 / 1024, added,
      ($2 == "wan" && rtt > 0 ? sprintf("%.2f", added / rtt) : "-")
  }' "$rows"
echo
echo "targets: index from the registry <= 1.2x the download alone (skopeo copy); one span read adds < 2 RTTs on the wan link"
awk -F'\t' -v rtt="$rtt_ms" -v bps="$rate_bps" '
  function verdict(ok) { return ok ? "ok" : "MISSED" }
  {
    r = ($7 > 0 ? $4 / $7 : 0)
    if (r > worst_r) { worst_r = r; worst_r_row = $1 "/" $2 }
    if ($2 == "wan") {
      added = ($11 - $12 - $13 * 8 / bps * 1000) / rtt
      if (nw == 0 || added > worst_a) { worst_a = added; worst_a_row = $1 }
      nw++
    }
  }
  END {
    if (NR == 0) exit
    out = sprintf("results: worst index/copy %.2fx (%s) %s", worst_r, worst_r_row, verdict(worst_r <= 1.2))
    if (nw > 0) out = out sprintf("; worst wan span read +%.2f RTTs (%s) %s", worst_a, worst_a_row, verdict(worst_a < 2))
    print out
  }' "$rows"
notes+=("added ms = cat ms - base ms (same clip cat from the OCI layout) - span KiB at $WAN_RATE (wan only); the emulated link delays data, not TCP handshakes")
((BENCH_NOISY_RUNS == 0)) || notes+=("$BENCH_NOISY_RUNS runs started on a busy machine (idle wait capped at ${BENCH_QUIET_MAX}s)")
for note in "${notes[@]}"; do echo "note: $note"; done
