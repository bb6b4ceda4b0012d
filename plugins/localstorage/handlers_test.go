package localstorage

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"
	fwk "k8s.io/kube-scheduler/framework"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/internal/placement"
)

// TestLedgerRebuiltFromEvents replays what a restarted scheduler's informers
// deliver, in the orders they may arrive, and checks the ledger after each.
func TestLedgerRebuiltFromEvents(t *testing.T) {
	hdd, ssd := placement.PoolHDD, placement.PoolSSD
	nodeA := makeLSN("node-a").pool(hdd, 100, 100).pool(ssd, 100, 100)
	nodeB := makeLSN("node-b").pool(hdd, 100, 100)
	group := makeLVG("lvg-1").
		placed("data", "pvc-uid-data", hdd, 6, "node-a").
		placed("ha", "pvc-uid-ha", hdd, 4, "node-a", "node-b").
		placed("fast", "pvc-uid-fast", ssd, 2, "node-a").
		placed("unplaced", "pvc-uid-unplaced", hdd, 8). // no nodes: not placed yet
		LocalVolumeGroup

	type step struct {
		what  string
		event func(pl *LocalStorage)
		// want is the ledger after the event, by node and pool.
		want map[string]map[placement.Pool]held
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{
			name: "group placements hold capacity until the nodes' status lists the volumes",
			steps: []step{
				{"nodes", func(pl *LocalStorage) { pl.onNode(nodeA.LocalStorageNode); pl.onNode(nodeB.LocalStorageNode) }, map[string]map[placement.Pool]held{
					"node-a": {hdd: {0, 0}}, "node-b": {hdd: {0, 0}},
				}},
				{"group", func(pl *LocalStorage) { pl.onGroup(group) }, map[string]map[placement.Pool]held{
					"node-a": {hdd: {10, 2}, ssd: {2, 1}}, "node-b": {hdd: {4, 1}},
				}},
				{"the same group again (resync)", func(pl *LocalStorage) { pl.onGroup(group) }, map[string]map[placement.Pool]held{
					"node-a": {hdd: {10, 2}, ssd: {2, 1}}, "node-b": {hdd: {4, 1}},
				}},
				{"node-a lists data", func(pl *LocalStorage) {
					pl.onNode(nodeA.clone().pool(hdd, 100, 94).listing(hdd, "pvc-uid-data").LocalStorageNode)
				}, map[string]map[placement.Pool]held{
					"node-a": {hdd: {4, 1}, ssd: {2, 1}}, "node-b": {hdd: {4, 1}},
				}},
				{"ha is deleted", func(pl *LocalStorage) {
					pl.onVolume(makeLV("pvc-uid-ha", "ha").onNodes("node-a", "node-b").sizeGi(4).toBeDeleted().LocalVolume)
				}, map[string]map[placement.Pool]held{
					"node-a": {hdd: {0, 0}, ssd: {2, 1}}, "node-b": {hdd: {0, 0}},
				}},
			},
		},
		{
			name: "the group arrives before the nodes; a node that already lists a volume ends its hold",
			steps: []step{
				{"group", func(pl *LocalStorage) { pl.onGroup(group) }, map[string]map[placement.Pool]held{
					"node-a": {hdd: {10, 2}, ssd: {2, 1}}, "node-b": {hdd: {4, 1}},
				}},
				{"node-a listing data and fast", func(pl *LocalStorage) {
					pl.onNode(nodeA.clone().listing(hdd, "pvc-uid-data").listing(ssd, "pvc-uid-fast").LocalStorageNode)
				}, map[string]map[placement.Pool]held{
					"node-a": {hdd: {4, 1}, ssd: {0, 0}}, "node-b": {hdd: {4, 1}},
				}},
				{"node-b", func(pl *LocalStorage) { pl.onNode(nodeB.LocalStorageNode) }, map[string]map[placement.Pool]held{
					"node-a": {hdd: {4, 1}}, "node-b": {hdd: {4, 1}},
				}},
				{"the group again, after the nodes listed its volumes", func(pl *LocalStorage) { pl.onGroup(group) }, map[string]map[placement.Pool]held{
					"node-a": {hdd: {4, 1}, ssd: {0, 0}}, "node-b": {hdd: {4, 1}},
				}},
			},
		},
		{
			name: "LocalVolumes hold their replica nodes until listed, and release when deleted",
			steps: []step{
				{"nodes", func(pl *LocalStorage) { pl.onNode(nodeA.LocalStorageNode); pl.onNode(nodeB.LocalStorageNode) }, nil},
				{"a volume with spec.config replicas", func(pl *LocalStorage) {
					pl.onVolume(makeLV("pv-1", "one").onNodes("node-a", "node-b").LocalVolume)
				}, map[string]map[placement.Pool]held{
					"node-a": {hdd: {6, 1}}, "node-b": {hdd: {6, 1}},
				}},
				{"a volume with only spec.accessibility", func(pl *LocalStorage) {
					lv := makeLV("pv-2", "two").pool(ssd).sizeGi(3).LocalVolume
					lv.Spec.Accessibility.Nodes = []string{"node-a"}
					pl.onVolume(lv)
				}, map[string]map[placement.Pool]held{
					"node-a": {hdd: {6, 1}, ssd: {3, 1}},
				}},
				{"a volume with no nodes yet or an unknown pool holds nothing", func(pl *LocalStorage) {
					pl.onVolume(makeLV("pv-3", "three").LocalVolume)
					pl.onVolume(makeLV("pv-4", "four").onNodes("node-b").LocalVolume)
					lv := makeLV("pv-5", "five").onNodes("node-b").LocalVolume
					lv.Spec.PoolName = "LocalStorage_PoolTAPE"
					pl.onVolume(lv)
				}, map[string]map[placement.Pool]held{
					"node-a": {hdd: {6, 1}, ssd: {3, 1}}, "node-b": {hdd: {12, 2}},
				}},
				{"pv-1 migrated from node-b to node-a only", func(pl *LocalStorage) {
					pl.onVolume(makeLV("pv-1", "one").onNodes("node-a").LocalVolume)
				}, map[string]map[placement.Pool]held{
					"node-a": {hdd: {6, 1}, ssd: {3, 1}}, "node-b": {hdd: {6, 1}},
				}},
				{"pv-1 being deleted, pv-2 in state Deleted", func(pl *LocalStorage) {
					lv := makeLV("pv-1", "one").onNodes("node-a").LocalVolume
					lv.DeletionTimestamp = &metav1.Time{}
					pl.onVolume(lv)
					pl.onVolume(makeLV("pv-2", "two").pool(ssd).onNodes("node-a").state(v1.StateDeleted).LocalVolume)
				}, map[string]map[placement.Pool]held{
					"node-a": {hdd: {0, 0}, ssd: {0, 0}}, "node-b": {hdd: {6, 1}},
				}},
			},
		},
		{
			name: "handlers ignore objects of other types",
			steps: []step{
				{"wrong types", func(pl *LocalStorage) {
					pl.onNode(group)
					pl.onVolume(nodeA.LocalStorageNode)
					pl.onGroup(nil)
					pl.onGroup(cache.DeletedFinalStateUnknown{Key: "x", Obj: group})
				}, map[string]map[placement.Pool]held{"node-a": {hdd: {0, 0}}}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, nil)
			for _, s := range tc.steps {
				s.event(e.pl)
				for node, pools := range s.want {
					e.checkHeld(t, "after "+s.what, hdd, map[string]held{node: pools[hdd]})
					e.checkHeld(t, "after "+s.what, ssd, map[string]held{node: pools[ssd]})
				}
			}
			for _, r := range e.pl.Cache().Reservations() {
				if !r.Persisted {
					t.Errorf("reservation %+v rebuilt from an object is not persisted", r)
				}
			}
		})
	}
}

