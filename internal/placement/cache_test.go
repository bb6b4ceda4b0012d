package placement

import (
	"sort"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "hwameistor.io/local/api/v1alpha1"
)

const (
	Mi = int64(1) << 20
	Gi = int64(1) << 30
)

const noLSN = "node has no LocalStorageNode (is the hwameistor node agent running there?)"

// lsnBuilder builds a LocalStorageNode; pool(...) starts a pool that the
// following extent(...) and volumes(...) apply to. Nodes are Ready unless
// state(...) says otherwise.
type lsnBuilder struct {
	obj  *v1.LocalStorageNode
	last string
}

func lsn(name string) *lsnBuilder {
	return &lsnBuilder{obj: &v1.LocalStorageNode{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1.LocalStorageNodeSpec{Hostname: name},
		Status:     v1.LocalStorageNodeStatus{State: v1.StateReady, Pools: map[string]v1.LocalPool{}},
	}}
}

func (b *lsnBuilder) zone(z string) *lsnBuilder { b.obj.Spec.Topo.Zone = z; return b }

func (b *lsnBuilder) state(s v1.State) *lsnBuilder { b.obj.Status.State = s; return b }

func (b *lsnBuilder) pool(name string, total, free, freeCount int64) *lsnBuilder {
	class, err := v1.PoolClassOf(name)
	if err != nil {
		class = ""
	}
	b.obj.Status.Pools[name] = v1.LocalPool{
		Name: name, Class: class, Type: "REGULAR",
		TotalCapacityBytes: total, UsedCapacityBytes: total - free, FreeCapacityBytes: free,
		FreeVolumeCount: freeCount, TotalVolumeCount: freeCount,
	}
	b.last = name
	return b
}

func (b *lsnBuilder) modify(f func(p *v1.LocalPool)) *lsnBuilder {
	p := b.obj.Status.Pools[b.last]
	f(&p)
	b.obj.Status.Pools[b.last] = p
	return b
}

func (b *lsnBuilder) extent(e int64) *lsnBuilder {
	return b.modify(func(p *v1.LocalPool) { p.ExtentSizeBytes = e })
}

func (b *lsnBuilder) volumes(vols ...string) *lsnBuilder {
	return b.modify(func(p *v1.LocalPool) { p.Volumes = append(p.Volumes, vols...) })
}

func (b *lsnBuilder) build() *v1.LocalStorageNode { return b.obj }

// fakeClock drives the Cache's now for TTL tests.
type fakeClock struct{ t time.Time }

func (f *fakeClock) now() time.Time          { return f.t }
func (f *fakeClock) advance(d time.Duration) { f.t = f.t.Add(d) }

// newCache returns a cache with a fake clock, holding the given nodes.
func newCache(t testing.TB, ttl time.Duration, nodes ...*lsnBuilder) (*Cache, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	c := NewCache(ttl)
	c.now = clk.now
	for _, n := range nodes {
		c.UpsertNode(n.build())
	}
	return c, clk
}

func vol(key string, p Pool, bytes int64) Volume { return Volume{Key: key, Pool: p, Bytes: bytes} }

func vols(v ...Volume) []Volume { return v }

func mustReserve(t *testing.T, c *Cache, node string, v ...Volume) {
	t.Helper()
	if _, err := c.Reserve(node, v); err != nil {
		t.Fatalf("Reserve(%s, %v): %v", node, v, err)
	}
}

func wantReserved(t *testing.T, c *Cache, node string, p Pool, bytes, count int64) {
	t.Helper()
	gb, gc := c.Reserved(node, p)
	if gb != bytes || gc != count {
		t.Errorf("Reserved(%s, %s) = %s, %d; want %s, %d", node, p.Name(), v1.FormatBytes(gb), gc, v1.FormatBytes(bytes), count)
	}
}

