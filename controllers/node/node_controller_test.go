package node

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/agent"
	"hwameistor.io/local/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// startController runs the reconciler in a manager until stop is called or
// the test ends, and returns the recorder's events.
func startController(t *testing.T) (rec *record.FakeRecorder, stop func()) {
	t.Helper()
	rec = record.NewFakeRecorder(1000)
	stop = env.StartManager(t, func(ctx context.Context, mgr ctrl.Manager) error {
		return (&Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: rec}).SetupWithManager(ctx, mgr)
	})
	return rec, stop
}

// consistently fails if cond turns false within d.
func consistently(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !cond() {
			t.Fatalf("no longer true: %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func createNode(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := env.Client.Create(context.Background(), n); err != nil {
		t.Fatal(err)
	}
}

func setNodeLabels(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	n := &corev1.Node{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: name}, n); err != nil {
		t.Fatal(err)
	}
	n.Labels = labels
	if err := env.Client.Update(context.Background(), n); err != nil {
		t.Fatal(err)
	}
}

func deleteNode(t *testing.T, name string) {
	t.Helper()
	if err := env.Client.Delete(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "node gone", func() bool {
		return apierrors.IsNotFound(env.Client.Get(context.Background(), client.ObjectKey{Name: name}, &corev1.Node{}))
	})
}

// createLSN creates a LocalStorageNode as the node agent does, and reports
// state (when not empty).
func createLSN(t *testing.T, name string, topo v1.Topology, state v1.State) {
	t.Helper()
	lsn := &v1.LocalStorageNode{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.LocalStorageNodeSpec{Hostname: name, Topo: topo}}
	if err := env.Client.Create(context.Background(), lsn); err != nil {
		t.Fatal(err)
	}
	if state != "" {
		report(t, name, state)
	}
}

// report writes status.state as the node agent's report does (a report
// that loses a race with the controller's write is made again).
func report(t *testing.T, name string, state v1.State) {
	t.Helper()
	ctx := context.Background()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		lsn := getLSN(t, name)
		lsn.Status.State = state
		lsn.Status.Pools = map[string]v1.LocalPool{v1.PoolNameHDD: {
			Name: v1.PoolNameHDD, Class: v1.PoolClassHDD, Type: v1.PoolTypeRegular,
			TotalCapacityBytes: 100 << 30, FreeCapacityBytes: 100 << 30, TotalVolumeCount: 1000, FreeVolumeCount: 1000,
		}}
		return env.Client.Status().Update(ctx, lsn)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func getLSN(t *testing.T, name string) *v1.LocalStorageNode {
	t.Helper()
	lsn := &v1.LocalStorageNode{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: name}, lsn); err != nil {
		t.Fatal(err)
	}
	return lsn
}

func registered(lsn *v1.LocalStorageNode) *metav1.Condition {
	return meta.FindStatusCondition(lsn.Status.Conditions, ConditionNodeRegistered)
}

// events drains what the recorder holds now.
func events(rec *record.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func expectEvent(t *testing.T, rec *record.FakeRecorder, prefix string) string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-rec.Events:
			if strings.HasPrefix(e, prefix) {
				return e
			}
		case <-deadline:
			t.Fatalf("no event %q", prefix)
		}
	}
}

func countPrefix(evs []string, prefix string) int {
	n := 0
	for _, e := range evs {
		if strings.HasPrefix(e, prefix) {
			n++
		}
	}
	return n
}

const (
	zoneLabel   = corev1.LabelTopologyZone
	regionLabel = corev1.LabelTopologyRegion
)

