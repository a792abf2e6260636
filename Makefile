# clip — the two commands the README names: `make demo` (the main job) and `make test` (what CI runs).
SHELL := /bin/bash
SWIFT ?= swift
CLIP_TEST_WORK ?= /tmp/clip-test
export CLIP_TEST_WORK

.PHONY: all deps build release test unit integration check fmt protos startup-order bench bench-index bench-registry bench-mount bench-coldstart bench-containerd demo clean

all: build

deps:
	integration/deps.sh

build: deps
	$(SWIFT) build

## The release binary: the Swift runtime linked in; no $$ORIGIN run path (a start would look for every library in the
## build folder first); every function in a section of its own, so that the link can put the ones a container start
## runs together (Sources/clip/startup-order.txt, written by `make startup-order`).
RELEASE_FLAGS := -c release --static-swift-stdlib --disable-local-rpath -Xswiftc -Xfrontend -Xswiftc -function-sections -Xcc -ffunction-sections

release: deps
	$(SWIFT) build $(RELEASE_FLAGS)

## Rewrites Sources/clip/startup-order.txt from the page faults of container starts (root, perf); relink after it.
startup-order: release
	CLIP=$(CURDIR)/.build/release/clip integration/startup-order.sh
	rm -f .build/release/clip
	$(SWIFT) build $(RELEASE_FLAGS)

## Unit tests, then the reference and bad-input checks against real images.
test: check build unit integration

unit: deps
	$(SWIFT) test

integration: build
	CLIP=$(CURDIR)/.build/debug/clip integration/reference-check.sh
	CLIP=$(CURDIR)/.build/debug/clip integration/bad-input.sh
	CLIP=$(CURDIR)/.build/debug/clip integration/registry-check.sh
	CLIP=$(CURDIR)/.build/debug/clip integration/mount-check.sh
	CLIP=$(CURDIR)/.build/debug/clip integration/hook-check.sh
	CLIP=$(CURDIR)/.build/debug/clip integration/snapshotter/conformance.sh
	CLIP=$(CURDIR)/.build/debug/clip integration/snapshotter/containerd-check.sh

## Regenerate Sources/ClipSnapshotter/Generated from Debian's containerd .proto files (committed; not needed to build).
protos: deps
	integration/protos/generate.sh

## Lint with the same configuration `make fmt` formats with.
check:
	$(SWIFT) format lint --strict --configuration .swift-format --recursive Sources Tests Package.swift

fmt:
	$(SWIFT) format --in-place --configuration .swift-format --recursive Sources Tests Package.swift

bench: bench-index bench-registry bench-mount bench-coldstart bench-containerd

bench-index: release
	CLIP=$(CURDIR)/.build/release/clip integration/bench/bench-index.sh

bench-registry: release
	CLIP=$(CURDIR)/.build/release/clip integration/bench/bench-registry.sh

bench-mount: release
	CLIP=$(CURDIR)/.build/release/clip integration/bench/bench-mount.sh

bench-coldstart: release
	CLIP=$(CURDIR)/.build/release/clip integration/bench/bench-coldstart.sh

bench-containerd: release
	CLIP=$(CURDIR)/.build/release/clip integration/bench/bench-containerd.sh

## The main job on a default that needs nothing outside this machine.
demo: release
	CLIP=$(CURDIR)/.build/release/clip integration/demo.sh

clean:
	rm -rf .build
