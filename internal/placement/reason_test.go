package placement

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// TestCheckReason: Check's verdicts as data, each with its code and the
// numbers behind it, and the message users see (Reason.String).
func TestCheckReason(t *testing.T) {
	limited := func(name string, free, limit int64) *lsnBuilder {
		return lsn(name).pool(v1.PoolNameHDD, 40*Gi, free, 10).modify(func(p *v1.LocalPool) { p.VolumeCapacityBytesLimit = limit })
	}
	refusal := refusalOf("n1", 10*Gi, 2*Gi, hddReport(40*Gi, 40*Gi))
	tests := []struct {
		name     string
		nodes    []*lsnBuilder
		reserve  []reservation
		refusals []v1.CapacityRefusal // of volume "refused"
		node     string
		vols     []Volume
		want     Reason
		wantMsg  string
	}{
		{
			name:  "fits: the zero Reason",
			nodes: []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 40*Gi, 40*Gi, 10)},
			node:  "n1", vols: vols(vol("a", PoolHDD, 6*Gi)),
		},
		{
			name: "no LocalStorageNode",
			node: "n1", vols: vols(vol("a", PoolHDD, 6*Gi)),
			want:    Reason{Code: NoStorageNode},
			wantMsg: noLSN,
		},
		{
			name:  "not Ready",
			nodes: []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 40*Gi, 40*Gi, 10).state(v1.StateOffline)},
			node:  "n1", vols: vols(vol("a", PoolHDD, 6*Gi)),
			want:    Reason{Code: NodeNotReady, State: v1.StateOffline},
			wantMsg: "LocalStorageNode is Offline, not Ready",
		},
		{
			name:  "not Ready, without state",
			nodes: []*lsnBuilder{lsn("n1").state("")},
			node:  "n1",
			want:  Reason{Code: NodeNotReady}, wantMsg: "LocalStorageNode is without state, not Ready",
		},
		{
			name:  "no pool of the class",
			nodes: []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 40*Gi, 40*Gi, 10)},
			node:  "n1", vols: vols(vol("a", PoolHDD, 1*Gi), vol("b", PoolSSD, 1*Gi)),
			want:    Reason{Code: NoPool, Pool: PoolSSD},
			wantMsg: "node has no pool LocalStorage_PoolSSD",
		},
		{
			name:  "larger than the pool's volumeCapacityBytesLimit",
			nodes: []*lsnBuilder{limited("n1", 40*Gi, 10*Gi)},
			node:  "n1", vols: vols(vol("a", PoolHDD, 10*Gi+1)),
			want:    Reason{Code: VolumeTooLarge, Pool: PoolHDD, Need: 10*Gi + 1, Limit: 10 * Gi},
			wantMsg: "pool LocalStorage_PoolHDD takes volumes up to 10Gi, 10737418241 requested",
		},
		{
			name:  "too large before short: the limit is checked first",
			nodes: []*lsnBuilder{limited("n1", 1*Gi, 10*Gi)},
			node:  "n1", vols: vols(vol("a", PoolHDD, 12*Gi)),
			want:    Reason{Code: VolumeTooLarge, Pool: PoolHDD, Need: 12 * Gi, Limit: 10 * Gi},
			wantMsg: "pool LocalStorage_PoolHDD takes volumes up to 10Gi, 12Gi requested",
		},
		{
			name:  "exactly the limit fits",
			nodes: []*lsnBuilder{limited("n1", 40*Gi, 10*Gi)},
			node:  "n1", vols: vols(vol("a", PoolHDD, 10*Gi)),
		},
		{
			name:  "the limit is per volume, not per group",
			nodes: []*lsnBuilder{limited("n1", 40*Gi, 10*Gi)},
			node:  "n1", vols: vols(vol("a", PoolHDD, 8*Gi), vol("b", PoolHDD, 8*Gi)),
		},
		{
			name:    "a volume held here is not checked against the limit again",
			nodes:   []*lsnBuilder{limited("n1", 40*Gi, 10*Gi)},
			reserve: []reservation{{"n1", vols(vol("a", PoolHDD, 6*Gi))}},
			node:    "n1", vols: vols(vol("a", PoolHDD, 12*Gi)),
		},
		{
			name:  "short, without reservations",
			nodes: []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 40*Gi, 4*Gi, 10)},
			node:  "n1", vols: vols(vol("a", PoolHDD, 6*Gi)),
			want:    Reason{Code: InsufficientCapacity, Pool: PoolHDD, Need: 6 * Gi, Free: 4 * Gi},
			wantMsg: "pool LocalStorage_PoolHDD: need 6Gi, free 4Gi",
		},
		{
			name:    "short with reservations in flight: Free is the report's, Reserved what they hold",
			nodes:   []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 40*Gi, 10*Gi, 10)},
			reserve: []reservation{{"n1", vols(vol("r1", PoolHDD, 3*Gi), vol("r2", PoolHDD, 3*Gi))}},
			node:    "n1", vols: vols(vol("a", PoolHDD, 6*Gi)),
			want:    Reason{Code: InsufficientCapacity, Pool: PoolHDD, Need: 6 * Gi, Free: 10 * Gi, Reserved: 6 * Gi},
			wantMsg: "pool LocalStorage_PoolHDD: need 6Gi, free 4Gi (6Gi reserved in flight)",
		},
		{
			name:  "Need is the group's demand in the pool, rounded to its extent",
			nodes: []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 40*Gi, 10*Gi, 10).extent(4 * Mi)},
			node:  "n1", vols: vols(vol("a", PoolHDD, 5*Gi+1), vol("b", PoolHDD, 5*Gi)),
			want:    Reason{Code: InsufficientCapacity, Pool: PoolHDD, Need: 10*Gi + 4*Mi, Free: 10 * Gi},
			wantMsg: "pool LocalStorage_PoolHDD: need 10244Mi, free 10Gi",
		},
		{
			name:  "no volume slot, without reservations",
			nodes: []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 40*Gi, 40*Gi, 1)},
			node:  "n1", vols: vols(vol("a", PoolHDD, 1*Gi), vol("b", PoolHDD, 1*Gi)),
			want:    Reason{Code: NoVolumeSlot, Pool: PoolHDD, Need: 2, Free: 1},
			wantMsg: "pool LocalStorage_PoolHDD: need 2 volume(s), 1 free",
		},
		{
			name:    "no volume slot with reservations in flight",
			nodes:   []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 40*Gi, 40*Gi, 3)},
			reserve: []reservation{{"n1", vols(vol("r1", PoolHDD, 1*Gi), vol("r2", PoolHDD, 1*Gi))}},
			node:    "n1", vols: vols(vol("a", PoolHDD, 1*Gi), vol("b", PoolHDD, 1*Gi)),
			want:    Reason{Code: NoVolumeSlot, Pool: PoolHDD, Need: 2, Free: 3, Reserved: 2},
			wantMsg: "pool LocalStorage_PoolHDD: need 2 volume(s), 1 free (2 reserved in flight)",
		},
		{
			name:     "refused by the node",
			nodes:    []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 40*Gi, 40*Gi, 100)},
			refusals: []v1.CapacityRefusal{refusal},
			node:     "n1", vols: vols(vol("a", PoolHDD, 12*Gi)),
			want: Reason{Code: CapacityRefused, Pool: PoolHDD, Need: 12 * Gi,
				Refusal: &Refusal{Node: "n1", Volume: "refused", Pool: PoolHDD, CapacityRefusal: refusal}},
			wantMsg: "refused 10Gi in LocalStorage_PoolHDD: 2Gi free at allocation, the node reports 40Gi free; kept off this node until it reports the pool again",
		},
		{
			name:  "an HA volume on a node whose agent cannot run DRBD",
			nodes: []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 40*Gi, 40*Gi, 10).drbd(metav1.ConditionFalse, "the drbd kernel module is not loaded")},
			node:  "n1", vols: vols(haVol("a", PoolHDD, 1*Gi)),
			want:    Reason{Code: NoDRBD, Message: "the drbd kernel module is not loaded"},
			wantMsg: "node cannot replicate HA volumes: the drbd kernel module is not loaded",
		},
		{
			name:  "a single-replica volume does not need DRBD",
			nodes: []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 40*Gi, 40*Gi, 10).drbd(metav1.ConditionFalse, "not loaded")},
			node:  "n1", vols: vols(vol("a", PoolHDD, 1*Gi)),
		},
		{
			name:  "an HA volume where DRBD runs",
			nodes: []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 40*Gi, 40*Gi, 10).drbd(metav1.ConditionTrue, "DRBD 8.4 replicates HA volumes")},
			node:  "n1", vols: vols(haVol("a", PoolHDD, 1*Gi)),
		},
		{
			name:  "an HA volume on a node that does not replicate at all (no condition): placed, unreplicated",
			nodes: []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 40*Gi, 40*Gi, 10)},
			node:  "n1", vols: vols(haVol("a", PoolHDD, 1*Gi)),
		},
		{
			name:     "a smaller volume than the refused one fits",
			nodes:    []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 40*Gi, 40*Gi, 100)},
			refusals: []v1.CapacityRefusal{refusal},
			node:     "n1", vols: vols(vol("a", PoolHDD, 9*Gi)),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newCache(t, 0, tt.nodes...)
			for _, r := range tt.reserve {
				mustReserve(t, c, r.node, r.vols...)
			}
			if tt.refusals != nil {
				c.SetRefusals("refused", RefusalsOf("refused", tt.refusals))
			}
			got := c.Check(tt.node, tt.vols)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Check(%s) (-want +got):\n%s", tt.node, diff)
			}
			if got.Fits() != (tt.want.Code == Fits) {
				t.Errorf("Fits() = %v for %s", got.Fits(), got.Code)
			}
			if msg := got.String(); msg != tt.wantMsg {
				t.Errorf("String() = %q, want %q", msg, tt.wantMsg)
			}
		})
	}
}