// TestRebuiltPlacementIsHonoured: after a restart, a pod whose claim the
// group placed is pinned there, and its held bytes are not counted twice.
func TestRebuiltPlacementIsHonoured(t *testing.T) {
	hdd := placement.PoolHDD
	e := newTestEnv(t, nil, append(classes(),
		makePVC("data").PersistentVolumeClaim,
		makePVC("other").withSize("3Gi").PersistentVolumeClaim,
		makeLSN("node-a").pool(hdd, 100, 8).LocalStorageNode,
		makeLVG("lvg-uid-data").placed("data", "pvc-uid-data", hdd, 6, "node-a").LocalVolumeGroup,
	)...)
	e.checkHeld(t, "after the restart", hdd, map[string]held{"node-a": {6, 1}})

	c := e.cycle(makePod("p").withPVC("data").Pod)
	checkStatus(t, "Reserve of the placed pod", c.toReserve(t, "node-a"), nil)
	e.checkHeld(t, "after Reserve", hdd, map[string]held{"node-a": {6, 1}})

	other := e.cycle(makePod("q").withPVC("other").Pod)
	if _, st := other.preFilter(); !st.IsSuccess() {
		t.Fatal(st)
	}
	checkStatus(t, "Filter of another pod", other.filter("node-a"),
		wantCode(fwk.UnschedulableAndUnresolvable, "need 3Gi, free 2Gi (6Gi reserved in flight)"))

	want := []placement.Reservation{{Node: "node-a", Volume: "pvc-uid-data", Pool: hdd, Bytes: 6 * gi, Persisted: true}}
	if diff := cmp.Diff(want, e.pl.Cache().Reservations(), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("ledger (-want +got):\n%s", diff)
	}
}

