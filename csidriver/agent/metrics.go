package agent

// The node agent's pool metrics, in controller-runtime's registry (served
// by the manager, --metrics-bind-address of hwameistor-node). ReportNode
// sets them each time it reads a node's pools: after allocations and
// deletions, and every --report-interval. docs/metrics.md is the reference.

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/backend"
)

var (
	poolTotalBytes  = newPoolGauge("pool_total_bytes", "Size of each pool of the nodes this agent serves, by node and pool class.")
	poolFreeBytes   = newPoolGauge("pool_free_bytes", "Free bytes of each pool of the nodes this agent serves, by node and pool class.")
	poolVolumes     = newPoolGauge("pool_volumes", "Volumes (of this driver) in each pool of the nodes this agent serves, by node and pool class.")
	poolVolumeLimit = newPoolGauge("pool_volume_limit", "Most volumes each pool of the nodes this agent serves may hold, by node and pool class.")

	poolGauges = []*prometheus.GaugeVec{poolTotalBytes, poolFreeBytes, poolVolumes, poolVolumeLimit}
)

func newPoolGauge(name, help string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "hwameistor", Subsystem: "node", Name: name, Help: help},
		[]string{"node", "class"})
}

func init() {
	for _, g := range poolGauges {
		metrics.Registry.MustRegister(g)
	}
}

// recordPools sets the node's pool gauges from what the backend reported;
// a class the node no longer has loses its series.
func recordPools(node string, pools []backend.Pool) {
	seen := map[v1.PoolClass]bool{}
	for _, p := range pools {
		seen[p.Class] = true
		class := string(p.Class)
		poolTotalBytes.WithLabelValues(node, class).Set(float64(p.TotalBytes))
		poolFreeBytes.WithLabelValues(node, class).Set(float64(p.FreeBytes))
		poolVolumes.WithLabelValues(node, class).Set(float64(p.VolumeCount))
		poolVolumeLimit.WithLabelValues(node, class).Set(float64(p.VolumeCountLimit))
	}
	for _, c := range v1.PoolClasses {
		if !seen[c] {
			for _, g := range poolGauges {
				g.DeleteLabelValues(node, string(c))
			}
		}
	}
}
