package migrate

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/internal/fixture"
	"hwameistor.io/local/internal/testenv"
)

// The online move of a DRBD-replicated HA volume (drbdmove.go), with the
// test in the node agents' place: a leaves when asked, t joins and is
// resynced.

const drbdVolume = "vol-drbd"

// drbdUpToDate is a replica's DRBD state in a connected, synced resource.
func drbdUpToDate(st *v1.LocalVolumeReplicaStatus) {
	st.DRBD = &v1.ReplicaDRBDStatus{Device: "/dev/drbd3", Port: 43003, Role: "Secondary", DiskState: "UpToDate",
		Connection: "Connected", PeerDiskState: "UpToDate", InSyncPercent: "100", MayServe: true}
}

// setupDRBDMove makes the HA volume on a and b replicated by DRBD, and
// nodes t (DRBD, most room) and u (an agent without DRBD).
func setupDRBDMove(t *testing.T) {
	t.Helper()
	fixture.Reset(t, env.Client)
	fixture.CreateNodes(t, env.Client, node{Name: "a", Free: 50 * gi}, node{Name: "b", Free: 50 * gi},
		node{Name: "t", Free: 80 * gi}, node{Name: "u", Free: 60 * gi})
	for _, n := range []string{"a", "b", "t"} {
		fixture.EditStatus(t, env.Client, n, func(lsn *v1.LocalStorageNode) {
			meta.SetStatusCondition(&lsn.Status.Conditions, metav1.Condition{Type: v1.ConditionDRBD, Status: metav1.ConditionTrue,
				Reason: v1.ReasonDRBDLoaded, Message: "DRBD 8.4 replicates HA volumes"})
		})
	}
	fixture.CreateVolume(t, env.Client, volume{Name: drbdVolume, Replicas: []string{"a", "b"}})
	fixture.SetReplicaStatus(t, env.Client, drbdVolume, "a", drbdUpToDate)
	fixture.SetReplicaStatus(t, env.Client, drbdVolume, "b", drbdUpToDate)
}

// agentLeaves plays a's agent: the resource is down for migration.
func agentLeaves(t *testing.T, node, migration string) {
	t.Helper()
	testenv.Eventually(t, "the leave annotation on "+node, func() bool {
		return fixture.GetReplica(t, env.Client, drbdVolume, node).Annotations[v1.DRBDLeaveAnnotation] == migration
	})
	fixture.SetReplicaStatus(t, env.Client, drbdVolume, node, func(st *v1.LocalVolumeReplicaStatus) {
		st.DRBD = &v1.ReplicaDRBDStatus{Device: "/dev/drbd3", Port: 43003, LeftFor: migration, Message: "left"}
	})
}

