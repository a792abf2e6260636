#!/usr/bin/env bash
# Mount benchmark: `clip mount` of Debian minbase from a registry, local and
# behind an emulated WAN link.  Cold: the first read of a small file and of
# the largest file (time, bytes fetched) on a fresh mount with an empty span
# cache.  Warm: sequential read of the largest file and metadata walks,
# beside the same on an umoci-unpacked copy; and the daemon's RSS.
#
#   integration/bench/bench-mount.sh
#
# Environment: CLIP (binary, default .build/release/clip), CLIP_TEST_WORK
# (images are cached in its images/, registries live in its registry/,
# default /tmp/clip-test), BENCH_RUNS (default 3), BENCH_READ_RUNS (warm reads,
# default 2 x BENCH_RUNS + 1), BENCH_IMAGE (default
# debian; any ensure_image name), BENCH_SMALL_FILE (default /etc/os-release),
# BENCH_DISK_DIR (where the ext4 images live, default a tmpfs: see Method),
# BENCH_WAN_DELAY_MS (per direction, default 10: ~20 ms round trip),
# BENCH_WAN_RATE (default 1gbit), and the BENCH_QUIET_* knobs of lib.sh.
# Needs root (tmpfs, loop mounts, FUSE, network namespace, drop_caches),
# docker-registry, skopeo, umoci, jq, mkfs.ext4, iproute2.
#
# Method: the image is pushed to a registry on 127.0.0.1 ("local") and to
# one in network namespace clipbmnt behind registry/wan.sh's link ("wan"),
# and indexed from each (not measured).  Two ext4 file systems, each on a
# loop device over an image file (on a tmpfs unless BENCH_DISK_DIR, so the
# "disk" is memory-speed and quiet): one holds the span cache (--cache), the
# other an `umoci unpack` of the image (the local copy).  Before every
# measured run the machine must be idle (capped wait) and the page cache
# is dropped (echo 3 > /proc/sys/vm/drop_caches: data, dentries, inodes,
# so FUSE lookups go to the daemon again).
#   cold:  per registry, BENCH_RUNS times each (interleaved): empty span
#          cache, drop caches, `clip mount` (timed), `cat SMALL` (timed),
#          `clip stats`; then the same with a fresh mount for the largest
#          file.  Daemon RSS (ps -o rss of the `clip mount … --foreground`
#          process; RssAnon of /proc/PID/status in parentheses: the part
#          that is not the binary's and libraries' pages) right after the
#          mount and after the large read.
#   warm:  one mount from the local registry, both files read once (spans
#          cached).  Per run: drop caches, read the small file on both
#          sides (pages the daemon's read path back in, and the same on the
#          local side), then `dd bs=1M` of the largest file (dd's own
#          timing), mount and local copy interleaved, BENCH_READ_RUNS
#          times (default 2 x BENCH_RUNS + 1); `find -xdev | wc -l`
#          and `find -xdev -printf '%m %s %u\n'` (a stat of every entry)
#          likewise.  RSS on that fresh mount, after the walks and after
#          the warm reads.  The RSS target counts the mounts and the walks.
#          The largest file's copy is in the cache by then (specs/mount.md,
#          whole-file copies), so those reads pass through to it; then the
#          same reads (mount side only) on a --no-passthrough mount: the
#          daemon-served path of smaller files and of files not yet copied.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

CLIP=${CLIP:-$root/.build/release/clip}
# shellcheck source=../registry/lib.sh
source "$root/integration/registry/lib.sh" # registry_*, and ../lib.sh: ensure_image, WORK, IMG
RUNS=${BENCH_RUNS:-3}
READ_RUNS=${BENCH_READ_RUNS:-$((2 * RUNS + 1))} # a warm read takes ~20 ms and its spread is wide: more samples
IMAGE=${BENCH_IMAGE:-debian}
SMALL=${BENCH_SMALL_FILE:-/etc/os-release}
WAN_DELAY_MS=${BENCH_WAN_DELAY_MS:-10}
WAN_RATE=${BENCH_WAN_RATE:-1gbit}