// ledger renders Reservations() sorted, e.g. "n1/a/LocalStorage_PoolHDD/6Gi/persisted".
func ledger(c *Cache) []string {
	var out []string
	for _, r := range c.Reservations() {
		s := r.Node + "/" + r.Volume + "/" + r.Pool.Name() + "/" + v1.FormatBytes(r.Bytes)
		if r.Persisted {
			s += "/persisted"
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func wantLedger(t *testing.T, c *Cache, want ...string) {
	t.Helper()
	got := ledger(c)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("ledger = %q, want %q", got, want)
	}
	checkInvariants(t, c)
}

// checkInvariants asserts that the per-pool reserved counters and the
// by-volume index agree with the entries.
func checkInvariants(t testing.TB, c *Cache) {
	t.Helper()
	c.mu.RLock()
	defer c.mu.RUnlock()
	indexed := 0
	for name, n := range c.nodes {
		var bytes, count [NumPools]int64
		for key, e := range n.entries {
			bytes[e.pool] += e.bytes
			count[e.pool]++
			if _, ok := c.byVolume[key][name]; !ok {
				t.Errorf("entry %s on %s missing from byVolume", key, name)
			}
		}
		indexed += len(n.entries)
		for p := Pool(0); p < NumPools; p++ {
			if n.pools[p].reservedBytes != bytes[p] || n.pools[p].reservedCount != count[p] {
				t.Errorf("node %s pool %s: reserved %d bytes/%d vols, entries sum to %d/%d",
					name, p.Name(), n.pools[p].reservedBytes, n.pools[p].reservedCount, bytes[p], count[p])
			}
		}
		if !n.known && len(n.entries) == 0 {
			t.Errorf("node %s is unknown and has no entries but is still cached", name)
		}
	}
	total := 0
	for key, nodes := range c.byVolume {
		if len(nodes) == 0 {
			t.Errorf("byVolume[%s] is empty but present", key)
		}
		for name := range nodes {
			n := c.nodes[name]
			if n == nil {
				t.Errorf("byVolume[%s] names node %s, which is not cached", key, name)
				continue
			}
			if _, ok := n.entries[key]; !ok {
				t.Errorf("byVolume[%s] names node %s, which has no such entry", key, name)
			}
			total++
		}
	}
	if total != indexed {
		t.Errorf("byVolume indexes %d entries, nodes hold %d", total, indexed)
	}
}

type reservation struct {
	node string
	vols []Volume
}

func TestCheck(t *testing.T) {
	hdd20 := func(name string) *lsnBuilder { return lsn(name).pool(v1.PoolNameHDD, 20*Gi, 20*Gi, 10) }
	tests := []struct {
		name    string
		nodes   []*lsnBuilder
		reserve []reservation
		node    string
		vols    []Volume
		want    string
	}{
		{
			name:  "fits",
			nodes: []*lsnBuilder{hdd20("n1")},
			node:  "n1", vols: vols(vol("a", PoolHDD, 6*Gi)),
		},
		{
			name:  "fits exactly",
			nodes: []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 20*Gi, 6*Gi, 1)},
			node:  "n1", vols: vols(vol("a", PoolHDD, 6*Gi)),
		},
		{
			name:  "no volumes asked",
			nodes: []*lsnBuilder{hdd20("n1")},
			node:  "n1",
		},
		{
			name:  "shortage without reservations",
			nodes: []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 20*Gi, 4*Gi, 10)},
			node:  "n1", vols: vols(vol("a", PoolHDD, 6*Gi)),
			want: "pool LocalStorage_PoolHDD: need 6Gi, free 4Gi",
		},
		{
			name:    "shortage with reservations in flight",
			nodes:   []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 20*Gi, 6*Gi, 10)},
			reserve: []reservation{{"n1", vols(vol("r", PoolHDD, 2*Gi))}},
			node:    "n1", vols: vols(vol("a", PoolHDD, 6*Gi)),
			want: "pool LocalStorage_PoolHDD: need 6Gi, free 4Gi (2Gi reserved in flight)",
		},
		{
			name:    "reservations on another node do not count",
			nodes:   []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 20*Gi, 6*Gi, 10), lsn("n2").pool(v1.PoolNameHDD, 20*Gi, 6*Gi, 10)},
			reserve: []reservation{{"n2", vols(vol("r", PoolHDD, 2*Gi))}},
			node:    "n1", vols: vols(vol("a", PoolHDD, 6*Gi)),
		},
		{
			name:  "no pool of that class",
			nodes: []*lsnBuilder{hdd20("n1")},
			node:  "n1", vols: vols(vol("a", PoolSSD, 1*Gi)),
			want: "node has no pool LocalStorage_PoolSSD",
		},
		{
			name:  "no pool for one volume of the group",
			nodes: []*lsnBuilder{hdd20("n1")},
			node:  "n1", vols: vols(vol("a", PoolHDD, 1*Gi), vol("b", PoolNVMe, 1*Gi)),
			want: "node has no pool LocalStorage_PoolNVMe",
		},
		{
			name:  "no LocalStorageNode",
			nodes: []*lsnBuilder{hdd20("n1")},
			node:  "n9", vols: vols(vol("a", PoolHDD, 1*Gi)),
			want: noLSN,
		},
		{
			name:  "node offline",
			nodes: []*lsnBuilder{hdd20("n1").state(v1.StateOffline)},
			node:  "n1", vols: vols(vol("a", PoolHDD, 1*Gi)),
			want: "LocalStorageNode is Offline, not Ready",
		},
		{
			name:  "node without state",
			nodes: []*lsnBuilder{hdd20("n1").state("")},
			node:  "n1", vols: vols(vol("a", PoolHDD, 1*Gi)),
			want: "LocalStorageNode is without state, not Ready",
		},
		{
			name:  "free volume count exhausted",
			nodes: []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 20*Gi, 20*Gi, 0)},
			node:  "n1", vols: vols(vol("a", PoolHDD, 1*Gi)),
			want: "pool LocalStorage_PoolHDD: need 1 volume(s), 0 free",
		},
		{
			name:    "free volume count exhausted by reservations",
			nodes:   []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 20*Gi, 20*Gi, 2)},
			reserve: []reservation{{"n1", vols(vol("r", PoolHDD, 1*Gi))}},
			node:    "n1", vols: vols(vol("a", PoolHDD, 1*Gi), vol("b", PoolHDD, 1*Gi)),
			want: "pool LocalStorage_PoolHDD: need 2 volume(s), 1 free (1 reserved in flight)",
		},
		{
			name:    "last free volume slot",
			nodes:   []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 20*Gi, 20*Gi, 2)},
			reserve: []reservation{{"n1", vols(vol("r", PoolHDD, 1*Gi))}},
			node:    "n1", vols: vols(vol("a", PoolHDD, 1*Gi)),
		},
		{
			name:  "extent rounding: a 1-byte volume takes a 4Mi extent",
			nodes: []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 1*Gi, 8*Mi, 10).extent(4 * Mi)},
			node:  "n1", vols: vols(vol("a", PoolHDD, 1), vol("b", PoolHDD, 1), vol("c", PoolHDD, 1)),
			want: "pool LocalStorage_PoolHDD: need 12Mi, free 8Mi",
		},
		{
			name:  "extent rounding: two 1-byte volumes fill 8Mi",
			nodes: []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 1*Gi, 8*Mi, 10).extent(4 * Mi)},
			node:  "n1", vols: vols(vol("a", PoolHDD, 1), vol("b", PoolHDD, 1)),
		},
		{
			name:  "extent rounding: 4Mi+1 takes two extents",
			nodes: []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 1*Gi, 4*Mi, 10).extent(4 * Mi)},
			node:  "n1", vols: vols(vol("a", PoolHDD, 4*Mi+1)),
			want: "pool LocalStorage_PoolHDD: need 8Mi, free 4Mi",
		},
		{
			name:  "group in one pool is summed",
			nodes: []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 20*Gi, 5*Gi, 10)},
			node:  "n1", vols: vols(vol("a", PoolHDD, 3*Gi), vol("b", PoolHDD, 3*Gi)),
			want: "pool LocalStorage_PoolHDD: need 6Gi, free 5Gi",
		},
		{
			name: "group across pools: each pool checked on its own",
			nodes: []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 20*Gi, 5*Gi, 10).
				pool(v1.PoolNameSSD, 20*Gi, 5*Gi, 10)},
			node: "n1", vols: vols(vol("a", PoolHDD, 3*Gi), vol("b", PoolSSD, 3*Gi), vol("c", PoolSSD, 3*Gi)),
			want: "pool LocalStorage_PoolSSD: need 6Gi, free 5Gi",
		},
		{
			name:    "volume already reserved on the node fits",
			nodes:   []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 20*Gi, 10*Gi, 1)},
			reserve: []reservation{{"n1", vols(vol("a", PoolHDD, 6*Gi))}},
			node:    "n1", vols: vols(vol("a", PoolHDD, 6*Gi)),
		},
		{
			name:    "volume already reserved does not make room for another",
			nodes:   []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 20*Gi, 10*Gi, 10)},
			reserve: []reservation{{"n1", vols(vol("a", PoolHDD, 6*Gi))}},
			node:    "n1", vols: vols(vol("a", PoolHDD, 6*Gi), vol("b", PoolHDD, 6*Gi)),
			want: "pool LocalStorage_PoolHDD: need 6Gi, free 4Gi (6Gi reserved in flight)",
		},
		{
			name:    "volume reserved on another node does not fit here",
			nodes:   []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 20*Gi, 4*Gi, 10), hdd20("n2")},
			reserve: []reservation{{"n2", vols(vol("a", PoolHDD, 6*Gi))}},
			node:    "n1", vols: vols(vol("a", PoolHDD, 6*Gi)),
			want: "pool LocalStorage_PoolHDD: need 6Gi, free 4Gi",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newCache(t, 0, tt.nodes...)
			for _, r := range tt.reserve {
				mustReserve(t, c, r.node, r.vols...)
			}
			if got := c.Check(tt.node, tt.vols).String(); got != tt.want {
				t.Errorf("Check(%s) = %q, want %q", tt.node, got, tt.want)
			}
		})
	}
}