func TestDRBDOnlineMove(t *testing.T) {
	setupDRBDMove(t)
	g := watchCluster(t)
	stop := startController(t)
	createMigration(t, "mig-drbd", drbdVolume, "a")
	if target := migrationAt(t, "mig-drbd", v1.OperationStateAddReplica); target != "t" {
		t.Fatalf("target %s, want t (DRBD, most room)", target)
	}
	// a is asked to leave; nothing else changes until it has.
	waitMigration(t, "mig-drbd", "waiting for a to leave", func(m *v1.LocalVolumeMigrate) bool {
		return m.Status.Message == "waiting for the replicas on a to leave their DRBD resources: 0/1 left"
	})
	if rep := fixture.GetReplica(t, env.Client, drbdVolume, "a"); rep.Annotations[v1.DRBDLeaveAnnotation] != "mig-drbd" {
		t.Fatalf("source annotations %v", rep.Annotations)
	}
	if fixture.GetReplica(t, env.Client, drbdVolume, "t") != nil || !slices.Equal(lvReplicas(t, drbdVolume), []string{"a", "b"}) {
		t.Fatal("the target was added before the source left")
	}
	// The agent's message says why it has not left (the pod uses it).
	fixture.SetReplicaStatus(t, env.Client, drbdVolume, "a", func(st *v1.LocalVolumeReplicaStatus) {
		st.DRBD.Role, st.DRBD.Message = "Primary", "in use here (Primary)"
	})
	waitMigration(t, "mig-drbd", "the agent's reason", func(m *v1.LocalVolumeMigrate) bool {
		return strings.HasSuffix(m.Status.Message, "0/1 left; vol-drbd on a: in use here (Primary)")
	})

	// A restart while waiting: the fresh controller goes on.
	stop()
	startController(t)
	agentLeaves(t, "a", "mig-drbd")

	// The volume switches to t, whose replica is marked to join (no copy).
	var tgt *v1.LocalVolumeReplica
	testenv.Eventually(t, "target replica", func() bool { tgt = fixture.GetReplica(t, env.Client, drbdVolume, "t"); return tgt != nil })
	if tgt.Annotations[v1.DRBDJoinAnnotation] != "mig-drbd" || tgt.Annotations[v1.SyncPendingAnnotation] != "" {
		t.Errorf("target annotations %v", tgt.Annotations)
	}
	testenv.Eventually(t, "volume switched to t and b", func() bool {
		lv := fixture.GetVolume(t, env.Client, drbdVolume)
		return slices.Equal(lv.ReplicaNodes(), []string{"t", "b"}) && slices.Equal(lv.Spec.Accessibility.Nodes, []string{"t", "b"})
	})
	if lv := fixture.GetVolume(t, env.Client, drbdVolume); !lv.Spec.Config.Replicas[0].Primary || lv.Spec.Config.Replicas[0].ID != 3 {
		t.Errorf("switched volume: %+v", lv.Spec.Config.Replicas)
	}
	if _, ok := fixture.GetVolume(t, env.Client, drbdVolume).Annotations[v1.VolumeMigrateStateAnnotation]; ok {
		t.Error("an HA volume moved online is marked migrating (its pod would wait)")
	}
	fixture.AgentAllocates(t, env.Client, drbdVolume, "t")
	waitState(t, "mig-drbd", v1.OperationStateSyncReplica)

	// DRBD's resync is the progress; the source stays until t is UpToDate.
	fixture.SetReplicaStatus(t, env.Client, drbdVolume, "t", func(st *v1.LocalVolumeReplicaStatus) {
		st.DRBD = &v1.ReplicaDRBDStatus{Device: "/dev/drbd3", Port: 43003, Role: "Secondary", DiskState: "Inconsistent",
			Connection: "SyncTarget", PeerDiskState: "UpToDate", InSyncPercent: "75", OutOfSyncBytes: gi / 4}
	})
	m := waitMigration(t, "mig-drbd", "75%", func(m *v1.LocalVolumeMigrate) bool { return m.Status.Progress == "75%" })
	if !strings.Contains(m.Status.Message, "its DRBD disk is Inconsistent (resync 75% done)") {
		t.Errorf("message while resyncing: %q", m.Status.Message)
	}
	if fixture.GetReplica(t, env.Client, drbdVolume, "a") == nil {
		t.Fatal("source removed before the target was UpToDate")
	}
	fixture.SetReplicaStatus(t, env.Client, drbdVolume, "t", drbdUpToDate)
	m = waitState(t, "mig-drbd", v1.OperationStateCompleted)
	if m.Status.Progress != "100%" || m.Status.Message != "moved to t online; DRBD resynced it" {
		t.Errorf("completed status %+v", m.Status)
	}
	if got := fixture.ReplicaObjectNodes(t, env.Client, drbdVolume); !slices.Equal(got, []string{"b", "t"}) {
		t.Errorf("replica objects on %v", got)
	}
	if tgt := fixture.GetReplica(t, env.Client, drbdVolume, "t"); tgt.Annotations[v1.DRBDJoinAnnotation] != "" {
		t.Errorf("target still marked: %v", tgt.Annotations)
	}
	waitEvents(t, "mig-drbd", "TargetChosen", "ReplicasAdded", "Verified", "Completed")
	g.check(t)
}

// TestDRBDOnlineMoveWaitsForTheStayingReplica: the source never leaves
// while the replica that stays is not UpToDate (it would be the only copy).
func TestDRBDOnlineMoveWaitsForTheStayingReplica(t *testing.T) {
	setupDRBDMove(t)
	fixture.SetReplicaStatus(t, env.Client, drbdVolume, "b", func(st *v1.LocalVolumeReplicaStatus) {
		st.DRBD.DiskState, st.DRBD.MayServe, st.DRBD.InSyncPercent = "Inconsistent", false, "40"
	})
	startController(t)
	createMigration(t, "mig-drbd-wait", drbdVolume, "a")
	waitMigration(t, "mig-drbd-wait", "waiting for b", func(m *v1.LocalVolumeMigrate) bool {
		return m.Status.Message == "waiting: the replica of vol-drbd that stays on b: its DRBD disk is Inconsistent (resync 40% done), so the one on a cannot leave yet"
	})
	if rep := fixture.GetReplica(t, env.Client, drbdVolume, "a"); rep.Annotations[v1.DRBDLeaveAnnotation] != "" {
		t.Fatalf("the source was asked to leave: %v", rep.Annotations)
	}
	fixture.SetReplicaStatus(t, env.Client, drbdVolume, "b", drbdUpToDate)
	agentLeaves(t, "a", "mig-drbd-wait")
}

