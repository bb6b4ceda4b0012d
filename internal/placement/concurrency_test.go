package placement

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// atomicClock is a fake clock that goroutines may advance concurrently.
type atomicClock struct{ ns atomic.Int64 }

func (a *atomicClock) now() time.Time          { return time.Unix(0, a.ns.Load()) }
func (a *atomicClock) advance(d time.Duration) { a.ns.Add(int64(d)) }

// TestConcurrentMix runs every mutating and reading operation from many
// goroutines on a few shared nodes and volume keys, checking the ledger's
// internal invariants while they run and after.
func TestConcurrentMix(t *testing.T) {
	const (
		workers = 16
		ops     = 600
		nKeys   = 40
	)
	nodes := []string{"n0", "n1", "n2", "n3"}
	zones := []string{"a", "a", "b", "b"}
	keyVol := func(k int) Volume {
		p := PoolHDD
		if k%2 == 1 {
			p = PoolSSD
		}
		return vol(fmt.Sprintf("v%d", k), p, int64(k%5+1)*Gi+int64(k)) // not extent-aligned
	}
	status := func(i int, listed []string, st v1.State) *v1.LocalStorageNode {
		b := lsn(nodes[i]).zone(zones[i]).state(st).
			pool(v1.PoolNameHDD, 1000*Gi, 900*Gi, 500).extent(4 * Mi).volumes(listed...)
		if i != 3 { // n3 has no SSD pool
			b = b.pool(v1.PoolNameSSD, 500*Gi, 400*Gi, 500).extent(4 * Mi)
		}
		return b.build()
	}

	c := NewCache(time.Second)
	clk := &atomicClock{}
	c.now = clk.now
	for i := range nodes {
		c.UpsertNode(status(i, nil, v1.StateReady))
	}

	stop := make(chan struct{})
	checkerDone := make(chan struct{})
	go func() { // checks the invariants while the workers run
		defer close(checkerDone)
		for {
			select {
			case <-stop:
				return
			default:
				checkInvariants(t, c)
			}
		}
	}()

	var wg sync.WaitGroup
	var reserved, refused atomic.Int64
	weights := &[NumPools]int64{1, 2, 3}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 42))
			var buf []string
			for i := 0; i < ops; i++ {
				node := r.IntN(len(nodes))
				name := nodes[node]
				v := keyVol(r.IntN(nKeys))
				switch op := r.IntN(14); op {
				case 0, 1, 2:
					group := vols(v)
					if r.IntN(2) == 0 {
						group = append(group, keyVol(r.IntN(nKeys)))
					}
					if _, err := c.Reserve(name, group); err != nil {
						refused.Add(1)
					} else {
						reserved.Add(1)
					}
				case 3, 4:
					c.Unreserve(name, []string{v.Key})
				case 5, 6:
					_ = c.Check(name, vols(v))
				case 7:
					var listed []string
					for k := 0; k < r.IntN(3); k++ {
						listed = append(listed, keyVol(r.IntN(nKeys)).Key)
					}
					st := v1.StateReady
					if r.IntN(5) == 0 {
						st = v1.StateOffline
					}
					c.UpsertNode(status(node, listed, st))
				case 8:
					var to []string
					for k := 0; k < r.IntN(3); k++ {
						to = append(to, nodes[r.IntN(len(nodes))])
					}
					c.SetPlacement(v, to)
				case 9:
					clk.advance(300 * time.Millisecond)
					_ = c.Expire()
				case 10:
					c.Release(v.Key)
				case 11:
					if r.IntN(4) == 0 {
						c.DeleteNode(name)
					} else {
						c.UpsertNode(status(node, nil, v1.StateReady))
					}
				case 12:
					buf = c.FittingNodes(buf[:0], vols(v), nil, name, 2)
					_, _ = c.PickPeer(name, vols(v), nil)
				case 13:
					_, _ = c.Utilization(name, vols(v), weights)
					_ = c.Reservations()
					_, _ = c.Reserved(name, v.Pool)
				}
			}
		}(w)
	}
	wg.Wait()
	close(stop)
	<-checkerDone

	if reserved.Load() == 0 || refused.Load() == 0 {
		t.Errorf("workload did not exercise both paths: %d reserved, %d refused", reserved.Load(), refused.Load())
	}
	checkInvariants(t, c)
	wantReservedMatchesLedger(t, c, nodes)

	// Tear down: every node back, every volume released -> nothing held.
	for i := range nodes {
		c.UpsertNode(status(i, nil, v1.StateReady))
	}
	for k := 0; k < nKeys; k++ {
		c.Release(keyVol(k).Key)
	}
	wantLedger(t, c)
	wantReservedMatchesLedger(t, c, nodes)
	for _, n := range nodes {
		for p := Pool(0); p < NumPools; p++ {
			wantReserved(t, c, n, p, 0, 0)
		}
	}
}

