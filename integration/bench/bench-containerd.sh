#!/usr/bin/env bash
# containerd benchmark: the time from nothing on the client to the exit of `/bin/true` (Debian minbase and Debian +
# python3) and of `python3 -c 'import json'` (Debian + python3) in a fresh containerd container, pulled lazily by
# `clip pull` onto `clip snapshotter` or by `ctr image pull` onto the overlayfs snapshotter, with the registry on
# 127.0.0.1 ("local") and behind registry/wan.sh's emulated WAN link ("wan": ~20 ms round trip, 1 Gbit/s), and the
# bytes each run fetched from the registry.
#
#   integration/bench/bench-containerd.sh
#
# Environment: CLIP (binary, default .build/release/clip), CLIP_TEST_WORK (images cached in its images/, default
# /tmp/clip-test), BENCH_RUNS (default 3), BENCH_IMAGES (default "debian debian-python"), BENCH_NETS (default
# "local wan"), BENCH_WAN_DELAY_MS (per direction, default 10), BENCH_WAN_RATE (default 1gbit), CLIP_WAN_NS /
# CLIP_WAN_NET (default clipbct / 10.203.10), BENCH_KEEP_FAILURES (default $CLIP_TEST_WORK/bench-containerd-failures)
# and the BENCH_QUIET_* knobs of lib.sh.  Needs root, containerd + ctr, docker-registry, skopeo, jq, mkfs.ext4,
# iproute2.  Exit 77 when an image cannot be built here.
#
# Method (coldstart-lib.sh): each image is pushed to both registries as IMAGE-noidx and as IMAGE-idx with its index
# published (`clip index --push`). Every run of every cell gets a fresh ext4 (loop device over a file on the bench
# tmpfs) holding a private containerd (own root, state, socket; CRI disabled) with the clip proxy plugin, and a fresh
# `clip snapshotter` root; both are started before the timed part (not timed), then the machine is quiet-waited and
# the page cache dropped. Modes (the table's columns):
#   lazy       `clip pull REF` + `ctr run --rm --snapshotter clip REF`, published index (IMAGE-idx);
#   lazynoidx  the same on IMAGE-noidx: the snapshotter indexes the image on first use (reads every layer once);
#   lazyprof   the same on IMAGE-prof, whose index is published with a profile recorded from the same command
#              (python3 import json only): `clip pull` names it, the layer mounts prefetch it;
#   ctr        `ctr image pull REF` + `ctr run --rm --snapshotter overlayfs REF` (containerd 1.6's own path).
# Time: the shell's clock around both commands, to the container's exit. Bytes: response body bytes in the registry's
# access log between marks before and after (manifests, the published index, blobs); "image" is the sum of the
# compressed layer sizes. Median of BENCH_RUNS runs, modes interleaved (order rotated). Target (from the issue):
# lazy >= 5x faster than ctr on the WAN link, fetching < 15% of the image — for /bin/true, the issue's command (the
# python3 rows are shown for information).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

CLIP=${CLIP:-$root/.build/release/clip}
# shellcheck source=../registry/lib.sh
source "$root/integration/registry/lib.sh" # registry_*, and ../lib.sh: ensure_image, WORK, IMG
RUNS=${BENCH_RUNS:-3}
read -ra IMAGES <<<"${BENCH_IMAGES:-debian debian-python}"
read -ra NETS <<<"${BENCH_NETS:-local wan}"
WAN_DELAY_MS=${BENCH_WAN_DELAY_MS:-10}
WAN_RATE=${BENCH_WAN_RATE:-1gbit}
FAILDIR=${BENCH_KEEP_FAILURES:-$WORK/bench-containerd-failures}
CALL_TIMEOUT=600
BENCH_NAME=bench-containerd
MODES=(lazy lazynoidx lazyprof ctr)
words_of() { if [ "$1" = true ]; then words=(/bin/true); else words=(python3 -c 'import json'); fi; }

export CLIP_WAN_NS=${CLIP_WAN_NS:-clipbct} CLIP_WAN_NET=${CLIP_WAN_NET:-10.203.10}
bench_preflight bench-containerd jq skopeo containerd ctr docker-registry mkfs.ext4 ip tc
# shellcheck source=coldstart-lib.sh
source "$here/coldstart-lib.sh" # the tmpfs, registries, images pushed, cells, containerd, timing, formatting

