package expand

import (
	"testing"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/internal/fixture"
)

// TestDRBDDeviceGrows: an HA volume replicated by DRBD is grown only once
// its DRBD device was resized over the grown logical volumes
// (status.drbd.sizedBytes, the node agent's drbdadm resize): until then
// the expansion waits and says so, and the volume's allocated size stays.
func TestDRBDDeviceGrows(t *testing.T) {
	fixture.Reset(t, env.Client)
	fixture.CreateNodes(t, env.Client, node{Name: "a", Free: 10 * gi}, node{Name: "b", Free: 10 * gi})
	fixture.CreateVolume(t, env.Client, vol{Name: "vol-drbd", Replicas: []string{"a", "b"}})
	sized := func(n int64) func(*v1.LocalVolumeReplicaStatus) {
		return func(st *v1.LocalVolumeReplicaStatus) {
			st.DRBD = &v1.ReplicaDRBDStatus{Device: "/dev/drbd1", DiskState: "UpToDate", Connection: "Connected", MayServe: true, SizedBytes: n}
		}
	}
	for _, n := range []string{"a", "b"} {
		fixture.SetReplicaStatus(t, env.Client, "vol-drbd", n, sized(gi))
	}
	startController(t)
	createExpand(t, "exp-drbd", "vol-drbd", 4*gi)
	agentGrows(t, "vol-drbd", "a", 4*gi)
	agentGrows(t, "vol-drbd", "b", 4*gi)
	want := "waiting for the replicas to grow to 4Gi: a has 1Gi (its logical volume has 4Gi; its DRBD device grows once both replicas have grown and are connected), " +
		"b has 1Gi (its logical volume has 4Gi; its DRBD device grows once both replicas have grown and are connected)"
	waitExpand(t, "exp-drbd", "waiting for DRBD", func(e *v1.LocalVolumeExpand) bool { return e.Status.Message == want })
	if e := getExpand(t, "exp-drbd"); e.Status.State != v1.OperationStateInProgress || e.Status.AllocatedCapacityBytes != gi {
		t.Errorf("status before the DRBD resize: %+v", e.Status)
	}
	for _, n := range []string{"a", "b"} {
		fixture.SetReplicaStatus(t, env.Client, "vol-drbd", n, sized(4*gi))
	}
	if e := waitState(t, "exp-drbd", v1.OperationStateCompleted); e.Status.AllocatedCapacityBytes != 4*gi {
		t.Errorf("completed with %d bytes, want 4Gi", e.Status.AllocatedCapacityBytes)
	}
}
