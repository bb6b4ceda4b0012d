package rebuild

import (
	"context"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/internal/fixture"
	"hwameistor.io/local/controllers/node"
	"hwameistor.io/local/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

func start(t *testing.T, after time.Duration) *record.FakeRecorder {
	rec, _ := startStoppable(t, after)
	return rec
}

func startStoppable(t *testing.T, after time.Duration) (*record.FakeRecorder, func()) {
	t.Helper()
	rec := record.NewFakeRecorder(1000)
	stop := env.StartManager(t, func(ctx context.Context, mgr ctrl.Manager) error {
		return (&Reconciler{Client: mgr.GetClient(), Recorder: rec, After: after}).SetupWithManager(ctx, mgr)
	})
	return rec, stop
}

func upToDate(st *v1.LocalVolumeReplicaStatus) {
	st.DRBD = &v1.ReplicaDRBDStatus{Device: "/dev/drbd1", DiskState: "UpToDate", Connection: "Connected", MayServe: true}
}

// setup makes an HA volume "vol" replicated by DRBD on a and b, and nodes
// named in others with room; a's agent stopped at since.
func setup(t *testing.T, since time.Time, others ...string) {
	t.Helper()
	fixture.Reset(t, env.Client)
	nodes := []fixture.Node{{Name: "a", Free: 10 * fixture.Gi}, {Name: "b", Free: 10 * fixture.Gi}}
	for _, n := range others {
		nodes = append(nodes, fixture.Node{Name: n, Free: 10 * fixture.Gi})
	}
	fixture.CreateNodes(t, env.Client, nodes...)
	fixture.CreateVolume(t, env.Client, fixture.Volume{Name: "vol", Replicas: []string{"a", "b"}})
	fixture.SetReplicaStatus(t, env.Client, "vol", "a", upToDate)
	fixture.SetReplicaStatus(t, env.Client, "vol", "b", upToDate)
	fixture.EditStatus(t, env.Client, "a", func(lsn *v1.LocalStorageNode) {
		lsn.Status.State = v1.StateNotReady
		lsn.Status.Conditions = []metav1.Condition{{Type: node.ConditionAgentHeartbeat, Status: metav1.ConditionFalse, Reason: node.ReasonAgentStopped,
			Message: "test", LastTransitionTime: metav1.NewTime(since)}}
	})
}

// TestRebuild: a's agent has been away longer than After: the replica
// moves to c (placement, group entry, a new replica id), a's replica is
// deleted (kept by its finalizer until a's agent frees it), and once c's
// replica is UpToDate the rebuild ends.
func TestRebuild(t *testing.T) {
	setup(t, time.Now().Add(-time.Hour), "c")
	rec := start(t, time.Minute)
	lv := fixture.Wait(t, env.Client, "vol", "replicas moved to b and c", func(lv *v1.LocalVolume) bool {
		return slices.Equal(lv.ReplicaNodes(), []string{"c", "b"}) && lv.Annotations[RebuildAnnotation] == "a -> c"
	})
	if !slices.Equal(lv.Spec.Accessibility.Nodes, []string{"c", "b"}) {
		t.Errorf("accessibility %v, want [c b]", lv.Spec.Accessibility.Nodes)
	}
	if id := lv.Spec.Config.Replicas[0].ID; id != 3 {
		t.Errorf("new replica id %d, want 3", id)
	}
	fixture.WaitRecorded(t, rec, EventRebuildStarted, "rebuilding its replica on c")
	// Without its agent's finalizer (fixture replicas have none) it goes
	// at once; with it, it would wait for a's agent.
	if old := fixture.GetReplica(t, env.Client, "vol", "a"); old != nil && old.DeletionTimestamp == nil {
		t.Error("the replica on a is not being deleted")
	}
	// The volume controller and c's agent: a new replica, resynced.
	rep := &v1.LocalVolumeReplica{ObjectMeta: metav1.ObjectMeta{Name: v1.ReplicaName("vol", "c")}, Spec: v1.LocalVolumeReplicaSpec{
		VolumeName: "vol", NodeName: "c", PoolName: v1.PoolNameHDD, RequiredCapacityBytes: fixture.Gi, VolumeKind: v1.VolumeKindLVM}}
	if err := controllerutil.SetControllerReference(lv, rep, env.Client.Scheme()); err != nil {
		t.Fatal(err)
	}
	fixture.Create(t, env.Client, rep)
	fixture.SetReplicaStatus(t, env.Client, "vol", "c", func(st *v1.LocalVolumeReplicaStatus) {
		st.State = v1.StateReady
		st.DRBD = &v1.ReplicaDRBDStatus{Device: "/dev/drbd1", DiskState: "Inconsistent", InSyncPercent: "40"}
	})
	time.Sleep(time.Second)
	if got := fixture.GetVolume(t, env.Client, "vol").Annotations[RebuildAnnotation]; got == "" {
		t.Fatal("rebuild ended while the new replica is Inconsistent")
	}
	fixture.SetReplicaStatus(t, env.Client, "vol", "c", upToDate)
	fixture.Wait(t, env.Client, "vol", "the rebuild ends", func(lv *v1.LocalVolume) bool { return lv.Annotations[RebuildAnnotation] == "" })
	fixture.WaitRecorded(t, rec, EventRebuilt, "a -> c")
}

// TestNotYet: a node away for less than After keeps its replica.
func TestNotYet(t *testing.T) {
	setup(t, time.Now(), "c")
	start(t, time.Hour)
	time.Sleep(2 * time.Second)
	if got := fixture.GetVolume(t, env.Client, "vol").ReplicaNodes(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("replicas on %v, want [a b]", got)
	}
}

// TestNoTarget: no other node can take the replica: a Warning says why,
// and nothing changes.
func TestNoTarget(t *testing.T) {
	setup(t, time.Now().Add(-time.Hour))
	rec := start(t, time.Minute)
	fixture.WaitRecorded(t, rec, EventRebuildWaiting, "no node can take its replica")
	if got := fixture.GetVolume(t, env.Client, "vol").ReplicaNodes(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("replicas on %v, want [a b]", got)
	}
}

// TestStayingReplicaNotUpToDate: the replica that stayed cannot be the
// source of a resync: nothing moves.
func TestStayingReplicaNotUpToDate(t *testing.T) {
	setup(t, time.Now().Add(-time.Hour), "c")
	fixture.SetReplicaStatus(t, env.Client, "vol", "b", func(st *v1.LocalVolumeReplicaStatus) {
		st.DRBD.DiskState, st.DRBD.MayServe = "Inconsistent", false
	})
	rec := start(t, time.Minute)
	fixture.WaitRecorded(t, rec, EventRebuildWaiting, "cannot be the source", "Inconsistent")
	if got := fixture.GetVolume(t, env.Client, "vol").ReplicaNodes(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("replicas on %v, want [a b]", got)
	}
}

// TestRestartMidRebuild: the controller stops once the rebuild started; a
// new one neither starts it again nor leaves it unfinished.
func TestRestartMidRebuild(t *testing.T) {
	setup(t, time.Now().Add(-time.Hour), "c", "d")
	_, stop := startStoppable(t, time.Minute)
	lv := fixture.Wait(t, env.Client, "vol", "a rebuild started", func(lv *v1.LocalVolume) bool { return lv.Annotations[RebuildAnnotation] != "" })
	stop()
	target := lv.ReplicaNodes()[0]
	rec := start(t, time.Minute)
	time.Sleep(time.Second)
	if got := fixture.GetVolume(t, env.Client, "vol"); !slices.Equal(got.ReplicaNodes(), lv.ReplicaNodes()) || got.Annotations[RebuildAnnotation] != lv.Annotations[RebuildAnnotation] {
		t.Fatalf("after the restart: replicas %v (%s), want %v (%s)", got.ReplicaNodes(), got.Annotations[RebuildAnnotation], lv.ReplicaNodes(), lv.Annotations[RebuildAnnotation])
	}
	rep := &v1.LocalVolumeReplica{ObjectMeta: metav1.ObjectMeta{Name: v1.ReplicaName("vol", target)}, Spec: v1.LocalVolumeReplicaSpec{
		VolumeName: "vol", NodeName: target, PoolName: v1.PoolNameHDD, RequiredCapacityBytes: fixture.Gi, VolumeKind: v1.VolumeKindLVM}}
	fixture.Create(t, env.Client, rep)
	fixture.SetReplicaStatus(t, env.Client, "vol", target, func(st *v1.LocalVolumeReplicaStatus) { st.State = v1.StateReady; upToDate(st) })
	fixture.Wait(t, env.Client, "vol", "the rebuild ends", func(lv *v1.LocalVolume) bool { return lv.Annotations[RebuildAnnotation] == "" })
	fixture.WaitRecorded(t, rec, EventRebuilt)
}