// haVol is an HA volume's replica demand.
func haVol(key string, p Pool, bytes int64) Volume {
	v := vol(key, p, bytes)
	v.Replicated = true
	return v
}

// TestReasonString: the message of each code, from the numbers alone.
func TestReasonString(t *testing.T) {
	refusal := &Refusal{Node: "n1", Volume: "v", Pool: PoolSSD, CapacityRefusal: v1.CapacityRefusal{NodeName: "n1", PoolName: v1.PoolNameSSD,
		RequiredCapacityBytes: 10 * Gi, FreeCapacityBytes: 2 * Gi, By: v1.RefusedByCSIController}}
	for _, tt := range []struct {
		reason Reason
		want   string
	}{
		{Reason{}, ""},
		{Reason{Code: NoStorageNode}, noLSN},
		{Reason{Code: NodeNotReady, State: v1.StateNotReady}, "LocalStorageNode is NotReady, not Ready"},
		{Reason{Code: NodeNotReady}, "LocalStorageNode is without state, not Ready"},
		{Reason{Code: NoPool, Pool: PoolNVMe}, "node has no pool LocalStorage_PoolNVMe"},
		{Reason{Code: VolumeTooLarge, Pool: PoolSSD, Need: 2 << 40, Limit: 1 << 40}, "pool LocalStorage_PoolSSD takes volumes up to 1Ti, 2Ti requested"},
		{Reason{Code: InsufficientCapacity, Pool: PoolHDD, Need: 6 * Gi, Free: 2 * Gi}, "pool LocalStorage_PoolHDD: need 6Gi, free 2Gi"},
		{Reason{Code: InsufficientCapacity, Pool: PoolHDD, Need: 6 * Gi, Free: 20 * Gi, Reserved: 18 * Gi},
			"pool LocalStorage_PoolHDD: need 6Gi, free 2Gi (18Gi reserved in flight)"},
		{Reason{Code: NoVolumeSlot, Pool: PoolHDD, Need: 1}, "pool LocalStorage_PoolHDD: need 1 volume(s), 0 free"},
		{Reason{Code: NoVolumeSlot, Pool: PoolHDD, Need: 1, Free: 5, Reserved: 5}, "pool LocalStorage_PoolHDD: need 1 volume(s), 0 free (5 reserved in flight)"},
		{Reason{Code: CapacityRefused, Pool: PoolSSD, Need: 10 * Gi, Refusal: refusal},
			"refused 10Gi in LocalStorage_PoolSSD: 2Gi free in the node's report; kept off this node until it reports the pool again"},
		{Reason{Code: CapacityRefused}, "refused by the node"},
		{Reason{Code: NumCodes + 1}, "Code(10)"},
	} {
		if got := tt.reason.String(); got != tt.want {
			t.Errorf("%s: String() = %q, want %q", tt.reason.Code, got, tt.want)
		}
	}
	names := map[string]bool{}
	for c := Code(0); c < NumCodes; c++ {
		if name := c.String(); name == "" || names[name] {
			t.Errorf("Code(%d) has the name %q (empty or a duplicate)", c, name)
		} else {
			names[name] = true
		}
	}
}

