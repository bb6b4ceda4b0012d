package migrate

// The migration controller's Prometheus metrics, in controller-runtime's
// registry (served by the manager's metrics endpoint, --metrics-bind-address
// of hwameistor-controllers). docs/metrics.md is the reference.
//
// Migrations by state are a gauge read from the informer cache at scrape
// time rather than counters of transitions: "how many are in SyncReplica
// now" is the question an operator asks, and a count of the objects is
// right after a restart, a leader change or a migration deleted mid-way,
// which counters kept in memory are not. Ends (and their rate, by result)
// are counted by the duration histogram.

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// The result label of migration_duration_seconds.
const (
	resultSucceeded = "succeeded"
	resultFailed    = "failed"
	resultAborted   = "aborted"
)

// migrationStates are the values of the state label, in the order of the
// state machine; a migration without a state counts as Submitted.
var migrationStates = []v1.State{
	v1.OperationStateSubmitted, v1.OperationStateAddReplica, v1.OperationStateSyncReplica, v1.OperationStatePruneReplica,
	v1.OperationStateAborting, v1.OperationStateCompleted, v1.OperationStateFailed, v1.OperationStateAborted,
}

var (
	migrationDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "hwameistor",
		Subsystem: "controllers",
		Name:      "migration_duration_seconds",
		Help: "Duration of the LocalVolumeMigrates this controller ended, from status.startTime (when the target was chosen; " +
			"the creation when it never started) to the end, by result: succeeded, failed, aborted.",
		Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 7200},
	}, []string{"result"})

	migrationBytesCopied = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "hwameistor",
		Subsystem: "controllers",
		Name:      "migration_bytes_copied_total",
		Help: "Bytes the node agents copied for migrations, as this controller read them from the target replicas " +
			"(the growth of status.bytesCopied; a copy restarted after a failure counts again).",
	})

	migrationsDesc = prometheus.NewDesc("hwameistor_controllers_migrations",
		"LocalVolumeMigrates in each state now (from the informer cache, reported by the elected leader only). "+
			"Terminal states count the objects that still exist.",
		[]string{"state"}, nil)

	// stateGauge reads the cache of the last manager set up.
	stateGauge = &stateCollector{}
)

func init() {
	metrics.Registry.MustRegister(migrationDuration, migrationBytesCopied, stateGauge)
	for _, r := range []string{resultSucceeded, resultFailed, resultAborted} {
		migrationDuration.WithLabelValues(r)
	}
}

// recordStatus observes a status written over prev: bytes copied since,
// and the duration when the migration has just ended.
func recordStatus(prev *v1.LocalVolumeMigrateStatus, m *v1.LocalVolumeMigrate, now time.Time) {
	st := &m.Status
	if d := st.BytesCopied - prev.BytesCopied; d > 0 {
		migrationBytesCopied.Add(float64(d))
	}
	if prev.State.Finished() || !st.State.Finished() {
		return
	}
	start, end := m.CreationTimestamp.Time, now
	if st.StartTime != nil {
		start = st.StartTime.Time
	}
	if st.CompletionTime != nil {
		end = st.CompletionTime.Time
	}
	result := resultSucceeded
	switch st.State {
	case v1.OperationStateFailed:
		result = resultFailed
	case v1.OperationStateAborted:
		result = resultAborted
	}
	migrationDuration.WithLabelValues(result).Observe(max(0, end.Sub(start).Seconds()))
}

// stateCollector counts the LocalVolumeMigrates by state at scrape time. It
// reports nothing until its manager is elected: every replica's cache holds
// the same objects, and only the leader's numbers should be summed.
type stateCollector struct {
	mu      sync.Mutex
	reader  client.Reader
	elected <-chan struct{}
}

// use makes the collector read reader once elected is closed.
func (c *stateCollector) use(reader client.Reader, elected <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reader, c.elected = reader, elected
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- migrationsDesc }

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	reader, elected := c.reader, c.elected
	c.mu.Unlock()
	if reader == nil {
		return
	}
	select {
	case <-elected:
	default:
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	list := &v1.LocalVolumeMigrateList{}
	if err := reader.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
		return // an invalid metric would fail the whole scrape
	}
	counts := map[v1.State]int{}
	for i := range list.Items {
		s := list.Items[i].Status.State
		if s == "" {
			s = v1.OperationStateSubmitted
		}
		counts[s]++
	}
	for _, s := range migrationStates {
		ch <- prometheus.MustNewConstMetric(migrationsDesc, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
}
