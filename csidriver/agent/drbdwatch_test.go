package agent

import (
	"context"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/drbd"
)

// TestWatchNode: a change of the kernel state of a minor the agent brought
// up (noteMinor) reconciles its replica; a minor of no known replica, and
// another node's replica with the same minor, do not.
func TestWatchNode(t *testing.T) {
	procs := []string{procInSync, procPrimaryInSync, procPrimaryFrozen}
	var mu sync.Mutex
	reads := 0
	m := &drbd.Manager{Version: drbd.V84, ReadFile: func(string) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		p := procs[min(reads, len(procs)-1)]
		reads++
		return []byte(p), nil
	}}
	a := &Agent{}
	a.noteMinor(&v1.LocalVolumeReplica{ObjectMeta: metav1.ObjectMeta{Name: v1.ReplicaName(drbdVol, "n1")}, Spec: v1.LocalVolumeReplicaSpec{NodeName: "n1"}}, 7)
	a.noteMinor(&v1.LocalVolumeReplica{ObjectMeta: metav1.ObjectMeta{Name: "other-node-replica"}, Spec: v1.LocalVolumeReplicaSpec{NodeName: "n2"}}, 7)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan event.TypedGenericEvent[*v1.LocalVolumeReplica], 10)
	done := make(chan struct{})
	go func() {
		a.watchNode(ctx, "n1", m, time.Millisecond, events)
		close(done)
	}()
	// Three states of minor 7: it appears, becomes Primary, freezes.
	for i := range 3 {
		select {
		case e := <-events:
			if e.Object.Name != v1.ReplicaName(drbdVol, "n1") {
				t.Errorf("event %d for %q, want the replica on n1", i, e.Object.Name)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("event %d never came", i)
		}
	}
	// Unchanged from then on: no more events.
	select {
	case e := <-events:
		t.Errorf("an event for %q without a change", e.Object.Name)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	<-done
}

// TestForgetMinors: a replica that goes takes its minors out of the map,
// and only its own.
func TestForgetMinors(t *testing.T) {
	a := &Agent{}
	gone := &v1.LocalVolumeReplica{ObjectMeta: metav1.ObjectMeta{Name: "gone"}, Spec: v1.LocalVolumeReplicaSpec{NodeName: "n1"}}
	stays := &v1.LocalVolumeReplica{ObjectMeta: metav1.ObjectMeta{Name: "stays"}, Spec: v1.LocalVolumeReplicaSpec{NodeName: "n1"}}
	a.noteMinor(gone, 3)
	a.noteMinor(stays, 4)
	a.forgetMinors(gone)
	if _, ok := a.drbdMinors.Load(minorKey{"n1", 3}); ok {
		t.Error("the minor of a replica that went is still mapped")
	}
	if name, ok := a.drbdMinors.Load(minorKey{"n1", 4}); !ok || name != "stays" {
		t.Errorf("the minor of the replica that stays maps to %v, want stays", name)
	}
}
