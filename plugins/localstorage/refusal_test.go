package localstorage

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/internal/placement"
)

// updateGroup delivers a LocalVolumeGroup update the way the running
// informer does (store, then the update handler).
func (e *testEnv) updateGroup(g *v1.LocalVolumeGroup) {
	e.t.Helper()
	old, ok := e.pl.informers.GetLocalVolumeGroup(g.Name)
	if !ok {
		e.t.Fatalf("group %s is not in the informer", g.Name)
	}
	old = old.DeepCopy()
	if err := e.hw.LocalVolumeGroups.GetIndexer().Update(g); err != nil {
		e.t.Fatal(err)
	}
	e.pl.releaseDroppedEntries(old, g)
	e.pl.onGroup(g)
}

// agentRefusal is node's agent refusing the claim "data" (6Gi) while the
// node reported its HDD pool as totalGi/freeGi with 100 free slots
// (makeLSN's pool).
func agentRefusal(node string, totalGi, freeGi, actualFreeGi int64) v1.CapacityRefusal {
	return v1.CapacityRefusal{NodeName: node, PoolName: v1.PoolNameHDD, RequiredCapacityBytes: 6 * gi, FreeCapacityBytes: actualFreeGi * gi,
		Report: v1.PoolReport{TotalCapacityBytes: totalGi * gi, FreeCapacityBytes: freeGi * gi, FreeVolumeCount: 100}, By: v1.RefusedByNodeAgent}
}

// TestRefusedPlacementMovesThePod is the livelock of issue 14 item 6: a
// pod placed on node-a, whose agent then refused the volume. CreateVolume
// clears the group entry's nodes and records the refusal; the next cycle
// must neither be pinned to node-a by the old entry nor pick node-a again
// (it still looks roomiest), and the ledger must not hold the refused
// bytes there. Before the fix the entry kept [node-a] and the pod went
// back to it on every retry.
func TestRefusedPlacementMovesThePod(t *testing.T) {
	hdd := placement.PoolHDD
	data := makePVC("data")
	e := newTestEnv(t, nil, append(classes(), data.PersistentVolumeClaim,
		makeLSN("node-a").pool(hdd, 40, 40).LocalStorageNode, makeLSN("node-b").pool(hdd, 20, 20).LocalStorageNode)...)
	pod := makePod("p").withPVC("data").Pod

	first := e.cycle(pod)
	checkStatus(t, "Reserve(node-a)", first.toReserve(t, "node-a"), nil)
	checkStatus(t, "PreBind(node-a)", first.preBind("node-a"), nil)
	group := e.api.get("lvg-uid-data")
	e.add(group)
	if b, _ := e.reserved("node-a", hdd); b != 6 {
		t.Fatalf("node-a holds %dGi after PreBind, want 6", b)
	}

	// CreateVolume's refusal, as the group informer delivers it.
	refused := group.DeepCopy()
	refused.Spec.Volumes[0].Nodes, refused.Spec.Volumes[0].PoolName, refused.Spec.Volumes[0].RequiredCapacityBytes = nil, "", 0
	refused.Spec.Volumes[0].Refusals = []v1.CapacityRefusal{agentRefusal("node-a", 40, 40, 2)}
	e.api.put(refused)
	refused = e.api.get(refused.Name)
	e.updateGroup(refused)
	if b, n := e.reserved("node-a", hdd); b != 0 || n != 0 {
		t.Errorf("node-a still holds %dGi (%d volumes) for the refused claim", b, n)
	}

	again := e.cycle(pod)
	res, st := again.preFilter()
	checkStatus(t, "PreFilter", st, nil)
	if res == nil || res.NodeNames.Has("node-a") || !res.NodeNames.Has("node-b") {
		t.Errorf("PreFilter nodes %v, want node-b and not node-a", res)
	}
	checkStatus(t, "Filter(node-a)", again.filter("node-a"), wantCode(fwk.UnschedulableAndUnresolvable,
		"refused 6Gi in LocalStorage_PoolHDD: 2Gi free at allocation, the node reports 40Gi free; kept off this node until it reports the pool again"))
	checkStatus(t, "Filter(node-b)", again.filter("node-b"), nil)
	checkStatus(t, "Reserve(node-b)", again.reserve("node-b"), nil)
	checkStatus(t, "PreBind(node-b)", again.preBind("node-b"), nil)
	entry := e.api.get(refused.Name).Spec.Volumes[0]
	if len(entry.Nodes) != 1 || entry.Nodes[0] != "node-b" || len(entry.Refusals) != 1 || entry.Refusals[0].NodeName != "node-a" {
		t.Errorf("the new placement %+v: want nodes [node-b] and node-a's refusal kept", entry)
	}
}

