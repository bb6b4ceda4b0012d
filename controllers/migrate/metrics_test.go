package migrate

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/internal/fixture"
	"hwameistor.io/local/internal/testenv"
)

// TestMigrationStatesGauge: the gauge counts the migrations by state from
// the cache, once the manager is elected; an empty state is Submitted.
func TestMigrationStatesGauge(t *testing.T) {
	var objs []v1.LocalVolumeMigrate
	for i, s := range []v1.State{"", v1.OperationStateSubmitted, v1.OperationStateSyncReplica, v1.OperationStateSyncReplica,
		v1.OperationStateCompleted, v1.OperationStateFailed, v1.OperationStateAborting} {
		objs = append(objs, v1.LocalVolumeMigrate{ObjectMeta: metav1.ObjectMeta{Name: "m" + string(rune('a'+i))},
			Status: v1.LocalVolumeMigrateStatus{State: s}})
	}
	b := fake.NewClientBuilder().WithScheme(env.Scheme)
	for i := range objs {
		b = b.WithObjects(&objs[i])
	}
	elected := make(chan struct{})
	c := &stateCollector{}
	if n := testutil.CollectAndCount(c); n != 0 {
		t.Errorf("%d series without a cache, want none", n)
	}
	c.use(b.Build(), elected)
	if n := testutil.CollectAndCount(c); n != 0 {
		t.Errorf("%d series before the election, want none", n)
	}
	close(elected)
	want := `
# HELP hwameistor_controllers_migrations LocalVolumeMigrates in each state now (from the informer cache, reported by the elected leader only). Terminal states count the objects that still exist.
# TYPE hwameistor_controllers_migrations gauge
hwameistor_controllers_migrations{state="Submitted"} 2
hwameistor_controllers_migrations{state="AddReplica"} 0
hwameistor_controllers_migrations{state="SyncReplica"} 2
hwameistor_controllers_migrations{state="PruneReplica"} 0
hwameistor_controllers_migrations{state="Aborting"} 1
hwameistor_controllers_migrations{state="Completed"} 1
hwameistor_controllers_migrations{state="Failed"} 1
hwameistor_controllers_migrations{state="Aborted"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

// durationOf returns the count and sum of migration_duration_seconds for a
// result.
func durationOf(t *testing.T, result string) (uint64, float64) {
	t.Helper()
	m := &dto.Metric{}
	if err := migrationDuration.WithLabelValues(result).(prometheus.Histogram).Write(m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}

// TestMigrationMetrics drives a migration that completes, one that fails on
// bad input and one that is aborted, with a fake clock, and checks the
// duration histogram and the bytes counter moved by exactly their share
// (other tests of the package move them too). It also checks the served
// names.
func TestMigrationMetrics(t *testing.T) {
	fixture.Reset(t, env.Client)
	fixture.CreateNodes(t, env.Client, node{Name: "src", Free: 50 * gi}, node{Name: "n1", Free: 80 * gi})
	fixture.CreateVolume(t, env.Client, volume{Name: "vol-metrics", Replicas: []string{"src"}, Size: 4 * gi})
	fixture.CreateVolume(t, env.Client, volume{Name: "vol-metrics-abort", Replicas: []string{"src"}})
	clock := newFakeClock()
	startController(t, func(r *Reconciler) { r.Now = clock.Now })
	copied := testutil.ToFloat64(migrationBytesCopied)
	succeeded, succeededSum := durationOf(t, resultSucceeded)
	failed, _ := durationOf(t, resultFailed)
	aborted, _ := durationOf(t, resultAborted)

	// Completes after 90s (fake) with 4Gi copied in two steps.
	createMigration(t, "mig-metrics", "vol-metrics", "src")
	toSync(t, "mig-metrics", "vol-metrics")
	fixture.AgentCopied(t, env.Client, "vol-metrics", "n1", gi, "")
	waitMigration(t, "mig-metrics", "25%", func(m *v1.LocalVolumeMigrate) bool { return m.Status.Progress == "25%" })
	if got := testutil.ToFloat64(migrationBytesCopied) - copied; got != float64(gi) {
		t.Errorf("bytes copied at 25%%: %v, want %d", got, gi)
	}
	clock.Advance(90 * time.Second)
	fixture.AgentVerified(t, env.Client, "vol-metrics", "n1")
	waitState(t, "mig-metrics", v1.OperationStateCompleted)
	if got := testutil.ToFloat64(migrationBytesCopied) - copied; got != float64(4*gi) {
		t.Errorf("bytes copied after the migration: %v, want %d", got, 4*gi)
	}
	n, sum := durationOf(t, resultSucceeded)
	if n-succeeded != 1 || sum-succeededSum != 90 {
		t.Errorf("migration_duration_seconds{result=succeeded}: %d more observations summing %vs, want 1 of 90s", n-succeeded, sum-succeededSum)
	}

	// Fails on bad input; is aborted while copying.
	createMigration(t, "mig-metrics-bad", "vol-missing", "src")
	waitState(t, "mig-metrics-bad", v1.OperationStateFailed)
	createMigration(t, "mig-metrics-abort", "vol-metrics-abort", "src")
	toSync(t, "mig-metrics-abort", "vol-metrics-abort")
	fixture.Edit(t, env.Client, "mig-metrics-abort", func(m *v1.LocalVolumeMigrate) { m.Spec.Abort = true })
	waitState(t, "mig-metrics-abort", v1.OperationStateAborted)
	if n, _ := durationOf(t, resultFailed); n-failed != 1 {
		t.Errorf("migration_duration_seconds{result=failed}: %d more observations, want 1", n-failed)
	}
	if n, _ := durationOf(t, resultAborted); n-aborted != 1 {
		t.Errorf("migration_duration_seconds{result=aborted}: %d more observations, want 1", n-aborted)
	}

	// The names on the manager's /metrics (the same handler over the
	// same registry), with the states from this manager's cache.
	body := testenv.Scrape(t, promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	for _, line := range []string{
		`hwameistor_controllers_migrations{state="Completed"} 1`,
		`hwameistor_controllers_migrations{state="Failed"} 1`,
		`hwameistor_controllers_migrations{state="Aborted"} 1`,
		`hwameistor_controllers_migration_duration_seconds_count{result="succeeded"}`,
		`hwameistor_controllers_migration_bytes_copied_total `,
		`controller_runtime_reconcile_errors_total{controller="localvolumemigrate"}`,
	} {
		if !strings.Contains(body, "\n"+line) {
			t.Errorf("/metrics has no %s", line)
		}
	}
}
