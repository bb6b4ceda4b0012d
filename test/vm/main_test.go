// Package vm_test runs the storage path on a real kernel: two guests booted
// by internal/vm (Debian's kernel with device-mapper and DRBD, under qemu),
// each with two virtual disks for a volume group. The lvm2 backend, the CSI
// node service and csi-sanity run inside the guests as test binaries built
// with the tag vmguest; the copy between nodes runs between the guests over
// their network, driven by a real kube-apiserver on the host.
//
// Needs root and qemu (hack/install-deps.sh installs it). Under CI=true a
// missing requirement fails the package instead of skipping it.
package vm_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"hwameistor.io/local/internal/vm"
)

// cluster is the package's two guests; share is the host folder they see
// at vm.GuestMountPoint.
var (
	cluster *vm.Cluster
	share   string
)

// diskBytes are each guest's data disks (/dev/vdb, /dev/vdc).
var diskBytes = []int64{2 << 30, 2 << 30}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if err := vm.CheckHost(); err != nil {
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, "FAIL: the VM suite cannot run here:", err)
			return 1
		}
		fmt.Fprintln(os.Stderr, "SKIP: the VM suite cannot run here:", err)
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	var err error
	share, err = os.MkdirTemp("", "hwvm-share-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(share)
	start := time.Now()
	if err := buildShare(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	image, err := vm.Image(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("vm: binaries and image ready in %s\n", time.Since(start).Round(time.Second))
	cluster, err = vm.Start(ctx, vm.Options{Guests: 2, DiskBytes: diskBytes, Share: share, Image: image,
		Logf: func(f string, a ...any) { fmt.Printf(f+"\n", a...) }})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	if err := cluster.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "vm teardown:", err)
		code = 1
	}
	if err := checkNoLeftovers(cluster); err != nil {
		fmt.Fprintln(os.Stderr, "vm teardown:", err)
		code = 1
	}
	return code
}

// buildShare builds the guest agent and the test binaries into share.
func buildShare(ctx context.Context) error {
	if err := vm.BuildAgent(ctx, share); err != nil {
		return err
	}
	return nil
}

// guestPath is where a guest sees a file of the shared folder.
func guestPath(name string) string { return filepath.Join(vm.GuestMountPoint, name) }
