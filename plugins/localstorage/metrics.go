package localstorage

// The plugin's Prometheus metrics, in the kube-scheduler's registry
// (component-base legacyregistry: /metrics on the scheduler's secure port),
// registered once by the first New. docs/metrics.md is the reference.

import (
	"context"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"hwameistor.io/local/internal/placement"
)

const (
	metricsNamespace = "hwameistor"
	metricsSubsystem = "scheduler"
)

// point is an extension point that rejects, the extension_point label of
// rejections_total.
type point int

const (
	pointPreFilter point = iota
	pointFilter
	pointReserve
	numPoints
)

var pointNames = [numPoints]string{"PreFilter", "Filter", "Reserve"}

// reason is the reason label of rejections_total: a fixed set, one per kind
// of message the plugin returns (README.md, "Reasons users see").
type reason int

const (
	// Capacity (Filter, Reserve; the ledger's reasons).
	reasonInsufficientCapacity reason = iota // pool ...: need 6Gi, free 2Gi
	reasonNoVolumeSlot                       // pool ...: need 1 volume(s), 0 free
	reasonNoPoolClass                        // node has no pool LocalStorage_PoolSSD
	reasonNoStorageNode                      // node has no LocalStorageNode
	reasonNodeNotReady                       // LocalStorageNode is NotReady, not Ready
	reasonCapacityRefused                    // refused 10Gi in ...: kept off until the node reports again
	// Placement of existing volumes and HA.
	reasonVolumePinned   // node holds no ready replica of the pod's volumes (Filter)
	reasonDisjointNodes  // the pod's volumes have replicas on disjoint nodes
	reasonHANoPeer       // no second node can hold the HA replica
	reasonMigrating      // volume ... is migrating
	reasonNoReadyReplica // volume ... has no ready replica
	reasonVolumeNotFound // claim bound to our PV without a LocalVolume
	// The pod's claims and classes (PreFilter).
	reasonClaimNotFound
	reasonClaimDeleting
	reasonBadStorageClass // storageclass x: parameter poolClass: ...
	reasonBadClaim        // requests no storage size
	reasonNotSynced       // the hwameistor.io caches are not synced yet
	reasonOther
	numReasons
)

var reasonNames = [numReasons]string{
	"insufficient_capacity", "no_volume_slot", "no_pool_class", "no_storage_node", "node_not_ready", "capacity_refused",
	"volume_pinned", "disjoint_nodes", "ha_no_peer", "migrating", "no_ready_replica", "volume_not_found",
	"claim_not_found", "claim_deleting", "bad_storage_class", "bad_claim", "not_synced", "other",
}

func (r reason) String() string { return reasonNames[r] }

// pointReasons are the reasons each extension point can give; their
// series exist from the start (at 0), so increase() sees the first one.
var pointReasons = [numPoints][]reason{
	pointPreFilter: {reasonNotSynced, reasonClaimNotFound, reasonClaimDeleting, reasonBadStorageClass, reasonBadClaim,
		reasonVolumeNotFound, reasonMigrating, reasonNoReadyReplica, reasonDisjointNodes, reasonHANoPeer, reasonOther},
	pointFilter: {reasonVolumePinned, reasonInsufficientCapacity, reasonNoVolumeSlot, reasonNoPoolClass,
		reasonNoStorageNode, reasonNodeNotReady, reasonCapacityRefused, reasonHANoPeer, reasonOther},
	pointReserve: {reasonInsufficientCapacity, reasonNoVolumeSlot, reasonNoPoolClass, reasonNoStorageNode,
		reasonNodeNotReady, reasonCapacityRefused, reasonHANoPeer, reasonOther},
}

// The result label of prefilter_duration_seconds.
const (
	resultSuccess       = "success"
	resultSkip          = "skip"
	resultUnschedulable = "unschedulable"
	resultError         = "error"
)