// TestTopology: rule (b), spec.topogoly follows the Node's topology labels;
// a label the Node lacks leaves the field as the agent wrote it.
func TestTopology(t *testing.T) {
	rec, _ := startController(t)
	cases := []struct {
		name    string
		initial v1.Topology       // as the node agent created the LSN
		labels  map[string]string // the Node's labels at first
		relabel map[string]string // then, when not nil
		want    v1.Topology
	}{
		{name: "labels copied", labels: map[string]string{zoneLabel: "z1", regionLabel: "r1"},
			want: v1.Topology{Zone: "z1", Region: "r1"}},
		{name: "label overrides the agent's value", initial: v1.Topology{Zone: "cfg"}, labels: map[string]string{zoneLabel: "z1"},
			want: v1.Topology{Zone: "z1"}},
		{name: "no labels keep the agent's value", initial: v1.Topology{Zone: "cfg", Region: "rcfg"}, labels: nil,
			want: v1.Topology{Zone: "cfg", Region: "rcfg"}},
		{name: "relabelled", labels: map[string]string{zoneLabel: "z1", regionLabel: "r1"},
			relabel: map[string]string{zoneLabel: "z2", regionLabel: "r2"}, want: v1.Topology{Zone: "z2", Region: "r2"}},
		{name: "label removed keeps the last value", labels: map[string]string{zoneLabel: "z1", regionLabel: "r1"},
			relabel: map[string]string{regionLabel: "r1"}, want: v1.Topology{Zone: "z1", Region: "r1"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("topo-%d", i)
			createNode(t, name, tc.labels)
			createLSN(t, name, tc.initial, v1.StateReady)
			if tc.relabel != nil {
				first := tc.initial
				if z, ok := tc.labels[zoneLabel]; ok {
					first.Zone = z
				}
				if r, ok := tc.labels[regionLabel]; ok {
					first.Region = r
				}
				testenv.Eventually(t, "first labels copied", func() bool { return getLSN(t, name).Spec.Topo == first })
				setNodeLabels(t, name, tc.relabel)
			}
			if tc.want == tc.initial || tc.relabel != nil && tc.relabel[zoneLabel] == "" {
				consistently(t, "topology stays", 2*time.Second, func() bool { return getLSN(t, name).Spec.Topo == tc.want })
			} else {
				testenv.Eventually(t, fmt.Sprintf("topology %+v", tc.want), func() bool { return getLSN(t, name).Spec.Topo == tc.want })
			}
			lsn := getLSN(t, name)
			if lsn.Status.State != v1.StateReady || registered(lsn) != nil {
				t.Errorf("status touched for a node that never went away: %+v", lsn.Status)
			}
		})
	}
	if n := countPrefix(events(rec), "Normal "+EventTopologyChanged); n != 5 {
		// labels copied, override, relabelled (2), label removed (1 first copy)
		t.Errorf("%d topology events, want 5", n)
	}
}

// TestNodeGoneAndBack: rule (a), a deleted Node makes its LocalStorageNode
// Offline (kept, with a condition and one Warning event, even while an
// agent keeps reporting Ready); a Node that comes back gets its condition
// back and its state left to the agent.
func TestNodeGoneAndBack(t *testing.T) {
	rec, _ := startController(t)
	createNode(t, "gone", map[string]string{zoneLabel: "z1"})
	createLSN(t, "gone", v1.Topology{}, v1.StateReady)
	testenv.Eventually(t, "zone copied", func() bool { return getLSN(t, "gone").Spec.Topo.Zone == "z1" })

	deleteNode(t, "gone")
	testenv.Eventually(t, "Offline", func() bool { return getLSN(t, "gone").Status.State == v1.StateOffline })
	lsn := getLSN(t, "gone")
	c := registered(lsn)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != ReasonNodeDeleted || !strings.Contains(c.Message, "volumes stay") {
		t.Errorf("condition %+v", c)
	}
	if len(lsn.Status.Pools) != 1 || lsn.Spec.Topo.Zone != "z1" {
		t.Errorf("pools or topology touched: %+v %+v", lsn.Spec, lsn.Status)
	}
	if e := expectEvent(t, rec, "Warning "+ReasonNodeDeleted); !strings.Contains(e, "Offline") {
		t.Errorf("event %q", e)
	}

	// An agent still reporting Ready for the absent node: back to Offline,
	// without a second Warning.
	report(t, "gone", v1.StateReady)
	testenv.Eventually(t, "Offline again", func() bool { return getLSN(t, "gone").Status.State == v1.StateOffline })
	if n := countPrefix(events(rec), "Warning "+ReasonNodeDeleted); n != 0 {
		t.Errorf("%d more NodeDeleted events", n)
	}

	createNode(t, "gone", map[string]string{zoneLabel: "z1"})
	testenv.Eventually(t, "condition True", func() bool {
		c := registered(getLSN(t, "gone"))
		return c != nil && c.Status == metav1.ConditionTrue && c.Reason == ReasonNodeRegistered
	})
	expectEvent(t, rec, "Normal "+ReasonNodeRegistered)
	consistently(t, "state left to the agent", 2*time.Second, func() bool { return getLSN(t, "gone").Status.State == v1.StateOffline })
	report(t, "gone", v1.StateReady)
	consistently(t, "the agent's Ready stays", 2*time.Second, func() bool { return getLSN(t, "gone").Status.State == v1.StateReady })
}

