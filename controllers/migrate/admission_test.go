package migrate

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/internal/fixture"
	"hwameistor.io/local/internal/testenv"
)

// createOperation creates a LocalVolumeConvert or LocalVolumeExpand (kind)
// of volume, its status state set to state when not empty (no controller
// of that kind runs), and returns its creation time.
func createOperation(t *testing.T, kind, name, volume string, state v1.State) metav1.Time {
	t.Helper()
	var obj client.Object
	switch kind {
	case v1.KindConvert:
		obj = &v1.LocalVolumeConvert{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v1.LocalVolumeConvertSpec{VolumeName: volume, ReplicaNumber: 2}}
	case v1.KindExpand:
		obj = &v1.LocalVolumeExpand{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v1.LocalVolumeExpandSpec{VolumeName: volume, RequiredCapacityBytes: 2 * gi}}
	default:
		t.Fatalf("kind %s", kind)
	}
	fixture.Create(t, env.Client, obj)
	if state != "" {
		setOperationState(t, kind, name, state)
	}
	return obj.GetCreationTimestamp()
}

// setOperationState sets the status state of a conversion or expansion.
func setOperationState(t *testing.T, kind, name string, state v1.State) {
	t.Helper()
	switch kind {
	case v1.KindConvert:
		fixture.EditStatus(t, env.Client, name, func(c *v1.LocalVolumeConvert) { c.Status.State = state })
	case v1.KindExpand:
		fixture.EditStatus(t, env.Client, name, func(e *v1.LocalVolumeExpand) { e.Status.State = state })
	}
}

// touchOperation changes an annotation of a conversion or expansion: an
// event that wakes the migrations of its volume without ending it.
func touchOperation(t *testing.T, kind, name string) {
	t.Helper()
	touch := func(o client.Object) { o.SetAnnotations(map[string]string{"test/touched": time.Now().String()}) }
	switch kind {
	case v1.KindConvert:
		fixture.Edit(t, env.Client, name, func(c *v1.LocalVolumeConvert) { touch(c) })
	case v1.KindExpand:
		fixture.Edit(t, env.Client, name, func(e *v1.LocalVolumeExpand) { touch(e) })
	}
}

// nextSecond waits until an object created now gets a later creation time
// than created (the apiserver keeps whole seconds): equal times would
// order the operations by kind instead.
func nextSecond(created metav1.Time) {
	time.Sleep(time.Until(created.Add(time.Second + 50*time.Millisecond)))
}

// checkOrder fails the test unless the migration was created after
// created when older is set, before it otherwise (the test's premise).
func checkOrder(t *testing.T, migration string, created metav1.Time, older bool) {
	t.Helper()
	m := getMigration(t, migration).CreationTimestamp
	if older != created.Before(&m) {
		t.Fatalf("migration created at %s, the other operation at %s: not the order the test needs", m, created)
	}
}