// TestFilterRefusals: the Filter rule, one node with a refusal on record.
func TestFilterRefusals(t *testing.T) {
	hdd := placement.PoolHDD
	tests := []struct {
		name    string
		claim   pvcBuilder
		refusal v1.CapacityRefusal
		node    lsnBuilder // node-a now
		want    *want
	}{
		{"same report, same size", makePVC("data"), agentRefusal("node-a", 40, 40, 2), makeLSN("node-a").pool(hdd, 40, 40),
			wantCode(fwk.UnschedulableAndUnresolvable, "refused 6Gi in LocalStorage_PoolHDD")},
		{"same report, larger claim", makePVC("data").withSize("8Gi"), agentRefusal("node-a", 40, 40, 2), makeLSN("node-a").pool(hdd, 40, 40),
			wantCode(fwk.UnschedulableAndUnresolvable, "refused 6Gi")},
		{"same report, smaller claim", makePVC("data").withSize("5Gi"), agentRefusal("node-a", 40, 40, 2), makeLSN("node-a").pool(hdd, 40, 40), nil},
		{"the node reported anew", makePVC("data"), agentRefusal("node-a", 40, 40, 2), makeLSN("node-a").pool(hdd, 40, 39), nil},
		{"the new report is short", makePVC("data"), agentRefusal("node-a", 40, 40, 2), makeLSN("node-a").pool(hdd, 40, 2),
			wantCode(fwk.UnschedulableAndUnresolvable, "pool LocalStorage_PoolHDD: need 6Gi, free 2Gi")},
		{"another node refused", makePVC("data"), agentRefusal("node-b", 40, 40, 2), makeLSN("node-a").pool(hdd, 40, 40), nil},
		{"slots changed: a new report", makePVC("data"), agentRefusal("node-a", 40, 40, 2), makeLSN("node-a").pool(hdd, 40, 40).freeVolumes(hdd, 99), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The refusal is on record for another claim: it is a fact
			// about the node, whichever claim met it.
			g := makeLVG("lvg-other").placed("other", "pvc-uid-other", hdd, 6).LocalVolumeGroup
			g.Spec.Volumes[0].Refusals = []v1.CapacityRefusal{tc.refusal}
			e := newTestEnv(t, nil, append(classes(), tc.claim.PersistentVolumeClaim, tc.node.LocalStorageNode, g)...)
			c := e.cycle(makePod("p").withPVC("data").Pod)
			if _, st := c.preFilter(); !st.IsSuccess() && !st.IsSkip() {
				t.Fatalf("PreFilter: %v", st)
			}
			checkStatus(t, "Filter(node-a)", c.filter("node-a"), tc.want)
		})
	}
}

// TestHAPeerRefused: the HA peer is not a node that refused the volume.
func TestHAPeerRefused(t *testing.T) {
	hdd := placement.PoolHDD
	g := makeLVG("lvg-other").placed("other", "pvc-uid-other", hdd, 6).LocalVolumeGroup
	g.Spec.Volumes[0].Refusals = []v1.CapacityRefusal{agentRefusal("node-c", 40, 40, 2)}
	e := newTestEnv(t, nil, append(classes(), makePVC("data").withClass("hdd-ha").PersistentVolumeClaim, g,
		makeLSN("node-a").pool(hdd, 20, 20).LocalStorageNode, makeLSN("node-b").pool(hdd, 20, 10).LocalStorageNode,
		makeLSN("node-c").pool(hdd, 40, 40).LocalStorageNode)...)
	c := e.cycle(makePod("p").withPVC("data").Pod)
	checkStatus(t, "Reserve(node-a)", c.toReserve(t, "node-a"), nil)
	if s := c.state(t); s.peer != "node-b" {
		t.Errorf("HA peer %q, want node-b: node-c (most free) refused the volume", s.peer)
	}
}

