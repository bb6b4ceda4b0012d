package localstorage

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/component-base/metrics/testutil"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/internal/placement"
	"hwameistor.io/local/internal/testenv"
	"hwameistor.io/local/plugins/localstorage/metrics"
)

// The metrics are global: each test registers them (once per process) and
// compares values before and after what it drives, since other tests of
// the package move them too. None of these tests is parallel.

func counterValue(t *testing.T, p metrics.Point, r metrics.Reason) float64 {
	t.Helper()
	v, err := testutil.GetCounterMetricValue(metrics.Rejections.WithLabelValues(p.String(), r.String()))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// rejectionCounts reads every series of rejections_total the plugin creates.
func rejectionCounts(t *testing.T) map[string]float64 {
	t.Helper()
	counts := map[string]float64{}
	for p, reasons := range metrics.PointReasons {
		for _, r := range reasons {
			counts[metrics.Point(p).String()+"/"+r.String()] = counterValue(t, metrics.Point(p), r)
		}
	}
	return counts
}

// wantCounted checks that, since before, only the series of point p and
// reason r moved, by n.
func wantCounted(t *testing.T, before map[string]float64, p metrics.Point, r metrics.Reason, n float64) {
	t.Helper()
	for key, got := range rejectionCounts(t) {
		want := before[key]
		if key == p.String()+"/"+r.String() {
			want += n
		}
		if got != want {
			t.Errorf("rejections_total{%s} = %v, want %v", key, got, want)
		}
	}
}

// TestRejectionReasons drives every kind of Unschedulable status the plugin
// returns, at each extension point that can return it, and checks its
// message and that exactly its reason's counter moved by one. The label
// comes from the reason the code gives with the status, never from the
// message.
func TestRejectionReasons(t *testing.T) {
	metrics.Register()
	hdd, ssd := placement.PoolHDD, placement.PoolSSD
	boundData := []runtime.Object{makePVC("data").boundTo("pv-data").PersistentVolumeClaim, makePV("pv-data", v1.DriverName)}
	data := makePVC("data").PersistentVolumeClaim
	haData := makePVC("data").withClass("hdd-ha").PersistentVolumeClaim
	nodeA := makeLSN("node-a").pool(hdd, 100, 100).LocalStorageNode
	pod := makePod("p").withPVC("data").Pod
	preFilter := func(e *testEnv) *fwk.Status { _, st := e.cycle(pod).preFilter(); return st }
	filter := func(node string) func(e *testEnv) *fwk.Status {
		return func(e *testEnv) *fwk.Status {
			c := e.cycle(pod)
			if _, st := c.preFilter(); !st.IsSuccess() {
				t.Fatalf("PreFilter: %v", st)
			}
			return c.filter(node)
		}
	}
	// reserveAfter passes PreFilter and Filter on node-a, then applies
	// change (capacity goes away) before Reserve.
	reserveAfter := func(change func(e *testEnv)) func(e *testEnv) *fwk.Status {
		return func(e *testEnv) *fwk.Status {
			c := e.cycle(pod)
			if _, st := c.preFilter(); !st.IsSuccess() {
				t.Fatalf("PreFilter: %v", st)
			}
			if st := c.filter("node-a"); !st.IsSuccess() {
				t.Fatalf("Filter: %v", st)
			}
			change(e)
			return c.reserve("node-a")
		}
	}
	adding := func(objs ...runtime.Object) func(e *testEnv) { return func(e *testEnv) { e.add(objs...) } }
	// refusedGroup records node-a's agent refusing 6Gi of HDD while it
	// reported the pool as makeLSN(...).pool(hdd, 100, 100).
	refusedGroup := func() runtime.Object {
		g := makeLVG("lvg-data").placed("data", makePVC("data").key(), hdd, 0).LocalVolumeGroup
		g.Spec.Volumes[0].Refusals = []v1.CapacityRefusal{agentRefusal("node-a", 100, 100, 2)}
		return g
	}
	const (
		refused = "refused 6Gi in LocalStorage_PoolHDD: 2Gi free at allocation, the node reports 100Gi free; " +
			"kept off this node until it reports the pool again"
		noPeer = ReasonNoPeer + ": need 6Gi in LocalStorage_PoolHDD"
		noLSN  = "node has no LocalStorageNode (is the hwameistor node agent running there?)"
	)
	tests := []struct {
		name   string
		objs   []runtime.Object
		run    func(e *testEnv) *fwk.Status
		point  metrics.Point
		reason metrics.Reason
		// msg is the message users see.
		msg string
	}{
		{name: "caches not synced", objs: []runtime.Object{data}, run: func(e *testEnv) *fwk.Status {
			e.pl.synced = func() bool { return false }
			return preFilter(e)
		}, point: metrics.PreFilter, reason: metrics.NotSynced, msg: ReasonNotSynced},
		{name: "missing claim", run: preFilter, point: metrics.PreFilter, reason: metrics.ClaimNotFound,
			msg: `persistentvolumeclaim "data" not found`},
		{name: "claim being deleted", objs: []runtime.Object{makePVC("data").deleting().PersistentVolumeClaim},
			run: preFilter, point: metrics.PreFilter, reason: metrics.ClaimDeleting, msg: `persistentvolumeclaim "data" is being deleted`},
		{name: "bad StorageClass", objs: []runtime.Object{makePVC("data").withClass("tape").PersistentVolumeClaim},
			run: preFilter, point: metrics.PreFilter, reason: metrics.BadStorageClass, msg: `persistentvolumeclaim "data": storageclass tape: parameter poolClass: unknown poolClass "TAPE": use one of HDD, SSD, NVMe`},
		{name: "claim without size", objs: []runtime.Object{makePVC("data").withoutSize().PersistentVolumeClaim},
			run: preFilter, point: metrics.PreFilter, reason: metrics.BadClaim, msg: `persistentvolumeclaim "data" requests no storage size`},
		{name: "LocalVolume missing", objs: boundData, run: preFilter, point: metrics.PreFilter, reason: metrics.VolumeNotFound,
			msg: `persistentvolumeclaim "data": LocalVolume pv-data not found`},
		{name: "migrating", objs: append(boundData, makeLV("pv-data", "data").migratingTo("a → b, 40%").LocalVolume,
			makeLVR("pv-data", "node-a", v1.StateReady)), run: preFilter, point: metrics.PreFilter, reason: metrics.Migrating,
			msg: `volume pv-data (claim "data") migrating a → b, 40%; the pod waits until its new replica is ready`},
		{name: "migrating without progress", objs: append(boundData, makeLV("pv-data", "data").migrating().LocalVolume,
			makeLVR("pv-data", "node-a", v1.StateReady)), run: preFilter, point: metrics.PreFilter, reason: metrics.Migrating,
			msg: `volume pv-data (claim "data") is migrating; the pod waits until its new replica is ready`},
		{name: "no ready replica", objs: append(boundData, makeLV("pv-data", "data").LocalVolume,
			makeLVR("pv-data", "node-a", v1.StateCreating)), run: preFilter, point: metrics.PreFilter, reason: metrics.NoReadyReplica,
			msg: `volume pv-data (claim "data") has no ready replica`},
		{name: "last-written replica not ready", objs: append(boundData, makeLV("pv-data", "data").LocalVolume,
			staged(makeLVR("pv-data", "node-a", v1.StateReady), 1), staged(makeLVR("pv-data", "node-b", v1.StateNotReady), 2)),
			run: preFilter, point: metrics.PreFilter, reason: metrics.NoReadyReplica,
			msg: `volume pv-data (claim "data") was last written on node node-b, whose replica is not ready; ` +
				"its other replicas are not kept in sync, so the pod waits for node-b"},
		{name: "disjoint nodes", objs: append(boundData, makeLV("pv-data", "data").LocalVolume, makeLVR("pv-data", "node-a", v1.StateReady),
			makePVC("logs").boundTo("pv-logs").PersistentVolumeClaim, makePV("pv-logs", v1.DriverName),
			makeLV("pv-logs", "logs").LocalVolume, makeLVR("pv-logs", "node-b", v1.StateReady)),
			run: func(e *testEnv) *fwk.Status {
				_, st := e.cycle(makePod("p").withPVC("data", "logs").Pod).preFilter()
				return st
			}, point: metrics.PreFilter, reason: metrics.DisjointNodes, msg: ReasonDisjointNodes + ": data on node-a; logs on node-b"},
		{name: "HA without a peer in PreFilter", objs: []runtime.Object{haData, nodeA},
			run: preFilter, point: metrics.PreFilter, reason: metrics.HANoPeer, msg: noPeer},

		{name: "volume pinned elsewhere", objs: append(boundData, makeLV("pv-data", "data").LocalVolume,
			makeLVR("pv-data", "node-a", v1.StateReady), makeLSN("node-b").pool(hdd, 100, 100).LocalStorageNode),
			run: filter("node-b"), point: metrics.Filter, reason: metrics.VolumePinned, msg: ReasonReplicaLocality},
		{name: "pool too small", objs: []runtime.Object{data, makeLSN("node-a").pool(hdd, 100, 4).LocalStorageNode},
			run: filter("node-a"), point: metrics.Filter, reason: metrics.InsufficientCapacity, msg: "pool LocalStorage_PoolHDD: need 6Gi, free 4Gi"},
		{name: "no volume slot", objs: []runtime.Object{data, makeLSN("node-a").pool(hdd, 100, 100).freeVolumes(hdd, 0).LocalStorageNode},
			run: filter("node-a"), point: metrics.Filter, reason: metrics.NoVolumeSlot, msg: "pool LocalStorage_PoolHDD: need 1 volume(s), 0 free"},
		{name: "no pool of the class", objs: []runtime.Object{data, makeLSN("node-a").pool(ssd, 100, 100).LocalStorageNode},
			run: filter("node-a"), point: metrics.Filter, reason: metrics.NoPoolClass, msg: "node has no pool LocalStorage_PoolHDD"},
		{name: "no LocalStorageNode", objs: []runtime.Object{data},
			run: filter("node-z"), point: metrics.Filter, reason: metrics.NoStorageNode, msg: noLSN},
		{name: "LocalStorageNode not Ready", objs: []runtime.Object{data, makeLSN("node-a").pool(hdd, 100, 100).state(v1.StateNotReady).LocalStorageNode},
			run: filter("node-a"), point: metrics.Filter, reason: metrics.NodeNotReady, msg: "LocalStorageNode is NotReady, not Ready"},
		{name: "volume too large for the pool", objs: []runtime.Object{data, makeLSN("node-a").pool(hdd, 100, 100).volumeLimit(hdd, 4).LocalStorageNode},
			run: filter("node-a"), point: metrics.Filter, reason: metrics.VolumeTooLarge,
			msg: "pool LocalStorage_PoolHDD takes volumes up to 4Gi, 6Gi requested"},
		{name: "refused by the node", objs: []runtime.Object{data, nodeA, refusedGroup()},
			run: filter("node-a"), point: metrics.Filter, reason: metrics.CapacityRefused, msg: refused},
		{name: "HA volume on a node without DRBD", objs: []runtime.Object{haData, withoutDRBD(makeLSN("node-a").pool(hdd, 100, 100).LocalStorageNode),
			makeLSN("node-b").pool(hdd, 100, 100).LocalStorageNode, makeLSN("node-c").pool(hdd, 100, 100).LocalStorageNode},
			run: filter("node-a"), point: metrics.Filter, reason: metrics.NoDRBD, msg: "node cannot replicate HA volumes: " + drbdMissing},
		{name: "HA without a peer in Filter", objs: []runtime.Object{haData, nodeA},
			// PreFilter finds two peers or rejects the pod, so Filter's
			// check guards a state PreFilter does not write: written here.
			run: func(e *testEnv) *fwk.Status {
				cs := framework.NewCycleState()
				vol := placement.Volume{Key: "pvc-data", Pool: hdd, Bytes: 6 * gi}
				cs.Write(stateKey, &podState{haVols: []placement.Volume{vol}, peers: []string{"node-a"}})
				return e.pl.Filter(context.Background(), cs, pod, nodeInfo("node-a"))
			}, point: metrics.Filter, reason: metrics.HANoPeer, msg: noPeer},

		{name: "capacity gone before Reserve", objs: []runtime.Object{data, nodeA},
			run:   reserveAfter(adding(makeLSN("node-a").pool(hdd, 100, 2).LocalStorageNode)),
			point: metrics.Reserve, reason: metrics.InsufficientCapacity, msg: "node node-a: pool LocalStorage_PoolHDD: need 6Gi, free 2Gi"},
		{name: "volume slots gone before Reserve", objs: []runtime.Object{data, nodeA},
			run:   reserveAfter(adding(makeLSN("node-a").pool(hdd, 100, 100).freeVolumes(hdd, 0).LocalStorageNode)),
			point: metrics.Reserve, reason: metrics.NoVolumeSlot, msg: "node node-a: pool LocalStorage_PoolHDD: need 1 volume(s), 0 free"},
		{name: "pool gone before Reserve", objs: []runtime.Object{data, nodeA},
			run:   reserveAfter(adding(makeLSN("node-a").pool(ssd, 100, 100).LocalStorageNode)),
			point: metrics.Reserve, reason: metrics.NoPoolClass, msg: "node node-a: node has no pool LocalStorage_PoolHDD"},
		{name: "LocalStorageNode gone before Reserve", objs: []runtime.Object{data, nodeA},
			run:   reserveAfter(func(e *testEnv) { e.pl.Cache().DeleteNode("node-a") }), // what the informer's delete does
			point: metrics.Reserve, reason: metrics.NoStorageNode, msg: "node node-a: " + noLSN},
		{name: "node not Ready before Reserve", objs: []runtime.Object{data, nodeA},
			run:   reserveAfter(adding(makeLSN("node-a").pool(hdd, 100, 100).state(v1.StateOffline).LocalStorageNode)),
			point: metrics.Reserve, reason: metrics.NodeNotReady, msg: "node node-a: LocalStorageNode is Offline, not Ready"},
		{name: "volume limit lowered before Reserve", objs: []runtime.Object{data, nodeA},
			run:   reserveAfter(adding(makeLSN("node-a").pool(hdd, 100, 100).volumeLimit(hdd, 4).LocalStorageNode)),
			point: metrics.Reserve, reason: metrics.VolumeTooLarge, msg: "node node-a: pool LocalStorage_PoolHDD takes volumes up to 4Gi, 6Gi requested"},
		{name: "refused before Reserve", objs: []runtime.Object{data, nodeA},
			run:   reserveAfter(adding(refusedGroup())),
			point: metrics.Reserve, reason: metrics.CapacityRefused, msg: "node node-a: " + refused},
		{name: "DRBD gone before Reserve", objs: []runtime.Object{haData, nodeA, makeLSN("node-b").pool(hdd, 100, 100).LocalStorageNode},
			run:   reserveAfter(adding(withoutDRBD(makeLSN("node-a").pool(hdd, 100, 100).LocalStorageNode))),
			point: metrics.Reserve, reason: metrics.NoDRBD, msg: "node node-a: node cannot replicate HA volumes: " + drbdMissing},
		{name: "HA peer gone before Reserve", objs: []runtime.Object{haData, nodeA, makeLSN("node-b").pool(hdd, 100, 100).LocalStorageNode},
			run:   reserveAfter(adding(makeLSN("node-b").pool(hdd, 100, 2).LocalStorageNode)),
			point: metrics.Reserve, reason: metrics.HANoPeer, msg: noPeer},
	}
	driven := map[string]bool{}
	for _, tc := range tests {
		driven[tc.point.String()+"/"+tc.reason.String()] = true
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, nil, append(classes(), tc.objs...)...)
			before := rejectionCounts(t)
			st := tc.run(e)
			if code := st.Code(); code != fwk.Unschedulable && code != fwk.UnschedulableAndUnresolvable {
				t.Fatalf("status %v, want Unschedulable", st)
			}
			if st.Message() != tc.msg {
				t.Errorf("message %q, want %q", st.Message(), tc.msg)
			}
			wantCounted(t, before, tc.point, tc.reason, 1)
		})
	}
	// Every series the plugin creates is driven, but "other" (a lister's
	// error: TestOtherReason).
	for p, reasons := range metrics.PointReasons {
		for _, r := range reasons {
			if key := metrics.Point(p).String() + "/" + r.String(); r != metrics.Other && !driven[key] {
				t.Errorf("no case drives rejections_total{extension_point=%s,reason=%s}", metrics.Point(p), r)
			}
		}
	}
}

