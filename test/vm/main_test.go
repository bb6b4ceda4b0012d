// Package vm_test runs the storage path on a real kernel: three guests
// booted by internal/vm (Debian's kernel with device-mapper and DRBD, under
// qemu), each with two virtual disks for a volume group; most tests use the
// first two, the online move of an HA replica needs the third. The lvm2
// backend, the CSI node service and csi-sanity run inside the guests as
// test binaries built with the tag vmguest; the copy between nodes runs
// between the guests over their network, driven by a real kube-apiserver
// on the host.
//
// Needs root and qemu (hack/install-deps.sh installs it). Under CI=true a
// missing requirement fails the package instead of skipping it.
package vm_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"hwameistor.io/local/internal/testenv"
	"hwameistor.io/local/internal/vm"
)

// cluster is the package's three guests; share is the host folder they see
// at vm.GuestMountPoint; api is a kube-apiserver on the host listening on
// the guests' bridge, whose kubeconfig is share/kubeconfig.
var (
	cluster *vm.Cluster
	share   string
	api     *testenv.Env
)

// diskBytes are each guest's data disks (/dev/vdb, /dev/vdc).
var diskBytes = []int64{2 << 30, 2 << 30}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if err := vm.CheckHost(); err != nil {
		testenv.RequireOrExit("vm", err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	var err error
	share, err = os.MkdirTemp("", "hwvm-share-")
	if err != nil {
		return setupFailed(err)
	}
	defer os.RemoveAll(share)
	start := time.Now()
	if err := buildShare(ctx); err != nil {
		return setupFailed(err)
	}
	image, err := vm.Image(ctx)
	if err != nil {
		return setupFailed(err)
	}
	fmt.Printf("vm: binaries and image ready in %s\n", time.Since(start).Round(time.Second))
	cluster, err = vm.Start(ctx, vm.Options{Guests: 3, DiskBytes: diskBytes, Share: share, Image: image,
		Logf: func(f string, a ...any) { fmt.Printf(f+"\n", a...) }})
	if err != nil {
		return setupFailed(err)
	}
	defer func() { _ = cluster.Stop() }()
	if api, err = startAPI(); err != nil {
		return setupFailed(err)
	}
	defer func() { _ = api.Stop() }()
	code := m.Run()
	if err := cluster.Stop(); err != nil {
		code = setupFailed(fmt.Errorf("teardown: %w", err))
	}
	if err := checkNoLeftovers(cluster); err != nil {
		code = setupFailed(fmt.Errorf("teardown: %w", err))
	}
	return code
}

// setupFailed reports a failure outside any test the way go test -v prints
// a failed test, so hack/test.sh counts it, and returns the exit code.
func setupFailed(err error) int {
	fmt.Printf("--- FAIL: TestMain/vm (0.00s)\n    %s\n", strings.ReplaceAll(err.Error(), "\n", "\n    "))
	return 1
}

// startAPI starts the kube-apiserver on the bridge and writes its
// kubeconfig into the shared folder.
func startAPI() (*testenv.Env, error) {
	env, err := testenv.StartOn(cluster.HostIP)
	if err != nil {
		return nil, err
	}
	kubeconfig, err := clientcmd.Write(testenv.Kubeconfig(env.Config))
	if err == nil {
		err = os.WriteFile(filepath.Join(share, "kubeconfig"), kubeconfig, 0o600)
	}
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	return env, nil
}

// buildShare builds the guest agent and the test binaries into share.
func buildShare(ctx context.Context) error {
	if err := vm.BuildAgent(ctx, share); err != nil {
		return err
	}
	if err := vm.GoBuild(ctx, filepath.Join(share, "hwameistor-node"), "./csidriver/cmd/hwameistor-node"); err != nil {
		return err
	}
	return vm.GoTestBuild(ctx, filepath.Join(share, "guest.test"), "./test/vm/guest", "vmguest")
}

// guestDisks are the data disks as a guest sees them.
func guestDisks() string {
	var d []string
	for i := range diskBytes {
		d = append(d, "/dev/vd"+string(rune('b'+i)))
	}
	return strings.Join(d, ",")
}

// runGuestTests runs the tests of test/vm/guest matching pattern inside g
// and fails t with their output when any fails.
func runGuestTests(t *testing.T, g *vm.Guest, pattern string, env ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	res, err := g.Run(ctx, append([]string{"HWVM_DISKS=" + guestDisks()}, env...),
		guestPath("guest.test"), "-test.v", "-test.count=1", "-test.run", pattern)
	t.Logf("%s in %s (%s):\n%s%s", pattern, g.Name, time.Since(start).Round(time.Second), res.Stdout, res.Stderr)
	if err != nil {
		t.Fatalf("guest tests %s failed: %v", pattern, err)
	}
	if !strings.Contains(res.Stdout, "--- PASS") {
		t.Fatalf("guest tests %s ran nothing", pattern)
	}
}

// guestPath is where a guest sees a file of the shared folder.
func guestPath(name string) string { return filepath.Join(vm.GuestMountPoint, name) }
