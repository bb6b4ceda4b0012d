package localstorage

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// TestServingReplicaNodes: an HA volume replicated by DRBD is placed only
// where its replica may serve (UpToDate), never where a failover is moving
// it away from, and every other replica says why not.
func TestServingReplicaNodes(t *testing.T) {
	rep := func(node, disk string, mod ...func(*v1.LocalVolumeReplica)) *v1.LocalVolumeReplica {
		r := &v1.LocalVolumeReplica{Spec: v1.LocalVolumeReplicaSpec{VolumeName: "vol", NodeName: node},
			Status: v1.LocalVolumeReplicaStatus{State: v1.StateReady, Synced: true,
				DRBD: &v1.ReplicaDRBDStatus{Device: "/dev/drbd1", DiskState: disk, MayServe: disk == "UpToDate", InSyncPercent: "45.2"}}}
		for _, m := range mod {
			m(r)
		}
		return r
	}
	deleting := func(r *v1.LocalVolumeReplica) { r.Spec.Delete = true }
	notReady := func(r *v1.LocalVolumeReplica) { r.Status.State = v1.StateNotReady }
	tests := []struct {
		name        string
		from        string
		replicas    []*v1.LocalVolumeReplica
		wantNodes   []string
		wantRefused []string
	}{
		{name: "both UpToDate", replicas: []*v1.LocalVolumeReplica{rep("a", "UpToDate"), rep("b", "UpToDate")}, wantNodes: []string{"a", "b"}},
		{name: "standby Outdated", replicas: []*v1.LocalVolumeReplica{rep("a", "UpToDate"), rep("b", "Outdated")},
			wantNodes: []string{"a"}, wantRefused: []string{"on node b its DRBD disk is Outdated, not UpToDate"}},
		{name: "resyncing", replicas: []*v1.LocalVolumeReplica{rep("a", "Inconsistent"), rep("b", "UpToDate")},
			wantNodes: []string{"b"}, wantRefused: []string{"on node a its DRBD disk is Inconsistent (resync 45.2% done)"}},
		{name: "failing over from a", from: "a", replicas: []*v1.LocalVolumeReplica{rep("a", "UpToDate"), rep("b", "UpToDate")},
			wantNodes: []string{"b"}, wantRefused: []string{"node a is being failed over (hwameistor.io/failover-from)"}},
		{name: "failing over from a to an Outdated standby: nowhere", from: "a", replicas: []*v1.LocalVolumeReplica{rep("a", "UpToDate"), rep("b", "Outdated")},
			wantRefused: []string{"node a is being failed over (hwameistor.io/failover-from)", "on node b its DRBD disk is Outdated, not UpToDate"}},
		{name: "a replica being deleted is left out silently", replicas: []*v1.LocalVolumeReplica{rep("a", "UpToDate"), rep("b", "UpToDate", deleting)},
			wantNodes: []string{"a"}},
		{name: "a replica that is not Ready", replicas: []*v1.LocalVolumeReplica{rep("a", "UpToDate", notReady), rep("b", "UpToDate")},
			wantNodes: []string{"b"}, wantRefused: []string{"on node a its replica is NotReady"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lv := &v1.LocalVolume{ObjectMeta: metav1.ObjectMeta{Name: "vol"}}
			if tt.from != "" {
				lv.Annotations = map[string]string{v1.FailoverFromAnnotation: tt.from}
			}
			nodes, refused := servingReplicaNodes(lv, tt.replicas)
			if diff := cmp.Diff(tt.wantNodes, nodes); diff != "" {
				t.Errorf("nodes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantRefused, refused); diff != "" {
				t.Errorf("refused (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDRBDManaged: only when every live replica reports a DRBD device are
// replicas judged by their DRBD disk state.
func TestDRBDManaged(t *testing.T) {
	withDevice := func(node string) *v1.LocalVolumeReplica {
		return &v1.LocalVolumeReplica{Spec: v1.LocalVolumeReplicaSpec{NodeName: node}, Status: v1.LocalVolumeReplicaStatus{DRBD: &v1.ReplicaDRBDStatus{Device: "/dev/drbd1"}}}
	}
	without := func(node string) *v1.LocalVolumeReplica {
		return &v1.LocalVolumeReplica{Spec: v1.LocalVolumeReplicaSpec{NodeName: node}}
	}
	gone := without("c")
	gone.Spec.Delete = true
	for _, tt := range []struct {
		name string
		reps []*v1.LocalVolumeReplica
		want bool
	}{
		{"both", []*v1.LocalVolumeReplica{withDevice("a"), withDevice("b")}, true},
		{"one without", []*v1.LocalVolumeReplica{withDevice("a"), without("b")}, false},
		{"a deleted replica does not count", []*v1.LocalVolumeReplica{withDevice("a"), withDevice("b"), gone}, true},
		{"one alone is not a pair", []*v1.LocalVolumeReplica{withDevice("a")}, false},
	} {
		if got := v1.DRBDManaged(tt.reps); got != tt.want {
			t.Errorf("%s: DRBDManaged = %v, want %v", tt.name, got, tt.want)
		}
	}
}