// wantReservedMatchesLedger asserts, through the public API only, that every
// pool's reserved bytes and count equal the sum over Reservations().
func wantReservedMatchesLedger(t *testing.T, c *Cache, nodes []string) {
	t.Helper()
	type key struct {
		node string
		pool Pool
	}
	sumBytes, sumCount := map[key]int64{}, map[key]int64{}
	for _, r := range c.Reservations() {
		sumBytes[key{r.Node, r.Pool}] += r.Bytes
		sumCount[key{r.Node, r.Pool}]++
		if !contains(nodes, r.Node) {
			t.Errorf("reservation on unexpected node %s", r.Node)
		}
	}
	for _, n := range nodes {
		for p := Pool(0); p < NumPools; p++ {
			b, cnt := c.Reserved(n, p)
			if b != sumBytes[key{n, p}] || cnt != sumCount[key{n, p}] {
				t.Errorf("Reserved(%s, %s) = %d/%d, ledger sums to %d/%d", n, p.Name(), b, cnt, sumBytes[key{n, p}], sumCount[key{n, p}])
			}
		}
	}
}

// TestConcurrentReserveBurst: many pods race for three nodes that each have
// room for three 6Gi volumes. Exactly nine win, never more than three a node.
func TestConcurrentReserveBurst(t *testing.T) {
	const (
		goroutines = 64
		rounds     = 30
	)
	nodes := []string{"n0", "n1", "n2"}
	for _, checkFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("checkFirst=%v", checkFirst), func(t *testing.T) {
			for round := 0; round < rounds; round++ {
				c, _ := newCache(t, 0,
					lsn("n0").pool(v1.PoolNameHDD, 20*Gi, 20*Gi, 100),
					lsn("n1").pool(v1.PoolNameHDD, 20*Gi, 20*Gi, 100),
					lsn("n2").pool(v1.PoolNameHDD, 20*Gi, 20*Gi, 100))
				start := make(chan struct{})
				var wg sync.WaitGroup
				var won atomic.Int64
				var perNode [3]atomic.Int64
				for g := 0; g < goroutines; g++ {
					wg.Add(1)
					go func(g int) {
						defer wg.Done()
						v := vols(vol(fmt.Sprintf("pvc-%d", g), PoolHDD, 6*Gi))
						<-start
						for i := 0; i < len(nodes); i++ {
							n := (g + i) % len(nodes)
							if checkFirst && !c.Check(nodes[n], v).Fits() {
								continue // Filter said no
							}
							if _, err := c.Reserve(nodes[n], v); err == nil {
								won.Add(1)
								perNode[n].Add(1)
								return
							}
						}
					}(g)
				}
				close(start)
				wg.Wait()

				if got := won.Load(); got != 9 {
					t.Fatalf("round %d: %d reservations succeeded, want 9", round, got)
				}
				for i, n := range nodes {
					if got := perNode[i].Load(); got != 3 {
						t.Errorf("round %d: %d reservations on %s, want 3", round, got, n)
					}
					wantReserved(t, c, n, PoolHDD, 18*Gi, 3)
				}
				if got := len(c.Reservations()); got != 9 {
					t.Errorf("round %d: ledger holds %d entries, want 9", round, got)
				}
				checkInvariants(t, c)
				wantReservedMatchesLedger(t, c, nodes)
			}
		})
	}
}
