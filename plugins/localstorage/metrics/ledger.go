package metrics

import (
	"strconv"
	"sync/atomic"
	"time"

	"k8s.io/component-base/metrics"

	"hwameistor.io/local/internal/placement"
)

var (
	ledgerReservationsDesc = metrics.NewDesc(Namespace+"_"+Subsystem+"_ledger_reservations",
		"Reservations the ledger holds now (placements not yet counted in the nodes' status), by pool class and whether PreBind persisted them.",
		[]string{"pool_class", "persisted"}, nil, metrics.ALPHA, "")
	ledgerBytesDesc = metrics.NewDesc(Namespace+"_"+Subsystem+"_ledger_reserved_bytes",
		"Bytes the ledger holds now (rounded to the pools' extents), by pool class and whether PreBind persisted them.",
		[]string{"pool_class", "persisted"}, nil, metrics.ALPHA, "")
	ledgerOldestDesc = metrics.NewDesc(Namespace+"_"+Subsystem+"_ledger_oldest_reservation_age_seconds",
		"Age of the oldest reservation the ledger holds now (0 when none), by whether PreBind persisted it. Persisted reservations never expire.",
		[]string{"persisted"}, nil, metrics.ALPHA, "")
)

// LedgerCollector reports a ledger's reservations at scrape time: one walk
// over the entries under the cache's read lock per scrape. Register
// registers one, which SetLedger points at the plugin's cache.
type LedgerCollector struct {
	metrics.BaseStableCollector
	cache atomic.Pointer[placement.Cache]
	now   func() time.Time
}

var _ metrics.StableCollector = &LedgerCollector{}

// NewLedgerCollector returns a collector without a ledger (it reports
// nothing until SetCache) that reads the time from now.
func NewLedgerCollector(now func() time.Time) *LedgerCollector {
	return &LedgerCollector{now: now}
}

// SetCache points the collector at cache.
func (c *LedgerCollector) SetCache(cache *placement.Cache) { c.cache.Store(cache) }

// DescribeWithStability implements metrics.StableCollector.
func (c *LedgerCollector) DescribeWithStability(ch chan<- *metrics.Desc) {
	ch <- ledgerReservationsDesc
	ch <- ledgerBytesDesc
	ch <- ledgerOldestDesc
}

// CollectWithStability implements metrics.StableCollector.
func (c *LedgerCollector) CollectWithStability(ch chan<- metrics.Metric) {
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
