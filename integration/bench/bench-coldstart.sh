#!/usr/bin/env bash
# Cold-start benchmark: the time from nothing on the client to the exit of `/bin/true` (on Debian minbase, ensure_image
# debian, and on Debian + python3, ensure_image debian-python: minbase + a python3 layer) and of
# `python3 -c 'import json'` (Debian + python3) in a fresh container, with the registry on 127.0.0.1 ("local") and
# behind registry/wan.sh's emulated WAN link ("wan": ~20 ms round trip, 1 Gbit/s), and the bytes each run fetched
# from the registry.
#
#   integration/bench/bench-coldstart.sh
#
# Environment: CLIP (binary, default .build/release/clip), CLIP_TEST_WORK (images are cached in its images/,
# registries live in its registry/, default /tmp/clip-test), BENCH_RUNS (default 3), BENCH_IMAGES (default
# "debian debian-python"), BENCH_NETS (default "local wan"), BENCH_WAN_DELAY_MS (per direction, default 10: ~20 ms
# round trip), BENCH_WAN_RATE (default 1gbit), CLIP_WAN_NS / CLIP_WAN_NET (the WAN link's namespace and /30 net,
# default clipbcs / 10.203.9, so it does not clash with other runs), BENCH_KEEP_FAILURES (folder for the hook and
# mount logs of failed runs, default $CLIP_TEST_WORK/bench-coldstart-failures), and the BENCH_QUIET_* knobs of
# lib.sh.  Needs root (tmpfs, loop mounts, FUSE, overlayfs, network namespace, drop_caches), runc, docker-registry,
# skopeo, umoci, containerd + ctr, jq, mkfs.ext4, iproute2.  Exit 77 when an image cannot be built here (no mirror).
#
# Method: each image is pushed to both registries twice: as IMAGE-noidx (no index published) and as IMAGE-idx,
# whose index `clip index --push` publishes beside it (specs/published-index.md); registry storage is on a tmpfs.
# Modes (the table's columns):
#   (1) noidx   clip hook, no index anywhere yet: the hook indexes the image on first use (fresh --root);
#   (2) idx     clip hook, published index, empty span cache (fresh --root);
#   (2p) prof   the same on IMAGE-prof, whose index is published with a prefetch profile (`clip index --push
#               --profile`) recorded from the same command (`clip mount --record` + chroot, before the runs): the
#               hook's default prefetch fetches what it lists at mount time (python3 import json only);
#   (3) warm    clip hook again on (2)'s --root: index and spans cached, the reference not resolved again
#               (org.clip.pull missing), the image still mounted (--keep-warm 60: a node running the image), so
#               the hook only mounts the container's overlay;
#   (3h) hot    the same right after idx, without dropping the page cache (a node that just ran the image); runchot
#               is runc's baseline likewise (right after runc's own run): a table of its own;
#   (4) skopeo  `skopeo copy docker://… oci:DIR:latest` + `umoci unpack` + process.args/terminal set with jq +
#               `runc run`;
#   (5) ctr     `ctr image pull --plain-http` + `ctr run --rm --snapshotter overlayfs` against a private containerd
#               (own root, state, socket, config; CRI disabled) started (not timed) on an empty root;
#   runc        `runc run` of an already unpacked rootfs (umoci unpack once, before the runs): the baseline of (3).
# clip rows use bundles from `clip bundle SOURCE DIR --keep-warm 60 -- CMD` written once before the runs against a
# setup --root (so `clip bundle`'s own index lookup is not timed); per run the bundle's config.json is copied into a
# fresh bundle folder and the hooks' --root rewritten (jq) to the run's fresh root, so the timed `runc run` does all
# the image work: find or make the index, mount, overlay, run, tear down. The bundle names the image as `clip bundle`
# writes it, by tag pinned to the manifest it resolved (TAG@DIGEST): (2) looks up the index published for that
# manifest without asking what the tag names; (1) finds none and resolves the digest.
# Every cell is the median of BENCH_RUNS runs (warm, hot, runc and runchot: of BENCH_RUNS x BENCH_REPEAT_WARM, default
# 3, timed in a row within each run, each after its own quiet wait and, but for hot and runchot, cache drop); in every run each cell gets a fresh ext4 file system (loop device over
# a file on the bench tmpfs) for its roots, bundles, OCI layout, containerd root, runtime state ((3) reuses (2)'s);
# the machine is quiet-waited (bench_quiet_wait) and the page cache dropped (bench_drop_caches) right before the
# timed part.  Time: the shell's clock around the timed commands, to the container's exit.  Bytes: the sum of the
# response body sizes in the registry's access log between marks taken before and after the run (log waited on
# until it stops growing): manifests, the published index and blobs; "image" is the sum of the compressed layer
# sizes, "%" = (2)'s bytes / image.  Modes are interleaved per run (order rotated).  Targets (from the issue): (2)
# >= 5x faster than (4) and (5); (2) fetches < 15% of the image; (3) within 1.5x of runc on a local rootfs; (2)
# beside the stargz anchors (minbase /bin/true 0.66 s / 1.6 MB, python3 import json 1.40 s / 6.4 MB).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

