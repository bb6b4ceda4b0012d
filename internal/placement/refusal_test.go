package placement

import (
	"strings"
	"testing"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// refusalOf is a node agent's refusal of bytes on node, made while the
// node reported its HDD pool as report.
func refusalOf(node string, bytes, free int64, report v1.PoolReport) v1.CapacityRefusal {
	return v1.CapacityRefusal{NodeName: node, PoolName: v1.PoolNameHDD, RequiredCapacityBytes: bytes, FreeCapacityBytes: free,
		Report: report, By: v1.RefusedByNodeAgent}
}

// hddReport is the report lsn(...).pool(HDD, total, free, 100) gives.
func hddReport(total, free int64) v1.PoolReport {
	return v1.PoolReport{TotalCapacityBytes: total, FreeCapacityBytes: free, FreeVolumeCount: 100}
}

// TestRefusalKeepsVolumesOff: a node that refused a volume is rejected for
// volumes as large (any volume after a volume-count refusal) while its
// report of the pool is the one the refusal was made against; a new report
// ends it, and then the pool's figures decide again.
func TestRefusalKeepsVolumesOff(t *testing.T) {
	report := hddReport(40*Gi, 40*Gi)
	countRefusal := refusalOf("a", 1*Gi, 30*Gi, report)
	countRefusal.VolumeCountLimit = 1000
	csiRefusal := refusalOf("a", 10*Gi, 2*Gi, report)
	csiRefusal.By = v1.RefusedByCSIController
	tests := []struct {
		name    string
		refusal v1.CapacityRefusal
		// node a's HDD pool now: total, free.
		total, free int64
		need        int64
		want        string // "" fits; else a substring of the reason
	}{
		{"same report, same size", refusalOf("a", 10*Gi, 2*Gi, report), 40 * Gi, 40 * Gi, 10 * Gi,
			"refused 10Gi in LocalStorage_PoolHDD: 2Gi free at allocation, the node reports 40Gi free; kept off this node until it reports the pool again"},
		{"same report, larger", refusalOf("a", 10*Gi, 2*Gi, report), 40 * Gi, 40 * Gi, 20 * Gi, "refused 10Gi"},
		{"same report, smaller volume fits", refusalOf("a", 10*Gi, 2*Gi, report), 40 * Gi, 40 * Gi, 9 * Gi, ""},
		{"new report with room ends it", refusalOf("a", 10*Gi, 2*Gi, report), 40 * Gi, 38 * Gi, 10 * Gi, ""},
		{"new report without room: the figures decide", refusalOf("a", 10*Gi, 2*Gi, report), 40 * Gi, 2 * Gi, 10 * Gi,
			"pool LocalStorage_PoolHDD: need 10Gi, free 2Gi"},
		{"volume-count refusal keeps every size off", countRefusal, 40 * Gi, 40 * Gi, 1, "volume count limit 1000 reached"},
		{"CSI controller's refusal", csiRefusal, 40 * Gi, 40 * Gi, 10 * Gi, "refused 10Gi in LocalStorage_PoolHDD: 2Gi free in the node's report"},
		{"another node's refusal", refusalOf("b", 10*Gi, 2*Gi, report), 40 * Gi, 40 * Gi, 10 * Gi, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newCache(t, 0, lsn("a").pool(v1.PoolNameHDD, tc.total, tc.free, 100), lsn("b").pool(v1.PoolNameHDD, 40*Gi, 40*Gi, 100))
			c.SetRefusals("pvc-1", RefusalsOf("pvc-1", []v1.CapacityRefusal{tc.refusal}))
			got := c.Check("a", []Volume{{Key: "pvc-2", Pool: PoolHDD, Bytes: tc.need}}).String()
			if (got == "") != (tc.want == "") || !strings.Contains(got, tc.want) {
				t.Errorf("Check = %q, want %q", got, tc.want)
			}
			// Reserve, FittingNodes and PickPeer judge the same way.
			_, err := c.Reserve("a", []Volume{{Key: "pvc-3", Pool: PoolHDD, Bytes: tc.need}})
			if (err == nil) != (tc.want == "") {
				t.Errorf("Reserve: %v, want rejected: %v", err, tc.want != "")
			}
			fit := c.FittingNodes(nil, []Volume{{Key: "pvc-4", Pool: PoolHDD, Bytes: tc.need}}, []string{"a"}, "", 1)
			if (len(fit) == 1) != (tc.want == "") {
				t.Errorf("FittingNodes = %v", fit)
			}
		})
	}
}

