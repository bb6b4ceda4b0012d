package localstorage

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/runtime"
	fwk "k8s.io/kube-scheduler/framework"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/internal/placement"
)

// held is what the ledger holds on one node's pool: Gi and volume count.
type held struct{ gi, count int64 }

func (e *testEnv) checkHeld(t *testing.T, when string, p placement.Pool, want map[string]held) {
	t.Helper()
	for node, w := range want {
		b, n := e.reserved(node, p)
		if got := (held{b, n}); got != w {
			t.Errorf("%s: %s on %s holds %dGi in %d volume(s), want %dGi in %d", when, p.Name(), node, got.gi, got.count, w.gi, w.count)
		}
	}
}

func TestReserveUnreserve(t *testing.T) {
	hdd := placement.PoolHDD
	tests := []struct {
		name     string
		knownBug string
		objs     []runtime.Object
		run      func(t *testing.T, e *testEnv)
	}{
		{
			name: "Reserve holds the new volumes on the node until Unreserve, idempotently",
			objs: []runtime.Object{
				makePVC("data").PersistentVolumeClaim,
				makePVC("logs").withSize("4Gi").PersistentVolumeClaim,
				makeLSN("node-a").pool(hdd, 100, 100).LocalStorageNode,
			},
			run: func(t *testing.T, e *testEnv) {
				c := e.cycle(makePod("p").withPVC("data", "logs").Pod)
				checkStatus(t, "Reserve", c.toReserve(t, "node-a"), nil)
				e.checkHeld(t, "after Reserve", hdd, map[string]held{"node-a": {10, 2}})
				checkStatus(t, "Reserve again", c.reserve("node-a"), nil)
				e.checkHeld(t, "after a second Reserve", hdd, map[string]held{"node-a": {10, 2}})
				// Another pod now sees the bytes as taken.
				other := e.cycle(makePod("q").withPVC("big").Pod)
				e.add(makePVC("big").withSize("91Gi").PersistentVolumeClaim)
				if _, st := other.preFilter(); !st.IsSuccess() {
					t.Fatalf("PreFilter of the other pod: %v", st)
				}
				checkStatus(t, "Filter of the other pod", other.filter("node-a"),
					wantCode(fwk.UnschedulableAndUnresolvable, "need 91Gi, free 90Gi (10Gi reserved in flight)"))

				c.unreserve("node-a")
				e.checkHeld(t, "after Unreserve", hdd, map[string]held{"node-a": {0, 0}})
				c.unreserve("node-a")
				e.checkHeld(t, "after a second Unreserve", hdd, map[string]held{"node-a": {0, 0}})
				checkStatus(t, "Filter of the other pod after Unreserve", other.filter("node-a"), nil)
			},
		},
		{
			name: "HA Reserve picks a peer in another zone before a freer one in the same zone",
			objs: []runtime.Object{
				makePVC("data").withClass("hdd-ha").PersistentVolumeClaim,
				makeLSN("node-a").zone("z1").pool(hdd, 100, 100).LocalStorageNode,
				makeLSN("node-b").zone("z1").pool(hdd, 100, 100).LocalStorageNode,
				makeLSN("node-c").zone("z2").pool(hdd, 100, 20).LocalStorageNode,
			},
			run: func(t *testing.T, e *testEnv) {
				c := e.cycle(makePod("p").withPVC("data").Pod)
				checkStatus(t, "Reserve", c.toReserve(t, "node-a"), nil)
				if s := c.state(t); s.node != "node-a" || s.peer != "node-c" {
					t.Errorf("Reserve chose node %q peer %q, want node-a and node-c", s.node, s.peer)
				}
				e.checkHeld(t, "after Reserve", hdd, map[string]held{"node-a": {6, 1}, "node-b": {0, 0}, "node-c": {6, 1}})
				c.unreserve("node-a")
				e.checkHeld(t, "after Unreserve", hdd, map[string]held{"node-a": {0, 0}, "node-b": {0, 0}, "node-c": {0, 0}})
				if s := c.state(t); s.node != "" || s.peer != "" {
					t.Errorf("Unreserve left node %q peer %q in the state", s.node, s.peer)
				}
			},
		},
		{
			name: "HA Reserve without zones picks the peer with the most free space",
			objs: []runtime.Object{
				makePVC("data").withClass("hdd-ha").PersistentVolumeClaim,
				makeLSN("node-a").pool(hdd, 100, 100).LocalStorageNode,
				makeLSN("node-b").pool(hdd, 100, 50).LocalStorageNode,
				makeLSN("node-c").pool(hdd, 100, 80).LocalStorageNode,
			},
			run: func(t *testing.T, e *testEnv) {
				c := e.cycle(makePod("p").withPVC("data").Pod)
				checkStatus(t, "Reserve", c.toReserve(t, "node-a"), nil)
				if s := c.state(t); s.peer != "node-c" {
					t.Errorf("peer %q, want node-c", s.peer)
				}
			},
		},
		{
			name: "Reserve fails without capacity (another pod won the race after Filter) and holds nothing",
			objs: []runtime.Object{
				makePVC("data").PersistentVolumeClaim,
				makeLSN("node-a").pool(hdd, 100, 10).LocalStorageNode,
			},
			run: func(t *testing.T, e *testEnv) {
				c := e.cycle(makePod("p").withPVC("data").Pod)
				if _, st := c.preFilter(); !st.IsSuccess() {
					t.Fatal(st)
				}
				checkStatus(t, "Filter", c.filter("node-a"), nil)
				if _, err := e.pl.Cache().Reserve("node-a", []placement.Volume{otherVol("pvc-winner", 6)}); err != nil {
					t.Fatal(err)
				}
				checkStatus(t, "Reserve", c.reserve("node-a"), wantCode(fwk.Unschedulable, "node node-a", "need 6Gi, free 4Gi (6Gi reserved in flight)"))
				e.checkHeld(t, "after the failed Reserve", hdd, map[string]held{"node-a": {6, 1}})
				c.unreserve("node-a") // the framework unreserves after a failed Reserve
				e.checkHeld(t, "after Unreserve", hdd, map[string]held{"node-a": {6, 1}})
			},
		},
		{
			name: "HA Reserve fails when the peer filled up after Filter and holds nothing",
			objs: []runtime.Object{
				makePVC("data").withClass("hdd-ha").PersistentVolumeClaim,
				makeLSN("node-a").pool(hdd, 100, 100).LocalStorageNode,
				makeLSN("node-b").pool(hdd, 100, 10).LocalStorageNode,
			},
			run: func(t *testing.T, e *testEnv) {
				c := e.cycle(makePod("p").withPVC("data").Pod)
				if _, st := c.preFilter(); !st.IsSuccess() {
					t.Fatal(st)
				}
				checkStatus(t, "Filter", c.filter("node-a"), nil)
				if _, err := e.pl.Cache().Reserve("node-b", []placement.Volume{otherVol("pvc-winner", 6)}); err != nil {
					t.Fatal(err)
				}
				checkStatus(t, "Reserve", c.reserve("node-a"), wantCode(fwk.Unschedulable, ReasonNoPeer))
				e.checkHeld(t, "after the failed Reserve", hdd, map[string]held{"node-a": {0, 0}, "node-b": {6, 1}})
				c.unreserve("node-a")
				e.checkHeld(t, "after Unreserve", hdd, map[string]held{"node-a": {0, 0}, "node-b": {6, 1}})
			},
		},
		{
			name: "pod skipped in PreFilter: Reserve, PreBindPreFlight, PreBind and Unreserve do nothing",
			objs: []runtime.Object{makeLSN("node-a").pool(hdd, 100, 100).LocalStorageNode},
			run: func(t *testing.T, e *testEnv) {
				c := e.cycle(makePod("p").withEmptyDir("tmp").Pod)
				_, st := c.preFilter()
				checkStatus(t, "PreFilter", st, wantCode(fwk.Skip))
				checkStatus(t, "Reserve", c.reserve("node-a"), nil)
				checkStatus(t, "PreBindPreFlight", c.preBindPreFlight("node-a"), wantCode(fwk.Skip))
				checkStatus(t, "PreBind", c.preBind("node-a"), nil)
				c.unreserve("node-a")
				if r := e.pl.Cache().Reservations(); len(r) != 0 {
					t.Errorf("ledger holds %v", r)
				}
				if w := e.api.writes(); len(w) != 0 {
					t.Errorf("API writes %v", w)
				}
			},
		},
		{
			name: "pod whose volumes all exist: Reserve holds nothing and PreBind has nothing to do",
			objs: []runtime.Object{
				makePVC("data").boundTo("pv-data").PersistentVolumeClaim,
				makePV("pv-data", v1.DriverName),
				makeLV("pv-data", "data").LocalVolume,
				makeLVR("pv-data", "node-a", v1.StateReady),
				makeLSN("node-a").pool(hdd, 100, 100).LocalStorageNode,
			},
			run: func(t *testing.T, e *testEnv) {
				c := e.cycle(makePod("p").withPVC("data").Pod)
				checkStatus(t, "Reserve", c.toReserve(t, "node-a"), nil)
				checkStatus(t, "PreBindPreFlight", c.preBindPreFlight("node-a"), wantCode(fwk.Skip))
				checkStatus(t, "PreBind", c.preBind("node-a"), nil)
				if r := e.pl.Cache().Reservations(); len(r) != 0 {
					t.Errorf("ledger holds %v", r)
				}
				if w := e.api.writes(); len(w) != 0 {
					t.Errorf("API writes %v", w)
				}
			},
		},
		{
			name: "Unreserve keeps a placement persisted in the LocalVolumeGroup",
			objs: []runtime.Object{
				makePVC("data").PersistentVolumeClaim,
				makeLSN("node-a").pool(hdd, 100, 100).LocalStorageNode,
				makeLVG("lvg-data").placed("data", makePVC("data").key(), hdd, 6, "node-a").LocalVolumeGroup,
			},
			run: func(t *testing.T, e *testEnv) {
				e.checkHeld(t, "after the group was seen", hdd, map[string]held{"node-a": {6, 1}})
				// The pod is scheduled again (say VolumeBinding's PreBind
				// timed out) and this cycle fails after Reserve.
				c := e.cycle(makePod("p").withPVC("data").Pod)
				checkStatus(t, "Reserve", c.toReserve(t, "node-a"), nil)
				c.unreserve("node-a")
				e.checkHeld(t, "after Unreserve", hdd, map[string]held{"node-a": {6, 1}})
			},
		},
		{
			name: "Unreserve of a second pod keeps the first pod's reservation of a shared claim",
			objs: []runtime.Object{
				makePVC("shared").PersistentVolumeClaim,
				makeLSN("node-a").pool(hdd, 100, 100).LocalStorageNode,
			},
			run: func(t *testing.T, e *testEnv) {
				first := e.cycle(makePod("p").withPVC("shared").Pod)
				checkStatus(t, "Reserve of the first pod", first.toReserve(t, "node-a"), nil)
				second := e.cycle(makePod("q").withPVC("shared").Pod)
				checkStatus(t, "Reserve of the second pod", second.toReserve(t, "node-a"), nil)
				second.unreserve("node-a")
				e.checkHeld(t, "after the second pod's Unreserve", hdd, map[string]held{"node-a": {6, 1}})
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.knownBug != "" {
				t.Skip("known bug: " + tc.knownBug)
			}
			tc.run(t, newTestEnv(t, nil, append(classes(), tc.objs...)...))
		})
	}
}

