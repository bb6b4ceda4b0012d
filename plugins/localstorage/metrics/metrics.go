// Package metrics holds the LocalStorage scheduler plugin's Prometheus
// metrics, in the kube-scheduler's registry (component-base legacyregistry:
// /metrics on the scheduler's secure port), registered once by the plugin's
// first New. The plugin hands it typed values (an extension point and a
// Reason), never messages. docs/metrics.md is the reference.
package metrics

import (
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"

	"hwameistor.io/local/internal/placement"
)

const (
	// Namespace and Subsystem prefix every metric name:
	// hwameistor_scheduler_….
	Namespace = "hwameistor"
	Subsystem = "scheduler"
)

// Point is an extension point that rejects: the extension_point label of
// rejections_total.
type Point uint8

const (
	PreFilter Point = iota
	Filter
	Reserve
	// NumPoints counts the points.
	NumPoints
)

var pointNames = [NumPoints]string{"PreFilter", "Filter", "Reserve"}

func (p Point) String() string { return pointNames[p] }

// Reason is the reason label of rejections_total: a fixed set, one per kind
// of message the plugin returns (the plugin's README, "Reasons users see").
// The zero Reason is Other, so a rejection whose code forgot its reason is
// counted, and a test that expects its own label fails.
type Reason uint8

const (
	// Other: anything else (a lister error).
	Other Reason = iota
	// Capacity (Filter, Reserve): the ledger's verdicts (placement.Code).
	InsufficientCapacity // pool ...: need 6Gi, free 2Gi
	NoVolumeSlot         // pool ...: need 1 volume(s), 0 free
	NoPoolClass          // node has no pool LocalStorage_PoolSSD
	NoStorageNode        // node has no LocalStorageNode
	NodeNotReady         // LocalStorageNode is NotReady, not Ready
	VolumeTooLarge       // pool ... takes volumes up to 1Ti, 2Ti requested
	CapacityRefused      // refused 10Gi in ...: kept off until the node reports again
	NoDRBD               // node cannot replicate HA volumes: ...
	// Placement of existing volumes and HA.
	VolumePinned   // node holds no ready replica of the pod's volumes (Filter)
	DisjointNodes  // the pod's volumes have replicas on disjoint nodes
	HANoPeer       // no second node can hold the HA replica
	Migrating      // volume ... is migrating
	NoReadyReplica // volume ... has no ready replica
	VolumeNotFound // claim bound to our PV without a LocalVolume
	// The pod's claims and classes (PreFilter).
	ClaimNotFound
	ClaimDeleting
	BadStorageClass // storageclass x: parameter poolClass: ...
	BadClaim        // requests no storage size
	NotSynced       // the hwameistor.io caches are not synced yet
	// NumReasons counts the reasons.
	NumReasons
)

var reasonNames = [NumReasons]string{
	"other",
	"insufficient_capacity", "no_volume_slot", "no_pool_class", "no_storage_node", "node_not_ready", "volume_too_large", "capacity_refused", "no_drbd",
	"volume_pinned", "disjoint_nodes", "ha_no_peer", "migrating", "no_ready_replica", "volume_not_found",
	"claim_not_found", "claim_deleting", "bad_storage_class", "bad_claim", "not_synced",
}

// String is the label value.
func (r Reason) String() string { return reasonNames[r] }

// codeReasons maps the ledger's verdicts to their labels.
var codeReasons = [placement.NumCodes]Reason{
	placement.Fits:                 Other, // not a rejection
	placement.NoStorageNode:        NoStorageNode,
	placement.NodeNotReady:         NodeNotReady,
	placement.NoPool:               NoPoolClass,
	placement.VolumeTooLarge:       VolumeTooLarge,
	placement.InsufficientCapacity: InsufficientCapacity,
	placement.NoVolumeSlot:         NoVolumeSlot,
	placement.CapacityRefused:      CapacityRefused,
	placement.NoDRBD:               NoDRBD,
}

// ReasonOf is the label of a ledger verdict (placement.Cache.Check, and
// the *placement.NodeError of its Reserve).
func ReasonOf(c placement.Code) Reason {
	if c < placement.NumCodes {
		return codeReasons[c]
	}
	return Other
}

// capacityReasons are the ledger's rejections, which Filter and Reserve give.
var capacityReasons = []Reason{InsufficientCapacity, NoVolumeSlot, NoPoolClass, NoStorageNode, NodeNotReady, VolumeTooLarge, CapacityRefused, NoDRBD}

// PointReasons are the reasons each extension point can give; their series
// exist from the start (at 0), so increase() sees the first one.
var PointReasons = [NumPoints][]Reason{
	PreFilter: {NotSynced, ClaimNotFound, ClaimDeleting, BadStorageClass, BadClaim,
		VolumeNotFound, Migrating, NoReadyReplica, DisjointNodes, HANoPeer, Other},
	Filter:  append(append([]Reason{VolumePinned}, capacityReasons...), HANoPeer, Other),
	Reserve: append(append([]Reason(nil), capacityReasons...), HANoPeer, Other),
}