// TestHintNodeAfterRefusal: a node with refusals that reports its pools
// differently requeues the pods it kept off, even with less free space
// (the report may still fit them); without refusals that change does not.
func TestHintNodeAfterRefusal(t *testing.T) {
	hdd := placement.PoolHDD
	logger, _ := ktesting.NewTestContext(t)
	pod := makePod("p").withPVC("data").Pod
	before := makeLSN("node-a").pool(hdd, 40, 40).LocalStorageNode
	after := makeLSN("node-a").pool(hdd, 40, 30).LocalStorageNode
	for _, tc := range []struct {
		name string
		objs []runtime.Object
		want fwk.QueueingHint
	}{
		{"no refusal", nil, fwk.QueueSkip},
		{"a refusal on record", []runtime.Object{func() runtime.Object {
			g := makeLVG("lvg-data").placed("data", "pvc-uid-data", hdd, 0).LocalVolumeGroup
			g.Spec.Volumes[0].Refusals = []v1.CapacityRefusal{agentRefusal("node-a", 40, 40, 2)}
			return g
		}()}, fwk.Queue},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, nil, append(classes(), tc.objs...)...)
			got, err := e.pl.hintNode(logger, pod, asUnstructured(t, before), asUnstructured(t, after))
			if err != nil || got != tc.want {
				t.Errorf("hintNode = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// TestKeptOffPodsActivated: a pod Filter kept off a node for a refusal is
// sent back to the active queue once the ledger has the node's next report
// (the scheduler's own event for it may have run the pod before), and not
// on an update that leaves the report as it was.
func TestKeptOffPodsActivated(t *testing.T) {
	hdd := placement.PoolHDD
	g := makeLVG("lvg-other").placed("other", "pvc-uid-other", hdd, 0).LocalVolumeGroup
	g.Spec.Volumes[0].Refusals = []v1.CapacityRefusal{agentRefusal("node-a", 40, 40, 2)}
	before := makeLSN("node-a").pool(hdd, 40, 40)
	e := newTestEnv(t, nil, append(classes(), makePVC("data").PersistentVolumeClaim, before.LocalStorageNode, g)...)
	c := e.cycle(makePod("p").withPVC("data").Pod)
	if _, st := c.preFilter(); !st.IsSuccess() {
		t.Fatalf("PreFilter: %v", st)
	}
	checkStatus(t, "Filter(node-a)", c.filter("node-a"), wantCode(fwk.UnschedulableAndUnresolvable, "refused 6Gi"))
	h := e.pl.handle.(*fakeHandle)
	update := func(to lsnBuilder) {
		old, _, _ := e.pl.informers.LocalStorageNodes.GetIndexer().GetByKey("node-a")
		if err := e.hw.LocalStorageNodes.GetIndexer().Update(to.LocalStorageNode); err != nil {
			t.Fatal(err)
		}
		e.pl.onNode(to.LocalStorageNode)
		e.pl.activateKeptOff(old.(*v1.LocalStorageNode), to.LocalStorageNode)
	}
	same := before.clone()
	same.Status.Conditions = []metav1.Condition{{Type: "AgentHeartbeat", Status: metav1.ConditionTrue, Reason: "Renewed", LastTransitionTime: metav1.Now()}}
	update(same)
	if len(h.activated) != 0 {
		t.Errorf("activated %v on an update that did not change the report", h.activated)
	}
	update(makeLSN("node-a").pool(hdd, 40, 30))
	if len(h.activated) != 1 || h.activated[0] != "default/p" {
		t.Errorf("activated %v, want default/p", h.activated)
	}
	update(makeLSN("node-a").pool(hdd, 40, 20))
	if len(h.activated) != 1 {
		t.Errorf("activated %v again: the pod was not kept off since", h.activated)
	}
}