# keep_failure CELL: save the snapshotter's, containerd's and the layer mounts' logs of a failed run
keep_failure() {
  local d=$FAILDIR/$1
  mkdir -p "$d"
  cp "$fs/containerd/containerd.log" "$d/" 2>/dev/null || true
  grep -lF " on $fs/" /run/clip/mounts/*.log 2>/dev/null | xargs -r cp -t "$d/" || true
  tail -n 40 "$BENCH_LOG" >"$d/bench.log" 2>/dev/null || true
  notes+=("$1 failed: logs in $d")
}

# The timed parts (stdout/stderr to the log).
ctr_() { timeout "$CALL_TIMEOUT" ctr -a "$ctd_sock" -n bench "$@"; }
t_lazy() { # REF ID CMD-NAME PULL-ARGS...
  local ref=$1 id=$2 words
  words_of "$3"
  shift 3
  timeout "$CALL_TIMEOUT" "$CLIP" pull "$ref" --address "$ctd_sock" --namespace bench "$@" >>"$BENCH_LOG" 2>&1 || return 1
  ctr_ run --rm --snapshotter clip "$ref" "$id" "${words[@]}" </dev/null >>"$BENCH_LOG" 2>&1
}
t_ctr() { # REF ID CMD-NAME
  local words
  words_of "$3"
  ctr_ image pull --plain-http --snapshotter overlayfs "$1" >>"$BENCH_LOG" 2>&1 || return 1
  ctr_ run --rm --snapshotter overlayfs "$1" "$2" "${words[@]}" </dev/null >>"$BENCH_LOG" 2>&1
}


# run_cell IMAGE NET CMD MODE RUN: one measured run, adds s.KEY and b.KEY (KEY = IMAGE.CMD.NET.MODE)
run_cell() {
  local image=$1 net=$2 c=$3 mode=$4 i=$5 key="$1.$3.$2.$4" id="bct-$4-$5-$RANDOM" mark ok=1 repo=noidx plain=()
  [ "$mode" != lazy ] || repo=idx
  [ "$mode" != lazyprof ] || { has_profile "$image" "$c" || return 0; repo=prof; }
  [ "$net" = local ] || plain=(--plain-http)
  local ref=${addr[$net]}/$image-$repo:latest
  cell_fs "$mode"
  if ! start_snapshotter "$fs/snapshotter" "${plain[@]}" || ! start_containerd "$fs/containerd" "$snap_config"; then
    echo "bench-containerd: $key run $i: the cell did not start" >&2
    keep_failure "$key.$i"
    cell_release "$mode"
    return 0
  fi
  mark=$(log_mark "${reglog[$net]}")
  bench_quiet_wait
  bench_drop_caches
  case $mode in
  lazy | lazynoidx | lazyprof) timed t_lazy "$ref" "$id" "$c" "${plain[@]}" || ok=0 ;;
  ctr) timed t_ctr "$ref" "$id" "$c" || ok=0 ;;
  esac
  if ((ok)); then
    add "s.$key" "$(awk -v m="$BENCH_MS" 'BEGIN { printf "%.3f", m / 1000 }')"
    add "b.$key" "$(log_bytes "${reglog[$net]}" "$mark")"
  else
    echo "bench-containerd: $key run $i failed" >&2
    keep_failure "$key.$i"
  fi
  cell_release "$mode"
}

echo "bench-containerd: $RUNS runs of ${#IMAGES[@]} images x their commands x ${#NETS[@]} networks x ${#MODES[@]} modes" >&2
for ((i = 0; i < RUNS; i++)); do
  for image in "${IMAGES[@]}"; do
    for c in $(cmds_of "$image"); do
      for net in "${NETS[@]}"; do
        order=(lazy lazynoidx lazyprof ctr)
        case $((i % 3)) in
        1) order=(ctr lazyprof lazy lazynoidx) ;;
        2) order=(lazynoidx ctr lazy lazyprof) ;;
        esac
        for mode in "${order[@]}"; do
          echo "bench-containerd: run $((i + 1))/$RUNS $image ${CMD[$c]} $net $mode" >&2
          run_cell "$image" "$net" "$c" "$mode" "$i"
        done
      done
    done
  done
done
release_all_cells

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
rtt=$(wan_rtt)
fmt="%-44s %7s %9s %8s %7s | %8s %9s %8s %8s %8s %6s %6s\n"
echo
echo "containerd: clip pull + ctr run (clip snapshotter) vs ctr image pull + ctr run (overlayfs); seconds to the container's exit (median), MB fetched from the registry (median)"
for image in "${IMAGES[@]}"; do
  echo "image $image: ${layers[$image]} gzip layer(s), $(mb "${comp[$image]}") MB compressed"
done
echo "local: registry on 127.0.0.1; wan: netns $CLIP_WAN_NS, tbf $WAN_RATE, faultproxy --delay-ms $WAN_DELAY_MS (GET /v2/ ${rtt:--} ms); a fresh containerd + clip snapshotter on a fresh ext4 per run, page cache dropped"
echo "modes: lazy = clip pull + ctr run, published index; lazynoidx = the same, the snapshotter indexes on first use;"
echo "       lazyprof = lazy with a profile published beside the index (recorded from the same command; python3 rows only); ctr = ctr image pull + ctr run (overlayfs)"
echo "median of $RUNS runs; $(nproc) cores, ${cpu:-unknown CPU}; $CLIP"
echo
# shellcheck disable=SC2059
{
  printf "$fmt" "" "lazy" "lazynoidx" "lazyprof" "ctr" "MB lazy" "lazynoidx" "lazyprof" "ctr" "image" "lazy%" "prof%"
  for image in "${IMAGES[@]}"; do
    for c in $(cmds_of "$image"); do
      for net in "${NETS[@]}"; do
        k=$image.$c.$net
        printf "$fmt" "$image ${CMD[$c]} $net" "$(sec "$(med "s.$k.lazy")")" "$(sec "$(med "s.$k.lazynoidx")")" \
          "$(sec "$(med "s.$k.lazyprof")")" "$(sec "$(med "s.$k.ctr")")" "$(mb "$(med "b.$k.lazy")")" \
          "$(mb "$(med "b.$k.lazynoidx")")" "$(mb "$(med "b.$k.lazyprof")")" "$(mb "$(med "b.$k.ctr")")" \
          "$(mb "${comp[$image]}")" "$(pct "$(med "b.$k.lazy")" "${comp[$image]}")" \
          "$(pct "$(med "b.$k.lazyprof")" "${comp[$image]}")"
      done
    done
  done
}

echo
echo "ratios (per row: ctr / lazy, target >= 5x on the WAN link; lazy's fetch, target < 15% of the image; for /bin/true, the issue's command):"
fmt2="%-44s %12s %12s | %13s %13s\n"
# shellcheck disable=SC2059
printf "$fmt2" "" "ctr/lazy" "lazy fetch" "ctr/lazyprof" "lazyprof fetch"
n_ok=0 n_missed=0
for image in "${IMAGES[@]}"; do
  for c in $(cmds_of "$image"); do
    for net in "${NETS[@]}"; do
      k=$image.$c.$net
      sl=$(med "s.$k.lazy") sc=$(med "s.$k.ctr") bl=$(med "b.$k.lazy") sp=$(med "s.$k.lazyprof") bp=$(med "b.$k.lazyprof")
      vt=- vb=- wt=- wb=-
      [ "$sl" = - ] || [ "$sc" = - ] || vt=$(verdict "$sc >= 5 * $sl")
      [ "$net" = wan ] || vt="(info)" # the target is for the WAN link
      [ "$bl" = - ] || vb=$(verdict "$bl < 0.15 * ${comp[$image]}")
      [ "$sp" = - ] || [ "$sc" = - ] || wt="(info)" wb="(info)"
      if [ "$c" != true ]; then vt="(info)" vb="(info)"; fi # the issue's command is /bin/true
      for v in "$vt" "$vb"; do
        if [ "$v" = ok ]; then n_ok=$((n_ok + 1)); elif [ "$v" = MISSED ]; then n_missed=$((n_missed + 1)); fi
      done
      # shellcheck disable=SC2059
      printf "$fmt2" "$image ${CMD[$c]} $net" "$(ratio "$sc" "$sl") $vt" "$(pct "$bl" "${comp[$image]}") $vb" \
        "$(ratio "$sc" "$sp") $wt" "$(pct "$bp" "${comp[$image]}") $wb"
    done
  done
done
echo
echo "targets: lazy >= 5x faster than ctr on the WAN link; lazy fetches < 15% of the compressed image"
echo "results: $n_ok ok, $n_missed MISSED (per-row verdicts above)"
failed=0
for image in "${IMAGES[@]}"; do
  for c in $(cmds_of "$image"); do
    for net in "${NETS[@]}"; do
      for mode in "${MODES[@]}"; do
        [ "$mode" != lazyprof ] || has_profile "$image" "$c" || continue
        n=$(wc -w <<<"${r[s.$image.$c.$net.$mode]:-}")
        ((n == RUNS)) || { failed=1; notes+=("$image ${CMD[$c]} $net $mode: $n of $RUNS runs succeeded"); }
      done
    done
  done
done
((BENCH_NOISY_RUNS == 0)) || notes+=("$BENCH_NOISY_RUNS runs started on a busy machine (idle wait capped at ${BENCH_QUIET_MAX}s)")
for note in "${notes[@]}"; do echo "note: $note"; done
exit "$failed"
