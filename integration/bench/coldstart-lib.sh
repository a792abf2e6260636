# The machinery the cold-start benchmarks (bench-coldstart.sh, bench-containerd.sh) share, sourced once their
# images exist (ensure_image) and bench_init ran: a tmpfs with the registry storage, logs and per-cell ext4 file
# systems; the local registry (127.0.0.1) and registry/wan.sh's emulated WAN link; each image of IMAGES pushed to
# both as IMAGE-noidx and as IMAGE-idx with its index published (`clip index --push`), and images with a python3
# command also as IMAGE-prof, with a profile published beside the index (has_profile); registry access-log byte
# counts; a private containerd per cell; timing, medians and table formatting.
#
# Expects: root (the repository), BENCH_NAME (messages, the registry's name), CLIP, IMAGES, NETS, WAN_DELAY_MS,
# WAN_RATE, CALL_TIMEOUT, and lib.sh and ../registry/lib.sh sourced. Sets: tmp, BENCH_LOG, notes, addr/reglog (by
# network), comp/layers (by image: compressed bytes, layer count), live_fs, runc_state, ctd_sock, snap_config; the
# commands (cmds_of, CMD) and the results (r, add, med).
# shellcheck shell=bash disable=SC2034,SC2154 # variables for and from the sourcing script

# the commands run on each image: /bin/true everywhere, python3 where there is one
cmds_of() { if [ "$1" = debian-python ]; then echo true json; else echo true; fi; }
declare -A CMD=([true]="/bin/true" [json]="python3 -c 'import json'")
declare -A r # results: KEY -> space-separated samples
add() { r[$1]="${r[$1]:-} $2"; }
med() { if [ -n "${r[$1]:-}" ]; then bench_median ${r[$1]}; else echo -; fi; } # word splitting intended

bench_tmpfs 6g # registry storage, logs, templates, and the ext4 images
tmp=$BENCH_TMPFS
BENCH_LOG=$tmp/log
: >"$BENCH_LOG"
notes=()

