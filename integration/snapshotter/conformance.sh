#!/bin/bash
# containerd's snapshotter conformance suite against `clip snapshotter` (see conformance/conformance_test.go).
#
#   integration/snapshotter/conformance.sh [go test flags, e.g. -test.run 'TestClipSnapshotter/Basic']
#
# (The same binary holds TestClipRemoteSnapshots, the lazy-layer check containerd-check.sh runs with
# -test.run '^TestClipRemoteSnapshots$' and the CLIP_REMOTE_* variables.)
#
# Builds the suite offline from Debian's golang-github-containerd-containerd-dev in GOPATH mode, runs it as root
# (the suite mounts what the snapshotter returns), and prints PASS/FAIL per sub-test. Exit status: the suite's.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CLIP=${CLIP:-$here/../../.build/debug/clip}
CLIP=$(realpath "$CLIP")
[ "$(id -u)" -eq 0 ] || { echo "error: the conformance suite needs root (it mounts)" >&2; exit 2; }
command -v go >/dev/null || { echo "error: go is missing (integration/deps.sh installs golang-go)" >&2; exit 2; }
src=/usr/share/gocode/src/github.com/containerd/containerd/snapshots/testsuite
[ -d "$src" ] || { echo "error: $src is missing (golang-github-containerd-containerd-dev)" >&2; exit 2; }

work=$(mktemp -d /tmp/clip-conformance.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp "$here"/conformance/*.go "$work/"
(cd "$work" && GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off CGO_ENABLED=0 \
  GOCACHE=${GOCACHE:-/tmp/clip-go-cache} go test -c -o "$work/conformance.test" . )
cd "$work"
status=0
CLIP=$CLIP ./conformance.test -test.v -test.timeout 10m -test.run '^TestClipSnapshotter$' "$@" >"$work/out" 2>&1 ||
  status=$?
grep -E '^\s*--- (PASS|FAIL|SKIP)' "$work/out" || true
if [ "$status" -ne 0 ]; then
  echo "---- failures:"
  grep -vE '^(=== (RUN|PAUSE|CONT)|\s*--- (PASS|SKIP))' "$work/out" | head -120
fi
summary=$(grep -cE '^\s*--- PASS' "$work/out" || true)/$(grep -cE '^\s*--- FAIL' "$work/out" || true)/$(grep -cE '^\s*--- SKIP' "$work/out" || true)
echo "conformance: passed/failed/skipped = $summary (sub-tests and the parent test)"
exit "$status"
