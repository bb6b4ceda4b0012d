package localstorage

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/component-base/metrics/testutil"
	fwk "k8s.io/kube-scheduler/framework"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/internal/placement"
	"hwameistor.io/local/internal/testenv"
)

// The metrics are global: each test registers them (once per process) and
// compares values before and after what it drives, since other tests of
// the package move them too. None of these tests is parallel.

func counterValue(t *testing.T, p point, r reason) float64 {
	t.Helper()
	v, err := testutil.GetCounterMetricValue(rejections.WithLabelValues(pointNames[p], r.String()))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestRejectionReasons drives every kind of Unschedulable status the plugin
// returns and checks that exactly its reason's counter moved by one.
func TestRejectionReasons(t *testing.T) {
	registerMetrics()
	hdd, ssd := placement.PoolHDD, placement.PoolSSD
	boundData := []runtime.Object{makePVC("data").boundTo("pv-data").PersistentVolumeClaim, makePV("pv-data", v1.DriverName)}
	data := makePVC("data").PersistentVolumeClaim
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
	reserveAfter := func(change ...runtime.Object) func(e *testEnv) *fwk.Status {
		return func(e *testEnv) *fwk.Status {
			c := e.cycle(pod)
			if _, st := c.preFilter(); !st.IsSuccess() {
				t.Fatalf("PreFilter: %v", st)
			}
			if st := c.filter("node-a"); !st.IsSuccess() {
				t.Fatalf("Filter: %v", st)
			}
			e.add(change...)
			return c.reserve("node-a")
		}
	}
	tests := []struct {
		name   string
		objs   []runtime.Object
		synced bool
		run    func(e *testEnv) *fwk.Status
		point  point
		reason reason
	}{
		{name: "caches not synced", objs: []runtime.Object{data}, run: func(e *testEnv) *fwk.Status {
			e.pl.synced = func() bool { return false }
			return preFilter(e)
		}, point: pointPreFilter, reason: reasonNotSynced},
		{name: "missing claim", run: preFilter, point: pointPreFilter, reason: reasonClaimNotFound},
		{name: "claim being deleted", objs: []runtime.Object{makePVC("data").deleting().PersistentVolumeClaim},
			run: preFilter, point: pointPreFilter, reason: reasonClaimDeleting},
		{name: "bad StorageClass", objs: []runtime.Object{makePVC("data").withClass("tape").PersistentVolumeClaim},
			run: preFilter, point: pointPreFilter, reason: reasonBadStorageClass},
		{name: "claim without size", objs: []runtime.Object{makePVC("data").withoutSize().PersistentVolumeClaim},
			run: preFilter, point: pointPreFilter, reason: reasonBadClaim},
		{name: "LocalVolume missing", objs: boundData, run: preFilter, point: pointPreFilter, reason: reasonVolumeNotFound},
		{name: "migrating", objs: append(boundData, makeLV("pv-data", "data").migratingTo("a → b, 40%").LocalVolume,
			makeLVR("pv-data", "node-a", v1.StateReady)), run: preFilter, point: pointPreFilter, reason: reasonMigrating},
		{name: "migrating without progress", objs: append(boundData, makeLV("pv-data", "data").migrating().LocalVolume,
			makeLVR("pv-data", "node-a", v1.StateReady)), run: preFilter, point: pointPreFilter, reason: reasonMigrating},
		{name: "no ready replica", objs: append(boundData, makeLV("pv-data", "data").LocalVolume,
			makeLVR("pv-data", "node-a", v1.StateCreating)), run: preFilter, point: pointPreFilter, reason: reasonNoReadyReplica},
		{name: "disjoint nodes", objs: append(boundData, makeLV("pv-data", "data").LocalVolume, makeLVR("pv-data", "node-a", v1.StateReady),
			makePVC("logs").boundTo("pv-logs").PersistentVolumeClaim, makePV("pv-logs", v1.DriverName),
			makeLV("pv-logs", "logs").LocalVolume, makeLVR("pv-logs", "node-b", v1.StateReady)),
			run: func(e *testEnv) *fwk.Status {
				_, st := e.cycle(makePod("p").withPVC("data", "logs").Pod).preFilter()
				return st
			}, point: pointPreFilter, reason: reasonDisjointNodes},
		{name: "HA without a peer in PreFilter", objs: []runtime.Object{makePVC("data").withClass("hdd-ha").PersistentVolumeClaim,
			makeLSN("node-a").pool(hdd, 100, 100).LocalStorageNode},
			run: preFilter, point: pointPreFilter, reason: reasonHANoPeer},

		{name: "volume pinned elsewhere", objs: append(boundData, makeLV("pv-data", "data").LocalVolume,
			makeLVR("pv-data", "node-a", v1.StateReady), makeLSN("node-b").pool(hdd, 100, 100).LocalStorageNode),
			run: filter("node-b"), point: pointFilter, reason: reasonVolumePinned},
		{name: "pool too small", objs: []runtime.Object{data, makeLSN("node-a").pool(hdd, 100, 4).LocalStorageNode},
			run: filter("node-a"), point: pointFilter, reason: reasonInsufficientCapacity},
		{name: "no volume slot", objs: []runtime.Object{data, makeLSN("node-a").pool(hdd, 100, 100).freeVolumes(hdd, 0).LocalStorageNode},
			run: filter("node-a"), point: pointFilter, reason: reasonNoVolumeSlot},
		{name: "no pool of the class", objs: []runtime.Object{data, makeLSN("node-a").pool(ssd, 100, 100).LocalStorageNode},
			run: filter("node-a"), point: pointFilter, reason: reasonNoPoolClass},
		{name: "no LocalStorageNode", objs: []runtime.Object{data},
			run: filter("node-z"), point: pointFilter, reason: reasonNoStorageNode},
		{name: "LocalStorageNode not Ready", objs: []runtime.Object{data, makeLSN("node-a").pool(hdd, 100, 100).state(v1.StateNotReady).LocalStorageNode},
			run: filter("node-a"), point: pointFilter, reason: reasonNodeNotReady},
		{name: "refused by the node", objs: []runtime.Object{data, makeLSN("node-a").pool(hdd, 100, 100).LocalStorageNode, func() runtime.Object {
			g := makeLVG("lvg-data").placed("data", makePVC("data").key(), hdd, 0).LocalVolumeGroup
			g.Spec.Volumes[0].Refusals = []v1.CapacityRefusal{agentRefusal("node-a", 100, 100, 2)}
			return g
		}()}, run: filter("node-a"), point: pointFilter, reason: reasonCapacityRefused},

		{name: "capacity gone before Reserve", objs: []runtime.Object{data, makeLSN("node-a").pool(hdd, 100, 100).LocalStorageNode},
			run: reserveAfter(makeLSN("node-a").pool(hdd, 100, 2).LocalStorageNode), point: pointReserve, reason: reasonInsufficientCapacity},
		{name: "HA peer gone before Reserve", objs: []runtime.Object{makePVC("data").withClass("hdd-ha").PersistentVolumeClaim,
			makeLSN("node-a").pool(hdd, 100, 100).LocalStorageNode, makeLSN("node-b").pool(hdd, 100, 100).LocalStorageNode},
			run: reserveAfter(makeLSN("node-b").pool(hdd, 100, 2).LocalStorageNode), point: pointReserve, reason: reasonHANoPeer},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, nil, append(classes(), tc.objs...)...)
			before := map[string]float64{}
			for p, reasons := range pointReasons {
				for _, r := range reasons {
					before[pointNames[p]+"/"+r.String()] = counterValue(t, point(p), r)
				}
			}
			st := tc.run(e)
			if code := st.Code(); code != fwk.Unschedulable && code != fwk.UnschedulableAndUnresolvable {
				t.Fatalf("status %v, want Unschedulable", st)
			}
			if got := classify(st.Message()); got != tc.reason {
				t.Errorf("classify(%q) = %s, want %s", st.Message(), got, tc.reason)
			}
			for p, reasons := range pointReasons {
				for _, r := range reasons {
					want := before[pointNames[p]+"/"+r.String()]
					if point(p) == tc.point && r == tc.reason {
						want++
					}
					if got := counterValue(t, point(p), r); got != want {
						t.Errorf("rejections_total{extension_point=%s,reason=%s} = %v, want %v", pointNames[p], r, got, want)
					}
				}
			}
		})
	}
}

