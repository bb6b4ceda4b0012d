package volume

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"

	"hwameistor.io/local/controllers/internal/fixture"
	"hwameistor.io/local/internal/testenv"
)

// TestResourceIDs: HA volumes created at once get distinct DRBD resource
// ids, lowest first, recorded on the volume; single-replica volumes get
// none; when every id of the range is taken the next HA volume gets a
// Warning Event and no replicas, and it takes the id a deleted volume
// freed.
func TestResourceIDs(t *testing.T) {
	ctx := context.Background()
	fixture.Reset(t, env.Client) // no HA volume of another test holds an id
	rec := record.NewFakeRecorder(100)
	env.StartManager(t, func(ctx context.Context, mgr ctrl.Manager) error {
		return (&Reconciler{Client: mgr.GetClient(), Recorder: rec, MaxResourceIDs: 3}).SetupWithManager(ctx, mgr)
	})
	var names []string
	for i := range 3 {
		name := fmt.Sprintf("pvc-rid-%d", i)
		names = append(names, name)
		if err := env.Client.Create(ctx, newVolume(name, gi, "n1", "n2")); err != nil {
			t.Fatal(err)
		}
	}
	if err := env.Client.Create(ctx, newVolume("pvc-rid-single", gi, "n1")); err != nil {
		t.Fatal(err)
	}
	idOf := func(name string) int64 {
		if c := getVolume(t, name).Spec.Config; c != nil {
			return c.ResourceID
		}
		return 0
	}
	testenv.Eventually(t, "three HA volumes with ids", func() bool {
		for _, n := range names {
			if idOf(n) == 0 {
				return false
			}
		}
		return true
	})
	var ids []int64
	for _, n := range names {
		ids = append(ids, idOf(n))
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []int64{1, 2, 3}) {
		t.Errorf("resource ids %v, want 1, 2, 3 (distinct, lowest first)", ids)
	}
	testenv.Eventually(t, "the single-replica volume's replica", func() bool { return len(replicas(t, "pvc-rid-single")) == 1 })
	if id := idOf("pvc-rid-single"); id != 0 {
		t.Errorf("single-replica volume got resource id %d", id)
	}

	// The range is full: the fourth HA volume waits, with a reason.
	if err := env.Client.Create(ctx, newVolume("pvc-rid-full", gi, "n1", "n2")); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, rec, "NoResourceID")
	time.Sleep(500 * time.Millisecond)
	if id, reps := idOf("pvc-rid-full"), replicas(t, "pvc-rid-full"); id != 0 || len(reps) != 0 {
		t.Fatalf("with every id taken: id %d, %d replicas; want none", id, len(reps))
	}

	// Deleting an HA volume frees its id for the waiting one.
	freed := idOf(names[1])
	lv := getVolume(t, names[1])
	if err := env.Client.Delete(ctx, lv); err != nil {
		t.Fatal(err)
	}
	// No node agent here: the replicas' finalizers are removed by hand
	// (a patch, which a concurrent status write cannot make fail), until
	// the volume is gone.
	testenv.Eventually(t, "the deleted volume gone", func() bool {
		for _, r := range replicas(t, names[1]) {
			if len(r.Finalizers) > 0 {
				patch := client.MergeFrom(r.DeepCopy())
				r.Finalizers = nil
				_ = env.Client.Patch(ctx, &r, patch)
			}
		}
		return apierrors.IsNotFound(env.Client.Get(ctx, client.ObjectKey{Name: names[1]}, &v1.LocalVolume{}))
	})
	testenv.Eventually(t, "the waiting volume to take the freed id", func() bool { return idOf("pvc-rid-full") == freed })
	testenv.Eventually(t, "its replicas", func() bool { return len(replicas(t, "pvc-rid-full")) == 2 })
}

// waitEvent waits for an event whose text contains reason.
func waitEvent(t *testing.T, rec *record.FakeRecorder, reason string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case e := <-rec.Events:
			if strings.Contains(e, reason) {
				return
			}
		case <-deadline:
			t.Fatalf("no %s event", reason)
		}
	}
}