// TestNeverDeletesLSN: a LocalStorageNode without any Node (never had one,
// or lost it) is Offline and stays.
func TestNeverDeletesLSN(t *testing.T) {
	startController(t)
	createLSN(t, "orphan", v1.Topology{Zone: "z9"}, v1.StateReady)
	testenv.Eventually(t, "Offline", func() bool { return getLSN(t, "orphan").Status.State == v1.StateOffline })
	consistently(t, "still there", 2*time.Second, func() bool {
		return getLSN(t, "orphan").DeletionTimestamp == nil
	})
}

// TestRestart: a fresh controller over LocalStorageNodes it already handled
// writes nothing and says nothing.
func TestRestart(t *testing.T) {
	ctx := context.Background()
	_, stop := startController(t)
	createNode(t, "rs-up", map[string]string{zoneLabel: "z1", regionLabel: "r1"})
	createLSN(t, "rs-up", v1.Topology{}, v1.StateReady)
	createNode(t, "rs-down", nil)
	createLSN(t, "rs-down", v1.Topology{}, v1.StateReady)
	createNode(t, "rs-back", nil)
	createLSN(t, "rs-back", v1.Topology{}, v1.StateReady)
	deleteNode(t, "rs-down")
	deleteNode(t, "rs-back")
	testenv.Eventually(t, "converged", func() bool {
		return getLSN(t, "rs-up").Spec.Topo.Zone == "z1" && getLSN(t, "rs-down").Status.State == v1.StateOffline &&
			getLSN(t, "rs-back").Status.State == v1.StateOffline
	})
	createNode(t, "rs-back", nil)
	testenv.Eventually(t, "rs-back registered", func() bool {
		c := registered(getLSN(t, "rs-back"))
		return c != nil && c.Status == metav1.ConditionTrue
	})
	names := []string{"rs-up", "rs-down", "rs-back"}
	rvs := map[string]string{}
	for _, n := range names {
		rvs[n] = getLSN(t, n).ResourceVersion
	}
	stop()

	checkUnchanged := func(when string) {
		t.Helper()
		for _, n := range names {
			if got := getLSN(t, n).ResourceVersion; got != rvs[n] {
				t.Errorf("%s: %s resourceVersion %s -> %s", when, n, rvs[n], got)
			}
		}
	}
	for i := 0; i < 3; i++ {
		rec := record.NewFakeRecorder(10)
		r := &Reconciler{Client: env.Client, Recorder: rec}
		for _, n := range names {
			if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Name: n}}); err != nil {
				t.Fatalf("reconcile %s: %v", n, err)
			}
		}
		if ev := events(rec); len(ev) > 0 {
			t.Errorf("direct reconcile %d: events %v", i, ev)
		}
	}
	checkUnchanged("direct reconcile")

	// A restarted manager: a probe LSN created after it started is handled
	// after the existing ones were queued.
	rec, _ := startController(t)
	createLSN(t, "rs-probe", v1.Topology{}, v1.StateReady)
	testenv.Eventually(t, "the new manager works", func() bool { return getLSN(t, "rs-probe").Status.State == v1.StateOffline })
	time.Sleep(500 * time.Millisecond)
	checkUnchanged("restarted manager")
	for _, e := range events(rec) {
		if !strings.Contains(e, "rs-probe") {
			t.Errorf("event after restart: %s", e)
		}
	}
}

