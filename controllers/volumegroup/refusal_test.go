package volumegroup

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/internal/testenv"
)

// TestRefusalsKeptUntilBound: the capacity refusals CreateVolume records in
// an entry stay while the claim waits for a placement (the scheduler reads
// them) and are dropped once the claim is bound.
func TestRefusalsKeptUntilBound(t *testing.T) {
	startController(t)
	createClaim(t, "refused")
	e := v1.VolumeInfo{PersistentVolumeClaimName: "refused", LocalVolumeName: "pvc-refused", Refusals: []v1.CapacityRefusal{{
		NodeName: "node-a", PoolName: v1.PoolNameHDD, RequiredCapacityBytes: 10 << 30, FreeCapacityBytes: 2 << 30,
		Report: v1.PoolReport{TotalCapacityBytes: 40 << 30, FreeCapacityBytes: 40 << 30, FreeVolumeCount: 1000},
		By:     v1.RefusedByNodeAgent, Time: metav1.NewTime(time.Now().Truncate(time.Second)),
	}}}
	createGroup(t, "lvg-refused", e)
	consistently(t, "the refusal kept while the claim is not bound", 2*time.Second, func() bool {
		g := getGroup(t, "lvg-refused")
		return g != nil && len(g.Spec.Volumes) == 1 && len(g.Spec.Volumes[0].Refusals) == 1
	})
	createVolume(t, "pvc-refused", "refused", v1.StateReady)
	bindClaim(t, "refused", "pvc-refused", true)
	testenv.Eventually(t, "the refusal dropped once the claim is bound", func() bool {
		g := getGroup(t, "lvg-refused")
		return g != nil && len(g.Spec.Volumes) == 1 && len(g.Spec.Volumes[0].Refusals) == 0 && g.Spec.Volumes[0].LocalVolumeName == "pvc-refused"
	})
}