// TestWaitsForOlderOperation: a migration of a volume that an older
// conversion or expansion (or a younger one that started) has not
// finished with stays Submitted, saying why, and adds no replica; once
// that operation ends (either way) the migration starts.
func TestWaitsForOlderOperation(t *testing.T) {
	cases := []struct {
		name    string
		kind    string
		state   v1.State // the other operation's ("" for none written yet)
		end     v1.State
		doing   string
		younger bool // the other operation is created after the migration
	}{
		{name: "Submitted conversion, completed", kind: v1.KindConvert, state: v1.OperationStateSubmitted, end: v1.OperationStateCompleted, doing: "converted"},
		{name: "conversion adding its replica, failed", kind: v1.KindConvert, state: v1.OperationStateAddReplica, end: v1.OperationStateFailed, doing: "converted"},
		{name: "new conversion, aborted", kind: v1.KindConvert, end: v1.OperationStateAborted, doing: "converted"},
		{name: "Submitted expansion, failed", kind: v1.KindExpand, state: v1.OperationStateSubmitted, end: v1.OperationStateFailed, doing: "expanded"},
		{name: "expansion in progress, completed", kind: v1.KindExpand, state: v1.OperationStateInProgress, end: v1.OperationStateCompleted, doing: "expanded"},
		{name: "younger conversion that started, completed", kind: v1.KindConvert, state: v1.OperationStateSyncReplica, end: v1.OperationStateCompleted, doing: "converted", younger: true},
		{name: "younger expansion in progress, failed", kind: v1.KindExpand, state: v1.OperationStateInProgress, end: v1.OperationStateFailed, doing: "expanded", younger: true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fixture.Reset(t, env.Client)
			fixture.CreateNodes(t, env.Client, node{Name: "src", Free: 50 * gi}, node{Name: "n1", Free: 80 * gi})
			vol, mig, other := fmt.Sprintf("vol-adm-%d", i), fmt.Sprintf("mig-adm-%d", i), fmt.Sprintf("op-adm-%d", i)
			fixture.CreateVolume(t, env.Client, volume{Name: vol, Replicas: []string{"src"}})
			var created metav1.Time
			if tc.younger {
				createMigration(t, mig, vol, "src")
				nextSecond(getMigration(t, mig).CreationTimestamp)
				created = createOperation(t, tc.kind, other, vol, tc.state)
			} else {
				created = createOperation(t, tc.kind, other, vol, tc.state)
				nextSecond(created)
				createMigration(t, mig, vol, "src")
			}
			checkOrder(t, mig, created, !tc.younger)
			startController(t)

			want := fmt.Sprintf("waiting: volume %s is being %s by %s", vol, tc.doing, other)
			waitMigration(t, mig, "waiting for "+other, func(m *v1.LocalVolumeMigrate) bool { return m.Status.Message == want })
			// Woken by the other operation, which goes on: it still waits.
			touchOperation(t, tc.kind, other)
			time.Sleep(time.Second)
			m := getMigration(t, mig)
			if operationState(m) != v1.OperationStateSubmitted || m.Status.Message != want || m.Status.TargetNode != "" {
				t.Errorf("waiting migration: %+v", m.Status)
			}
			if c := meta.FindStatusCondition(m.Status.Conditions, v1.ConditionFinished); c == nil ||
				c.Status != metav1.ConditionFalse || c.Reason != string(v1.OperationStateSubmitted) || c.Message != want {
				t.Errorf("Finished condition of the waiting migration: %+v", c)
			}
			if got := fixture.ReplicaObjectNodes(t, env.Client, vol); !slices.Equal(got, []string{"src"}) {
				t.Errorf("replicas while waiting: %v", got)
			}
			if got := lvReplicas(t, vol); !slices.Equal(got, []string{"src"}) {
				t.Errorf("volume placed on %v while waiting", got)
			}

			setOperationState(t, tc.kind, other, tc.end)
			if target := migrationAt(t, mig, v1.OperationStateAddReplica); target != "n1" {
				t.Errorf("target %s, want n1", target)
			}
			testenv.Eventually(t, "the target replica", func() bool { return fixture.GetReplica(t, env.Client, vol, "n1") != nil })
		})
	}
}

// TestYoungerSubmittedDoesNotBlock: a conversion or expansion created
// after the migration, not started yet, waits for it, not the other way
// round.
func TestYoungerSubmittedDoesNotBlock(t *testing.T) {
	for i, kind := range []string{v1.KindExpand, v1.KindConvert} {
		t.Run(kind, func(t *testing.T) {
			fixture.Reset(t, env.Client)
			fixture.CreateNodes(t, env.Client, node{Name: "src", Free: 50 * gi}, node{Name: "n1", Free: 80 * gi})
			vol, mig, other := fmt.Sprintf("vol-young-%d", i), fmt.Sprintf("mig-young-%d", i), fmt.Sprintf("op-young-%d", i)
			fixture.CreateVolume(t, env.Client, volume{Name: vol, Replicas: []string{"src"}})
			createMigration(t, mig, vol, "src")
			nextSecond(getMigration(t, mig).CreationTimestamp)
			created := createOperation(t, kind, other, vol, v1.OperationStateSubmitted)
			checkOrder(t, mig, created, false)
			startController(t)

			m := waitState(t, mig, v1.OperationStateAddReplica)
			if m.Status.TargetNode != "n1" {
				t.Errorf("started migration: %+v", m.Status)
			}
			testenv.Eventually(t, "the target replica", func() bool { return fixture.GetReplica(t, env.Client, vol, "n1") != nil })
		})
	}
}

// operationState is the migration's state, Submitted when none is
// written.
func operationState(m *v1.LocalVolumeMigrate) v1.State {
	if m.Status.State == "" {
		return v1.OperationStateSubmitted
	}
	return m.Status.State
}