// TestOtherReason: errors the plugin did not make (a lister's) are counted
// as "other", with their own message.
func TestOtherReason(t *testing.T) {
	metrics.Register()
	listerErr := errors.New("the lister failed")
	if got := reasonOf(listerErr); got != metrics.Other {
		t.Errorf("reasonOf(lister error) = %s, want other", got)
	}
	if got := reasonOf(fmt.Errorf("wrapped: %w", claimErrorf(metrics.BadClaim, "x"))); got != metrics.BadClaim {
		t.Errorf("reasonOf(wrapped claimError) = %s, want bad_claim", got)
	}
	st, reason := ledgerRejection(listerErr)
	if reason != metrics.Other || st.Code() != fwk.Unschedulable || st.Message() != listerErr.Error() {
		t.Errorf("ledgerRejection(other error) = %v, %s", st, reason)
	}
	nodeErr := &placement.NodeError{Node: "node-a", Reason: placement.Reason{Code: placement.VolumeTooLarge, Pool: placement.PoolSSD, Need: 6 * gi, Limit: 4 * gi}}
	st, reason = ledgerRejection(fmt.Errorf("reserving: %w", nodeErr))
	if want := "reserving: node node-a: pool LocalStorage_PoolSSD takes volumes up to 4Gi, 6Gi requested"; reason != metrics.VolumeTooLarge || st.Message() != want {
		t.Errorf("ledgerRejection(NodeError) = %v, %s; want %q, volume_too_large", st, reason, want)
	}
	before := rejectionCounts(t)
	countRejection(metrics.PreFilter, st, reason)
	countRejection(metrics.PreFilter, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "the lister failed"), reasonOf(listerErr))
	wantCounted(t, before, metrics.PreFilter, metrics.Other, 1)
	if v := counterValue(t, metrics.PreFilter, metrics.VolumeTooLarge); v < 1 {
		t.Errorf("an unexpected pair (PreFilter, volume_too_large) was not counted: %v", v)
	}
}

