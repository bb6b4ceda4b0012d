package placement

import (
	"math"
	"sort"
	"strings"
	"testing"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// selectNodes: n1..n3 have room for a 6Gi HDD volume, n4 is short, n5 is
// offline, n6 has no HDD pool.
func selectNodes() []*lsnBuilder {
	return []*lsnBuilder{
		lsn("n1").zone("a").pool(v1.PoolNameHDD, 100*Gi, 10*Gi, 10),
		lsn("n2").zone("a").pool(v1.PoolNameHDD, 100*Gi, 30*Gi, 10),
		lsn("n3").zone("b").pool(v1.PoolNameHDD, 100*Gi, 20*Gi, 10),
		lsn("n4").zone("b").pool(v1.PoolNameHDD, 100*Gi, 5*Gi, 10),
		lsn("n5").zone("c").pool(v1.PoolNameHDD, 100*Gi, 90*Gi, 10).state(v1.StateOffline),
		lsn("n6").zone("c").pool(v1.PoolNameSSD, 100*Gi, 90*Gi, 10),
	}
}

func TestFittingNodes(t *testing.T) {
	v6 := vols(vol("a", PoolHDD, 6*Gi))
	tests := []struct {
		name       string
		dst        []string
		candidates []string
		exclude    string
		limit      int
		// want is the exact result when ordered (candidates given), else
		// wantAnyOf with wantLen.
		want      []string
		wantAnyOf []string
		wantLen   int
	}{
		{name: "all fitting", limit: 100, wantAnyOf: []string{"n1", "n2", "n3"}, wantLen: 3},
		{name: "limit stops early", limit: 2, wantAnyOf: []string{"n1", "n2", "n3"}, wantLen: 2},
		{name: "limit zero", limit: 0, want: nil},
		{name: "exclude", limit: 100, exclude: "n2", wantAnyOf: []string{"n1", "n3"}, wantLen: 2},
		{name: "candidates keep their order", limit: 100, candidates: []string{"n3", "n4", "n9", "n5", "n1"}, want: []string{"n3", "n1"}},
		{name: "candidates with limit", limit: 1, candidates: []string{"n4", "n3", "n1"}, want: []string{"n3"}},
		{name: "candidates with exclude", limit: 100, candidates: []string{"n3", "n1"}, exclude: "n3", want: []string{"n1"}},
		{name: "empty candidates", limit: 100, candidates: []string{}, want: nil},
		{name: "appends to dst", dst: []string{"x"}, limit: 100, candidates: []string{"n1", "n2"}, want: []string{"x", "n1", "n2"}},
		{name: "limit counts only appended nodes", dst: []string{"x"}, limit: 1, candidates: []string{"n1", "n2"}, want: []string{"x", "n1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newCache(t, 0, selectNodes()...)
			got := c.FittingNodes(tt.dst, v6, tt.candidates, tt.exclude, tt.limit)
			if tt.wantAnyOf == nil {
				if strings.Join(got, ",") != strings.Join(tt.want, ",") {
					t.Errorf("FittingNodes = %q, want %q", got, tt.want)
				}
				return
			}
			if len(got) != tt.wantLen {
				t.Errorf("FittingNodes = %q, want %d nodes", got, tt.wantLen)
			}
			seen := map[string]bool{}
			for _, n := range got {
				if !contains(tt.wantAnyOf, n) || seen[n] {
					t.Errorf("FittingNodes = %q: unexpected or repeated %s (want from %q)", got, n, tt.wantAnyOf)
				}
				seen[n] = true
			}
		})
	}

	t.Run("reservations are counted", func(t *testing.T) {
		c, _ := newCache(t, 0, selectNodes()...)
		mustReserve(t, c, "n1", vol("r", PoolHDD, 5*Gi))
		got := c.FittingNodes(nil, v6, nil, "", 100)
		sort.Strings(got)
		if strings.Join(got, ",") != "n2,n3" {
			t.Errorf("FittingNodes = %q, want n2,n3", got)
		}
	})
}

func TestPickPeer(t *testing.T) {
	v6 := vols(vol("a", PoolHDD, 6*Gi))
	tests := []struct {
		name       string
		nodes      []*lsnBuilder
		reserve    []reservation
		node       string
		vols       []Volume
		candidates []string
		want       string
		wantOK     bool
	}{
		{
			name: "prefers another zone over more free space",
			// n2 (zone a, 30Gi) has more room than n3 (zone b, 20Gi).
			nodes: selectNodes(), node: "n1", vols: v6, want: "n3", wantOK: true,
		},
		{
			name:  "same zone when no other zone fits",
			nodes: selectNodes(), node: "n3", vols: v6, want: "n2", wantOK: true,
		},
		{
			name: "most free after placement within the preferred zone",
			nodes: append(selectNodes(),
				lsn("n7").zone("b").pool(v1.PoolNameHDD, 100*Gi, 25*Gi, 10)),
			node: "n1", vols: v6, want: "n7", wantOK: true,
		},
		{
			name: "ties by name",
			nodes: []*lsnBuilder{
				lsn("n1").zone("a").pool(v1.PoolNameHDD, 100*Gi, 10*Gi, 10),
				lsn("n9").zone("b").pool(v1.PoolNameHDD, 100*Gi, 20*Gi, 10),
				lsn("n3").zone("b").pool(v1.PoolNameHDD, 100*Gi, 20*Gi, 10),
				lsn("n7").zone("b").pool(v1.PoolNameHDD, 100*Gi, 20*Gi, 10),
			},
			node: "n1", vols: v6, want: "n3", wantOK: true,
		},
		{
			name: "free after placement counts volumes already held",
			// n8 holds a already: 14Gi left after placement; n9 would keep
			// 15Gi - 6Gi = 9Gi. Raw free (8Gi vs 15Gi) would pick n9.
			nodes: []*lsnBuilder{
				lsn("n1").zone("a").pool(v1.PoolNameHDD, 100*Gi, 10*Gi, 10),
				lsn("n8").zone("b").pool(v1.PoolNameHDD, 100*Gi, 20*Gi, 10),
				lsn("n9").zone("b").pool(v1.PoolNameHDD, 100*Gi, 15*Gi, 10),
			},
			reserve: []reservation{{"n8", v6}},
			node:    "n1", vols: v6, want: "n8", wantOK: true,
		},
		{
			name: "free after placement counts other reservations",
			nodes: []*lsnBuilder{
				lsn("n1").zone("a").pool(v1.PoolNameHDD, 100*Gi, 10*Gi, 10),
				lsn("n8").zone("b").pool(v1.PoolNameHDD, 100*Gi, 20*Gi, 10),
				lsn("n9").zone("b").pool(v1.PoolNameHDD, 100*Gi, 15*Gi, 10),
			},
			reserve: []reservation{{"n8", vols(vol("r", PoolHDD, 10*Gi))}},
			node:    "n1", vols: v6, want: "n9", wantOK: true,
		},
		{
			name: "free summed over the pools the volumes use",
			nodes: []*lsnBuilder{
				lsn("n1").zone("a").pool(v1.PoolNameHDD, 100*Gi, 100*Gi, 10).pool(v1.PoolNameSSD, 100*Gi, 100*Gi, 10),
				lsn("n2").zone("b").pool(v1.PoolNameHDD, 100*Gi, 10*Gi, 10).pool(v1.PoolNameSSD, 100*Gi, 50*Gi, 10),
				lsn("n3").zone("b").pool(v1.PoolNameHDD, 100*Gi, 30*Gi, 10).pool(v1.PoolNameSSD, 100*Gi, 20*Gi, 10),
			},
			node: "n1", vols: vols(vol("h", PoolHDD, 1*Gi), vol("s", PoolSSD, 1*Gi)), want: "n2", wantOK: true,
		},
		{
			name:  "respects candidates",
			nodes: selectNodes(), node: "n1", vols: v6, candidates: []string{"n2"}, want: "n2", wantOK: true,
		},
		{
			name:  "zone preference among candidates",
			nodes: selectNodes(), node: "n1", vols: v6, candidates: []string{"n2", "n3", "n4"}, want: "n3", wantOK: true,
		},
		{
			name:  "candidates that do not fit",
			nodes: selectNodes(), node: "n1", vols: v6, candidates: []string{"n4", "n5", "n6", "n9"}, want: "", wantOK: false,
		},
		{
			name:  "never the node itself",
			nodes: selectNodes(), node: "n2", vols: v6, candidates: []string{"n2"}, want: "", wantOK: false,
		},
		{
			name:  "nothing fits",
			nodes: selectNodes(), node: "n1", vols: vols(vol("big", PoolHDD, 50*Gi)), want: "", wantOK: false,
		},
		{
			name: "node without zone: most free",
			nodes: []*lsnBuilder{
				lsn("n1").pool(v1.PoolNameHDD, 100*Gi, 10*Gi, 10),
				lsn("n2").zone("a").pool(v1.PoolNameHDD, 100*Gi, 30*Gi, 10),
				lsn("n3").zone("b").pool(v1.PoolNameHDD, 100*Gi, 20*Gi, 10),
			},
			node: "n1", vols: v6, want: "n2", wantOK: true,
		},
		{
			name:  "unknown first node: most free",
			nodes: selectNodes(), node: "n9", vols: v6, want: "n2", wantOK: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newCache(t, 0, tt.nodes...)
			for _, r := range tt.reserve {
				mustReserve(t, c, r.node, r.vols...)
			}
			got, ok := c.PickPeer(tt.node, tt.vols, tt.candidates)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("PickPeer(%s) = %q, %v; want %q, %v", tt.node, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestUtilization(t *testing.T) {
	twoPools := func() *lsnBuilder {
		return lsn("n1").pool(v1.PoolNameHDD, 100*Gi, 60*Gi, 10).pool(v1.PoolNameSSD, 10*Gi, 5*Gi, 10)
	}
	w := func(hdd, ssd, nvme int64) *[NumPools]int64 { return &[NumPools]int64{hdd, ssd, nvme} }
	tests := []struct {
		name    string
		nodes   []*lsnBuilder
		reserve []reservation
		node    string
		vols    []Volume
		weights *[NumPools]int64
		want    float64
		wantOK  bool
	}{
		{
			// HDD: 100 - (60 - 10) = 50Gi taken of 100 -> 0.5, weight 1*10Gi.
			name:  "one pool",
			nodes: []*lsnBuilder{twoPools()}, node: "n1",
			vols: vols(vol("h", PoolHDD, 10*Gi)), weights: w(1, 1, 1),
			want: 0.5, wantOK: true,
		},
		{
			// HDD 0.5 weighted 1*10Gi, SSD (10 - (5 - 1))/10 = 0.6 weighted 2*1Gi.
			name:  "two pools weighted by weight times bytes",
			nodes: []*lsnBuilder{twoPools()}, node: "n1",
			vols: vols(vol("h", PoolHDD, 10*Gi), vol("s", PoolSSD, 1*Gi)), weights: w(1, 2, 0),
			want: (0.5*10 + 0.6*2) / 12, wantOK: true,
		},
		{
			name:  "zero weight ignores a pool",
			nodes: []*lsnBuilder{twoPools()}, node: "n1",
			vols: vols(vol("h", PoolHDD, 10*Gi), vol("s", PoolSSD, 1*Gi)), weights: w(0, 1, 0),
			want: 0.6, wantOK: true,
		},
		{
			name:  "reservations in flight are taken",
			nodes: []*lsnBuilder{twoPools()}, node: "n1",
			reserve: []reservation{{"n1", vols(vol("r", PoolHDD, 10*Gi))}},
			vols:    vols(vol("h", PoolHDD, 10*Gi)), weights: w(1, 1, 1),
			want: 0.6, wantOK: true,
		},
		{
			name:  "a volume already held is not counted twice",
			nodes: []*lsnBuilder{twoPools()}, node: "n1",
			reserve: []reservation{{"n1", vols(vol("h", PoolHDD, 10*Gi))}},
			vols:    vols(vol("h", PoolHDD, 10*Gi)), weights: w(1, 1, 1),
			want: 0.5, wantOK: true,
		},
		{
			name:  "over-full is capped at 1",
			nodes: []*lsnBuilder{twoPools()}, node: "n1",
			vols: vols(vol("h", PoolHDD, 80*Gi)), weights: w(1, 1, 1),
			want: 1, wantOK: true,
		},
		{
			name:  "missing pool",
			nodes: []*lsnBuilder{twoPools()}, node: "n1",
			vols: vols(vol("h", PoolHDD, 10*Gi), vol("n", PoolNVMe, 1*Gi)), weights: w(1, 1, 1),
		},
		{
			name:  "zero-sized pool",
			nodes: []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 0, 0, 10)}, node: "n1",
			vols: vols(vol("h", PoolHDD, 1)), weights: w(1, 1, 1),
		},
		{
			name:  "unknown node",
			nodes: []*lsnBuilder{twoPools()}, node: "n9",
			vols: vols(vol("h", PoolHDD, 10*Gi)), weights: w(1, 1, 1),
		},
		{
			name:  "all weights zero",
			nodes: []*lsnBuilder{twoPools()}, node: "n1",
			vols: vols(vol("h", PoolHDD, 10*Gi)), weights: w(0, 0, 0),
		},
		{
			name:  "no volumes",
			nodes: []*lsnBuilder{twoPools()}, node: "n1",
			weights: w(1, 1, 1),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newCache(t, 0, tt.nodes...)
			for _, r := range tt.reserve {
				mustReserve(t, c, r.node, r.vols...)
			}
			got, ok := c.Utilization(tt.node, tt.vols, tt.weights)
			if ok != tt.wantOK || math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("Utilization = %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}

	t.Run("deleted node", func(t *testing.T) {
		c, _ := newCache(t, 0, twoPools())
		mustReserve(t, c, "n1", vol("r", PoolHDD, 1*Gi))
		c.DeleteNode("n1")
		if got, ok := c.Utilization("n1", vols(vol("h", PoolHDD, 1*Gi)), w(1, 1, 1)); ok {
			t.Errorf("Utilization on a deleted node = %v, true", got)
		}
	})
}