// TestDeletedClaimReleasesItsReservation runs the claim informer for real,
// against the fake clientset: deleting a claim frees what was held for it.
func TestDeletedClaimReleasesItsReservation(t *testing.T) {
	hdd := placement.PoolHDD
	e := newTestEnv(t, nil, makeLSN("node-a").pool(hdd, 100, 100).LocalStorageNode)
	e.pl.registerHandlers()
	ctx, cancel := context.WithCancel(context.Background())
	defer func() {
		cancel()
		e.k8s.Shutdown()
	}()
	e.k8s.Start(ctx.Done())
	for typ, ok := range e.k8s.WaitForCacheSync(ctx.Done()) {
		if !ok {
			t.Fatalf("%v did not sync", typ)
		}
	}

	client := e.pl.handle.ClientSet()
	if _, err := client.StorageV1().StorageClasses().Create(ctx, makeSC("hdd").StorageClass, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, pvc := range []*corev1.PersistentVolumeClaim{
		makePVC("data").PersistentVolumeClaim,
		makePVC("logs").withSize("4Gi").PersistentVolumeClaim,
	} {
		if _, err := client.CoreV1().PersistentVolumeClaims(testNS).Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	c := e.cycle(makePod("p").withPVC("data", "logs").Pod)
	eventually(ctx, t, "the claims reach the informer", func() bool {
		_, st := c.preFilter()
		return st.IsSuccess()
	})
	checkStatus(t, "Reserve", c.toReserve(t, "node-a"), nil)
	e.checkHeld(t, "after Reserve", hdd, map[string]held{"node-a": {10, 2}})

	if err := client.CoreV1().PersistentVolumeClaims(testNS).Delete(ctx, "logs", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(ctx, t, "deleting logs releases its 4Gi", func() bool {
		b, n := e.reserved("node-a", hdd)
		return b == 6 && n == 1
	})
}

// eventually polls cond (informers deliver asynchronously) for up to 30s.
func eventually(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(ctx, time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return cond(), nil
	})
	if err != nil {
		t.Fatalf("waiting until %s: %v", what, err)
	}
}