func TestReserve(t *testing.T) {
	t.Run("holds rounded bytes", func(t *testing.T) {
		c, _ := newCache(t, 0, lsn("n1").pool(v1.PoolNameHDD, 1*Gi, 1*Gi, 10).extent(4*Mi))
		mustReserve(t, c, "n1", vol("a", PoolHDD, 1))
		wantReserved(t, c, "n1", PoolHDD, 4*Mi, 1)
		wantLedger(t, c, "n1/a/LocalStorage_PoolHDD/4Mi")
	})

	t.Run("all or nothing within a pool", func(t *testing.T) {
		c, _ := newCache(t, 0, lsn("n1").pool(v1.PoolNameHDD, 20*Gi, 10*Gi, 10))
		_, err := c.Reserve("n1", vols(vol("a", PoolHDD, 4*Gi), vol("b", PoolHDD, 8*Gi)))
		if err == nil || err.Error() != "node n1: pool LocalStorage_PoolHDD: need 12Gi, free 10Gi" {
			t.Fatalf("Reserve = %v, want the shortage of n1's HDD pool", err)
		}
		wantReserved(t, c, "n1", PoolHDD, 0, 0)
		wantLedger(t, c)
	})

	t.Run("all or nothing across pools", func(t *testing.T) {
		c, _ := newCache(t, 0, lsn("n1").pool(v1.PoolNameHDD, 20*Gi, 10*Gi, 10).pool(v1.PoolNameSSD, 20*Gi, 1*Gi, 10))
		_, err := c.Reserve("n1", vols(vol("a", PoolHDD, 4*Gi), vol("b", PoolSSD, 8*Gi)))
		if err == nil || err.Error() != "node n1: pool LocalStorage_PoolSSD: need 8Gi, free 1Gi" {
			t.Fatalf("Reserve = %v, want the shortage of n1's SSD pool", err)
		}
		wantReserved(t, c, "n1", PoolHDD, 0, 0)
		wantReserved(t, c, "n1", PoolSSD, 0, 0)
		wantLedger(t, c)
	})

	t.Run("unknown node", func(t *testing.T) {
		c, _ := newCache(t, 0)
		_, err := c.Reserve("n9", vols(vol("a", PoolHDD, 1)))
		if err == nil || err.Error() != "node n9: "+noLSN {
			t.Fatalf("Reserve = %v, want no LocalStorageNode", err)
		}
		wantLedger(t, c)
	})

	t.Run("idempotent", func(t *testing.T) {
		c, _ := newCache(t, 0, lsn("n1").pool(v1.PoolNameHDD, 20*Gi, 10*Gi, 10))
		mustReserve(t, c, "n1", vol("a", PoolHDD, 6*Gi))
		// Only 4Gi are left, yet reserving a again succeeds and holds nothing more.
		mustReserve(t, c, "n1", vol("a", PoolHDD, 6*Gi))
		wantReserved(t, c, "n1", PoolHDD, 6*Gi, 1)
		// A group holding a plus a new volume adds only the new one.
		mustReserve(t, c, "n1", vol("a", PoolHDD, 6*Gi), vol("b", PoolHDD, 4*Gi))
		wantReserved(t, c, "n1", PoolHDD, 10*Gi, 2)
		wantLedger(t, c, "n1/a/LocalStorage_PoolHDD/6Gi", "n1/b/LocalStorage_PoolHDD/4Gi")
	})

	t.Run("exhausting capacity", func(t *testing.T) {
		c, _ := newCache(t, 0, lsn("n1").pool(v1.PoolNameHDD, 20*Gi, 20*Gi, 10))
		for _, k := range []string{"v1", "v2", "v3"} {
			mustReserve(t, c, "n1", vol(k, PoolHDD, 6*Gi))
		}
		_, err := c.Reserve("n1", vols(vol("v4", PoolHDD, 6*Gi)))
		if err == nil || err.Error() != "node n1: pool LocalStorage_PoolHDD: need 6Gi, free 2Gi (18Gi reserved in flight)" {
			t.Fatalf("4th Reserve = %v, want refused", err)
		}
		wantReserved(t, c, "n1", PoolHDD, 18*Gi, 3)
		// Releasing one makes room again.
		c.Unreserve("n1", []string{"v2"})
		mustReserve(t, c, "n1", vol("v4", PoolHDD, 6*Gi))
		wantReserved(t, c, "n1", PoolHDD, 18*Gi, 3)
	})

	t.Run("HA: same volume on two nodes", func(t *testing.T) {
		c, _ := newCache(t, 0, lsn("n1").pool(v1.PoolNameHDD, 20*Gi, 20*Gi, 10), lsn("n2").pool(v1.PoolNameHDD, 20*Gi, 20*Gi, 10))
		mustReserve(t, c, "n1", vol("a", PoolHDD, 6*Gi))
		mustReserve(t, c, "n2", vol("a", PoolHDD, 6*Gi))
		wantLedger(t, c, "n1/a/LocalStorage_PoolHDD/6Gi", "n2/a/LocalStorage_PoolHDD/6Gi")
	})
}

