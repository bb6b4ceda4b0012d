package v1alpha1

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// drbdReplica is a Ready replica on node with annotations and status.drbd.
func drbdReplica(node string, annotations map[string]string, d *ReplicaDRBDStatus) *LocalVolumeReplica {
	return &LocalVolumeReplica{ObjectMeta: metav1.ObjectMeta{Name: ReplicaName("pvc-ha", node), Annotations: annotations},
		Spec:   LocalVolumeReplicaSpec{VolumeName: "pvc-ha", NodeName: node},
		Status: LocalVolumeReplicaStatus{State: StateReady, DRBD: d}}
}

// upToDate is the status.drbd of a replica in sync.
func upToDate() *ReplicaDRBDStatus {
	return &ReplicaDRBDStatus{Device: "/dev/drbd7", Port: 43007, Role: "Secondary", DiskState: "UpToDate",
		Connection: "Connected", PeerDiskState: "UpToDate", InSyncPercent: "100", MayServe: true}
}

// left is the status.drbd of a replica that left for migration.
func left(migration string) *ReplicaDRBDStatus {
	return &ReplicaDRBDStatus{Device: "/dev/drbd7", Port: 43007, LeftFor: migration, Message: "left the DRBD resource for migration " + migration}
}

func TestDRBDLeft(t *testing.T) {
	leave := func(m string) map[string]string { return map[string]string{DRBDLeaveAnnotation: m} }
	for _, tc := range []struct {
		name      string
		rep       *LocalVolumeReplica
		migration string
		want      bool
	}{
		{"left for the migration", drbdReplica("n1", leave("mig-1"), left("mig-1")), "mig-1", true},
		{"left, device never recorded", drbdReplica("n1", leave("mig-1"), &ReplicaDRBDStatus{LeftFor: "mig-1"}), "mig-1", true},
		{"asked, not left yet", drbdReplica("n1", leave("mig-1"), upToDate()), "mig-1", false},
		{"asked, Primary (message only)", drbdReplica("n1", leave("mig-1"), &ReplicaDRBDStatus{Device: "/dev/drbd7", Role: "Primary", Message: "in use"}), "mig-1", false},
		{"asked, no status", drbdReplica("n1", leave("mig-1"), nil), "mig-1", false},
		{"left for another migration", drbdReplica("n1", leave("mig-2"), left("mig-2")), "mig-1", false},
		{"annotation for another migration", drbdReplica("n1", leave("mig-2"), left("mig-1")), "mig-1", false},
		{"left, annotation removed (a rollback)", drbdReplica("n1", nil, left("mig-1")), "mig-1", false},
		{"no migration named", drbdReplica("n1", leave(""), &ReplicaDRBDStatus{}), "", false},
		{"no migration named, replica left", drbdReplica("n1", leave("mig-1"), left("mig-1")), "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.rep.DRBDLeft(tc.migration); got != tc.want {
				t.Errorf("DRBDLeft(%q) = %v, want %v", tc.migration, got, tc.want)
			}
		})
	}
}

