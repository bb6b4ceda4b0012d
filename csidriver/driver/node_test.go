package driver

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	mountutils "k8s.io/mount-utils"
	testingexec "k8s.io/utils/exec/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1 "hwameistor.io/local/api/v1alpha1"
)

var (
	xfsCap = &csi.VolumeCapability{AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: "xfs"}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER}}
	rawCap = &csi.VolumeCapability{AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER}}
)

// fakeNode is a node service over a fake API client and a fake mounter;
// its exec has no scripted commands, so any mkfs or blkid fails the test.
func fakeNode(t *testing.T, node string, mounts []mountutils.MountPoint, objs ...client.Object) (*Node, *mountutils.FakeMounter, client.Client) {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := v1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithStatusSubresource(&v1.LocalVolumeReplica{}).WithObjects(objs...).Build()
	m := mountutils.NewFakeMounter(mounts)
	exec := &testingexec.FakeExec{ExactOrder: true}
	return &Node{NodeID: node, Devices: ReplicaDevices{Client: c, Node: node}, Mounter: &mountutils.SafeFormatAndMount{Interface: m, Exec: exec}}, m, c
}

// TestStageRefusesAReplicaWaitingForItsCopy: the replica a migration is
// filling (sync-pending, not synced) is neither staged nor published as a
// raw block device, and is not stamped as used; once its copy is verified
// its device is handed out.
func TestStageRefusesAReplicaWaitingForItsCopy(t *testing.T) {
	ctx := context.Background()
	rep := &v1.LocalVolumeReplica{
		ObjectMeta: metav1.ObjectMeta{Name: v1.ReplicaName("pvc-mig", "node-b"),
			Annotations: map[string]string{v1.SyncPendingAnnotation: "mig-1", v1.SyncSourceAnnotation: "node-a"}},
		Spec:   v1.LocalVolumeReplicaSpec{VolumeName: "pvc-mig", NodeName: "node-b", PoolName: v1.PoolNameHDD},
		Status: v1.LocalVolumeReplicaStatus{State: v1.StateReady, DevicePath: "/dev/loop7"},
	}
	n, m, c := fakeNode(t, "node-b", nil, rep)
	dir := t.TempDir()
	wantMsg := "is waiting for its copy from node node-a (hwameistor.io/sync-pending mig-1)"

	_, err := n.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: "pvc-mig", StagingTargetPath: filepath.Join(dir, "staging"), VolumeCapability: xfsCap})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), wantMsg) {
		t.Errorf("NodeStageVolume = %v; want Unavailable with %q", err, wantMsg)
	}
	_, err = n.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: "pvc-mig", TargetPath: filepath.Join(dir, "block"), VolumeCapability: rawCap})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), wantMsg) {
		t.Errorf("NodePublishVolume (block) = %v; want Unavailable with %q", err, wantMsg)
	}
	if log := m.GetLog(); len(log) != 0 {
		t.Errorf("mount actions %+v, want none", log)
	}
	got := &v1.LocalVolumeReplica{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(rep), got); err != nil {
		t.Fatal(err)
	}
	if stamp, ok := got.Annotations[v1.StagedAtAnnotation]; ok {
		t.Errorf("the refused replica was stamped as staged at %s", stamp)
	}

	got.Status.Synced = true
	if err := c.Status().Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	if dev, err := (ReplicaDevices{Client: c, Node: "node-b"}).DevicePath(ctx, "pvc-mig"); err != nil || dev != "/dev/loop7" {
		t.Errorf("DevicePath of the synced copy = %q, %v; want /dev/loop7", dev, err)
	}
}

// TestPublishRefusesAnUnstagedVolume: a filesystem volume is bind-mounted
// from its staging path only when something is mounted there; otherwise the
// pod would write to an empty directory on the node's disk.
func TestPublishRefusesAnUnstagedVolume(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	staging, missing, mounted := filepath.Join(dir, "staging"), filepath.Join(dir, "missing"), filepath.Join(dir, "mounted")
	for _, d := range []string{staging, mounted} {
		if err := os.Mkdir(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	n, m, _ := fakeNode(t, "node-a", []mountutils.MountPoint{{Device: "/dev/loop7", Path: mounted, Type: "xfs"}})
	for _, path := range []string{staging, missing} {
		_, err := n.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: "pvc-a", StagingTargetPath: path,
			TargetPath: filepath.Join(dir, "target"), VolumeCapability: xfsCap})
		want := "volume pvc-a is not staged: nothing is mounted at its staging_target_path " + path
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), want) {
			t.Errorf("NodePublishVolume from %s = %v; want FailedPrecondition with %q", path, err, want)
		}
	}
	if log := m.GetLog(); len(log) != 0 {
		t.Errorf("mount actions %+v, want none", log)
	}

	target := filepath.Join(dir, "target")
	if _, err := n.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: "pvc-a", StagingTargetPath: mounted,
		TargetPath: target, VolumeCapability: xfsCap}); err != nil {
		t.Fatalf("NodePublishVolume from a staged volume: %v", err)
	}
	// (The fake logs a bind mount with the device of its source.)
	if log := m.GetLog(); len(log) != 1 || log[0].Action != mountutils.FakeActionMount || log[0].Source != "/dev/loop7" || log[0].Target != target {
		t.Errorf("mount actions %+v, want one bind mount of %s (/dev/loop7) at %s", log, mounted, target)
	}
}