func TestUnreserveAndRelease(t *testing.T) {
	nodes := func() []*lsnBuilder {
		return []*lsnBuilder{
			lsn("n1").pool(v1.PoolNameHDD, 20*Gi, 20*Gi, 10).pool(v1.PoolNameSSD, 20*Gi, 20*Gi, 10),
			lsn("n2").pool(v1.PoolNameHDD, 20*Gi, 20*Gi, 10),
		}
	}

	t.Run("Unreserve drops only the named volumes on that node", func(t *testing.T) {
		c, _ := newCache(t, 0, nodes()...)
		mustReserve(t, c, "n1", vol("a", PoolHDD, 6*Gi), vol("b", PoolSSD, 2*Gi))
		mustReserve(t, c, "n2", vol("a", PoolHDD, 6*Gi))
		c.Unreserve("n1", []string{"a", "missing"})
		wantReserved(t, c, "n1", PoolHDD, 0, 0)
		wantReserved(t, c, "n1", PoolSSD, 2*Gi, 1)
		wantLedger(t, c, "n1/b/LocalStorage_PoolSSD/2Gi", "n2/a/LocalStorage_PoolHDD/6Gi")
		c.Unreserve("n9", []string{"a"}) // unknown node: no-op
		c.Unreserve("n1", nil)
		wantLedger(t, c, "n1/b/LocalStorage_PoolSSD/2Gi", "n2/a/LocalStorage_PoolHDD/6Gi")
	})

	t.Run("Release drops the volume everywhere", func(t *testing.T) {
		c, _ := newCache(t, 0, nodes()...)
		mustReserve(t, c, "n1", vol("a", PoolHDD, 6*Gi), vol("b", PoolSSD, 2*Gi))
		mustReserve(t, c, "n2", vol("a", PoolHDD, 6*Gi))
		c.SetPlacement(vol("c", PoolHDD, 1*Gi), []string{"n2"})
		c.Release("a")
		c.Release("c")
		c.Release("missing")
		wantReserved(t, c, "n1", PoolHDD, 0, 0)
		wantReserved(t, c, "n2", PoolHDD, 0, 0)
		wantLedger(t, c, "n1/b/LocalStorage_PoolSSD/2Gi")
	})
}