// TestClassify: messages TestRejectionReasons does not drive.
func TestClassify(t *testing.T) {
	for msg, want := range map[string]reason{
		"something new": reasonOther,
		`volume pv-data (claim "data") was last written on node node-b, whose replica is not ready; ` +
			"its other replicas are not kept in sync, so the pod waits for node-b": reasonNoReadyReplica,
		"node node-a: pool LocalStorage_PoolHDD: need 1 volume(s), 0 free": reasonNoVolumeSlot,
		"node node-a: node has no pool LocalStorage_PoolSSD":               reasonNoPoolClass,
		"node node-a: LocalStorageNode is Offline, not Ready":              reasonNodeNotReady,
		"node node-a: refused 6Gi in LocalStorage_PoolHDD: 2Gi free at allocation, the node reports 100Gi free; " +
			"kept off this node until it reports the pool again": reasonCapacityRefused,
	} {
		if got := classify(msg); got != want {
			t.Errorf("classify(%q) = %s, want %s", msg, got, want)
		}
	}
}

// TestPreFilterAndFilterLatency: PreFilter is observed once per call with
// its result; Filter only in the cycles the framework samples.
func TestPreFilterAndFilterLatency(t *testing.T) {
	registerMetrics()
	hdd := placement.PoolHDD
	e := newTestEnv(t, nil, append(classes(), makePVC("data").PersistentVolumeClaim,
		makeLSN("node-a").pool(hdd, 100, 100).LocalStorageNode, makeLSN("node-b").pool(hdd, 100, 100).LocalStorageNode)...)
	count := func(result string) uint64 {
		n, err := testutil.GetHistogramMetricCount(preFilterDuration.WithLabelValues(result))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	filterCount := func() uint64 {
		n, err := testutil.GetHistogramMetricCount(filterDuration.ObserverMetric)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := map[string]uint64{}
	for _, r := range []string{resultSuccess, resultSkip, resultUnschedulable, resultError} {
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

	want := map[string]uint64{resultSuccess: 2, resultSkip: 1, resultUnschedulable: 1, resultError: 0}
	for r, n := range want {
		if got := count(r) - before[r]; got != n {
			t.Errorf("prefilter_duration_seconds{result=%s} observed %d times, want %d", r, got, n)
		}
	}
	if got := filterCount() - filtered; got < 40 || got > 200 {
		t.Errorf("filter_duration_seconds observed %d times, want about 100 (one in 8 of the sampled cycle's 800 calls, none of the other cycle's)", got)
	}
	sum, err := testutil.GetHistogramMetricValue(filterDuration.ObserverMetric)
	if err != nil || sum <= 0 {
		t.Errorf("filter_duration_seconds sum %v (%v), want > 0", sum, err)
	}
}

// TestLedgerMetrics: the gauges read the ledger at scrape time; the age
// histogram is observed when a reservation ends, by outcome.
func TestLedgerMetrics(t *testing.T) {
	registerMetrics()
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
	c := &ledgerCollector{now: func() time.Time { return now }}
	c.cache.Store(cache)
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
		n, err := testutil.GetHistogramMetricCount(reservationAge.WithLabelValues(outcome))
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