var (
	rejections = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace: metricsNamespace,
		Subsystem: metricsSubsystem,
		Name:      "rejections_total",
		Help: "Unschedulable statuses of the LocalStorage plugin by extension point and reason. " +
			"PreFilter and Reserve count pods, Filter counts nodes (one per node rejected per pod per cycle).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"extension_point", "reason"})

	preFilterDuration = metrics.NewHistogramVec(&metrics.HistogramOpts{
		Namespace: metricsNamespace,
		Subsystem: metricsSubsystem,
		Name:      "prefilter_duration_seconds",
		Help:      "Latency of the LocalStorage plugin's PreFilter (once per pod per cycle) by result: success, skip, unschedulable, error.",
		// 10µs .. 0.33s.
		Buckets:        metrics.ExponentialBuckets(0.00001, 2, 16),
		StabilityLevel: metrics.ALPHA,
	}, []string{"result"})

	filterDuration = metrics.NewHistogram(&metrics.HistogramOpts{
		Namespace: metricsNamespace,
		Subsystem: metricsSubsystem,
		Name:      "filter_duration_seconds",
		Help: "Latency of one Filter call of the LocalStorage plugin (one node), observed for one call in 8 " +
			"of the scheduling cycles the framework samples for plugin metrics (10%).",
		// 50ns .. 1.6ms.
		Buckets:        metrics.ExponentialBuckets(0.00000005, 2, 16),
		StabilityLevel: metrics.ALPHA,
	})

	reservationAge = metrics.NewHistogramVec(&metrics.HistogramOpts{
		Namespace: metricsNamespace,
		Subsystem: metricsSubsystem,
		Name:      "ledger_reservation_age_seconds",
		Help: "How long ledger reservations held their bytes, observed when they end, by outcome: " +
			"counted (the node's status lists the volume), unreserved, expired (PreBind never ran), released (claim or volume deleted), moved.",
		Buckets:        []float64{0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200},
		StabilityLevel: metrics.ALPHA,
	}, []string{"outcome"})

	ledgerReservationsDesc = metrics.NewDesc(metricsNamespace+"_"+metricsSubsystem+"_ledger_reservations",
		"Reservations the ledger holds now (placements not yet counted in the nodes' status), by pool class and whether PreBind persisted them.",
		[]string{"pool_class", "persisted"}, nil, metrics.ALPHA, "")
	ledgerBytesDesc = metrics.NewDesc(metricsNamespace+"_"+metricsSubsystem+"_ledger_reserved_bytes",
		"Bytes the ledger holds now (rounded to the pools' extents), by pool class and whether PreBind persisted them.",
		[]string{"pool_class", "persisted"}, nil, metrics.ALPHA, "")
	ledgerOldestDesc = metrics.NewDesc(metricsNamespace+"_"+metricsSubsystem+"_ledger_oldest_reservation_age_seconds",
		"Age of the oldest reservation the ledger holds now (0 when none), by whether PreBind persisted it. Persisted reservations never expire.",
		[]string{"persisted"}, nil, metrics.ALPHA, "")

	// rejectionCounters holds the series of pointReasons once registered:
	// Filter counts each node it rejects, and looking a series up by its
	// labels costs more than the rest of a rejection.
	rejectionCounters atomic.Pointer[[numPoints][numReasons]metrics.CounterMetric]

	// ledger reads the last plugin instance's ledger at scrape time.
	ledger = &ledgerCollector{now: time.Now}

	registerOnce sync.Once
)

// registerMetrics registers the metrics with the scheduler's registry once
// and creates their known series at 0.
func registerMetrics() {
	registerOnce.Do(func() {
		legacyregistry.MustRegister(rejections, preFilterDuration, filterDuration, reservationAge)
		legacyregistry.CustomMustRegister(ledger)
		var counters [numPoints][numReasons]metrics.CounterMetric
		for p, reasons := range pointReasons {
			for _, r := range reasons {
				counters[p][r] = rejections.WithLabelValues(pointNames[p], r.String())
			}
		}
		rejectionCounters.Store(&counters)
		for _, r := range []string{resultSuccess, resultSkip, resultUnschedulable, resultError} {
			preFilterDuration.WithLabelValues(r)
		}
		for r := placement.EndReason(0); r < placement.NumEndReasons; r++ {
			reservationAge.WithLabelValues(r.String())
		}
	})
}