func TestSetPlacement(t *testing.T) {
	hdd := func(name string) *lsnBuilder { return lsn(name).pool(v1.PoolNameHDD, 20*Gi, 20*Gi, 10) }

	t.Run("moves a volume's entries", func(t *testing.T) {
		c, _ := newCache(t, 0, hdd("n1"), hdd("n2"), hdd("n3"))
		mustReserve(t, c, "n1", vol("a", PoolHDD, 6*Gi))
		mustReserve(t, c, "n2", vol("a", PoolHDD, 6*Gi))
		c.SetPlacement(vol("a", PoolHDD, 6*Gi), []string{"n2", "n3"})
		wantReserved(t, c, "n1", PoolHDD, 0, 0)
		wantReserved(t, c, "n2", PoolHDD, 6*Gi, 1)
		wantReserved(t, c, "n3", PoolHDD, 6*Gi, 1)
		wantLedger(t, c, "n2/a/LocalStorage_PoolHDD/6Gi/persisted", "n3/a/LocalStorage_PoolHDD/6Gi/persisted")
	})

	t.Run("persists an existing entry so Expire keeps it", func(t *testing.T) {
		c, clk := newCache(t, time.Minute, hdd("n1"))
		mustReserve(t, c, "n1", vol("a", PoolHDD, 6*Gi), vol("b", PoolHDD, 2*Gi))
		c.SetPlacement(vol("a", PoolHDD, 6*Gi), []string{"n1"})
		wantReserved(t, c, "n1", PoolHDD, 8*Gi, 2) // not counted twice
		clk.advance(time.Hour)
		if got := c.Expire(); got != 1 {
			t.Errorf("Expire() = %d, want 1 (b only)", got)
		}
		wantReserved(t, c, "n1", PoolHDD, 6*Gi, 1)
		wantLedger(t, c, "n1/a/LocalStorage_PoolHDD/6Gi/persisted")
	})

	t.Run("skips nodes whose status lists the volume", func(t *testing.T) {
		c, _ := newCache(t, 0, hdd("n1"), hdd("n2").volumes("a"))
		c.SetPlacement(vol("a", PoolHDD, 6*Gi), []string{"n1", "n2"})
		wantReserved(t, c, "n2", PoolHDD, 0, 0)
		wantLedger(t, c, "n1/a/LocalStorage_PoolHDD/6Gi/persisted")
	})

	t.Run("rounds to the pool's extent", func(t *testing.T) {
		c, _ := newCache(t, 0, hdd("n1").extent(4*Mi))
		c.SetPlacement(vol("a", PoolHDD, 1), []string{"n1"})
		wantReserved(t, c, "n1", PoolHDD, 4*Mi, 1)
	})

	t.Run("before the node's LocalStorageNode is known", func(t *testing.T) {
		// On start the ledger is rebuilt from LocalVolumes, possibly before
		// the LocalStorageNode informer has delivered the node.
		c, _ := newCache(t, 0)
		c.SetPlacement(vol("a", PoolHDD, 1), []string{"n1"})
		if got := c.Check("n1", nil).String(); got != noLSN {
			t.Errorf("Check = %q, want %q", got, noLSN)
		}
		c.UpsertNode(hdd("n1").extent(4 * Mi).build())
		wantReserved(t, c, "n1", PoolHDD, 4*Mi, 1)
		wantLedger(t, c, "n1/a/LocalStorage_PoolHDD/4Mi/persisted")
	})

	t.Run("empty placement drops everything", func(t *testing.T) {
		c, _ := newCache(t, 0, hdd("n1"))
		mustReserve(t, c, "n1", vol("a", PoolHDD, 6*Gi))
		c.SetPlacement(vol("a", PoolHDD, 6*Gi), nil)
		wantLedger(t, c)
	})
}