CLIP=${CLIP:-$root/.build/release/clip}
# shellcheck source=../registry/lib.sh
source "$root/integration/registry/lib.sh" # registry_*, and ../lib.sh: ensure_image, WORK, IMG
RUNS=${BENCH_RUNS:-3}
REPEAT_WARM=${BENCH_REPEAT_WARM:-3}
read -ra IMAGES <<<"${BENCH_IMAGES:-debian debian-python}"
read -ra NETS <<<"${BENCH_NETS:-local wan}"
WAN_DELAY_MS=${BENCH_WAN_DELAY_MS:-10}
WAN_RATE=${BENCH_WAN_RATE:-1gbit}
FAILDIR=${BENCH_KEEP_FAILURES:-$WORK/bench-coldstart-failures}
CALL_TIMEOUT=600
BENCH_NAME=bench-coldstart
MODES=(noidx idx prof hot warm skopeo ctr runc runchot)
cmd_args() { if [ "$1" = true ]; then echo '["/bin/true"]'; else echo '["python3","-c","import json"]'; fi; }

bench_preflight bench-coldstart jq skopeo umoci runc containerd ctr docker-registry mkfs.ext4 ip tc

# shellcheck source=coldstart-lib.sh
source "$here/coldstart-lib.sh" # the tmpfs, registries, images pushed, cells, containerd, timing, formatting
setup_root=$tmp/setup-root
for image in "${IMAGES[@]}"; do
  # template bundles: written against the setup root (which caches the index; not what the runs use)
  for net in "${NETS[@]}"; do
    for repo in idx noidx prof; do
      for c in $(cmds_of "$image"); do
        [ "$repo" != prof ] || has_profile "$image" "$c" || continue
        timeout "$CALL_TIMEOUT" "$CLIP" bundle "docker://${addr[$net]}/$image-$repo:latest" "$tmp/tpl/$image-$net-$repo-$c" \
          --root "$setup_root" --keep-warm 60 -- /bin/true >>"$BENCH_LOG" 2>&1
      done
    done
  done