# ext4_fs NAME SIZE: a fresh ext4 on a loop device, mounted at $tmp/NAME.fs (set in $fs)
ext4_fs() {
  local img=$tmp/$1.ext4
  fs=$tmp/$1.fs
  mkdir -p "$fs"
  truncate -s "$2" "$img"
  mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$img"
  mount -o loop "$img" "$fs"
}
# ext4_release NAME: unmount everything under it, wait for the loop device to let go, remove the image
ext4_release() {
  local dir=$tmp/$1.fs img=$tmp/$1.ext4 dev m i
  if mountpoint -q "$dir"; then
    # mounts left under it (an overlay or image mount of a failed run): deepest first
    for m in $(awk -v d="$dir/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
    dev=$(findmnt -n -o SOURCE "$dir")
    umount "$dir" 2>/dev/null || umount -l "$dir"
    for ((i = 0; i < 50; i++)); do
      [ -n "$(losetup -j "$img")" ] || break
      ((i != 10)) || losetup -d "$dev" 2>/dev/null || true
      sleep 0.1
    done
  fi
  rm -rf "$dir" "$img"
}
bench_on_exit ext4_release local
declare -A live_fs=() # cell file systems not yet released (released at exit)
release_all_cells() { local n; for n in "${!live_fs[@]}"; do cell_release "$n"; done; }
bench_on_exit release_all_cells

# Runtimes: runc's own state folder; containers it still knows are deleted at exit.
runc_state=$tmp/runc-state
mkdir -p "$runc_state"
rt() { timeout "$CALL_TIMEOUT" runc --root "$runc_state" "$@"; }
runc_cleanup() {
  local id
  for id in $(runc --root "$runc_state" list -q 2>/dev/null); do
    timeout 30 runc --root "$runc_state" delete -f "$id" >/dev/null 2>&1 || true
  done
}
bench_on_exit runc_cleanup

# Registries: local on 127.0.0.1, wan in its own namespace; storage on the tmpfs.
wan=$root/integration/registry/wan.sh
export CLIP_WAN_NS=${CLIP_WAN_NS:-clipbcs} CLIP_WAN_NET=${CLIP_WAN_NET:-10.203.9}
bench_on_exit registry_stop_all
bench_on_exit "$wan" down # runs before registry_stop_all
echo "$BENCH_NAME: starting the registries" >&2
mkdir -p "$tmp/storage-local" "$tmp/storage-wan"
registry_start "$BENCH_NAME" --storage "$tmp/storage-local" >>"$BENCH_LOG" 2>&1
localvar=REGISTRY_$(_reg_var "$BENCH_NAME")
declare -A addr=([local]=${!localvar}) reglog=([local]=$(eval echo "\$${localvar}_LOG"))
if "$wan" status >/dev/null 2>&1; then
  echo "$BENCH_NAME: taking down a $CLIP_WAN_NS link left by an earlier run" >&2
  "$wan" down
fi
"$wan" up --delay-ms "$WAN_DELAY_MS" --rate "$WAN_RATE" --storage "$tmp/storage-wan" >>"$BENCH_LOG" 2>&1
# shellcheck disable=SC1090,SC1091
source "$WORK/$CLIP_WAN_NS/env"
wanvar=REGISTRY_$(_reg_var "$CLIP_WAN_NS")_LOG
# shellcheck disable=SC2153 # from the env file
addr[wan]=$WAN_ADDR
reglog[wan]=${!wanvar}

# Images: pushed as IMAGE-noidx and IMAGE-idx (index published); compressed size from the layout's manifest.
declare -A comp=() layers=()
for image in "${IMAGES[@]}"; do
  layout=$IMG/$image
  manifest=$layout/blobs/sha256/$(jq -r '.manifests[0].digest' "$layout/index.json" | cut -d: -f2)
  comp[$image]=$(jq '[.layers[].size] | add' "$manifest")
  layers[$image]=$(jq '.layers | length' "$manifest")
  for net in "${NETS[@]}"; do
    echo "$BENCH_NAME: pushing $image to $net, publishing its index" >&2
    registry_push "$layout:latest" "${addr[$net]}/$image-noidx:latest"
    registry_push "$layout:latest" "${addr[$net]}/$image-idx:latest"
    "$CLIP" index "docker://${addr[$net]}/$image-idx:latest" --plain-http -o "$tmp/$image-$net.clip" --push \
      --ignore-published >>"$BENCH_LOG" 2>&1
  done
done

# Profiles: recorded once per image with a python3 command (`clip mount --record` of its local index, the command in a
# chroot, `clip umount`; not measured) and published with the index as IMAGE-prof (`clip index --push --profile`).
profiled=()
for image in "${IMAGES[@]}"; do
  [[ " $(cmds_of "$image") " == *" json "* ]] || continue
  rec=$tmp/record-$image
  mkdir -p "$rec"
  "$CLIP" mount "$tmp/$image-${NETS[0]}.clip" "$rec" --cache "$tmp/record-cache" --record "$tmp/$image.profile" \
    >>"$BENCH_LOG" 2>&1
  chroot "$rec" /usr/bin/python3 -c 'import json' >>"$BENCH_LOG" 2>&1
  "$CLIP" umount "$rec" >>"$BENCH_LOG" 2>&1
  rm -rf "$tmp/record-cache"
  for net in "${NETS[@]}"; do
    echo "$BENCH_NAME: pushing $image to $net as $image-prof, publishing its index with a profile" >&2
    registry_push "$IMG/$image:latest" "${addr[$net]}/$image-prof:latest"
    "$CLIP" index "docker://${addr[$net]}/$image-prof:latest" --plain-http -o "$tmp/$image-$net-prof.clip" --push \
      --ignore-published --profile "$tmp/$image.profile" >>"$BENCH_LOG" 2>&1
  done
  profiled+=("$image")
done
# has_profile IMAGE CMD: whether IMAGE-prof was pushed and CMD is the one its profile was recorded from
has_profile() { [[ " ${profiled[*]} " == *" $1 "* ]] && [ "$2" = json ]; }

# Registry access log: wait until it stops growing; sum of response bytes after a line mark.
log_settle() {
  local f=$1 a b i
  a=$(stat -c %s "$f")
  for ((i = 0; i < 30; i++)); do
    sleep 0.2
    b=$(stat -c %s "$f")
    [ "$a" != "$b" ] || return 0
    a=$b
  done
}
log_mark() { log_settle "$1"; wc -l <"$1"; }
log_bytes() {
  log_settle "$1"
  tail -n +"$(($2 + 1))" "$1" | grep -oE 'HTTP/[0-9.]+" [0-9]{3} [0-9]+' | awk '{ s += $3 } END { printf "%d\n", s }'
}

# Cells: a fresh ext4 per cell (cell_fs NAME sets $fs), released after it.
cell_fs() { cell_release "$1"; ext4_fs "cell-$1" 3g; live_fs[$1]=1; }
cell_release() {
  local n=$1
  [ -n "${live_fs[$n]:-}" ] || return 0
  stop_containerd
  [ ! -d "$tmp/cell-$n.fs/root" ] || "$CLIP" gc --root "$tmp/cell-$n.fs/root" --force >>"$BENCH_LOG" 2>&1 || true
  ext4_release "cell-$n"
  unset "live_fs[$n]"
}

# containerd: started on the cell's fs before the timed part, stopped after it
ctd_pid=""
ctd_sock=$tmp/ctd.sock
# start_containerd DIR [CONFIG]: a private containerd with its state in DIR (CONFIG: more config.toml text)
start_containerd() {
  local dir=$1 extra=${2:-} i
  mkdir -p "$dir/root" "$dir/state" "$dir/opt"
  cat >"$dir/config.toml" <<EOF
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$ctd_sock"
[ttrpc]
  address = "$ctd_sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
$extra
EOF
  containerd --config "$dir/config.toml" </dev/null >"$dir/containerd.log" 2>&1 &
  ctd_pid=$!
  for ((i = 0; i < 100; i++)); do
    ctr -a "$ctd_sock" version >/dev/null 2>&1 && return 0
    kill -0 "$ctd_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "$BENCH_NAME: containerd did not start: $(tail -3 "$dir/containerd.log")" >&2
  return 1
}
stop_containerd() {
  local i id
  stop_snapshotter
  [ -n "$ctd_pid" ] || return 0
  for id in $(ctr -a "$ctd_sock" -n bench tasks ls -q 2>/dev/null); do
    ctr -a "$ctd_sock" -n bench tasks kill -s KILL "$id" >/dev/null 2>&1 || true
  done
  for id in $(ctr -a "$ctd_sock" -n bench containers ls -q 2>/dev/null); do
    ctr -a "$ctd_sock" -n bench containers delete "$id" >/dev/null 2>&1 || true
  done
  kill "$ctd_pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do kill -0 "$ctd_pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$ctd_pid" 2>/dev/null || true
  wait "$ctd_pid" 2>/dev/null || true
  ctd_pid=""
  rm -f "$ctd_sock" "$ctd_sock.ttrpc"
}
bench_on_exit stop_containerd

# start_snapshotter DIR [ARGS]: `clip snapshotter` on $snap_sock with its root in DIR (stopped with containerd);
# containerd's configuration for it is $snap_config
snap_pid=""
snap_sock=$tmp/clip-snapshotter.sock
snap_config="[proxy_plugins.clip]
  type = \"snapshot\"
  address = \"$snap_sock\""
start_snapshotter() {
  local dir=$1 i
  shift
  rm -f "$snap_sock"
  "$CLIP" snapshotter --address "$snap_sock" --root "$dir" "$@" </dev/null >>"$BENCH_LOG" 2>&1 &
  snap_pid=$!
  for ((i = 0; i < 100; i++)); do
    [ ! -S "$snap_sock" ] || return 0
    kill -0 "$snap_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "$BENCH_NAME: clip snapshotter did not start" >&2
  return 1
}
stop_snapshotter() {
  [ -n "$snap_pid" ] || return 0
  kill "$snap_pid" 2>/dev/null || true
  wait "$snap_pid" 2>/dev/null || true
  snap_pid=""
  rm -f "$snap_sock"
}
# the logs of the image mounts of this run's hooks (they name their mountpoint, under $tmp)
drop_mount_logs() { grep -lF " on $tmp/" /run/clip/mounts/*.log 2>/dev/null | xargs -r rm -f || true; }
bench_on_exit drop_mount_logs

# clip_bundle TEMPLATE DIR ROOT: a fresh bundle from a template, its hooks pointed at ROOT
clip_bundle() {
  mkdir -p "$2/rootfs"
  jq --arg r "$3" '(.hooks[][] | .args) |= (index("--root") as $i | .[$i + 1] = $r)' "$1/config.json" >"$2/config.json"
}


# timed FN ARGS...: BENCH_MS = wall time of FN
timed() {
  local start end status=0
  start=${EPOCHREALTIME/[.,]/}
  "$@" || status=$?
  end=${EPOCHREALTIME/[.,]/}
  BENCH_MS=$(awk -v d=$((end - start)) 'BEGIN { printf "%.1f", d / 1000 }')
  return "$status"
}

declare -A r # results: KEY -> space-separated samples
add() { r[$1]="${r[$1]:-} $2"; }
med() { if [ -n "${r[$1]:-}" ]; then bench_median ${r[$1]}; else echo -; fi; } # word splitting intended


# Table cells: MB, seconds, percent, ratio, and a target verdict (ok / MISSED).
mb() { awk -v b="$1" 'BEGIN { if (b == "-" || b == "") print "-"; else printf "%.2f", b / 1e6 }'; }
sec() { awk -v v="$1" 'BEGIN { if (v == "-") print "-"; else printf "%.2f", v }'; }
msec() { awk -v v="$1" 'BEGIN { if (v == "-") print "-"; else printf "%.0f", v * 1000 }'; } # seconds -> ms
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.1f%%", 100 * a / b }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2fx", a / b }'; }
verdict() { if awk "BEGIN { exit !($1) }"; then echo ok; else echo MISSED; fi; }

# wan_rtt: the WAN link's measured round trip (ms), from three GET /v2/ (empty without a WAN network)
wan_rtt() {
  [ -n "${addr[wan]:-}" ] || return 0
  curl -s -o /dev/null -o /dev/null -o /dev/null -w '%{time_total}\n' \
    "http://${addr[wan]}/v2/" "http://${addr[wan]}/v2/" "http://${addr[wan]}/v2/" | awk '{ s += $1 } END { printf "%.1f", s * 1000 / NR }'
}
