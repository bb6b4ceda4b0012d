package agent

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/mount-utils"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// TestInUse: a volume mounted on this host is refused as a copy source;
// one mounted nowhere, or whose replica is on a node another agent serves,
// is not.
func TestInUse(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := v1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	replica := func(volume, node, dev string) *v1.LocalVolumeReplica {
		return &v1.LocalVolumeReplica{ObjectMeta: metav1.ObjectMeta{Name: v1.ReplicaName(volume, node)},
			Spec:   v1.LocalVolumeReplicaSpec{VolumeName: volume, NodeName: node},
			Status: v1.LocalVolumeReplicaStatus{DevicePath: dev}}
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithStatusSubresource(&v1.LocalVolumeReplica{}).WithObjects(
		replica("pvc-mounted", "here", "/dev/loop7"),
		replica("pvc-idle", "here", "/dev/loop8"),
		replica("pvc-elsewhere", "there", "/dev/loop9"),
		replica("pvc-new", "here", ""),
	).Build()
	mounts := mount.NewFakeMounter([]mount.MountPoint{
		{Device: "/dev/loop7", Path: "/var/lib/kubelet/pods/p/volumes/kubernetes.io~csi/pvc-mounted/mount", Type: "xfs"},
		{Device: "/dev/loop9", Path: "/mnt/other", Type: "xfs"},
	})
	a := &Agent{Client: c, Backends: newBackends(t, t.TempDir(), "here"), Replication: &Replication{Mounts: mounts}}
	for _, tc := range []struct {
		volume, wantErr string
	}{
		{"pvc-mounted", "is mounted at /var/lib/kubelet/pods/p/volumes"},
		{"pvc-idle", ""},
		{"pvc-elsewhere", ""}, // another agent's node: its device here means nothing
		{"pvc-new", ""},       // not attached yet
		{"pvc-missing", ""},
	} {
		err := a.inUse(tc.volume)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("inUse(%s) = %v, want %q", tc.volume, err, tc.wantErr)
		}
	}
}
