//go:build vmguest

package guest

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/backend/command"
	"hwameistor.io/local/csidriver/backend/lvm"
	"hwameistor.io/local/csidriver/drbd"
	"hwameistor.io/local/csidriver/driver"
	"hwameistor.io/local/internal/testenv"
)

const (
	mi   = int64(1) << 20
	pool = v1alpha1.PoolNameHDD
)

var vgCounter atomic.Int64

// disks are the guest's data disks.
func disks(t *testing.T) []string {
	t.Helper()
	d := strings.Split(os.Getenv("HWVM_DISKS"), ",")
	if len(d) == 0 || d[0] == "" {
		t.Fatal("HWVM_DISKS is not set: these tests run inside a test guest (test/vm)")
	}
	return d
}

// run runs a command and fails the test with its output on error.
func run(t *testing.T, argv ...string) string {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

// newVG makes a volume group of the guest's disks (wiped first) and a
// backend serving it as the HDD pool; the VG and its PVs go when the test
// ends.
func newVG(t *testing.T) (*lvm.Backend, string) {
	t.Helper()
	devs := disks(t)
	vg := fmt.Sprintf("hwvm_%d_HDD", vgCounter.Add(1))
	for _, d := range devs {
		run(t, "wipefs", "-a", "-q", d)
	}
	run(t, append([]string{"lvm", "pvcreate", "-q", "-y"}, devs...)...)
	run(t, append([]string{"lvm", "vgcreate", "-q", "-s", "4m", vg}, devs...)...)
	t.Cleanup(func() {
		for _, argv := range [][]string{{"lvm", "vgremove", "-q", "-f", vg}, append([]string{"lvm", "pvremove", "-q", "-y", "-ff"}, devs...)} {
			if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
				t.Errorf("cleanup %s: %v\n%s", strings.Join(argv, " "), err, out)
			}
		}
	})
	b, err := lvm.New(lvm.Options{VolumeGroups: map[string]string{pool: vg}})
	if err != nil {
		t.Fatal(err)
	}
	return b, vg
}

// drbdNode is this guest's CSI node service as hwameistor-node --drbd
// builds it (driver.Node with DRBDReplicas), on the host's apiserver
// named by HWVM_KUBECONFIG.
func drbdNode(t *testing.T, node string) *driver.Node {
	t.Helper()
	env, err := testenv.Connect(os.Getenv("HWVM_KUBECONFIG"))
	if err != nil {
		t.Fatalf("the host's apiserver (HWVM_KUBECONFIG): %v", err)
	}
	m := &drbd.Manager{Runner: command.Exec{}, Dir: "/var/lib/hwameistor/drbd"}
	if _, err := m.Detect(); err != nil {
		t.Fatal(err)
	}
	n := driver.NewNode(node, driver.ReplicaDevices{Client: env.Client, Node: node})
	n.Replicas = driver.DRBDReplicas{Client: env.Client, Node: node, DRBD: m}
	return n
}

// ext4Writer is the capability the HA steps stage their volume with.
var ext4Writer = &csi.VolumeCapability{
	AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: "ext4"}},
	AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
}

// pattern is n bytes no fresh device holds by chance.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 1 + i/4096)
	}
	return b
}

// sum is the sha256 of a file's first n bytes.
func sum(t *testing.T, path string, n int64) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(h, f, n); err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// isBlockDevice says whether path is (or links to) a block device.
func isBlockDevice(t *testing.T, path string) bool {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0
}
