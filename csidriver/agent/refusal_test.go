package agent

import (
	"context"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/internal/testenv"
)

// TestCapacityRefusalRecorded: a new replica its pool cannot take carries
// the refusal as data (status.capacityRefusal: the numbers and the node's
// report it was made against; condition Allocated False with reason
// InsufficientCapacity), which CreateVolume reads; a failed expansion of an
// allocated replica does not (it is the LocalVolumeExpand controller's
// business); a replica that fits has none.
func TestCapacityRefusalRecorded(t *testing.T) {
	ctx := context.Background()
	start(t, newBackends(t, t.TempDir(), "refuse-a"))
	testenv.Eventually(t, "the pool reported", func() bool {
		lsn := &v1.LocalStorageNode{}
		return env.Client.Get(ctx, clientKey("refuse-a"), lsn) == nil && lsn.Status.Pools[v1.PoolNameHDD].FreeCapacityBytes == 10*gi
	})
	tests := []struct {
		name        string
		volume      string
		bytes       int64
		expandTo    int64
		wantRefusal *v1.CapacityRefusal
	}{
		{"too large", "pvc-refused", 20 * gi, 0, &v1.CapacityRefusal{NodeName: "refuse-a", PoolName: v1.PoolNameHDD,
			RequiredCapacityBytes: 20 * gi, FreeCapacityBytes: 10 * gi, By: v1.RefusedByNodeAgent,
			Report: v1.PoolReport{TotalCapacityBytes: 10 * gi, FreeCapacityBytes: 10 * gi, FreeVolumeCount: v1.DefaultVolumeCountLimit}}},
		{"expansion beyond the pool", "pvc-grown", 2 * gi, 30 * gi, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := env.Client.Create(ctx, newVolume(tc.volume, tc.bytes, "refuse-a")); err != nil {
				t.Fatal(err)
			}
			name := v1.ReplicaName(tc.volume, "refuse-a")
			if tc.expandTo > 0 {
				testenv.Eventually(t, "the replica allocated", func() bool {
					r := &v1.LocalVolumeReplica{}
					return env.Client.Get(ctx, clientKey(name), r) == nil && r.Status.State == v1.StateReady
				})
				if r := get(t, name, &v1.LocalVolumeReplica{}); r.Status.CapacityRefusal != nil {
					t.Errorf("an allocated replica carries a refusal: %+v", r.Status.CapacityRefusal)
				}
				lv := get(t, tc.volume, &v1.LocalVolume{})
				lv.Spec.RequiredCapacityBytes = tc.expandTo
				if err := env.Client.Update(ctx, lv); err != nil {
					t.Fatal(err)
				}
			}
			testenv.Eventually(t, "the replica NotReady", func() bool {
				r := &v1.LocalVolumeReplica{}
				return env.Client.Get(ctx, clientKey(name), r) == nil && r.Status.State == v1.StateNotReady
			})
			rep := get(t, name, &v1.LocalVolumeReplica{})
			got := rep.Status.CapacityRefusal
			cond := meta.FindStatusCondition(rep.Status.Conditions, ConditionAllocated)
			if tc.wantRefusal == nil {
				if got != nil || cond == nil || cond.Reason != "AllocationFailed" {
					t.Errorf("refusal %+v, condition %+v; want none, AllocationFailed", got, cond)
				}
			} else {
				if got == nil || got.Time.IsZero() {
					t.Fatalf("no refusal (or no time) on the replica: %+v", rep.Status)
				}
				g := *got
				g.Time = tc.wantRefusal.Time
				if g != *tc.wantRefusal {
					t.Errorf("refusal %+v, want %+v", g, *tc.wantRefusal)
				}
				if cond == nil || cond.Status != "False" || cond.Reason != v1.ReasonInsufficientCapacity {
					t.Errorf("condition %+v, want Allocated False InsufficientCapacity", cond)
				}
				testenv.Eventually(t, "the volume's condition to name the refusal", func() bool {
					c := meta.FindStatusCondition(get(t, tc.volume, &v1.LocalVolume{}).Status.Conditions, "ReplicasReady")
					return c != nil && c.Reason == v1.ReasonInsufficientCapacity
				})
			}
			if err := env.Client.Delete(ctx, get(t, tc.volume, &v1.LocalVolume{})); err != nil {
				t.Fatal(err)
			}
			testenv.Eventually(t, "the volume deleted", func() bool {
				return env.Client.Get(ctx, clientKey(tc.volume), &v1.LocalVolume{}) != nil
			})
		})
	}
}
