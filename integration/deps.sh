#!/usr/bin/env bash
# Installs the Debian packages clip builds against and its tests drive. Idempotent: installs only what is missing.
set -euo pipefail

packages=(
  # build: the C libraries behind clip's system-library targets
  pkg-config zlib1g-dev libzstd-dev libisal-dev libssl-dev libfuse3-dev libcurl4-openssl-dev libseccomp-dev
  # tests and benchmarks: reference unpacker, image tools, test image contents
  umoci skopeo busybox-static debootstrap zstd pigz jq time python3
  # registry tests (registry-check.sh, registry/): registry 2.8, htpasswd, token-signing keys, netns/veth/tbf, curl
  docker-registry apache2-utils openssl iproute2 curl
  # OCI runtimes the hook is checked with (hook-check.sh), and containerd for the comparisons
  runc crun containerd
  # the snapshotter: containerd's conformance suite (Go, built offline from Debian's sources); `make protos`
  golang-go golang-github-containerd-containerd-dev protobuf-compiler
)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