// TestNonRejectionsNotCounted: success, skip and error statuses move no
// rejection counter.
func TestNonRejectionsNotCounted(t *testing.T) {
	metrics.Register()
	e := newTestEnv(t, nil, append(classes(), makePVC("data").PersistentVolumeClaim,
		makeLSN("node-a").pool(placement.PoolHDD, 100, 100).LocalStorageNode)...)
	before := rejectionCounts(t)
	if st := e.cycle(makePod("p").withPVC("data").Pod).filter("node-a"); st.Code() != fwk.Error {
		t.Errorf("Filter without PreFilter: %v, want an error", st)
	}
	if _, st := e.cycle(makePod("q").Pod).preFilter(); st.Code() != fwk.Skip {
		t.Errorf("PreFilter of a pod without claims: %v, want skip", st)
	}
	if st := e.cycle(makePod("r").withPVC("data").Pod).toReserve(t, "node-a"); !st.IsSuccess() {
		t.Errorf("Reserve: %v", st)
	}
	wantCounted(t, before, metrics.Filter, metrics.Other, 0)
}

// statusSink keeps TestFilterAllocations' status on the heap, as Filter's.
var statusSink *fwk.Status

// TestFilterAllocations: Filter (the exported one, counting its
// rejections) allocates nothing on a node that fits, and on one that does
// not only what its status and the ledger's message cost.
func TestFilterAllocations(t *testing.T) {
	if raceEnabled {
		// Counted in the run without -race (hack/test.sh runs both).
		t.Log("allocation counts are not compared under the race detector")
		return
	}
	metrics.Register()
	hdd := placement.PoolHDD
	e := newTestEnv(t, nil, append(classes(), makePVC("data").PersistentVolumeClaim,
		makeLSN("node-a").pool(hdd, 100, 100).LocalStorageNode, makeLSN("node-b").pool(hdd, 100, 2).LocalStorageNode)...)
	c := e.cycle(makePod("p").withPVC("data").Pod)
	if _, st := c.preFilter(); !st.IsSuccess() {
		t.Fatal(st)
	}
	ctx, a, b := context.Background(), nodeInfo("node-a"), nodeInfo("node-b")
	if n := testing.AllocsPerRun(100, func() {
		if st := e.pl.Filter(ctx, c.cs, c.pod, a); !st.IsSuccess() {
			t.Fatal(st)
		}
	}); n != 0 {
		t.Errorf("Filter of a fitting node: %v allocations, want 0", n)
	}
	vols := c.state(t).vols
	status := testing.AllocsPerRun(100, func() {
		statusSink = fwk.NewStatus(fwk.UnschedulableAndUnresolvable, e.pl.Cache().Check("node-b", vols).String())
	})
	if n := testing.AllocsPerRun(100, func() {
		if st := e.pl.Filter(ctx, c.cs, c.pod, b); st.IsSuccess() {
			t.Fatal("node-b fits")
		}
	}); n > status {
		t.Errorf("Filter of a full node: %v allocations, want %v (its status and message)", n, status)
	}
}