func TestUpsertNode(t *testing.T) {
	t.Run("status listing the volume ends the reservation", func(t *testing.T) {
		c, _ := newCache(t, 0, lsn("n1").pool(v1.PoolNameHDD, 20*Gi, 20*Gi, 10))
		mustReserve(t, c, "n1", vol("a", PoolHDD, 6*Gi), vol("b", PoolHDD, 2*Gi))
		c.UpsertNode(lsn("n1").pool(v1.PoolNameHDD, 20*Gi, 14*Gi, 9).volumes("a").build())
		wantReserved(t, c, "n1", PoolHDD, 2*Gi, 1)
		wantLedger(t, c, "n1/b/LocalStorage_PoolHDD/2Gi")
		c.UpsertNode(lsn("n1").pool(v1.PoolNameHDD, 20*Gi, 12*Gi, 8).volumes("a", "b").build())
		wantReserved(t, c, "n1", PoolHDD, 0, 0)
		wantLedger(t, c)
		// The bytes are now in the pool's free space instead.
		if got := c.Check("n1", vols(vol("c", PoolHDD, 13*Gi))).String(); got != "pool LocalStorage_PoolHDD: need 13Gi, free 12Gi" {
			t.Errorf("Check = %q", got)
		}
	})

	t.Run("listing in another pool also ends it", func(t *testing.T) {
		c, _ := newCache(t, 0, lsn("n1").pool(v1.PoolNameHDD, 20*Gi, 20*Gi, 10).pool(v1.PoolNameSSD, 20*Gi, 20*Gi, 10))
		mustReserve(t, c, "n1", vol("a", PoolHDD, 6*Gi))
		c.UpsertNode(lsn("n1").pool(v1.PoolNameHDD, 20*Gi, 20*Gi, 10).pool(v1.PoolNameSSD, 20*Gi, 14*Gi, 9).volumes("a").build())
		wantReserved(t, c, "n1", PoolHDD, 0, 0)
		wantLedger(t, c)
	})

	t.Run("listing on another node does not end it", func(t *testing.T) {
		c, _ := newCache(t, 0, lsn("n1").pool(v1.PoolNameHDD, 20*Gi, 20*Gi, 10), lsn("n2").pool(v1.PoolNameHDD, 20*Gi, 20*Gi, 10))
		mustReserve(t, c, "n1", vol("a", PoolHDD, 6*Gi))
		mustReserve(t, c, "n2", vol("a", PoolHDD, 6*Gi))
		c.UpsertNode(lsn("n2").pool(v1.PoolNameHDD, 20*Gi, 14*Gi, 9).volumes("a").build())
		wantLedger(t, c, "n1/a/LocalStorage_PoolHDD/6Gi")
	})

	t.Run("state and pools are replaced", func(t *testing.T) {
		c, _ := newCache(t, 0, lsn("n1").pool(v1.PoolNameHDD, 20*Gi, 20*Gi, 10))
		mustReserve(t, c, "n1", vol("a", PoolHDD, 6*Gi))
		c.UpsertNode(lsn("n1").pool(v1.PoolNameHDD, 20*Gi, 20*Gi, 10).state(v1.StateOffline).build())
		if got := c.Check("n1", vols(vol("b", PoolHDD, 1))).String(); got != "LocalStorageNode is Offline, not Ready" {
			t.Errorf("Check = %q", got)
		}
		c.UpsertNode(lsn("n1").pool(v1.PoolNameSSD, 20*Gi, 20*Gi, 10).build())
		if got := c.Check("n1", vols(vol("b", PoolHDD, 1))).String(); got != "node has no pool LocalStorage_PoolHDD" {
			t.Errorf("Check = %q", got)
		}
		// The HDD reservation is still counted against the (gone) pool.
		wantReserved(t, c, "n1", PoolHDD, 6*Gi, 1)
		wantLedger(t, c, "n1/a/LocalStorage_PoolHDD/6Gi")
	})

	t.Run("unknown pool keys are ignored", func(t *testing.T) {
		c, _ := newCache(t, 0, lsn("n1").pool("LocalStorage_PoolTape", 20*Gi, 20*Gi, 10))
		if got := c.Check("n1", vols(vol("a", PoolHDD, 1))).String(); got != "node has no pool LocalStorage_PoolHDD" {
			t.Errorf("Check = %q", got)
		}
	})
}

