#!/bin/bash
# `make protos`: regenerates Sources/ContainerdAPI/Generated from the .proto files Debian ships with containerd
# (golang-github-containerd-containerd-dev) with protoc (protobuf-compiler) and the plugins of the pinned
# swift-protobuf and grpc-swift-protobuf versions in ./Package.swift, built here. The output is committed: building
# clip needs neither protoc nor the plugins. Same inputs, same output.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$root/Sources/ContainerdAPI/Generated
gocode=/usr/share/gocode/src
api=github.com/containerd/containerd/api
# the services clip serves (snapshots) and calls (content, images, leases, diff: `clip pull`), and their types
protos=("$api/services/snapshots/v1/snapshots.proto" "$api/services/content/v1/content.proto"
  "$api/services/images/v1/images.proto" "$api/services/leases/v1/leases.proto" "$api/services/diff/v1/diff.proto"
  "$api/types/mount.proto" "$api/types/descriptor.proto")
for f in "${protos[@]/#/$gocode/}" "$gocode/github.com/gogo/protobuf/gogoproto/gogo.proto" \
         /usr/include/google/protobuf/empty.proto; do
  [ -r "$f" ] || { echo "protos: $f is missing (integration/deps.sh installs it)" >&2; exit 1; }
done
command -v protoc >/dev/null || { echo "protos: protoc is missing (apt-get install protobuf-compiler)" >&2; exit 1; }

if [ -n "${CLIP_PROTOC_PLUGINS:-}" ]; then
  bin=$CLIP_PROTOC_PLUGINS # a folder holding both plugins, built from ./Package.swift elsewhere
else
  echo "protos: building the plugins (swift-protobuf, grpc-swift-protobuf)" >&2
  (cd "$here" && swift build -c release --product protoc-gen-swift >&2 &&
    swift build -c release --product protoc-gen-grpc-swift-2 >&2)
  bin=$(cd "$here" && swift build -c release --show-bin-path)
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# gen SERVER PROTO...: messages and clients, and servers when SERVER is true (only snapshots is served)
gen() {
  local server=$1
  shift
  protoc -I "$gocode" -I "$gocode/github.com/gogo/protobuf" -I /usr/include \
    --plugin=protoc-gen-swift="$bin/protoc-gen-swift" --swift_out="$tmp" \
    --swift_opt=Visibility=Public --swift_opt=FileNaming=DropPath \
    --plugin=protoc-gen-grpc-swift="$bin/protoc-gen-grpc-swift-2" --grpc-swift_out="$tmp" \
    --grpc-swift_opt=Visibility=Public --grpc-swift_opt=FileNaming=DropPath \
    --grpc-swift_opt=Client=true --grpc-swift_opt=Server="$server" \
    "$@"
}
gen true "${protos[0]}"
gen false "${protos[@]:1}"
rm -f "$tmp/mount.grpc.swift" "$tmp/descriptor.grpc.swift"
rm -rf "$out"
mkdir -p "$out"
for f in "$tmp"/*.swift; do
  # generated code keeps the generator's style: `make check` (swift format lint) must skip it
  if grep -q '^// swift-format-ignore-file' "$f"; then cp "$f" "$out/"; else
    { echo "// swift-format-ignore-file"; cat "$f"; } >"$out/$(basename "$f")"
  fi
done
ls "$out" >&2