// TestPreFilterAndFilterLatency: PreFilter is observed once per call with
// its result; Filter only in the cycles the framework samples.
func TestPreFilterAndFilterLatency(t *testing.T) {
	metrics.Register()
	hdd := placement.PoolHDD
	e := newTestEnv(t, nil, append(classes(), makePVC("data").PersistentVolumeClaim,
		makeLSN("node-a").pool(hdd, 100, 100).LocalStorageNode, makeLSN("node-b").pool(hdd, 100, 100).LocalStorageNode)...)
	count := func(result string) uint64 {
		n, err := testutil.GetHistogramMetricCount(metrics.PreFilterDuration.WithLabelValues(result))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	filterCount := func() uint64 {
		n, err := testutil.GetHistogramMetricCount(metrics.FilterDuration.ObserverMetric)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := map[string]uint64{}
	for _, r := range []string{metrics.ResultSuccess, metrics.ResultSkip, metrics.ResultUnschedulable, metrics.ResultError} {
		before[r] = count(r)
	}
	filtered := filterCount()

	sampled := e.cycle(makePod("p").withPVC("data").Pod)
	sampled.cs.SetRecordPluginMetrics(true)
	if _, st := sampled.preFilter(); !st.IsSuccess() {
		t.Fatal(st)
	}
	// One call in 8 is timed: 800 calls give 100 observations on
	// average, and fewer than 40 or more than 200 with a probability
	// below 1e-9. Rejected calls are timed too.
	for i := range 800 {
		sampled.filter([]string{"node-a", "node-b", "node-z"}[i%3])
	}
	unsampled := e.cycle(makePod("q").withPVC("data").Pod)
	if _, st := unsampled.preFilter(); !st.IsSuccess() {
		t.Fatal(st)
	}
	unsampled.filter("node-a")
	e.cycle(makePod("r").Pod).preFilter()                    // skip: no claims
	e.cycle(makePod("s").withPVC("missing").Pod).preFilter() // unschedulable

	want := map[string]uint64{metrics.ResultSuccess: 2, metrics.ResultSkip: 1, metrics.ResultUnschedulable: 1, metrics.ResultError: 0}
	for r, n := range want {
		if got := count(r) - before[r]; got != n {
			t.Errorf("prefilter_duration_seconds{result=%s} observed %d times, want %d", r, got, n)
		}
	}
	if got := filterCount() - filtered; got < 40 || got > 200 {
		t.Errorf("filter_duration_seconds observed %d times, want about 100 (one in 8 of the sampled cycle's 800 calls, none of the other cycle's)", got)
	}
	sum, err := testutil.GetHistogramMetricValue(metrics.FilterDuration.ObserverMetric)
	if err != nil || sum <= 0 {
		t.Errorf("filter_duration_seconds sum %v (%v), want > 0", sum, err)
	}
}

// TestLedgerMetrics: the gauges read the ledger at scrape time; the age
// histogram is observed when a reservation ends, by outcome.
func TestLedgerMetrics(t *testing.T) {
	metrics.Register()
	hdd, ssd := placement.PoolHDD, placement.PoolSSD
	e := newTestEnv(t, nil, append(classes(), makePVC("data").PersistentVolumeClaim,
		makeLSN("node-a").pool(hdd, 100, 100).pool(ssd, 100, 100).LocalStorageNode)...)
	e.pl.exportMetrics()
	cache := e.pl.Cache()
	if _, err := cache.Reserve("node-a", []placement.Volume{{Key: "a", Pool: hdd, Bytes: 2 * gi}, {Key: "b", Pool: hdd, Bytes: 3 * gi}}); err != nil {
		t.Fatal(err)
	}
	cache.SetPlacement(placement.Volume{Key: "c", Pool: ssd, Bytes: 4 * gi}, []string{"node-a"})

	sum := cache.Summarize()
	now := sum.Oldest[0].Add(100 * time.Second)
	if sum.Oldest[1].After(sum.Oldest[0]) {
		now = sum.Oldest[1].Add(100 * time.Second)
	}
	c := metrics.NewLedgerCollector(func() time.Time { return now })
	c.SetCache(cache)
	age := func(persisted bool) string {
		p := 0
		if persisted {
			p = 1
		}
		return strconv.FormatFloat(now.Sub(sum.Oldest[p]).Seconds(), 'g', -1, 64)
	}
	want := fmt.Sprintf(`
# HELP hwameistor_scheduler_ledger_reservations [ALPHA] Reservations the ledger holds now (placements not yet counted in the nodes' status), by pool class and whether PreBind persisted them.
# TYPE hwameistor_scheduler_ledger_reservations gauge
hwameistor_scheduler_ledger_reservations{persisted="false",pool_class="HDD"} 2
hwameistor_scheduler_ledger_reservations{persisted="true",pool_class="HDD"} 0
hwameistor_scheduler_ledger_reservations{persisted="false",pool_class="SSD"} 0
hwameistor_scheduler_ledger_reservations{persisted="true",pool_class="SSD"} 1
hwameistor_scheduler_ledger_reservations{persisted="false",pool_class="NVMe"} 0
hwameistor_scheduler_ledger_reservations{persisted="true",pool_class="NVMe"} 0
# HELP hwameistor_scheduler_ledger_reserved_bytes [ALPHA] Bytes the ledger holds now (rounded to the pools' extents), by pool class and whether PreBind persisted them.
# TYPE hwameistor_scheduler_ledger_reserved_bytes gauge
hwameistor_scheduler_ledger_reserved_bytes{persisted="false",pool_class="HDD"} %d
hwameistor_scheduler_ledger_reserved_bytes{persisted="true",pool_class="HDD"} 0
hwameistor_scheduler_ledger_reserved_bytes{persisted="false",pool_class="SSD"} 0
hwameistor_scheduler_ledger_reserved_bytes{persisted="true",pool_class="SSD"} %d
hwameistor_scheduler_ledger_reserved_bytes{persisted="false",pool_class="NVMe"} 0
hwameistor_scheduler_ledger_reserved_bytes{persisted="true",pool_class="NVMe"} 0
# HELP hwameistor_scheduler_ledger_oldest_reservation_age_seconds [ALPHA] Age of the oldest reservation the ledger holds now (0 when none), by whether PreBind persisted it. Persisted reservations never expire.
# TYPE hwameistor_scheduler_ledger_oldest_reservation_age_seconds gauge
hwameistor_scheduler_ledger_oldest_reservation_age_seconds{persisted="false"} %s
hwameistor_scheduler_ledger_oldest_reservation_age_seconds{persisted="true"} %s
`, 5*gi, 4*gi, age(false), age(true))
	if err := testutil.CustomCollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}

	ended := func(outcome string) uint64 {
		n, err := testutil.GetHistogramMetricCount(metrics.ReservationAge.WithLabelValues(outcome))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	unreserved, counted := ended("unreserved"), ended("counted")
	cache.Unreserve("node-a", []string{"a", "b"})
	e.add(makeLSN("node-a").pool(hdd, 100, 100).pool(ssd, 100, 96).listing(ssd, "c").LocalStorageNode)
	if got := ended("unreserved") - unreserved; got != 2 {
		t.Errorf("ledger_reservation_age_seconds{outcome=unreserved} observed %d times, want 2", got)
	}
	if got := ended("counted") - counted; got != 1 {
		t.Errorf("ledger_reservation_age_seconds{outcome=counted} observed %d times, want 1", got)
	}
	if n := len(cache.Reservations()); n != 0 {
		t.Errorf("%d reservations left", n)
	}
}

// TestMetricsServed: the names appear on the /metrics handler kube-scheduler
// serves (legacyregistry).
func TestMetricsServed(t *testing.T) {
	e := newTestEnv(t, nil)
	e.pl.exportMetrics()
	body := testenv.Scrape(t, legacyregistry.Handler())
	for _, name := range []string{
		"hwameistor_scheduler_rejections_total{",
		"hwameistor_scheduler_prefilter_duration_seconds_bucket{",
		"hwameistor_scheduler_filter_duration_seconds_bucket{",
		"hwameistor_scheduler_ledger_reservation_age_seconds_bucket{",
		"hwameistor_scheduler_ledger_reservations{",
		"hwameistor_scheduler_ledger_reserved_bytes{",
		"hwameistor_scheduler_ledger_oldest_reservation_age_seconds{",
	} {
		if !strings.Contains(body, "\n"+name) {
			t.Errorf("/metrics has no %s", name)
		}
	}
}

// drbdMissing is what an agent whose node has no DRBD module reports.
const drbdMissing = "the drbd kernel module is not loaded"

// withoutDRBD is lsn as reported by an agent asked to replicate HA volumes
// on a node without DRBD.
func withoutDRBD(lsn *v1.LocalStorageNode) *v1.LocalStorageNode {
	meta.SetStatusCondition(&lsn.Status.Conditions, metav1.Condition{Type: v1.ConditionDRBD, Status: metav1.ConditionFalse, Reason: v1.ReasonDRBDMissing, Message: drbdMissing})
	return lsn
}