// The result label of prefilter_duration_seconds.
const (
	ResultSuccess       = "success"
	ResultSkip          = "skip"
	ResultUnschedulable = "unschedulable"
	ResultError         = "error"
)

var (
	// Rejections counts the plugin's Unschedulable statuses; use
	// CountRejection.
	Rejections = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace: Namespace,
		Subsystem: Subsystem,
		Name:      "rejections_total",
		Help: "Unschedulable statuses of the LocalStorage plugin by extension point and reason. " +
			"PreFilter and Reserve count pods, Filter counts nodes (one per node rejected per pod per cycle).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"extension_point", "reason"})

	// PreFilterDuration times PreFilter by result (ResultSuccess, …).
	PreFilterDuration = metrics.NewHistogramVec(&metrics.HistogramOpts{
		Namespace: Namespace,
		Subsystem: Subsystem,
		Name:      "prefilter_duration_seconds",
		Help:      "Latency of the LocalStorage plugin's PreFilter (once per pod per cycle) by result: success, skip, unschedulable, error.",
		// 10µs .. 0.33s.
		Buckets:        metrics.ExponentialBuckets(0.00001, 2, 16),
		StabilityLevel: metrics.ALPHA,
	}, []string{"result"})

	// FilterDuration times the Filter calls the plugin samples.
	FilterDuration = metrics.NewHistogram(&metrics.HistogramOpts{
		Namespace: Namespace,
		Subsystem: Subsystem,
		Name:      "filter_duration_seconds",
		Help: "Latency of one Filter call of the LocalStorage plugin (one node), observed for one call in 8 " +
			"of the scheduling cycles the framework samples for plugin metrics (10%).",
		// 50ns .. 1.6ms.
		Buckets:        metrics.ExponentialBuckets(0.00000005, 2, 16),
		StabilityLevel: metrics.ALPHA,
	})

	// ReservationAge is observed when a ledger reservation ends
	// (ObserveReservationEnd), by outcome.
	ReservationAge = metrics.NewHistogramVec(&metrics.HistogramOpts{
		Namespace: Namespace,
		Subsystem: Subsystem,
		Name:      "ledger_reservation_age_seconds",
		Help: "How long ledger reservations held their bytes, observed when they end, by outcome: " +
			"counted (the node's status lists the volume), unreserved, expired (PreBind never ran), released (claim or volume deleted), moved.",
		Buckets:        []float64{0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200},
		StabilityLevel: metrics.ALPHA,
	}, []string{"outcome"})

	// rejectionCounters holds the series of PointReasons once registered:
	// Filter counts each node it rejects, and looking a series up by its
	// labels costs more than the rest of a rejection.
	rejectionCounters atomic.Pointer[[NumPoints][NumReasons]metrics.CounterMetric]

	// ledger reads the last plugin instance's ledger at scrape time.
	ledger = NewLedgerCollector(time.Now)

	registerOnce sync.Once
)

// Register registers the metrics with the scheduler's registry once and
// creates their known series at 0.
func Register() {
	registerOnce.Do(func() {
		legacyregistry.MustRegister(Rejections, PreFilterDuration, FilterDuration, ReservationAge)
		legacyregistry.CustomMustRegister(ledger)
		var counters [NumPoints][NumReasons]metrics.CounterMetric
		for p, reasons := range PointReasons {
			for _, r := range reasons {
				counters[p][r] = Rejections.WithLabelValues(Point(p).String(), r.String())
			}
		}
		rejectionCounters.Store(&counters)
		for _, r := range []string{ResultSuccess, ResultSkip, ResultUnschedulable, ResultError} {
			PreFilterDuration.WithLabelValues(r)
		}
		for r := placement.EndReason(0); r < placement.NumEndReasons; r++ {
			ReservationAge.WithLabelValues(r.String())
		}
	})
}

// CountRejection counts one rejection at p for r. It does not allocate
// for the reasons PointReasons lists.
func CountRejection(p Point, r Reason) {
	if counters := rejectionCounters.Load(); counters != nil && counters[p][r] != nil {
		counters[p][r].Inc()
		return
	}
	Rejections.WithLabelValues(p.String(), r.String()).Inc() // unregistered (a no-op), or unexpected
}

// SetLedger points the ledger metrics at cache: with several profiles
// (one plugin each) they show the last one's. It also observes the
// reservations' ends in ReservationAge.
func SetLedger(cache *placement.Cache) {
	ledger.SetCache(cache)
	cache.SetObserver(ObserveReservationEnd)
}

// ObserveReservationEnd is the ledger's observer (placement.Cache.SetObserver).
func ObserveReservationEnd(e placement.ReservationEnd) {
	ReservationAge.WithLabelValues(e.Reason.String()).Observe(e.Age.Seconds())
}