func TestDeleteNode(t *testing.T) {
	t.Run("entries survive delete and re-add", func(t *testing.T) {
		c, _ := newCache(t, 0, lsn("n1").pool(v1.PoolNameHDD, 20*Gi, 10*Gi, 10))
		mustReserve(t, c, "n1", vol("a", PoolHDD, 6*Gi))
		c.DeleteNode("n1")
		if got := c.Check("n1", vols(vol("b", PoolHDD, 1))).String(); got != noLSN {
			t.Errorf("Check after delete = %q, want %q", got, noLSN)
		}
		wantReserved(t, c, "n1", PoolHDD, 6*Gi, 1)
		wantLedger(t, c, "n1/a/LocalStorage_PoolHDD/6Gi")

		c.UpsertNode(lsn("n1").pool(v1.PoolNameHDD, 20*Gi, 10*Gi, 10).build())
		wantReserved(t, c, "n1", PoolHDD, 6*Gi, 1)
		if got := c.Check("n1", vols(vol("b", PoolHDD, 6*Gi))).String(); got != "pool LocalStorage_PoolHDD: need 6Gi, free 4Gi (6Gi reserved in flight)" {
			t.Errorf("Check after re-add = %q", got)
		}
		wantLedger(t, c, "n1/a/LocalStorage_PoolHDD/6Gi")
	})

	t.Run("a deleted node is forgotten once its last entry goes", func(t *testing.T) {
		c, _ := newCache(t, 0, lsn("n1").pool(v1.PoolNameHDD, 20*Gi, 10*Gi, 10), lsn("n2").pool(v1.PoolNameHDD, 20*Gi, 10*Gi, 10))
		mustReserve(t, c, "n1", vol("a", PoolHDD, 6*Gi))
		c.DeleteNode("n1")
		c.DeleteNode("n2")
		c.DeleteNode("n9")
		c.Release("a")
		wantLedger(t, c)
		c.mu.RLock()
		defer c.mu.RUnlock()
		if len(c.nodes) != 0 {
			t.Errorf("cache still holds %d nodes", len(c.nodes))
		}
	})
}