// exportMetrics registers the metrics and points the ledger's at this
// plugin's cache. With several profiles (one plugin each) the ledger
// metrics show the last one's.
func (pl *LocalStorage) exportMetrics() {
	registerMetrics()
	ledger.cache.Store(pl.cache)
	pl.cache.SetObserver(observeReservationEnd)
}

func observeReservationEnd(e placement.ReservationEnd) {
	reservationAge.WithLabelValues(e.Reason.String()).Observe(e.Age.Seconds())
}

// PreFilter is preFilter (filter.go), timed, with its rejections counted.
func (pl *LocalStorage) PreFilter(ctx context.Context, cs fwk.CycleState, pod *corev1.Pod, nodes []fwk.NodeInfo) (*framework.PreFilterResult, *fwk.Status) {
	start := time.Now()
	res, st := pl.preFilter(ctx, cs, pod, nodes)
	preFilterDuration.WithLabelValues(resultOf(st)).Observe(time.Since(start).Seconds())
	countRejection(pointPreFilter, st)
	return res, st
}

// filterTimedOneIn: in a sampled cycle, one Filter call in this many is
// timed.
const filterTimedOneIn = 8

// Filter is filter (filter.go) with its rejections counted. It runs per
// node in ~60ns, and two clock reads and an observation cost about twice
// that, so it is timed only in the cycles the framework samples for its own
// plugin metrics (CycleState.ShouldRecordPluginMetrics, 10%), and there for
// one call in filterTimedOneIn (a per-thread random number, no shared
// counter): about one call in 80 overall.
func (pl *LocalStorage) Filter(ctx context.Context, cs fwk.CycleState, pod *corev1.Pod, ni fwk.NodeInfo) *fwk.Status {
	timed := cs.ShouldRecordPluginMetrics() && rand.Uint32()%filterTimedOneIn == 0
	var start time.Time
	if timed {
		start = time.Now()
	}
	st := pl.filter(ctx, cs, pod, ni)
	if timed {
		filterDuration.Observe(time.Since(start).Seconds())
	}
	if st != nil {
		countRejection(pointFilter, st)
	}
	return st
}

// Reserve is reserve (reserve.go) with its rejections counted.
func (pl *LocalStorage) Reserve(ctx context.Context, cs fwk.CycleState, pod *corev1.Pod, node string) *fwk.Status {
	st := pl.reserve(ctx, cs, pod, node)
	if st != nil {
		countRejection(pointReserve, st)
	}
	return st
}

func resultOf(st *fwk.Status) string {
	switch st.Code() {
	case fwk.Success:
		return resultSuccess
	case fwk.Skip:
		return resultSkip
	case fwk.Unschedulable, fwk.UnschedulableAndUnresolvable:
		return resultUnschedulable
	}
	return resultError
}

// countRejection counts an Unschedulable status; others are not rejections.
func countRejection(p point, st *fwk.Status) {
	if code := st.Code(); code != fwk.Unschedulable && code != fwk.UnschedulableAndUnresolvable {
		return
	}
	r := classify(st.Message())
	if counters := rejectionCounters.Load(); counters != nil && counters[p][r] != nil {
		counters[p][r].Inc()
		return
	}
	rejections.WithLabelValues(pointNames[p], r.String()).Inc() // unregistered (a no-op), or unexpected
}

