// Lazy (remote) snapshots through containerd's proxy client: the remote-snapshotter protocol with CRI's labels.
// Run by ../containerd-check.sh, which sets CLIP_REMOTE_* for the Debian image it serves.
package conformance

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/mount"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/snapshots"
)

func readThrough(t *testing.T, sn snapshots.Snapshotter, ctx context.Context, key, parent, file string) string {
	mounts, err := sn.View(ctx, key, parent)
	if err != nil {
		t.Fatalf("View %s of %s: %v", key, parent, err)
	}
	target := t.TempDir()
	if err := mount.All(mounts, target); err != nil {
		t.Fatalf("mount %+v: %v", mounts, err)
	}
	defer mount.UnmountAll(target, 0)
	bytes, err := os.ReadFile(filepath.Join(target, file))
	if err != nil {
		t.Fatalf("read %s through the view: %v", file, err)
	}
	return string(bytes)
}

func TestClipRemoteSnapshots(t *testing.T) {
	image, layer, chain := os.Getenv("CLIP_REMOTE_IMAGE"), os.Getenv("CLIP_REMOTE_LAYER"), os.Getenv("CLIP_REMOTE_CHAIN")
	if image == "" || layer == "" || chain == "" {
		t.Fatal("set CLIP_REMOTE_IMAGE, CLIP_REMOTE_LAYER and CLIP_REMOTE_CHAIN (containerd-check.sh does)")
	}
	ctx := namespaces.WithNamespace(context.Background(), "remote")
	root := t.TempDir()
	sn, stop, err := startClip(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{
		"containerd.io/snapshot.ref":              chain,
		"containerd.io/snapshot/cri.image-ref":    image,
		"containerd.io/snapshot/cri.layer-digest": layer,
	}
	if _, err := sn.Prepare(ctx, "extract-1 "+chain, "", snapshots.WithLabels(labels)); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("Prepare with the remote labels: want AlreadyExists, got %v", err)
	}
	info, err := sn.Stat(ctx, chain)
	if err != nil || info.Kind != snapshots.KindCommitted || info.Labels["containerd.io/snapshot/remote"] == "" {
		t.Fatalf("Stat %s: %+v, %v (want a committed remote snapshot)", chain, info, err)
	}
	if _, err := sn.Stat(ctx, "extract-1 "+chain); !errdefs.IsNotFound(err) {
		t.Fatalf("the extraction key should not exist: %v", err)
	}
	if text := readThrough(t, sn, ctx, "view-1", chain, "etc/os-release"); !strings.Contains(text, "Debian") {
		t.Fatalf("os-release through the lazy layer: %q", text)
	}

	// A restart of the snapshotter keeps the layer (its daemon is not the snapshotter's child in any way that matters).
	sn.Close()
	stop()
	if sn, stop, err = startClip(ctx, root); err != nil {
		t.Fatal(err)
	}
	defer func() { sn.Close(); stop() }()
	if text := readThrough(t, sn, ctx, "view-2", chain, "etc/os-release"); !strings.Contains(text, "Debian") {
		t.Fatalf("os-release after a restart: %q", text)
	}

	// Labels naming an image that is not there: a plain snapshot (containerd then pulls as usual).
	missing := map[string]string{
		"containerd.io/snapshot.ref":              "sha256:" + strings.Repeat("0", 64),
		"containerd.io/snapshot/cri.image-ref":    image + "-missing",
		"containerd.io/snapshot/cri.layer-digest": layer,
	}
	if _, err := sn.Prepare(ctx, "extract-2", "", snapshots.WithLabels(missing)); err != nil {
		t.Fatalf("Prepare with labels of a missing image should fall back to a plain snapshot: %v", err)
	}
	for _, key := range []string{"extract-2", "view-1", "view-2", chain} {
		if err := sn.Remove(ctx, key); err != nil {
			t.Fatalf("Remove %s: %v", key, err)
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), root) {
		t.Fatalf("mounts left under %s", root)
	}
}