[ -x "$CLIP" ] || { echo "bench-mount: no clip binary at $CLIP (build with swift build -c release)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "bench-mount: needs root (mounts, FUSE, drop_caches)" >&2; exit 1; }
for tool in jq skopeo umoci docker-registry mkfs.ext4 ip tc; do
  command -v "$tool" >/dev/null || { echo "bench-mount: needs $tool" >&2; exit 1; }
done
[ -w /proc/sys/vm/drop_caches ] || { echo "bench-mount: cannot drop the page cache" >&2; exit 1; }
bench_need_time
bench_init
status=0
ensure_image "$IMAGE" >&2 || status=$?
((status != 77)) || { echo "bench-mount: image $IMAGE cannot be built here (exit 77)" >&2; exit 77; }
((status == 0)) || { echo "bench-mount: building $IMAGE failed (exit $status)" >&2; exit 1; }
layout=$IMG/$IMAGE

bench_tmpfs 1280m # logs, index files, and (by default) the ext4 images
tmp=$BENCH_TMPFS
BENCH_LOG=$tmp/log
disk=${BENCH_DISK_DIR:-$tmp}
notes=()

# ext4_fs NAME SIZE: a fresh ext4 on a loop device, mounted at $tmp/NAME.fs (set in $fs)
ext4_fs() {
  local img=$disk/clip-bench-$1.ext4
  fs=$tmp/$1.fs
  mkdir -p "$fs"
  truncate -s "$2" "$img"
  bench_on_exit ext4_release "$fs" "$img"
  mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$img"
  mount -o loop "$img" "$fs"
}
# ext4_release DIR IMAGE: unmount, wait for the loop device to let go of IMAGE (else the
# tmpfs under it stays busy), remove IMAGE
ext4_release() {
  local dev i
  if mountpoint -q "$1"; then
    dev=$(findmnt -n -o SOURCE "$1")
    umount "$1"
    for ((i = 0; i < 50; i++)); do
      [ -n "$(losetup -j "$2")" ] || break
      ((i != 10)) || losetup -d "$dev" 2>/dev/null || true
      sleep 0.1
    done
  fi
  rm -f "$2"
}
ext4_fs cache 512m
cache=$fs/cache
ext4_fs local 512m
localfs=$fs

# Registries: local on 127.0.0.1, wan in its own namespace.
wan=$root/integration/registry/wan.sh
export CLIP_WAN_NS=clipbmnt CLIP_WAN_NET=10.203.8
bench_on_exit registry_stop_all
bench_on_exit "$wan" down # runs before registry_stop_all
echo "bench-mount: starting the registries" >&2
registry_start bench-mount >>"$BENCH_LOG" 2>&1
local_addr=$REGISTRY_BENCH_MOUNT
if "$wan" status >/dev/null 2>&1; then
  echo "bench-mount: taking down a $CLIP_WAN_NS link left by an earlier run" >&2
  "$wan" down
fi
"$wan" up --delay-ms "$WAN_DELAY_MS" --rate "$WAN_RATE" >>"$BENCH_LOG" 2>&1
# shellcheck disable=SC1090,SC1091
source "$WORK/$CLIP_WAN_NS/env"
# shellcheck disable=SC2153 # from the env file
wan_addr=$WAN_ADDR

echo "bench-mount: pushing and indexing $IMAGE" >&2
registry_push "$layout:latest" "$local_addr/$IMAGE:latest"
registry_push "$layout:latest" "$wan_addr/$IMAGE:latest"
find "$REGISTRY_BENCH_MOUNT_STORAGE" "$REGISTRY_CLIPBMNT_STORAGE" -type f -exec cat {} + >/dev/null
declare -A index=([local]=$tmp/$IMAGE-local.clip [wan]=$tmp/$IMAGE-wan.clip)
"$CLIP" index "docker://$local_addr/$IMAGE:latest" -o "${index[local]}" --ignore-published >>"$BENCH_LOG" 2>&1
"$CLIP" index "docker://$wan_addr/$IMAGE:latest" --plain-http -o "${index[wan]}" --ignore-published >>"$BENCH_LOG" 2>&1
info=$("$CLIP" inspect "${index[local]}" --json)

echo "bench-mount: unpacking the local copy" >&2
(umask 022 && umoci unpack --image "$layout:latest" "$localfs/bundle") >>"$BENCH_LOG" 2>&1
lroot=$localfs/bundle/rootfs
read -r big_size big < <(find "$lroot" -xdev -type f -printf '%s /%P\n' | sort -n | tail -1)
small_size=$(stat -L -c %s "$lroot$SMALL")

# The mount and its daemon.
mp=$(mktemp -d "${TMPDIR:-/tmp}/clip-bench-mp.XXXXXX")
bench_on_exit rmdir "$mp"
dpid=""
is_mounted() { awk -v mp="$mp" '$5 == mp { found = 1 } END { exit !found }' /proc/self/mountinfo; }
daemon_pid() {
  local d args
  for d in /proc/[0-9]*; do
    mapfile -d '' args 2>/dev/null <"$d/cmdline" || continue
    case " ${args[*]} " in *" mount "*" $mp "*" --foreground "*) echo "${d#/proc/}"; return 0 ;; esac
  done
  return 1
}
rss_kb() { ps -o rss= -p "$dpid" | tr -d ' '; }
anon_kb() { awk '$1 == "RssAnon:" { print $2 }' "/proc/$dpid/status"; }
# add_rss KEY: the daemon's RSS and RssAnon (KiB) as KEY and KEY.anon
add_rss() { add "$1" "$(rss_kb)"; add "$1.anon" "$(anon_kb)"; }
clip_unmount() {
  local i
  if is_mounted; then
    "$CLIP" umount "$mp" >>"$BENCH_LOG" 2>&1 || umount -l "$mp" || true
  fi
  if [ -n "$dpid" ]; then
    for ((i = 0; i < 50; i++)); do
      kill -0 "$dpid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$dpid" 2>/dev/null; then
      notes+=("daemon $dpid still running 5 s after clip umount: killed")
      kill "$dpid" 2>/dev/null || true
    fi
  fi
  dpid=""
}
bench_on_exit clip_unmount
# clip_mount REG [ARGS...]: mounts index[REG] (timed: BENCH_MS), sets dpid
clip_mount() {
  bench_run "$CLIP" mount "${index[$1]}" "$mp" --cache "$cache" "${@:2}"
  dpid=$(daemon_pid) || { echo "bench-mount: no clip mount daemon found for $mp" >&2; exit 1; }
}
# stat_field NAME: a counter of `clip stats --json`
stat_field() { "$CLIP" stats "$mp" --json | jq -r ".$1"; }
# dd_gbps FILE: GB/s of dd's own timing
dd_gbps() {
  LC_ALL=C dd if="$1" of=/dev/null bs=1M 2>&1 >/dev/null |
    awk '/ copied, / { for (i = 1; i <= NF; i++) if ($i == "copied,") printf "%.3f\n", $1 / $(i + 1) / 1e9 }'
}
# after_drop: page the readers' code back in (a small file on each side; its span is cached)
after_drop() { cat "$mp$SMALL" "$lroot$SMALL" >/dev/null; }