// classify maps a status message to its reason label. The messages come
// from this package (filter.go, claims.go, reserve.go) and from the ledger
// (placement.Cache.Check, which Reserve prefixes with "node <name>: ");
// metrics_test.go drives each of them, so a changed message that would
// fall into "other" fails a test.
func classify(msg string) reason {
	switch {
	case strings.HasPrefix(msg, ReasonReplicaLocality):
		return reasonVolumePinned
	case strings.HasPrefix(msg, ReasonNoPeer):
		return reasonHANoPeer
	case strings.HasPrefix(msg, ReasonDisjointNodes):
		return reasonDisjointNodes
	case strings.HasPrefix(msg, ReasonNotSynced):
		return reasonNotSynced
	// The ledger's reasons.
	case strings.HasPrefix(msg, placement.RefusedPrefix) || strings.Contains(msg, ": "+placement.RefusedPrefix):
		return reasonCapacityRefused
	case strings.Contains(msg, "pool ") && strings.Contains(msg, " volume(s), "):
		return reasonNoVolumeSlot
	case strings.Contains(msg, "pool ") && strings.Contains(msg, ": need "):
		return reasonInsufficientCapacity
	case strings.Contains(msg, "node has no pool "):
		return reasonNoPoolClass
	case strings.Contains(msg, "node has no LocalStorageNode"):
		return reasonNoStorageNode
	case strings.Contains(msg, "LocalStorageNode is ") && strings.HasSuffix(msg, ", not Ready"):
		return reasonNodeNotReady
	// The claims' (resolveClaims).
	case strings.Contains(msg, "; the pod waits until its new replica is ready"):
		return reasonMigrating
	case strings.Contains(msg, " has no ready replica"), strings.Contains(msg, ", whose replica is not ready"):
		return reasonNoReadyReplica
	case strings.Contains(msg, ": LocalVolume ") && strings.HasSuffix(msg, " not found"):
		return reasonVolumeNotFound
	case strings.Contains(msg, ": storageclass "):
		return reasonBadStorageClass
	case strings.HasSuffix(msg, " requests no storage size"):
		return reasonBadClaim
	case strings.HasSuffix(msg, " is being deleted"):
		return reasonClaimDeleting
	case strings.HasPrefix(msg, "persistentvolumeclaim ") && strings.HasSuffix(msg, " not found"):
		return reasonClaimNotFound
	}
	return reasonOther
}

// ledgerCollector reports the ledger's reservations at scrape time: one
// walk over the entries under the cache's read lock per scrape.
type ledgerCollector struct {
	metrics.BaseStableCollector
	cache atomic.Pointer[placement.Cache]
	now   func() time.Time
}

var _ metrics.StableCollector = &ledgerCollector{}

func (c *ledgerCollector) DescribeWithStability(ch chan<- *metrics.Desc) {
	ch <- ledgerReservationsDesc
	ch <- ledgerBytesDesc
	ch <- ledgerOldestDesc
}

func (c *ledgerCollector) CollectWithStability(ch chan<- metrics.Metric) {
	cache := c.cache.Load()
	if cache == nil {
		return
	}
	sum := cache.Summarize()
	now := c.now()
	for pool := placement.Pool(0); pool < placement.NumPools; pool++ {
		class := string(pool.Class())
		for p := range 2 {
			persisted := strconv.FormatBool(p == 1)
			ch <- metrics.NewLazyConstMetric(ledgerReservationsDesc, metrics.GaugeValue, float64(sum.Count[pool][p]), class, persisted)
			ch <- metrics.NewLazyConstMetric(ledgerBytesDesc, metrics.GaugeValue, float64(sum.Bytes[pool][p]), class, persisted)
		}
	}
	for p := range 2 {
		age := 0.0
		if !sum.Oldest[p].IsZero() {
			age = max(0, now.Sub(sum.Oldest[p]).Seconds())
		}
		ch <- metrics.NewLazyConstMetric(ledgerOldestDesc, metrics.GaugeValue, age, strconv.FormatBool(p == 1))
	}
}
