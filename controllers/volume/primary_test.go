package volume

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// TestDRBDPrimary: the volume's published node is its DRBD Primary; a
// stopped node's stale report loses to the node a failover moved to.
func TestDRBDPrimary(t *testing.T) {
	rep := func(node, role string) v1.LocalVolumeReplica {
		return v1.LocalVolumeReplica{Spec: v1.LocalVolumeReplicaSpec{NodeName: node},
			Status: v1.LocalVolumeReplicaStatus{DRBD: &v1.ReplicaDRBDStatus{Device: "/dev/drbd1", Role: role}}}
	}
	plain := v1.LocalVolumeReplica{Spec: v1.LocalVolumeReplicaSpec{NodeName: "b"}}
	for _, tt := range []struct {
		name     string
		from     string
		replicas []v1.LocalVolumeReplica
		want     string
		wantOK   bool
	}{
		{"primary on a", "", []v1.LocalVolumeReplica{rep("a", "Primary"), rep("b", "Secondary")}, "a", true},
		{"both Secondary: not in use", "", []v1.LocalVolumeReplica{rep("a", "Secondary"), rep("b", "Secondary")}, "", true},
		{"failed over from a, b promoted", "a", []v1.LocalVolumeReplica{rep("a", "Primary"), rep("b", "Primary")}, "b", true},
		{"failed over from b, a promoted", "b", []v1.LocalVolumeReplica{rep("a", "Primary"), rep("b", "Primary")}, "a", true},
		{"not replicated by DRBD: left alone", "", []v1.LocalVolumeReplica{rep("a", "Primary"), plain}, "", false},
	} {
		lv := &v1.LocalVolume{ObjectMeta: metav1.ObjectMeta{Name: "vol"}}
		if tt.from != "" {
			lv.Annotations = map[string]string{v1.FailoverFromAnnotation: tt.from}
		}
		got, ok := drbdPrimary(lv, tt.replicas)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("%s: drbdPrimary = %q, %v; want %q, %v", tt.name, got, ok, tt.want, tt.wantOK)
		}
	}
}