declare -A r # results: KEY -> space-separated samples
add() { r[$1]="${r[$1]:-} $2"; }
med() { if [ -n "${r[$1]:-}" ]; then bench_median ${r[$1]}; else echo -; fi; } # word splitting intended

# Cold: per run, small then large, local and wan interleaved.
echo "bench-mount: cold reads" >&2
for ((i = 0; i < RUNS; i++)); do
  for kind in small large; do
    if [ "$kind" = small ]; then file=$SMALL; else file=$big; fi
    for reg in local wan; do
      ((i % 2 == 0)) || reg=$([ "$reg" = local ] && echo wan || echo local)
      clip_unmount
      rm -rf "$cache"
      bench_quiet_wait
      bench_drop_caches
      clip_mount "$reg"
      add "mount_ms.$reg" "$BENCH_MS"
      [ "$kind" = large ] || add_rss "rss_mount.$reg"
      bench_quiet_wait
      BENCH_LOG=/dev/null bench_run cat "$mp$file"
      add "cold_ms.$kind.$reg" "$BENCH_MS"
      add "cold_b.$kind.$reg" "$(stat_field bytesFetched)"
      add "cold_spans.$kind.$reg" "$(stat_field spansFetched)"
      add "cold_req.$kind.$reg" "$(stat_field requests)"
      [ "$kind" = small ] || add_rss "rss_large.$reg"
    done
  done
done

# Warm: metadata walks on a fresh mount (RSS before and after), then sequential reads.
echo "bench-mount: warm reads and metadata walks" >&2
clip_unmount
clip_mount local
cat "$mp$SMALL" "$mp$big" >/dev/null # spans cached
clip_unmount
clip_mount local
sleep 1
add_rss rss_fresh.local
for ((i = 0; i < RUNS; i++)); do
  for walk in count stat; do
    for side in clip local; do
      ((i % 2 == 0)) || side=$([ "$side" = clip ] && echo local || echo clip)
      if [ "$side" = clip ]; then dir=$mp; else dir=$lroot; fi
      bench_quiet_wait
      bench_drop_caches
      after_drop
      if [ "$walk" = count ]; then
        bench_run sh -c 'find "$1" -xdev | wc -l' sh "$dir"
      else
        bench_run sh -c 'find "$1" -xdev -printf "%m %s %u\n" >/dev/null' sh "$dir"
      fi
      add "walk_ms.$walk.$side" "$BENCH_MS"
    done
  done