done
# the command, exactly (python3's -c argument has a space)
for tpl in "$tmp"/tpl/*; do
  c=${tpl##*-}
  jq --argjson a "$(cmd_args "$c")" '.process.args = $a | .process.terminal = false' "$tpl/config.json" >"$tpl/c.json"
  mv "$tpl/c.json" "$tpl/config.json"
done
"$CLIP" gc --root "$setup_root" --force >>"$BENCH_LOG" 2>&1 || true

# The local rootfs of each image (the runc baseline), on its own ext4.
echo "bench-coldstart: unpacking the local copies" >&2
ext4_fs local 2g
localfs=$fs
for image in "${IMAGES[@]}"; do
  umoci unpack --image "$IMG/$image:latest" "$localfs/$image" >>"$BENCH_LOG" 2>&1
done

# keep_failure CELL ROOT: save the hook log and the mount daemons' logs of a failed run
keep_failure() {
  local d=$FAILDIR/$1
  mkdir -p "$d"
  cp "$2/hook.log" "$d/" 2>/dev/null || true
  grep -lF " on $2/" /run/clip/mounts/*.log 2>/dev/null | xargs -r cp -t "$d/" || true
  tail -n 20 "$BENCH_LOG" >"$d/bench.log" 2>/dev/null || true
  notes+=("$1 failed: logs in $d")
}

# The timed parts (stdout/stderr to the log).
t_clip() { rt run -b "$1" "$2" </dev/null >>"$BENCH_LOG" 2>&1; }
t_skopeo() { # REF FS ID ARGS-JSON
  timeout "$CALL_TIMEOUT" skopeo copy -q --src-tls-verify=false "docker://$1" "oci:$2/oci:latest" >>"$BENCH_LOG" 2>&1 || return 1
  timeout "$CALL_TIMEOUT" umoci unpack --image "$2/oci:latest" "$2/bundle" >>"$BENCH_LOG" 2>&1 || return 1
  jq --argjson a "$4" '.process.args = $a | .process.terminal = false' "$2/bundle/config.json" >"$2/bundle/c.json" || return 1
  mv "$2/bundle/c.json" "$2/bundle/config.json" || return 1
  rt run -b "$2/bundle" "$3" </dev/null >>"$BENCH_LOG" 2>&1
}
t_ctr() { # REF ID CMD-NAME
  local words=(/bin/true)
  [ "$3" = true ] || words=(python3 -c 'import json')
  timeout "$CALL_TIMEOUT" ctr -a "$ctd_sock" -n bench image pull --plain-http --snapshotter overlayfs "$1" \
    >>"$BENCH_LOG" 2>&1 || return 1
  timeout "$CALL_TIMEOUT" ctr -a "$ctd_sock" -n bench run --rm --snapshotter overlayfs "$1" "$2" "${words[@]}" \
    </dev/null >>"$BENCH_LOG" 2>&1
}
# reps_of MODE: timed runs per cell and run. (3)'s runs take tens of milliseconds, where this machine's swings are
# as large as the difference measured: each of its cells (and runc's) is timed REPEAT_WARM times in a row.
reps_of() { case $1 in hot | warm | runc | runchot) echo "$REPEAT_WARM" ;; *) echo 1 ;; esac; }
# run_cell IMAGE NET CMD MODE RUN: measured runs, each adds s.KEY and b.KEY (KEY = IMAGE.CMD.NET.MODE)
run_cell() {
  local image=$1 net=$2 c=$3 mode=$4 i=$5 key="$1.$3.$2.$4" id="bcs-$4-$5-$RANDOM" mark ok=1 args ref rep
  args=$(cmd_args "$c")
  ref=${addr[$net]}/$image-noidx:latest
  case $mode in
  prof) has_profile "$image" "$c" || return 0 ;;&
  noidx | idx | prof)
    cell_fs "clip-$mode"
    clip_bundle "$tmp/tpl/$image-$net-$mode-$c" "$fs/bundle" "$fs/root"
    ;;
  hot | warm) # (2)'s file system, root and bundle, again
    [ -n "${live_fs[clip-idx]:-}" ] || return 0
    fs=$tmp/cell-clip-idx.fs
    ;;
  skopeo) cell_fs skopeo ;;
  ctr) cell_fs ctr && { start_containerd "$fs/containerd" || true; } ;;
  runc) jq --argjson a "$args" '.process.args = $a | .process.terminal = false' "$localfs/$image/config.json" \
    >"$localfs/$image/c.json" && mv "$localfs/$image/c.json" "$localfs/$image/config.json" ;;
  esac
  for ((rep = 0; rep < $(reps_of "$mode"); rep++)); do
    ok=1
    ((rep == 0)) || id=bcs-$4-$5-$rep-$RANDOM
    case $mode in runc | runchot) ;; *) mark=$(log_mark "${reglog[$net]}") ;; esac
    bench_quiet_wait
    case $mode in hot | runchot) ;; *) bench_drop_caches ;; esac # hot, runchot: the page cache of the run before
    case $mode in
    noidx | idx | prof | hot | warm) timed t_clip "$fs/bundle" "$id" || ok=0 ;;
    skopeo) timed t_skopeo "$ref" "$fs" "$id" "$args" || ok=0 ;;
    ctr) timed t_ctr "$ref" "$id" "$c" || ok=0 ;;
    runc | runchot) timed t_clip "$localfs/$image" "$id" || ok=0 ;;
    esac
    if ((ok)); then
      add "s.$key" "$(awk -v m="$BENCH_MS" 'BEGIN { printf "%.3f", m / 1000 }')"
      case $mode in runc | runchot) ;; *) add "b.$key" "$(log_bytes "${reglog[$net]}" "$mark")" ;; esac
    else
      echo "bench-coldstart: $key run $i failed" >&2
      keep_failure "$key.$i" "$fs/root"
    fi
  done
  case $mode in
  noidx | prof | warm) cell_release "clip-${mode/warm/idx}" ;;
  skopeo | ctr) cell_release "$mode" ;;
  esac
}


echo "bench-coldstart: $RUNS runs of ${#IMAGES[@]} images x their commands x ${#NETS[@]} networks x ${#MODES[@]} modes" >&2
for ((i = 0; i < RUNS; i++)); do
  for image in "${IMAGES[@]}"; do
    for c in $(cmds_of "$image"); do
      for net in "${NETS[@]}"; do
        # rotate the mode order per run; hot and warm always right after idx
        order=(noidx idx hot warm prof skopeo ctr)
        case $((i % 3)) in
        1) order=(skopeo ctr prof noidx idx hot warm) ;;
        2) order=(ctr idx hot warm skopeo prof noidx) ;;
        esac
        [ "$net" != "${NETS[0]}" ] || order+=(runc runchot) # the local rootfs needs no network: once per run
        for mode in "${order[@]}"; do
          echo "bench-coldstart: run $((i + 1))/$RUNS $image ${CMD[$c]} $net $mode" >&2
          run_cell "$image" "$net" "$c" "$mode" "$i"
        done
      done
    done
  done
done
release_all_cells

# The table.
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
rtt=$(wan_rtt)
fmt="%-40s %6s %6s %6s %6s %6s %6s %6s | %8s %7s %7s %7s %7s %7s %7s %6s %6s\n"

echo
echo "cold start: clip hook (runc) vs skopeo+umoci+runc and ctr pull+run; seconds to the container's exit (median), MB fetched from the registry (median)"
for image in "${IMAGES[@]}"; do
  echo "image $image: ${layers[$image]} gzip layer(s), $(mb "${comp[$image]}") MB compressed; its published index $(mb "$(stat -c %s "$tmp/$image-${NETS[0]}.clip")") MB (in idx's bytes)"
done
echo "local: registry on 127.0.0.1; wan: netns $CLIP_WAN_NS, tbf $WAN_RATE, faultproxy --delay-ms $WAN_DELAY_MS (GET /v2/ ${rtt:--} ms); client state on a fresh ext4 per run (loop over a tmpfs), page cache dropped"
echo "modes: noidx = clip hook, no published index (hook indexes); idx = clip hook, published index, empty span cache; warm = idx's root again;"
echo "       prof = idx with a prefetch profile published beside the index (recorded from the same command; python3 rows only);"
echo "       skopeo = skopeo copy + umoci unpack + runc run; ctr = ctr image pull + ctr run (private containerd, empty root); runc = runc run of an unpacked local rootfs (no network: same figure on every network)"
echo "median of $RUNS runs (warm, runc, hot, runchot: of $((RUNS * REPEAT_WARM)), $REPEAT_WARM in a row per run); $(nproc) cores, ${cpu:-unknown CPU}; $CLIP"
echo
# shellcheck disable=SC2059
{
  printf "$fmt" "" "noidx" "idx" "prof" "warm" "skopeo" "ctr" "runc" "MB noidx" "idx" "prof" "warm" "skopeo" "ctr" "image" "idx%" "prof%"
  for image in "${IMAGES[@]}"; do
    for c in $(cmds_of "$image"); do
      for net in "${NETS[@]}"; do
        k=$image.$c.$net
        rk=$image.$c.${NETS[0]}.runc
        printf "$fmt" "$image ${CMD[$c]} $net" "$(sec "$(med "s.$k.noidx")")" "$(sec "$(med "s.$k.idx")")" \
          "$(sec "$(med "s.$k.prof")")" "$(sec "$(med "s.$k.warm")")" "$(sec "$(med "s.$k.skopeo")")" \
          "$(sec "$(med "s.$k.ctr")")" "$(sec "$(med "s.$rk")")" \
          "$(mb "$(med "b.$k.noidx")")" "$(mb "$(med "b.$k.idx")")" "$(mb "$(med "b.$k.prof")")" "$(mb "$(med "b.$k.warm")")" \
          "$(mb "$(med "b.$k.skopeo")")" "$(mb "$(med "b.$k.ctr")")" "$(mb "${comp[$image]}")" \
          "$(pct "$(med "b.$k.idx")" "${comp[$image]}")" "$(pct "$(med "b.$k.prof")" "${comp[$image]}")"
      done
    done
  done
}

echo
echo "ratios (per row: (2) idx vs (4) skopeo and (5) ctr, target >= 5x faster; (2) fetched, target < 15% of the image; (3) warm vs runc on a local rootfs, target <= 1.5x):"
fmt2="%-40s %12s %12s %10s %10s | %12s %12s %10s\n"
# shellcheck disable=SC2059
printf "$fmt2" "" "skopeo/idx" "ctr/idx" "idx fetch" "warm/runc" "skopeo/prof" "ctr/prof" "prof fetch"
n_ok=0 n_missed=0 p_ok=0 p_missed=0
tally() { if [ "$1" = ok ]; then n_ok=$((n_ok + 1)); elif [ "$1" = MISSED ]; then n_missed=$((n_missed + 1)); fi; }
tally_prof() { if [ "$1" = ok ]; then p_ok=$((p_ok + 1)); elif [ "$1" = MISSED ]; then p_missed=$((p_missed + 1)); fi; }
for image in "${IMAGES[@]}"; do
  for c in $(cmds_of "$image"); do
    for net in "${NETS[@]}"; do
      k=$image.$c.$net
      i2=$(med "s.$k.idx") i3=$(med "s.$k.warm") i4=$(med "s.$k.skopeo") i5=$(med "s.$k.ctr") ir=$(med "s.$image.$c.${NETS[0]}.runc")
      b2=$(med "b.$k.idx") p2=$(med "s.$k.prof") pb=$(med "b.$k.prof")
      v4=- v5=- vb=- v3=- w4=- w5=- wb=-
      [ "$p2" = - ] || [ "$i4" = - ] || w4=$(verdict "$i4 >= 5 * $p2")
      [ "$p2" = - ] || [ "$i5" = - ] || w5=$(verdict "$i5 >= 5 * $p2")
      [ "$pb" = - ] || wb=$(verdict "$pb < 0.15 * ${comp[$image]}")
      [ "$i2" = - ] || [ "$i4" = - ] || v4=$(verdict "$i4 >= 5 * $i2")
      [ "$i2" = - ] || [ "$i5" = - ] || v5=$(verdict "$i5 >= 5 * $i2")
      [ "$b2" = - ] || vb=$(verdict "$b2 < 0.15 * ${comp[$image]}")
      [ "$i3" = - ] || [ "$ir" = - ] || v3=$(verdict "$i3 <= 1.5 * $ir")
      for v in "$v4" "$v5" "$vb" "$v3"; do tally "$v"; done
      for v in "$w4" "$w5" "$wb"; do tally_prof "$v"; done
      # shellcheck disable=SC2059
      printf "$fmt2" "$image ${CMD[$c]} $net" "$(ratio "$i4" "$i2") $v4" "$(ratio "$i5" "$i2") $v5" \
        "$(pct "$b2" "${comp[$image]}") $vb" "$(ratio "$i3" "$ir") $v3" \
        "$(ratio "$i4" "$p2") $w4" "$(ratio "$i5" "$p2") $w5" "$(pct "$pb" "${comp[$image]}") $wb"
    done
  done
done

echo
echo "(3) with the page cache kept (a node that just ran the image, and runc right after a run of its own): hot = warm without"
echo "    dropping the page cache, runchot = runc likewise:"
fmt3="%-40s %8s %8s %12s\n"
# shellcheck disable=SC2059
printf "$fmt3" "" "hot ms" "runchot" "hot/runchot"
h_ok=0 h_missed=0
for image in "${IMAGES[@]}"; do
  for c in $(cmds_of "$image"); do
    for net in "${NETS[@]}"; do
      ih=$(med "s.$image.$c.$net.hot") irh=$(med "s.$image.$c.${NETS[0]}.runchot") vh=-
      [ "$ih" = - ] || [ "$irh" = - ] || vh=$(verdict "$ih <= 1.5 * $irh")
      if [ "$vh" = ok ]; then h_ok=$((h_ok + 1)); elif [ "$vh" = MISSED ]; then h_missed=$((h_missed + 1)); fi
      # shellcheck disable=SC2059
      printf "$fmt3" "$image ${CMD[$c]} $net" "$(msec "$ih")" "$(msec "$irh")" "$(ratio "$ih" "$irh") $vh"
    done
  done
done

echo
echo "anchors measured on this machine by the issue's author (WAN): stargz /bin/true on minbase 0.66 s fetching 1.6 MB, python3 import json 1.40 s fetching 6.4 MB;"
echo "  skopeo+umoci+runc 2.31 s / 2.88 s; ctr pull+run 2.14 s / 2.62 s (minbase /bin/true / python3 import json)"
anchor_row() { # IMAGE CMD STARGZ_S STARGZ_MB SKOPEO_S CTR_S
  local k=$1.$2.wan s b
  s=$(med "s.$k.idx") b=$(med "b.$k.idx")
  echo "  $1 ${CMD[$2]} wan: clip idx $(sec "$s") s, $(mb "$b") MB; stargz anchor $3 s, $4 MB: anchor/clip time $(ratio "$3" "$s")," \
    "bytes $(awk -v a="$4" -v b="$b" 'BEGIN { if (b == "-" || b == 0) print "-"; else printf "%.2fx", a * 1e6 / b }') (> 1: clip better);" \
    "this run's skopeo $(sec "$(med "s.$k.skopeo")") s (anchor $5), ctr $(sec "$(med "s.$k.ctr")") s (anchor $6)"
}
case " ${IMAGES[*]} " in *" debian "*) anchor_row debian true 0.66 1.6 2.31 2.14 ;; esac
case " ${IMAGES[*]} " in *" debian-python "*) anchor_row debian-python json 1.40 6.4 2.88 2.62 ;; esac

echo
echo "targets: (2) idx >= 5x faster than (4) skopeo+umoci+runc and (5) ctr pull+run; (2) fetches < 15% of the compressed image; (3) warm <= 1.5x runc on an unpacked local rootfs"
echo "results: $n_ok ok, $n_missed MISSED (per-row verdicts above); (2p) prof, the same targets with a published profile: $p_ok ok, $p_missed MISSED;"
echo "  (3) with the page cache kept: $h_ok ok, $h_missed MISSED"
failed=0
for image in "${IMAGES[@]}"; do
  for c in $(cmds_of "$image"); do
    for net in "${NETS[@]}"; do
      for mode in "${MODES[@]}"; do
        case $mode in runc | runchot) [ "$net" = "${NETS[0]}" ] || continue ;; esac
        [ "$mode" != prof ] || has_profile "$image" "$c" || continue
        n=$(wc -w <<<"${r[s.$image.$c.$net.$mode]:-}") want=$((RUNS * $(reps_of "$mode")))
        ((n == want)) || { failed=1; notes+=("$image ${CMD[$c]} $net $mode: $n of $want runs succeeded"); }
      done
    done
  done
done
((BENCH_NOISY_RUNS == 0)) || notes+=("$BENCH_NOISY_RUNS runs started on a busy machine (idle wait capped at ${BENCH_QUIET_MAX}s)")
for note in "${notes[@]}"; do echo "note: $note"; done
exit "$failed"
