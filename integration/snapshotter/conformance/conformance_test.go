// containerd's snapshotter conformance suite (snapshots/testsuite) against `clip snapshotter`, driven the way
// containerd drives a proxy snapshotter: snapshots/proxy over a gRPC connection to the unix socket.
//
// Each sub-test gets a fresh `clip snapshotter` process on its own root (the suite expects a fresh snapshotter per
// sub-test). Built offline from Debian's containerd sources in GOPATH mode (see ../conformance.sh); the clip binary
// comes from $CLIP.
package conformance

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/snapshots"
	"github.com/containerd/containerd/snapshots/proxy"
	"github.com/containerd/containerd/snapshots/testsuite"
	"google.golang.org/grpc"
)

func TestClipSnapshotter(t *testing.T) {
	if os.Getenv("CLIP") == "" {
		t.Fatal("set CLIP to the clip binary")
	}
	testsuite.SnapshotterSuite(t, "clip", func(ctx context.Context, root string) (snapshots.Snapshotter, func() error, error) {
		sn, stop, err := startClip(ctx, root)
		if err != nil {
			return nil, nil, err
		}
		return sn, func() error {
			err := sn.Close()
			stop()
			return err
		}, nil
	})
}

// startClip starts `clip snapshotter` on root (its socket and log beside it) and connects containerd's proxy client.
func startClip(ctx context.Context, root string) (snapshots.Snapshotter, func(), error) {
	clip := os.Getenv("CLIP")
	if clip == "" {
		return nil, nil, fmt.Errorf("set CLIP to the clip binary")
	}
	socket := filepath.Join(root, "..", "clip-snapshotter.sock")
	os.Remove(socket)
	cmd := exec.Command(clip, "snapshotter", "--address", socket, "--root", root)
	log, err := os.OpenFile(filepath.Join(root, "..", "clip-snapshotter.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0644)
	if err != nil {
		return nil, nil, err
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	stop := func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait(); log.Close() }
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.Dial("unix", socket); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			stop()
			return nil, nil, fmt.Errorf("clip snapshotter did not listen on %s", socket)
		}
		time.Sleep(20 * time.Millisecond)
	}
	conn, err := grpc.Dial("unix://"+socket, grpc.WithInsecure(),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}))
	if err != nil {
		stop()
		return nil, nil, err
	}
	return proxy.NewSnapshotter(snapshotsapi.NewSnapshotsClient(conn), "clip"), func() { conn.Close(); stop() }, nil
}