// TestReserveNodeError: a Reserve that no longer fits fails with a
// *NodeError (errors.As finds it through wrapping) carrying Check's
// verdict, and holds nothing.
func TestReserveNodeError(t *testing.T) {
	c, _ := newCache(t, 0, lsn("n1").pool(v1.PoolNameHDD, 40*Gi, 10*Gi, 10).modify(func(p *v1.LocalPool) { p.VolumeCapacityBytesLimit = 10 * Gi }))
	mustReserve(t, c, "n1", vol("r", PoolHDD, 6*Gi))
	for _, tt := range []struct {
		name    string
		node    string
		vols    []Volume
		want    Reason
		wantErr string
	}{
		{"short with a reservation in flight", "n1", vols(vol("a", PoolHDD, 6*Gi)),
			Reason{Code: InsufficientCapacity, Pool: PoolHDD, Need: 6 * Gi, Free: 10 * Gi, Reserved: 6 * Gi},
			"node n1: pool LocalStorage_PoolHDD: need 6Gi, free 4Gi (6Gi reserved in flight)"},
		{"too large", "n1", vols(vol("a", PoolHDD, 11*Gi)),
			Reason{Code: VolumeTooLarge, Pool: PoolHDD, Need: 11 * Gi, Limit: 10 * Gi},
			"node n1: pool LocalStorage_PoolHDD takes volumes up to 10Gi, 11Gi requested"},
		{"unknown node", "n9", vols(vol("a", PoolHDD, 1*Gi)), Reason{Code: NoStorageNode}, "node n9: " + noLSN},
	} {
		t.Run(tt.name, func(t *testing.T) {
			added, err := c.Reserve(tt.node, tt.vols)
			if err == nil || added != nil {
				t.Fatalf("Reserve = %v, %v; want a NodeError", added, err)
			}
			var ne *NodeError
			if !errors.As(fmt.Errorf("reserving: %w", err), &ne) {
				t.Fatalf("errors.As(%v) found no *NodeError", err)
			}
			if ne.Node != tt.node {
				t.Errorf("Node = %q, want %q", ne.Node, tt.node)
			}
			if diff := cmp.Diff(tt.want, ne.Reason); diff != "" {
				t.Errorf("Reason (-want +got):\n%s", diff)
			}
			if err.Error() != tt.wantErr {
				t.Errorf("Error() = %q, want %q", err.Error(), tt.wantErr)
			}
			wantReserved(t, c, "n1", PoolHDD, 6*Gi, 1)
		})
	}
}

// drbd sets the node's DRBD condition as its agent reports it.
func (b *lsnBuilder) drbd(status metav1.ConditionStatus, msg string) *lsnBuilder {
	meta.SetStatusCondition(&b.obj.Status.Conditions, metav1.Condition{Type: v1.ConditionDRBD, Status: status, Reason: v1.ReasonDRBDMissing, Message: msg})
	return b
}
