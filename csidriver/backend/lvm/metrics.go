package lvm

// The lvm commands' Prometheus metrics, in controller-runtime's registry
// (served by the node agent's manager, --metrics-bind-address of
// hwameistor-node). Backend.lvm, the one place lvm runs, observes them.
// docs/metrics.md is the reference.

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// commands are the lvm subcommands the backend runs: the values of the
// command label.
var commands = []string{"fullreport", "vgs", "lvs", "lvcreate", "lvextend", "lvchange", "lvremove"}

var (
	commandDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "hwameistor",
		Subsystem: "node",
		Name:      "lvm_command_duration_seconds",
		Help:      "Latency of the lvm commands the node agent runs, by subcommand (fullreport, vgs, lvs, lvcreate, lvextend, lvchange, lvremove), failed ones included.",
		Buckets:   []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120},
	}, []string{"command"})

	commandErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "hwameistor",
		Subsystem: "node",
		Name:      "lvm_command_errors_total",
		Help: "lvm commands that failed (non-zero exit, timeout, not runnable), by subcommand. " +
			"Includes failures the backend expects and handles, such as lvs of a volume group that does not exist.",
	}, []string{"command"})
)

func init() {
	metrics.Registry.MustRegister(commandDuration, commandErrors)
	for _, c := range commands {
		commandDuration.WithLabelValues(c)
		commandErrors.WithLabelValues(c)
	}
}

// observeCommand records one run of sub that started at start and ended
// with *err (deferred by Backend.lvm).
func observeCommand(sub string, start time.Time, err *error) {
	commandDuration.WithLabelValues(sub).Observe(time.Since(start).Seconds())
	if *err != nil {
		commandErrors.WithLabelValues(sub).Inc()
	}
}