func TestExpire(t *testing.T) {
	const ttl = time.Minute
	c, clk := newCache(t, ttl, lsn("n1").pool(v1.PoolNameHDD, 20*Gi, 20*Gi, 10), lsn("n2").pool(v1.PoolNameHDD, 20*Gi, 20*Gi, 10))
	mustReserve(t, c, "n1", vol("old1", PoolHDD, 1*Gi))
	mustReserve(t, c, "n2", vol("old2", PoolHDD, 1*Gi))
	c.SetPlacement(vol("kept", PoolHDD, 2*Gi), []string{"n1"})
	clk.advance(ttl - time.Second)
	mustReserve(t, c, "n1", vol("young", PoolHDD, 4*Gi))

	if got := c.Expire(); got != 0 {
		t.Errorf("Expire() before the TTL = %d, want 0", got)
	}
	clk.advance(2 * time.Second) // old ones are TTL+1s old, young is 2s old
	if got := c.Expire(); got != 2 {
		t.Errorf("Expire() = %d, want 2", got)
	}
	wantReserved(t, c, "n1", PoolHDD, 6*Gi, 2)
	wantReserved(t, c, "n2", PoolHDD, 0, 0)
	wantLedger(t, c, "n1/kept/LocalStorage_PoolHDD/2Gi/persisted", "n1/young/LocalStorage_PoolHDD/4Gi")

	clk.advance(ttl)
	if got := c.Expire(); got != 1 {
		t.Errorf("Expire() = %d, want 1", got)
	}
	if got := c.Expire(); got != 0 {
		t.Errorf("Expire() again = %d, want 0", got)
	}
	wantLedger(t, c, "n1/kept/LocalStorage_PoolHDD/2Gi/persisted")

	// Expiry also works on a deleted node and forgets it.
	mustReserve(t, c, "n2", vol("gone", PoolHDD, 1*Gi))
	c.DeleteNode("n2")
	clk.advance(2 * ttl)
	if got := c.Expire(); got != 1 {
		t.Errorf("Expire() on a deleted node = %d, want 1", got)
	}
	wantLedger(t, c, "n1/kept/LocalStorage_PoolHDD/2Gi/persisted")
}

func TestNewCacheDefaultTTL(t *testing.T) {
	for _, ttl := range []time.Duration{0, -time.Second} {
		if got := NewCache(ttl).ttl; got != DefaultTTL {
			t.Errorf("NewCache(%v).ttl = %v, want %v", ttl, got, DefaultTTL)
		}
	}
}

func TestPoolNames(t *testing.T) {
	for p := Pool(0); p < NumPools; p++ {
		if got, ok := PoolByName(p.Name()); !ok || got != p {
			t.Errorf("PoolByName(%s) = %v, %v", p.Name(), got, ok)
		}
		if got, ok := PoolByClass(p.Class()); !ok || got != p {
			t.Errorf("PoolByClass(%s) = %v, %v", p.Class(), got, ok)
		}
		if p.Class().PoolName() != p.Name() {
			t.Errorf("pool %d: class %s names %s, not %s", p, p.Class(), p.Class().PoolName(), p.Name())
		}
	}
	if _, ok := PoolByName("LocalStorage_PoolTape"); ok {
		t.Error("PoolByName accepted an unknown pool")
	}
	if _, ok := PoolByClass("Tape"); ok {
		t.Error("PoolByClass accepted an unknown class")
	}
	for _, tt := range []struct {
		b    int64
		want string
	}{{6 * Gi, "6Gi"}, {512 * Mi, "512Mi"}, {0, "0"}, {1, "1"}} {
		if got := v1.FormatBytes(tt.b); got != tt.want {
			t.Errorf("v1.FormatBytes(%d) = %q, want %q", tt.b, got, tt.want)
		}
	}
}