// TestRefusalLifecycle: refusals come from group entries, follow their
// changes, survive the release of the volume's reservations (a deleted
// LocalVolume), and go with the claim (Forget) or a group without them.
func TestRefusalLifecycle(t *testing.T) {
	report := hddReport(40*Gi, 40*Gi)
	c, _ := newCache(t, 0, lsn("a").pool(v1.PoolNameHDD, 40*Gi, 40*Gi, 100))
	vol := []Volume{{Key: "pvc-2", Pool: PoolHDD, Bytes: 10 * Gi}}
	g := &v1.LocalVolumeGroup{Spec: v1.LocalVolumeGroupSpec{Volumes: []v1.VolumeInfo{{PersistentVolumeClaimName: "data", LocalVolumeName: "pvc-1",
		Refusals: []v1.CapacityRefusal{refusalOf("a", 10*Gi, 2*Gi, report)}}}}}
	c.UpsertGroup(g)
	if c.Check("a", vol).String() == "" || !c.HasRefusals("a") || len(c.Refusals("a")) != 1 {
		t.Fatalf("a group entry's refusal is not in the ledger: Check %q", c.Check("a", vol).String())
	}
	c.Release("pvc-1")
	if c.Check("a", vol).String() == "" {
		t.Error("releasing the volume's reservations dropped its refusal")
	}
	// A new report: the refusal no longer holds, but is still known (a
	// pod it kept off is requeued by the report).
	c.UpsertNode(lsn("a").pool(v1.PoolNameHDD, 40*Gi, 39*Gi, 100).build())
	if got := c.Check("a", vol).String(); got != "" || !c.HasRefusals("a") || len(c.Refusals("a")) != 0 {
		t.Errorf("after a new report: Check %q, HasRefusals %v, holding %v", got, c.HasRefusals("a"), c.Refusals("a"))
	}
	c.UpsertNode(lsn("a").pool(v1.PoolNameHDD, 40*Gi, 40*Gi, 100).build())
	g.Spec.Volumes[0].Refusals = nil
	c.UpsertGroup(g)
	if got := c.Check("a", vol).String(); got != "" || c.HasRefusals("a") {
		t.Errorf("the entry dropped its refusal, the ledger did not: %q", got)
	}
	g.Spec.Volumes[0].Refusals = []v1.CapacityRefusal{refusalOf("a", 10*Gi, 2*Gi, report)}
	c.UpsertGroup(g)
	c.Forget("pvc-1")
	if got := c.Check("a", vol).String(); got != "" || c.HasRefusals("a") {
		t.Errorf("Forget kept the refusal: %q", got)
	}
	// A refusal of a node without a LocalStorageNode does not make it one.
	c.SetRefusals("pvc-9", RefusalsOf("pvc-9", []v1.CapacityRefusal{refusalOf("ghost", Gi, 0, v1.PoolReport{})}))
	if got := c.Check("ghost", vol).String(); got != noLSN {
		t.Errorf("Check(ghost) = %q", got)
	}
	c.SetRefusals("pvc-9", nil)
	if _, ok := c.nodes["ghost"]; ok {
		t.Error("the node kept only for a refusal was not forgotten with it")
	}
}

// TestFilterWithRefusalAllocatesNothing: a refusal that does not apply
// costs Check no allocation (Filter runs it for every node).
func TestFilterWithRefusalAllocatesNothing(t *testing.T) {
	c, _ := newCache(t, 0, lsn("a").pool(v1.PoolNameHDD, 40*Gi, 40*Gi, 100))
	c.SetRefusals("pvc-1", RefusalsOf("pvc-1", []v1.CapacityRefusal{refusalOf("a", 10*Gi, 2*Gi, hddReport(40*Gi, 40*Gi))}))
	vol := []Volume{{Key: "pvc-2", Pool: PoolHDD, Bytes: Gi}}
	if n := testing.AllocsPerRun(100, func() { _ = c.Check("a", vol) }); n != 0 {
		t.Errorf("Check allocates %v times", n)
	}
}