done
add_rss rss_walk.local
entries_clip=$(find "$mp" -xdev | wc -l)
entries_local=$(find "$lroot" -xdev | wc -l)
entries_runtime=$(find "$lroot/dev" "$lroot/proc" "$lroot/sys" -xdev -mindepth 1 2>/dev/null | wc -l)
for ((i = 0; i < READ_RUNS; i++)); do
  for side in clip local; do
    ((i % 2 == 0)) || side=$([ "$side" = clip ] && echo local || echo clip)
    if [ "$side" = clip ]; then f=$mp$big; else f=$lroot$big; fi
    bench_quiet_wait
    bench_drop_caches
    after_drop
    add "warm_gbps.$side" "$(dd_gbps "$f")"
  done
done
add_rss rss_warm.local
warm_fetched=$(stat_field bytesFetched)
((warm_fetched == 0)) || notes+=("the warm mount fetched $warm_fetched bytes (expected 0: spans cached)")
passed=$(stat_field passthroughOpens)
((passed >= READ_RUNS)) || notes+=("only $passed of the $READ_RUNS warm reads passed through to the file's copy")
# The same reads served by the daemon (--no-passthrough): the path of smaller files and of files not yet copied.
clip_unmount
clip_mount local --no-passthrough
for ((i = 0; i < READ_RUNS; i++)); do
  bench_quiet_wait
  bench_drop_caches
  after_drop
  add "warm_gbps.daemon" "$(dd_gbps "$mp$big")"
done
clip_unmount

# The table.
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
comp=$(jq '[.layers[].compressedSize] | add' <<<"$info")
spans=$(jq '[.layers[].spans] | add' <<<"$info")
rtt=$(curl -s -o /dev/null -o /dev/null -o /dev/null -w '%{time_total}\n' \
  "http://$wan_addr/v2/" "http://$wan_addr/v2/" "http://$wan_addr/v2/" | awk '{ s += $1 } END { printf "%.1f", s * 1000 / NR }')
