package agent

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/backend"
	"hwameistor.io/local/csidriver/backend/emulated"
	"hwameistor.io/local/internal/testenv"
)

func replicaOn(volume, node, dev string) *v1.LocalVolumeReplica {
	return &v1.LocalVolumeReplica{ObjectMeta: metav1.ObjectMeta{Name: v1.ReplicaName(volume, node)},
		Spec:   v1.LocalVolumeReplicaSpec{VolumeName: volume, NodeName: node, PoolName: v1.PoolNameHDD},
		Status: v1.LocalVolumeReplicaStatus{DevicePath: dev}}
}

func fakeClient(t *testing.T, objs ...client.Object) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := v1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	return fake.NewClientBuilder().WithScheme(scheme).WithStatusSubresource(&v1.LocalVolumeReplica{}).WithObjects(objs...).Build()
}

// noDevices is a backend that cannot name its volumes' block devices: the
// in-use check falls back to the replica's status.devicePath.
type noDevices struct{ backend.Backend }

func checkInUse(t *testing.T, a *Agent, volume, wantErr string) {
	t.Helper()
	err := a.inUse(volume)
	if wantErr == "" && err != nil || wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)) {
		t.Errorf("inUse(%s) = %v, want %q", volume, err, wantErr)
	}
}

// TestInUseWithoutDevices: volumes without a block device on this host
// (detached, not yet allocated, a device path that is gone, another
// agent's node) are never refused.
func TestInUseWithoutDevices(t *testing.T) {
	ctx := context.Background()
	here, err := emulated.New(filepath.Join(t.TempDir(), "here"), []emulated.PoolConfig{{Class: v1.PoolClassHDD, CapacityBytes: 10 * gi}}, emulated.WithoutLoop())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := here.CreateVolume(ctx, v1.PoolNameHDD, "pvc-idle", gi, backend.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	a := &Agent{
		Client: fakeClient(t,
			replicaOn("pvc-idle", "here", ""),
			replicaOn("pvc-gone", "old", "/dev/hwtest-no-such-device"),
			replicaOn("pvc-elsewhere", "there", "/dev/loop9"),
			replicaOn("pvc-new", "here", ""),
		),
		Backends:    map[string]backend.Backend{"here": here, "old": noDevices{here}},
		Replication: &Replication{},
	}
	for _, v := range []string{"pvc-idle", "pvc-gone", "pvc-elsewhere", "pvc-new", "pvc-missing"} {
		checkInUse(t, a, v, "")
	}
}

// TestRealInUse checks the copy source's in-use guard on real loop
// devices: an xfs filesystem mounted, the device node bind-mounted onto a
// file (a raw block publish: the mount's source is devtmpfs, not the
// device's path), and a volume whose status names its device by a symlink
// (as /dev/VG/LV while the mount table says /dev/mapper/VG-LV) are
// refused; an attached volume that is not mounted, and all of them once
// unmounted, are not.
func TestRealInUse(t *testing.T) {
	testenv.RequireRoot(t, "attaches loop devices and mounts file systems")
	testenv.RequireCommands(t, "losetup", "mkfs.xfs", "mount")
	ctx := context.Background()
	dir := t.TempDir()
	backends := newBackends(t, dir, "here", "lvmlike")
	devs := map[string]string{}
	for _, v := range []struct{ node, volume string }{{"here", "pvc-fs"}, {"here", "pvc-raw"}, {"here", "pvc-idle"}, {"lvmlike", "pvc-link"}} {
		if _, err := backends[v.node].CreateVolume(ctx, v1.PoolNameHDD, v.volume, 320<<20, backend.CreateOptions{}); err != nil { // mkfs.xfs: at least 300 MiB
			t.Fatal(err)
		}
		dev, err := backends[v.node].(backend.Attacher).Attach(ctx, v1.PoolNameHDD, v.volume)
		if err != nil {
			t.Fatal(err)
		}
		devs[v.volume] = dev
	}
	link := filepath.Join(dir, "LocalStorage_PoolHDD", "pvc-link") // like /dev/VG/LV -> ../dm-3
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(devs["pvc-link"], link); err != nil {
		t.Fatal(err)
	}
	a := &Agent{
		Client: fakeClient(t,
			replicaOn("pvc-fs", "here", devs["pvc-fs"]),
			replicaOn("pvc-raw", "here", devs["pvc-raw"]),
			replicaOn("pvc-idle", "here", devs["pvc-idle"]),
			replicaOn("pvc-link", "lvmlike", link),
		),
		Backends:    map[string]backend.Backend{"here": backends["here"], "lvmlike": noDevices{backends["lvmlike"]}},
		Replication: &Replication{},
	}
	mount := func(target string, args ...string) {
		t.Helper()
		if out, err := exec.Command("mount", append(args, target)...).CombinedOutput(); err != nil {
			t.Fatalf("mount %v %s: %v: %s", args, target, err, out)
		}
		t.Cleanup(func() { _ = unix.Unmount(target, 0) })
	}
	fsDir, linkDir := filepath.Join(dir, "fs"), filepath.Join(dir, "link")
	publish := filepath.Join(dir, "publish")
	for _, d := range []string{fsDir, linkDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(publish, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"pvc-fs", "pvc-link"} {
		if out, err := exec.Command("mkfs.xfs", "-q", devs[v]).CombinedOutput(); err != nil {
			t.Fatalf("mkfs.xfs: %v: %s", err, out)
		}
	}
	mount(fsDir, devs["pvc-fs"])
	mount(publish, "--bind", devs["pvc-raw"])
	mount(linkDir, devs["pvc-link"])

	checkInUse(t, a, "pvc-fs", devs["pvc-fs"]+" is mounted at "+fsDir+" (xfs): the pod using it must stop")
	checkInUse(t, a, "pvc-raw", devs["pvc-raw"]+" is bind-mounted at "+publish+" (a raw block volume)")
	checkInUse(t, a, "pvc-link", link+" is mounted at "+linkDir)
	checkInUse(t, a, "pvc-idle", "")

	for _, d := range []string{fsDir, publish, linkDir} {
		if err := unix.Unmount(d, 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []string{"pvc-fs", "pvc-raw", "pvc-link", "pvc-idle"} {
		checkInUse(t, a, v, "")
	}
}