// hiding reports Nodes as not found, like a cache that has not caught up.
type hiding struct{ client.Client }

func (h hiding) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if m, ok := obj.(*metav1.PartialObjectMetadata); ok && m.Kind == "Node" {
		return apierrors.NewNotFound(schema.GroupResource{Resource: "nodes"}, key.Name)
	}
	return h.Client.Get(ctx, key, obj, opts...)
}

// TestLaggingCacheKeepsState: a Node the cache does not show yet is looked
// up live before its LocalStorageNode would go Offline.
func TestLaggingCacheKeepsState(t *testing.T) {
	ctx := context.Background()
	createNode(t, "lag", nil)
	createLSN(t, "lag", v1.Topology{}, v1.StateReady)
	rec := record.NewFakeRecorder(10)
	r := &Reconciler{Client: hiding{env.Client}, APIReader: env.Client, Recorder: rec}
	if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Name: "lag"}}); err != nil {
		t.Fatal(err)
	}
	if lsn := getLSN(t, "lag"); lsn.Status.State != v1.StateReady || registered(lsn) != nil {
		t.Errorf("status %+v", lsn.Status)
	}
	if ev := events(rec); len(ev) > 0 {
		t.Errorf("events %v", ev)
	}
}

// TestAgentHeartbeat: a node whose agent stops renewing its Lease turns
// NotReady with a condition and a Warning Event once the Lease expires; a
// renewal records that the agent is back (its next report sets Ready). A
// node without a Lease is left alone.
func TestAgentHeartbeat(t *testing.T) {
	createNode(t, "hb-1", nil)
	createLSN(t, "hb-1", v1.Topology{}, v1.StateReady)
	createNode(t, "hb-none", nil)
	createLSN(t, "hb-none", v1.Topology{}, v1.StateReady)
	rec := record.NewFakeRecorder(1000)
	env.StartManager(t, func(ctx context.Context, mgr ctrl.Manager) error {
		return (&Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: rec, Namespace: metav1.NamespaceDefault}).SetupWithManager(ctx, mgr)
	})
	// The agent's heartbeat, as csidriver/agent renews it: a 1s interval
	// gives a 4s Lease.
	hb := &agent.Heartbeat{Client: env.Client, Namespace: metav1.NamespaceDefault, Nodes: []string{"hb-1"}, Holder: "test-agent", Interval: time.Second}
	hb.RenewAll(context.Background())
	consistently(t, "Ready while the Lease is fresh", 2*time.Second, func() bool { return getLSN(t, "hb-1").Status.State == v1.StateReady })

	// The agent stops.
	testenv.Eventually(t, "NotReady after the Lease expired", func() bool {
		lsn := getLSN(t, "hb-1")
		c := meta.FindStatusCondition(lsn.Status.Conditions, ConditionAgentHeartbeat)
		return lsn.Status.State == v1.StateNotReady && c != nil && c.Status == metav1.ConditionFalse && c.Reason == ReasonAgentStopped
	})
	e := expectEvent(t, rec, "Warning "+ReasonAgentStopped)
	for _, want := range []string{"has not renewed its Lease default/hwameistor-node-hb-1", "hwameistor-node pod on hb-1"} {
		if !strings.Contains(e, want) {
			t.Errorf("event %q does not say %q", e, want)
		}
	}

	// Back.
	hb.RenewAll(context.Background())
	testenv.Eventually(t, "the heartbeat condition True again", func() bool {
		c := meta.FindStatusCondition(getLSN(t, "hb-1").Status.Conditions, ConditionAgentHeartbeat)
		return c != nil && c.Status == metav1.ConditionTrue && c.Reason == ReasonAgentReporting
	})
	expectEvent(t, rec, "Normal "+ReasonAgentReporting)

	if lsn := getLSN(t, "hb-none"); lsn.Status.State != v1.StateReady || meta.FindStatusCondition(lsn.Status.Conditions, ConditionAgentHeartbeat) != nil {
		t.Errorf("a node without a Lease changed: %+v", lsn.Status)
	}
}