func TestDRBDJoining(t *testing.T) {
	join := map[string]string{DRBDJoinAnnotation: "mig-1"}
	for _, tc := range []struct {
		name string
		rep  *LocalVolumeReplica
		want bool
	}{
		{"new, no status", drbdReplica("n3", join, nil), true},
		{"new, waiting to join", drbdReplica("n3", join, &ReplicaDRBDStatus{Message: "waiting to join the volume's DRBD resource"}), true},
		{"joined, resyncing", drbdReplica("n3", join, &ReplicaDRBDStatus{Device: "/dev/drbd7", Port: 43007, DiskState: "Inconsistent", InSyncPercent: "45.2"}), false},
		{"joined, in sync", drbdReplica("n3", join, upToDate()), false},
		{"no annotation, no status", drbdReplica("n3", nil, nil), false},
		{"empty annotation", drbdReplica("n3", map[string]string{DRBDJoinAnnotation: ""}, nil), false},
		{"leave annotation only", drbdReplica("n3", map[string]string{DRBDLeaveAnnotation: "mig-1"}, nil), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.rep.DRBDJoining(); got != tc.want {
				t.Errorf("DRBDJoining = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestDRBDManagedDuringAMove: a move's new replica does not count until it
// has a DRBD device, then it does like any other.
func TestDRBDManagedDuringAMove(t *testing.T) {
	join := map[string]string{DRBDJoinAnnotation: "mig-1"}
	leave := map[string]string{DRBDLeaveAnnotation: "mig-1"}
	deleted := drbdReplica("n2", leave, left("mig-1"))
	deleted.Spec.Delete = true
	for _, tc := range []struct {
		name string
		reps []*LocalVolumeReplica
		want bool
	}{
		{"two replicas, a joining one skipped", []*LocalVolumeReplica{
			drbdReplica("n1", nil, upToDate()), drbdReplica("n2", nil, upToDate()), drbdReplica("n3", join, nil)}, true},
		{"joining one waiting with a message", []*LocalVolumeReplica{
			drbdReplica("n1", nil, upToDate()), drbdReplica("n2", nil, upToDate()),
			drbdReplica("n3", join, &ReplicaDRBDStatus{Message: "waiting to join"})}, true},
		{"the source left (device kept), a joining one skipped", []*LocalVolumeReplica{
			drbdReplica("n1", nil, upToDate()), drbdReplica("n2", leave, left("mig-1")), drbdReplica("n3", join, nil)}, true},
		{"the source deleted, the new one joined", []*LocalVolumeReplica{
			drbdReplica("n1", nil, upToDate()), deleted,
			drbdReplica("n3", join, &ReplicaDRBDStatus{Device: "/dev/drbd7", Port: 43007, DiskState: "Inconsistent", InSyncPercent: "45.2"})}, true},
		{"the source deleted, the new one not joined yet: one replica counts", []*LocalVolumeReplica{
			drbdReplica("n1", nil, upToDate()), deleted, drbdReplica("n3", join, nil)}, false},
		{"a replica without device and without the join annotation", []*LocalVolumeReplica{
			drbdReplica("n1", nil, upToDate()), drbdReplica("n2", nil, upToDate()), drbdReplica("n3", nil, nil)}, false},
		{"a joined one counts like any other", []*LocalVolumeReplica{
			drbdReplica("n1", nil, upToDate()), drbdReplica("n3", join, upToDate())}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := DRBDManaged(tc.reps); got != tc.want {
				t.Errorf("DRBDManaged = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDRBDNotServingDuringAMove(t *testing.T) {
	for _, tc := range []struct {
		name string
		rep  *LocalVolumeReplica
		want string // a part of the reason, "" when it may serve
	}{
		{"left", drbdReplica("n2", map[string]string{DRBDLeaveAnnotation: "mig-1"}, left("mig-1")), "mig-1"},
		{"left, annotation gone (rollback not up yet)", drbdReplica("n2", nil, left("mig-1")), "left the DRBD resource (migration mig-1"},
		{"left, still claims UpToDate", drbdReplica("n2", nil, func() *ReplicaDRBDStatus {
			d := upToDate()
			d.LeftFor = "mig-1"
			return d
		}()), "mig-1"},
		{"left without a recorded device", drbdReplica("n2", nil, &ReplicaDRBDStatus{LeftFor: "mig-1"}), "not replicated with DRBD yet"},
		{"asked to leave, still in sync", drbdReplica("n2", map[string]string{DRBDLeaveAnnotation: "mig-1"}, upToDate()), "mig-1"},
		{"rolled back and up again", drbdReplica("n2", nil, upToDate()), ""},
		{"joined, resyncing", drbdReplica("n3", map[string]string{DRBDJoinAnnotation: "mig-1"},
			&ReplicaDRBDStatus{Device: "/dev/drbd7", Port: 43007, DiskState: "Inconsistent", InSyncPercent: "45.2"}), "resync 45.2% done"},
		{"joined, in sync", drbdReplica("n3", map[string]string{DRBDJoinAnnotation: "mig-1"}, upToDate()), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.rep.DRBDNotServing()
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Errorf("DRBDNotServing = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestUsableBytes(t *testing.T) {
	const gi = int64(1) << 30
	for _, tc := range []struct {
		name string
		drbd *ReplicaDRBDStatus
		want int64
	}{
		{name: "no DRBD", want: 2 * gi},
		{name: "DRBD grown", drbd: &ReplicaDRBDStatus{Device: "/dev/drbd1", SizedBytes: 2 * gi}, want: 2 * gi},
		{name: "DRBD not grown yet", drbd: &ReplicaDRBDStatus{Device: "/dev/drbd1", SizedBytes: gi}, want: gi},
		{name: "size not recorded", drbd: &ReplicaDRBDStatus{Device: "/dev/drbd1"}, want: 2 * gi},
		{name: "left its resource", drbd: &ReplicaDRBDStatus{Device: "/dev/drbd1", SizedBytes: gi, LeftFor: "m"}, want: 2 * gi},
		{name: "no device yet", drbd: &ReplicaDRBDStatus{SizedBytes: gi}, want: 2 * gi},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &LocalVolumeReplica{Status: LocalVolumeReplicaStatus{AllocatedCapacityBytes: 2 * gi, DRBD: tc.drbd}}
			if got := r.UsableBytes(); got != tc.want {
				t.Errorf("UsableBytes = %d, want %d", got, tc.want)
			}
		})
	}
}