// TestReserveStateIsPerCycle checks that Reserve keeps its choice in the
// cycle's state, not in the plugin: two cycles of different pods do not see
// each other's node.
func TestReserveStateIsPerCycle(t *testing.T) {
	hdd := placement.PoolHDD
	e := newTestEnv(t, nil, append(classes(),
		makePVC("one").PersistentVolumeClaim,
		makePVC("two").PersistentVolumeClaim,
		makeLSN("node-a").pool(hdd, 100, 100).LocalStorageNode,
		makeLSN("node-b").pool(hdd, 100, 100).LocalStorageNode,
	)...)
	p := e.cycle(makePod("p").withPVC("one").Pod)
	q := e.cycle(makePod("q").withPVC("two").Pod)
	checkStatus(t, "Reserve p", p.toReserve(t, "node-a"), nil)
	checkStatus(t, "Reserve q", q.toReserve(t, "node-b"), nil)
	p.unreserve("node-a")
	e.checkHeld(t, "after p's Unreserve", hdd, map[string]held{"node-a": {0, 0}, "node-b": {6, 1}})
	got := e.pl.Cache().Reservations()
	want := []placement.Reservation{{Node: "node-b", Volume: "pvc-uid-two", Pool: hdd, Bytes: 6 * gi}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ledger (-want +got):\n%s", diff)
	}
}
