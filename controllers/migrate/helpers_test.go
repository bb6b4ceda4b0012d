package migrate

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	ctrl "sigs.k8s.io/controller-runtime"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/internal/fixture"
	"hwameistor.io/local/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

const gi = fixture.Gi

// fakeClock is a Reconciler's Now that a test moves forward.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// startController runs only the migration Reconciler, configured by
// configure, in a manager until stop is called or the test ends. Events go
// to the apiserver (corev1 Events), as in the binary.
func startController(t *testing.T, configure ...func(*Reconciler)) (stop func()) {
	t.Helper()
	return env.StartManager(t, func(_ context.Context, mgr ctrl.Manager) error {
		r := &Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorderFor("hwameistor-migrate")}
		for _, c := range configure {
			c(r)
		}
		return r.SetupWithManager(mgr)
	})
}

// The kinds of the shared fixture, under the names the tests use.
type (
	node   = fixture.Node
	volume = fixture.Volume
)

// createMigration creates a LocalVolumeMigrate of volume off source.
func createMigration(t *testing.T, name, volume, source string, spec ...func(*v1.LocalVolumeMigrateSpec)) {
	t.Helper()
	m := &v1.LocalVolumeMigrate{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.LocalVolumeMigrateSpec{VolumeName: volume, SourceNode: source}}
	for _, s := range spec {
		s(&m.Spec)
	}
	fixture.Create(t, env.Client, m)
}

func getMigration(t *testing.T, name string) *v1.LocalVolumeMigrate {
	t.Helper()
	return fixture.Get[*v1.LocalVolumeMigrate](t, env.Client, name)
}

// waitMigration waits until cond holds for the migration and returns it;
// on a timeout it logs the last status seen.
func waitMigration(t *testing.T, name, what string, cond func(*v1.LocalVolumeMigrate) bool) *v1.LocalVolumeMigrate {
	t.Helper()
	return fixture.Wait(t, env.Client, name, what, cond)
}

func waitState(t *testing.T, name string, state v1.State) *v1.LocalVolumeMigrate {
	t.Helper()
	return waitMigration(t, name, "state "+string(state), func(m *v1.LocalVolumeMigrate) bool { return m.Status.State == state })
}

// waitEvents waits for Events with each of reasons about the migration.
func waitEvents(t *testing.T, migration string, reasons ...string) {
	t.Helper()
	fixture.WaitEvents[*v1.LocalVolumeMigrate](t, env.Client, migration, reasons...)
}

// guard watches every LocalVolumeReplica and LocalVolumeMigrate for the
// whole test, seeing each change in order (a watch, not sampling), and
// records violations of:
//   - the invariant: a replica is deleted only while another replica of its
//     volume is Ready and Synced (for a migration target, Synced means its
//     copy was verified);
//   - one target per volume: the replicas ever created for a volume are
//     counted by UID.
//
// It also records the largest number of migrations active at once, overall
// and per source node.
type guard struct {
	mu         sync.Mutex
	replicas   map[string]*v1.LocalVolumeReplica // by name, the latest seen
	created    map[string]map[string]string      // volume -> UID -> node
	migrations map[string]*v1.LocalVolumeMigrate
	maxActive  int
	maxPerNode int
	violations []string
	stop       func()
}

func watchCluster(t *testing.T) *guard {
	t.Helper()
	g := &guard{replicas: map[string]*v1.LocalVolumeReplica{}, created: map[string]map[string]string{},
		migrations: map[string]*v1.LocalVolumeMigrate{}}
	stopReplicas := fixture.Watch(t, env.Config, env.Scheme, &v1.LocalVolumeReplicaList{}, g.replicaEvent, g.endedEarly("replica"))
	stopMigrations := fixture.Watch(t, env.Config, env.Scheme, &v1.LocalVolumeMigrateList{}, g.migrationEvent, g.endedEarly("migration"))
	g.stop = func() {
		stopReplicas()
		stopMigrations()
	}
	return g
}

// endedEarly records a watch that ended before the test stopped it.
func (g *guard) endedEarly(what string) func() {
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.violations = append(g.violations, "the "+what+" watch ended early")
	}
}

func (g *guard) replicaEvent(ev watch.Event) {
	rep, ok := ev.Object.(*v1.LocalVolumeReplica)
	if !ok {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.created[rep.Spec.VolumeName] == nil {
		g.created[rep.Spec.VolumeName] = map[string]string{}
	}
	g.created[rep.Spec.VolumeName][string(rep.UID)] = rep.Spec.NodeName
	switch {
	case ev.Type == watch.Deleted:
		delete(g.replicas, rep.Name)
		g.checkRemoval(rep)
	case rep.DeletionTimestamp != nil:
		g.replicas[rep.Name] = rep
		g.checkRemoval(rep)
	default:
		g.replicas[rep.Name] = rep
	}
}

// checkRemoval: some other replica of the volume must hold the data.
func (g *guard) checkRemoval(gone *v1.LocalVolumeReplica) {
	for _, r := range g.replicas {
		if r.Spec.VolumeName == gone.Spec.VolumeName && r.Name != gone.Name && r.DeletionTimestamp == nil &&
			r.Status.State == v1.StateReady && r.Status.Synced {
			return
		}
	}
	g.violations = append(g.violations, fmt.Sprintf("replica of %s on %s removed while no other replica holds verified data", gone.Spec.VolumeName, gone.Spec.NodeName))
}

func (g *guard) migrationEvent(ev watch.Event) {
	m, ok := ev.Object.(*v1.LocalVolumeMigrate)
	if !ok {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if ev.Type == watch.Deleted {
		delete(g.migrations, m.Name)
	} else {
		g.migrations[m.Name] = m
	}
	total, perNode := 0, map[string]int{}
	for _, o := range g.migrations {
		if o.Status.State.HoldsCopySlot() {
			total++
			perNode[o.Spec.SourceNode]++
		}
	}
	g.maxActive = max(g.maxActive, total)
	for _, n := range perNode {
		g.maxPerNode = max(g.maxPerNode, n)
	}
}

// check stops the watches and fails the test on any violation.
func (g *guard) check(t *testing.T) {
	t.Helper()
	g.stop()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, v := range g.violations {
		t.Error(v)
	}
}

// replicasCreated is how many replica objects volume ever had, by node.
func (g *guard) replicasCreated(volume string) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for _, n := range g.created[volume] {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (g *guard) maxConcurrent() (total, perNode int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.maxActive, g.maxPerNode
}

// volumeSnapshot is what a failed or rolled-back migration must leave as it
// was: the replicas, the accessibility, the group and the annotations.
func volumeSnapshot(lv *v1.LocalVolume) string {
	var reps []string
	if lv.Spec.Config != nil {
		for _, r := range lv.Spec.Config.Replicas {
			reps = append(reps, fmt.Sprintf("%s/primary=%v", r.Hostname, r.Primary))
		}
	}
	var ann []string
	for k, v := range lv.Annotations {
		ann = append(ann, k+"="+v)
	}
	sort.Strings(ann)
	return fmt.Sprintf("replicas=%v accessibility=%v annotations=%v", reps, lv.Spec.Accessibility.Nodes, strings.Join(ann, ","))
}
