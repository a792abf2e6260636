# Helpers shared by the benchmarks in integration/bench (source, don't run).
#
#   bench_init                  install the EXIT/INT/TERM trap; call once
#   bench_on_exit CMD...        run CMD at exit (last registered runs first)
#   bench_tmpfs [SIZE]          mount a fresh tmpfs at $BENCH_TMPFS (unmounted at exit;
#                               not in $(...): the exit hook must be registered in this shell)
#   bench_need_time             make sure /usr/bin/time (GNU) exists, installing it if needed
#   bench_quiet_wait            wait until the CPUs are idle (capped), then sync and settle
#   bench_drop_caches           sync and drop the page cache (no-op if not permitted)
#   bench_warm FILE...          read files once so they sit in the page cache
#   bench_run CMD...            run CMD (stdout/stderr to $BENCH_LOG), set BENCH_MS and BENCH_RSS_KB
#   bench_median N...           print the median of the numbers
#   bench_max N...              print the largest of the numbers
#
# Knobs: BENCH_QUIET_MAX (seconds to wait for an idle machine, default 30),
# BENCH_QUIET_BUSY (busy-CPU percent counted as idle, default 10),
# BENCH_LOG (where bench_run sends the command's output, default /dev/null).

BENCH_QUIET_MAX=${BENCH_QUIET_MAX:-30}
BENCH_QUIET_BUSY=${BENCH_QUIET_BUSY:-10}
BENCH_LOG=${BENCH_LOG:-/dev/null}
BENCH_NOISY_RUNS=0 # runs started after bench_quiet_wait gave up waiting
_bench_exit_cmds=()

# bench_preflight NAME TOOL...: resolves CLIP and checks it, root, the tools and dropping the page cache; makes
# 127.0.0.1 reachable directly (no proxy); runs bench_init; builds the images of IMAGES (ensure_image, ../lib.sh),
# exiting 77 when one cannot be built here.
bench_preflight() {
  local name=$1 tool image status
  shift
  CLIP=$(realpath "$CLIP")
  [ -x "$CLIP" ] || { echo "$name: no clip binary at $CLIP (build with make release)" >&2; exit 1; }
  [ "$(id -u)" = 0 ] || { echo "$name: needs root (mounts, FUSE, runtimes, drop_caches)" >&2; exit 1; }
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "$name: needs $tool" >&2; exit 1; }
  done
  [ -w /proc/sys/vm/drop_caches ] || { echo "$name: cannot drop the page cache" >&2; exit 1; }
  unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
  umask 022
  bench_init
  for image in "${IMAGES[@]}"; do
    status=0
    ensure_image "$image" >&2 || status=$?
    ((status != 77)) || { echo "$name: image $image cannot be built here (exit 77)" >&2; exit 77; }
    ((status == 0)) || { echo "$name: building $image failed (exit $status)" >&2; exit 1; }
  done
}

bench_init() {
  trap _bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

bench_on_exit() {
  local quoted
  printf -v quoted '%q ' "$@"
  _bench_exit_cmds+=("$quoted")
}

_bench_cleanup() {
  local i
  for ((i = ${#_bench_exit_cmds[@]} - 1; i >= 0; i--)); do
    eval "${_bench_exit_cmds[i]}" || true
  done
  _bench_exit_cmds=()
}

bench_tmpfs() {
  local size=${1:-512m}
  BENCH_TMPFS=$(mktemp -d "${TMPDIR:-/tmp}/clip-bench.XXXXXX")
  bench_on_exit rmdir "$BENCH_TMPFS"
  mount -t tmpfs -o "size=$size,mode=0755" clip-bench "$BENCH_TMPFS"
  bench_on_exit umount "$BENCH_TMPFS"
}

bench_need_time() {
  if ! /usr/bin/time -f %M true >/dev/null 2>&1; then
    echo "bench: installing GNU time" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends time >/dev/null
  fi
}

# Busy CPU percent (all cores) over $1 seconds, from /proc/stat.
_bench_cpu_busy() {
  local a b
  read -ra a < <(head -1 /proc/stat)
  sleep "$1"
  read -ra b < <(head -1 /proc/stat)
  # fields: cpu user nice system idle iowait irq softirq steal
  local total=0 idle i
  for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
  idle=$((b[4] - a[4] + b[5] - a[5]))
  echo $(((total - idle) * 100 / (total > 0 ? total : 1)))
}

bench_quiet_wait() {
  local deadline=$((SECONDS + BENCH_QUIET_MAX))
  sync
  until (($(_bench_cpu_busy 0.5) < BENCH_QUIET_BUSY)); do
    if ((SECONDS >= deadline)); then
      BENCH_NOISY_RUNS=$((BENCH_NOISY_RUNS + 1))
      break
    fi
  done
  sleep 0.5
}

bench_drop_caches() {
  sync
  echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
}

bench_warm() {
  cat -- "$@" >/dev/null
}

# Runs the command under GNU time; wall time from the shell's clock (µs resolution).
bench_run() {
  local rss start end status=0
  rss=$(mktemp)
  start=${EPOCHREALTIME/[.,]/}
  /usr/bin/time -f %M -o "$rss" "$@" >>"$BENCH_LOG" 2>&1 || status=$?
  end=${EPOCHREALTIME/[.,]/}
  BENCH_MS=$(awk -v d=$((end - start)) 'BEGIN { printf "%.1f", d / 1000 }')
  BENCH_RSS_KB=$(tail -1 "$rss")
  rm -f "$rss"
  if ((status != 0)); then
    echo "bench: command failed (exit $status): $*" >&2
    [ "$BENCH_LOG" = /dev/null ] || tail -5 "$BENCH_LOG" >&2
    return "$status"
  fi
}

bench_median() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

bench_max() {
  printf '%s\n' "$@" | sort -g | tail -1
}
