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
	clip := os.Getenv("CLIP")
	if clip == "" {
		t.Fatal("set CLIP to the clip binary")
	}
	testsuite.SnapshotterSuite(t, "clip", func(ctx context.Context, root string) (snapshots.Snapshotter, func() error, error) {
		socket := filepath.Join(root, "..", "clip-snapshotter.sock")
		cmd := exec.Command(clip, "snapshotter", "--address", socket, "--root", root)
		log, err := os.Create(filepath.Join(root, "..", "clip-snapshotter.log"))
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
		sn := proxy.NewSnapshotter(snapshotsapi.NewSnapshotsClient(conn), "clip")
		return sn, func() error {
			err := sn.Close()
			conn.Close()
			stop()
			return err
		}, nil
	})
}