MiB=1048576
mib() { awk -v b="$1" 'BEGIN { if (b == "-") print "-"; else printf "%.2f", b / 1048576 }'; }
kib() { awk -v b="$1" 'BEGIN { if (b == "-") print "-"; else printf "%.1f", b / 1024 }'; } # also KiB -> MiB
ms() { awk -v v="$1" 'BEGIN { if (v == "-") print "-"; else printf "%.1f", v }'; }
rss() { echo "$(kib "$(med "$1")") ($(kib "$(med "$1.anon")"))"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2fx", a / b }'; }
fmt="%-48s %12s %12s %12s %11s\n"

echo
echo "clip mount of $IMAGE from a registry: cold first reads (empty span cache, fresh mount, page cache dropped), warm reads and walks (spans cached, page cache dropped)"
echo "image: $(mib "$comp") MiB compressed, $(jq '.uncompressedImageBytes' <<<"$info" | awk '{ printf "%.2f", $1 / 1048576 }') MiB tar, $spans spans, $(jq .mergedEntries <<<"$info") entries; largest file $big ($(mib "$big_size") MiB)"
echo "local: registry on 127.0.0.1; wan: netns $CLIP_WAN_NS, tbf $WAN_RATE, faultproxy --delay-ms $WAN_DELAY_MS (GET /v2/ ${rtt} ms); span cache and local copy: ext4 on loop devices over ${BENCH_DISK_DIR:-a tmpfs}"
echo "median of $RUNS interleaved runs ($READ_RUNS for warm reads); $(nproc) cores, ${cpu:-unknown CPU}; $CLIP"
echo
# shellcheck disable=SC2059
{
  printf "$fmt" "" "clip local" "clip wan" "local copy" "clip/local"
  printf "$fmt" "mount, page cache dropped (ms)" "$(ms "$(med mount_ms.local)")" "$(ms "$(med mount_ms.wan)")" - -
  printf "$fmt" "cold read $SMALL, $small_size B (ms)" "$(ms "$(med cold_ms.small.local)")" "$(ms "$(med cold_ms.small.wan)")" - -
  printf "$fmt" "  fetched KiB" "$(kib "$(med cold_b.small.local)")" "$(kib "$(med cold_b.small.wan)")" - -
  printf "$fmt" "  spans / requests" "$(med cold_spans.small.local) / $(med cold_req.small.local)" \
    "$(med cold_spans.small.wan) / $(med cold_req.small.wan)" - -
  printf "$fmt" "cold read largest file, $(mib "$big_size") MiB (ms)" "$(ms "$(med cold_ms.large.local)")" "$(ms "$(med cold_ms.large.wan)")" - -
  printf "$fmt" "  fetched MiB (image: $(mib "$comp") MiB)" "$(mib "$(med cold_b.large.local)")" "$(mib "$(med cold_b.large.wan)")" - -
  printf "$fmt" "  spans / requests" "$(med cold_spans.large.local) / $(med cold_req.large.local)" \
    "$(med cold_spans.large.wan) / $(med cold_req.large.wan)" - -
  printf "$fmt" "warm sequential read, dd bs=1M (GB/s)" "$(med warm_gbps.clip)" - "$(med warm_gbps.local)" \
    "$(ratio "$(med warm_gbps.clip)" "$(med warm_gbps.local)")"
  printf "$fmt" "  the same, --no-passthrough (GB/s)" "$(med warm_gbps.daemon)" - "$(med warm_gbps.local)" \
    "$(ratio "$(med warm_gbps.daemon)" "$(med warm_gbps.local)")"
  printf "$fmt" "find -xdev | wc -l: $entries_clip / $entries_local entries (ms)" "$(ms "$(med walk_ms.count.clip)")" - \
    "$(ms "$(med walk_ms.count.local)")" "$(ratio "$(med walk_ms.count.clip)" "$(med walk_ms.count.local)")"
  printf "$fmt" "find -xdev -printf '%m %s %u' (ms)" "$(ms "$(med walk_ms.stat.clip)")" - \
    "$(ms "$(med walk_ms.stat.local)")" "$(ratio "$(med walk_ms.stat.clip)" "$(med walk_ms.stat.local)")"
  printf "$fmt" "daemon RSS (anon), MiB: cold mount" "$(rss rss_mount.local)" "$(rss rss_mount.wan)" - -
  printf "$fmt" "  after the cold read of the largest file" "$(rss rss_large.local)" "$(rss rss_large.wan)" - -
  printf "$fmt" "  warm mount (page cache not dropped)" "$(rss rss_fresh.local)" - - -
  printf "$fmt" "  after the metadata walks" "$(rss rss_walk.local)" - - -
  printf "$fmt" "  after the warm reads" "$(rss rss_warm.local)" - - -
}
echo
echo "targets: warm sequential >= 1.5 GB/s and >= 0.5x local; metadata walks <= 2x local; a small-file read fetches <= one span (1 span, <= 2 MiB compressed); daemon RSS after mount and walks < 32 MiB"
verdict() { if awk "BEGIN { exit !($1) }"; then echo ok; else echo MISSED; fi; }
g=$(med warm_gbps.clip) gl=$(med warm_gbps.local)
wc_r=$(awk -v a="$(med walk_ms.count.clip)" -v b="$(med walk_ms.count.local)" 'BEGIN { printf "%.2f", a / b }')
ws_r=$(awk -v a="$(med walk_ms.stat.clip)" -v b="$(med walk_ms.stat.local)" 'BEGIN { printf "%.2f", a / b }')
sb=$(bench_max ${r[cold_b.small.local]} ${r[cold_b.small.wan]})
ss=$(bench_max ${r[cold_spans.small.local]} ${r[cold_spans.small.wan]})
rss=$(bench_max ${r[rss_mount.local]} ${r[rss_mount.wan]} ${r[rss_fresh.local]} ${r[rss_walk.local]})
echo "results: warm $g GB/s $(verdict "$g >= 1.5"), $(ratio "$g" "$gl") of local $(verdict "$g >= 0.5 * $gl");" \
  "walks ${wc_r}x / ${ws_r}x $(verdict "$wc_r <= 2 && $ws_r <= 2");" \
  "small read at most $ss span(s), $(kib "$sb") KiB $(verdict "$ss <= 1 && $sb <= 2 * $MiB");" \
  "RSS after mount and walks at most $(kib "$rss") MiB $(verdict "$rss < 32 * 1024")"
if ((entries_clip + entries_runtime == entries_local)); then
  ((entries_runtime == 0)) || notes+=("entries: the local copy has $entries_runtime more, all under /dev, /proc, /sys (served empty by the mount)")
else
  notes+=("entry counts differ: mount $entries_clip, local copy $entries_local ($entries_runtime under /dev, /proc, /sys)")
fi
((BENCH_NOISY_RUNS == 0)) || notes+=("$BENCH_NOISY_RUNS runs started on a busy machine (idle wait capped at ${BENCH_QUIET_MAX}s)")
for note in "${notes[@]}"; do echo "note: $note"; done