// TestDRBDOnlineMoveRollback: an abort during the resync puts the source
// back (it rejoins its resource) and deletes the new replica; a target
// without DRBD fails before anything changes.
func TestDRBDOnlineMoveRollback(t *testing.T) {
	t.Run("abort during the resync", func(t *testing.T) {
		setupDRBDMove(t)
		g := watchCluster(t)
		startController(t)
		createMigration(t, "mig-drbd-abort", drbdVolume, "a")
		agentLeaves(t, "a", "mig-drbd-abort")
		fixture.AgentAllocates(t, env.Client, drbdVolume, "t")
		waitState(t, "mig-drbd-abort", v1.OperationStateSyncReplica)
		fixture.Edit(t, env.Client, "mig-drbd-abort", func(m *v1.LocalVolumeMigrate) { m.Spec.Abort = true })
		m := waitState(t, "mig-drbd-abort", v1.OperationStateAborted)
		if m.Status.Message != "aborted by spec.abort; the volume stays on a" {
			t.Errorf("aborted: %q", m.Status.Message)
		}
		lv := fixture.GetVolume(t, env.Client, drbdVolume)
		if !slices.Equal(lv.ReplicaNodes(), []string{"a", "b"}) || !slices.Equal(lv.Spec.Accessibility.Nodes, []string{"a", "b"}) || !lv.Spec.Config.Replicas[0].Primary {
			t.Errorf("volume after the rollback: %s", volumeSnapshot(lv))
		}
		testenv.Eventually(t, "the new replica deleted", func() bool { return fixture.GetReplica(t, env.Client, drbdVolume, "t") == nil })
		if rep := fixture.GetReplica(t, env.Client, drbdVolume, "a"); rep == nil || rep.Annotations[v1.DRBDLeaveAnnotation] != "" {
			t.Errorf("source after the rollback: %+v", rep)
		}
		g.check(t)
	})
	t.Run("target without DRBD", func(t *testing.T) {
		setupDRBDMove(t)
		before := volumeSnapshot(fixture.GetVolume(t, env.Client, drbdVolume))
		startController(t)
		createMigration(t, "mig-drbd-nodrbd", drbdVolume, "a", func(s *v1.LocalVolumeMigrateSpec) { s.TargetNodesSuggested = []string{"u"} })
		m := waitState(t, "mig-drbd-nodrbd", v1.OperationStateFailed)
		want := "target u cannot take a replica of a volume replicated by DRBD: its node agent does not replicate with DRBD (no condition DRBD on its LocalStorageNode)"
		if m.Status.Message != want {
			t.Errorf("message %q, want %q", m.Status.Message, want)
		}
		if after := volumeSnapshot(fixture.GetVolume(t, env.Client, drbdVolume)); after != before {
			t.Errorf("volume changed: %s, was %s", after, before)
		}
		if rep := fixture.GetReplica(t, env.Client, drbdVolume, "a"); rep.Annotations[v1.DRBDLeaveAnnotation] != "" {
			t.Errorf("the source was asked to leave: %v", rep.Annotations)
		}
	})
}

// TestDRBDOnlineMoveGroupWaitsWhole: in a group, no source leaves while
// the replica that stays of any volume is not UpToDate.
func TestDRBDOnlineMoveGroupWaitsWhole(t *testing.T) {
	setupDRBDMove(t)
	fixture.CreateVolume(t, env.Client, volume{Name: "vol-drbd-2", Group: "grp-drbd", Replicas: []string{"a", "b"}})
	fixture.Edit(t, env.Client, drbdVolume, func(lv *v1.LocalVolume) { lv.Spec.VolumeGroup = "grp-drbd" })
	fixture.CreateGroup(t, env.Client, "grp-drbd",
		v1.VolumeInfo{PersistentVolumeClaimName: "data", LocalVolumeName: drbdVolume, Nodes: []string{"a", "b"}},
		v1.VolumeInfo{PersistentVolumeClaimName: "logs", LocalVolumeName: "vol-drbd-2", Nodes: []string{"a", "b"}})
	fixture.SetReplicaStatus(t, env.Client, "vol-drbd-2", "a", drbdUpToDate)
	fixture.SetReplicaStatus(t, env.Client, "vol-drbd-2", "b", func(st *v1.LocalVolumeReplicaStatus) {
		drbdUpToDate(st)
		st.DRBD.DiskState, st.DRBD.MayServe, st.DRBD.InSyncPercent = "Inconsistent", false, "10"
	})
	startController(t)
	createMigration(t, "mig-drbd-grp", drbdVolume, "a", func(s *v1.LocalVolumeMigrateSpec) { s.MigrateAllVols = true })
	waitMigration(t, "mig-drbd-grp", "waiting for vol-drbd-2's staying replica", func(m *v1.LocalVolumeMigrate) bool {
		return strings.HasPrefix(m.Status.Message, "waiting: the replica of vol-drbd-2 that stays on b")
	})
	for _, v := range []string{drbdVolume, "vol-drbd-2"} {
		if rep := fixture.GetReplica(t, env.Client, v, "a"); rep.Annotations[v1.DRBDLeaveAnnotation] != "" {
			t.Errorf("the replica of %s on a was asked to leave while the group waits", v)
		}
	}
}
