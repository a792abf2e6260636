#!/bin/bash
# `make protos`: regenerates Sources/ClipSnapshotter/Generated from the .proto files Debian ships with containerd
# (golang-github-containerd-containerd-dev) with protoc (protobuf-compiler) and the plugins of the pinned
# swift-protobuf and grpc-swift-protobuf versions in ./Package.swift, built here. The output is committed: building
# clip needs neither protoc nor the plugins. Same inputs, same output.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$root/Sources/ClipSnapshotter/Generated
gocode=/usr/share/gocode/src
api=github.com/containerd/containerd/api
for f in "$gocode/$api/services/snapshots/v1/snapshots.proto" "$gocode/$api/types/mount.proto" \
         "$gocode/github.com/gogo/protobuf/gogoproto/gogo.proto" /usr/include/google/protobuf/empty.proto; do
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
protos=("$api/services/snapshots/v1/snapshots.proto" "$api/types/mount.proto")
protoc -I "$gocode" -I "$gocode/github.com/gogo/protobuf" -I /usr/include \
  --plugin=protoc-gen-swift="$bin/protoc-gen-swift" --swift_out="$tmp" \
  --swift_opt=Visibility=Internal --swift_opt=FileNaming=DropPath \
  --plugin=protoc-gen-grpc-swift="$bin/protoc-gen-grpc-swift-2" --grpc-swift_out="$tmp" \
  --grpc-swift_opt=Visibility=Internal --grpc-swift_opt=FileNaming=DropPath \
  --grpc-swift_opt=Client=true --grpc-swift_opt=Server=true \
  "${protos[@]}"
rm -f "$tmp/mount.grpc.swift"
rm -rf "$out"
mkdir -p "$out"
for f in "$tmp"/*.swift; do
  # generated code keeps the generator's style: `make check` (swift format lint) must skip it
  if grep -q '^// swift-format-ignore-file' "$f"; then cp "$f" "$out/"; else
    { echo "// swift-format-ignore-file"; cat "$f"; } >"$out/$(basename "$f")"
  fi
done
ls "$out" >&2
