package placement

import (
	"fmt"
	"testing"

	v1 "hwameistor.io/local/api/v1alpha1"
)

var benchSizes = []int{1000, 5000}

// benchCache builds a cluster of n Ready nodes in 3 zones, each with an HDD
// and an SSD pool of varying free space and a few reservations in flight,
// so Check takes its full path (held lookup, both pools, both limits).
func benchCache(b *testing.B, n int) (*Cache, []string) {
	b.Helper()
	c := NewCache(0)
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("node-%05d", i)
		free := int64(100+i%400) * Gi
		c.UpsertNode(lsn(names[i]).zone(fmt.Sprintf("zone-%d", i%3)).
			pool(v1.PoolNameHDD, 1000*Gi, free, 200).extent(4*Mi).
			pool(v1.PoolNameSSD, 500*Gi, free/2, 200).extent(4 * Mi).
			build())
		for j := 0; j < 3; j++ {
			if _, err := c.Reserve(names[i], vols(vol(fmt.Sprintf("inflight-%d-%d", i, j), PoolHDD, 2*Gi))); err != nil {
				b.Fatal(err)
			}
		}
	}
	return c, names
}

// benchVols is a pod's group: two new volumes in two pools.
var benchVols = vols(vol("pvc-data", PoolHDD, 6*Gi), vol("pvc-log", PoolSSD, 1*Gi+1))

func BenchmarkCheck(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			c, names := benchCache(b, n)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if reason := c.Check(names[i%n], benchVols); !reason.Fits() {
					b.Fatal(reason)
				}
			}
		})
	}
}

// BenchmarkCheckAllNodes is one Filter pass: Check on every node.
func BenchmarkCheckAllNodes(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			c, names := benchCache(b, n)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for _, name := range names {
					if reason := c.Check(name, benchVols); !reason.Fits() {
						b.Fatal(reason)
					}
				}
			}
		})
	}
}

func BenchmarkFittingNodes(b *testing.B) {
	for _, n := range benchSizes {
		c, names := benchCache(b, n)
		// limit=1 is "is there a peer?"; limit=all scans the whole cluster.
		for _, limit := range []int{1, n} {
			b.Run(fmt.Sprintf("nodes=%d/limit=%d", n, limit), func(b *testing.B) {
				dst := make([]string, 0, n)
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					dst = c.FittingNodes(dst[:0], benchVols, nil, names[i%n], limit)
					if len(dst) == 0 {
						b.Fatal("no fitting node")
					}
				}
			})
		}
	}
}

func BenchmarkPickPeer(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			c, names := benchCache(b, n)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, ok := c.PickPeer(names[i%n], benchVols, nil); !ok {
					b.Fatal("no peer")
				}
			}
		})
	}
}

func BenchmarkReserveUnreserve(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			c, names := benchCache(b, n)
			keys := []string{benchVols[0].Key, benchVols[1].Key}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Reserve(names[i%n], benchVols); err != nil {
					b.Fatal(err)
				}
				c.Unreserve(names[i%n], keys)
			}
		})
	}
}

// TestCheckDoesNotAllocate: Check runs once per node per pod in Filter, so
// its success path must not allocate. So must the read paths the plugin
// calls per node (Utilization) or per pod with a reused buffer.
func TestCheckDoesNotAllocate(t *testing.T) {
	c, _ := newCache(t, 0,
		lsn("n1").zone("a").pool(v1.PoolNameHDD, 100*Gi, 50*Gi, 10).extent(4*Mi).pool(v1.PoolNameSSD, 100*Gi, 50*Gi, 10),
		lsn("n2").zone("b").pool(v1.PoolNameHDD, 100*Gi, 50*Gi, 10).extent(4*Mi).pool(v1.PoolNameSSD, 100*Gi, 50*Gi, 10))
	mustReserve(t, c, "n1", vol("held", PoolHDD, 1*Gi), vol("other", PoolSSD, 1*Gi))
	group := vols(vol("held", PoolHDD, 1*Gi), vol("a", PoolHDD, 6*Gi+1), vol("b", PoolSSD, 2*Gi))
	weights := &[NumPools]int64{1, 1, 1}
	dst := make([]string, 0, 4)

	for _, tt := range []struct {
		name string
		f    func()
	}{
		{"Check", func() {
			if reason := c.Check("n1", group); !reason.Fits() {
				t.Fatal(reason)
			}
		}},
		{"Reserved", func() { _, _ = c.Reserved("n1", PoolHDD) }},
		{"Utilization", func() {
			if _, ok := c.Utilization("n1", group, weights); !ok {
				t.Fatal("no utilization")
			}
		}},
		{"FittingNodes", func() {
			if dst = c.FittingNodes(dst[:0], group, nil, "", 4); len(dst) != 2 {
				t.Fatalf("FittingNodes = %q", dst)
			}
		}},
		{"PickPeer", func() {
			if peer, ok := c.PickPeer("n1", group, nil); !ok || peer != "n2" {
				t.Fatalf("PickPeer = %q, %v", peer, ok)
			}
		}},
	} {
		if allocs := testing.AllocsPerRun(100, tt.f); allocs != 0 {
			t.Errorf("%s: %v allocs per call, want 0", tt.name, allocs)
		}
	}
}
