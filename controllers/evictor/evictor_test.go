package evictor

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

const ns = "default"

// startController runs the reconciler in a manager until stop is called or
// the test ends. It returns the reconciler (to call Reconcile directly,
// reading the manager's cache) and the recorder's events.
func startController(t *testing.T) (r *Reconciler, rec *record.FakeRecorder, stop func()) {
	t.Helper()
	rec = record.NewFakeRecorder(1000)
	synced := make(chan struct{})
	stop = env.StartManager(t, func(ctx context.Context, mgr ctrl.Manager) error {
		r = &Reconciler{Client: mgr.GetClient(), Recorder: rec}
		go func() {
			if mgr.GetCache().WaitForCacheSync(ctx) {
				close(synced)
			}
		}()
		return r.SetupWithManager(ctx, mgr)
	})
	select {
	case <-synced:
	case <-time.After(30 * time.Second):
		t.Fatal("caches did not sync")
	}
	return r, rec, stop
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

func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := env.Client.Create(context.Background(), obj); err != nil {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

func createNode(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	create(t, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}})
}

func getNode(t *testing.T, name string) *corev1.Node {
	t.Helper()
	n := &corev1.Node{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: name}, n); err != nil {
		t.Fatal(err)
	}
	return n
}

// updateNode applies change to the current node, retrying on conflicts.
func updateNode(t *testing.T, name string, change func(*corev1.Node)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n := &corev1.Node{}
		if err := env.Client.Get(context.Background(), client.ObjectKey{Name: name}, n); err != nil {
			return err
		}
		change(n)
		return env.Client.Update(context.Background(), n)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// cordon does what `kubectl cordon` (true) and `kubectl uncordon` (false) do.
func cordon(t *testing.T, name string, on bool) {
	t.Helper()
	updateNode(t, name, func(n *corev1.Node) { n.Spec.Unschedulable = on })
}

// createVolume creates a LocalVolume in group (none when "") with one
// replica on each node, as the volume controller would.
func createVolume(t *testing.T, name, group string, nodes ...string) {
	t.Helper()
	lv := &v1.LocalVolume{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.LocalVolumeSpec{
		PoolName: v1.PoolNameHDD, RequiredCapacityBytes: 1 << 30, ReplicaNumber: int64(max(1, len(nodes))), VolumeGroup: group,
	}}
	create(t, lv)
	for _, node := range nodes {
		createReplica(t, name, node, nil)
	}
}

func createReplica(t *testing.T, volume, node string, change func(*v1.LocalVolumeReplica)) {
	t.Helper()
	rep := &v1.LocalVolumeReplica{ObjectMeta: metav1.ObjectMeta{Name: v1.ReplicaName(volume, node)}, Spec: v1.LocalVolumeReplicaSpec{
		VolumeName: volume, NodeName: node, PoolName: v1.PoolNameHDD, RequiredCapacityBytes: 1 << 30,
	}}
	if change != nil {
		change(rep)
	}
	create(t, rep)
}

// createClaim creates a claim bound to a PV of driver (lvm.hwameistor.io
// when "") whose volume handle is volume.
func createClaim(t *testing.T, claim, volume, driver string) {
	t.Helper()
	if driver == "" {
		driver = v1.DriverName
	}
	pvName := "pv-" + claim
	create(t, &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: pvName},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:    corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				CSI: &corev1.CSIPersistentVolumeSource{Driver: driver, VolumeHandle: volume},
			},
		},
	})
	create(t, &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: claim},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
			VolumeName:  pvName,
		},
	})
}

func createPod(t *testing.T, name, node string, labels map[string]string, claims ...string) {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec: corev1.PodSpec{
			NodeName:   node,
			Containers: []corev1.Container{{Name: "app", Image: "busybox"}},
		},
	}
	for i, c := range claims {
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{
			Name:         fmt.Sprintf("data-%d", i),
			VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: c}},
		})
	}
	create(t, pod)
}

// createMigration creates a LocalVolumeMigrate as a user would, with the
// given state (none when "").
func createMigration(t *testing.T, name, node, volume string, state v1.State, statusVolumes ...string) {
	t.Helper()
	create(t, &v1.LocalVolumeMigrate{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.LocalVolumeMigrateSpec{SourceNode: node, VolumeName: volume}})
	if state != "" || len(statusVolumes) > 0 {
		setMigrationState(t, name, state, statusVolumes...)
	}
}

func setMigrationState(t *testing.T, name string, state v1.State, statusVolumes ...string) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		m := &v1.LocalVolumeMigrate{}
		if err := env.Client.Get(context.Background(), client.ObjectKey{Name: name}, m); err != nil {
			return err
		}
		m.Status.State, m.Status.Volumes = state, statusVolumes
		return env.Client.Status().Update(context.Background(), m)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// migrationsOff lists the LocalVolumeMigrates whose spec.sourceNode is node,
// by name.
func migrationsOff(t *testing.T, node string) map[string]v1.LocalVolumeMigrate {
	t.Helper()
	list := &v1.LocalVolumeMigrateList{}
	if err := env.Client.List(context.Background(), list); err != nil {
		t.Fatal(err)
	}
	out := map[string]v1.LocalVolumeMigrate{}
	for _, m := range list.Items {
		if m.Spec.SourceNode == node {
			out[m.Name] = m
		}
	}
	return out
}

func getMigration(t *testing.T, name string) *v1.LocalVolumeMigrate {
	t.Helper()
	m := &v1.LocalVolumeMigrate{}
	err := env.Client.Get(context.Background(), client.ObjectKey{Name: name}, m)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// expectEvent waits for an event starting with prefix ("Normal Reason")
// that contains every one of contains, and returns it.
func expectEvent(t *testing.T, rec *record.FakeRecorder, prefix string, contains ...string) string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-rec.Events:
			if strings.HasPrefix(e, prefix) && containsAll(e, contains) {
				return e
			}
		case <-deadline:
			t.Fatalf("no event %q mentioning %q", prefix, contains)
		}
	}
}

// noEvent fails if an event starting with prefix and containing every one
// of contains comes within d.
func noEvent(t *testing.T, rec *record.FakeRecorder, d time.Duration, prefix string, contains ...string) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case e := <-rec.Events:
			if strings.HasPrefix(e, prefix) && containsAll(e, contains) {
				t.Fatalf("unexpected event: %s", e)
			}
		case <-deadline:
			return
		}
	}
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

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

func nodeRequest(name string) ctrl.Request {
	return ctrl.Request{NamespacedName: types.NamespacedName{Name: name}}
}

// TestDrain: a cordoned node holding three single volumes (one of them HA)
// and a two-volume group gets exactly four migrations, and no more however
// often it is reconciled or the controller restarts.
func TestDrain(t *testing.T) {
	ctx := context.Background()
	const node = "drain-1"
	createNode(t, node, nil)
	createNode(t, "drain-peer", nil)
	createVolume(t, "dr-s1", "", node)
	createVolume(t, "dr-s2", "", node)
	createVolume(t, "dr-ha", "", node, "drain-peer") // HA: one migration like any other
	createVolume(t, "dr-g-b", "lvg-drain", node)
	createVolume(t, "dr-g-a", "lvg-drain", node)
	createVolume(t, "dr-elsewhere", "", "drain-peer")
	createClaim(t, "dr-claim-s1", "dr-s1", "")
	createClaim(t, "dr-claim-g-b", "dr-g-b", "")
	createClaim(t, "dr-claim-other", "dr-elsewhere", "")
	createPod(t, "dr-app", node, nil, "dr-claim-s1", "dr-claim-g-b")
	createPod(t, "dr-bystander", node, nil, "dr-claim-other")

	r, rec, stop := startController(t)
	cordon(t, node, true)

	want := map[string]string{ // migration name -> spec.volumeName
		v1.MigrateName("dr-s1", node):     "dr-s1",
		v1.MigrateName("dr-s2", node):     "dr-s2",
		v1.MigrateName("dr-ha", node):     "dr-ha",
		v1.MigrateName("lvg-drain", node): "dr-g-a",
	}
	testenv.Eventually(t, "4 migrations", func() bool { return len(migrationsOff(t, node)) == len(want) })
	got := migrationsOff(t, node)
	uids := map[string]types.UID{}
	for name, vol := range want {
		m, ok := got[name]
		if !ok {
			t.Fatalf("no migration %s; have %v", name, got)
		}
		uids[name] = m.UID
		if m.Spec.SourceNode != node || m.Spec.VolumeName != vol || !m.Spec.MigrateAllVols || m.Spec.Abort || len(m.Spec.TargetNodesSuggested) > 0 {
			t.Errorf("%s: spec %+v", name, m.Spec)
		}
		if m.Labels[v1.MigrateTriggerLabel] != v1.MigrateTriggerDrain || m.Labels[v1.MigrateSourceNodeLabel] != node {
			t.Errorf("%s: labels %v", name, m.Labels)
		}
		if _, err := time.Parse(time.RFC3339Nano, m.Annotations[v1.EvictorRequestedAtAnnotation]); err != nil {
			t.Errorf("%s: annotation %s: %v", name, v1.EvictorRequestedAtAnnotation, err)
		}
	}
	expectEvent(t, rec, "Normal "+EventMigrationStarted, node, "created 4 LocalVolumeMigrate(s)", "5 local volume(s)")
	expectEvent(t, rec, "Normal "+EventVolumeMigrating, "dr-s1, dr-g-b", v1.MigrateName("dr-s1", node), v1.MigrateName("lvg-drain", node))
	if _, ok := getNode(t, node).Annotations[v1.EvictorCordonedAtAnnotation]; !ok {
		t.Errorf("node has no %s annotation", v1.EvictorCordonedAtAnnotation)
	}

	// Reconciled again, directly, several times: nothing new.
	for i := 0; i < 3; i++ {
		if _, err := r.Reconcile(ctx, nodeRequest(node)); err != nil {
			t.Fatalf("reconcile %d: %v", i, err)
		}
	}
	// A label change passes the watch's filter: another reconcile.
	updateNode(t, node, func(n *corev1.Node) { n.Labels = map[string]string{"touched": "yes"} })
	noEvent(t, rec, 2*time.Second, "Normal "+EventMigrationStarted, node)
	stop()
	if got := migrationsOff(t, node); len(got) != len(want) {
		t.Fatalf("%d migrations after reconciling again, want %d", len(got), len(want))
	}

	// A restarted controller finds them all and creates nothing.
	r, rec, _ = startController(t)
	if _, err := r.Reconcile(ctx, nodeRequest(node)); err != nil {
		t.Fatal(err)
	}
	consistently(t, "the same 4 migrations", 2*time.Second, func() bool {
		got := migrationsOff(t, node)
		for name, uid := range uids {
			if got[name].UID != uid {
				return false
			}
		}
		return len(got) == len(want)
	})
	for _, e := range events(rec) {
		if strings.Contains(e, node) {
			t.Errorf("event after restart: %s", e)
		}
	}

	// Uncordoned: the migrations stay, only the cordon's bookkeeping goes.
	cordon(t, node, false)
	testenv.Eventually(t, "cordon annotation removed", func() bool {
		_, ok := getNode(t, node).Annotations[v1.EvictorCordonedAtAnnotation]
		return !ok
	})
	if got := migrationsOff(t, node); len(got) != len(want) {
		t.Errorf("%d migrations after uncordon, want %d", len(got), len(want))
	}
}

// TestEvictionDisabled: a cordoned node labelled hwameistor.io/eviction=
// disable keeps its volumes, with one Warning Event per cordon.
func TestEvictionDisabled(t *testing.T) {
	ctx := context.Background()
	const node = "nodrain-1"
	createNode(t, node, map[string]string{v1.EvictionLabel: v1.EvictionDisable})
	createVolume(t, "nd-a", "", node)
	createVolume(t, "nd-b", "lvg-nodrain", node)
	r, rec, _ := startController(t)

	for round := 1; round <= 2; round++ {
		cordon(t, node, true)
		expectEvent(t, rec, "Warning "+EventEvictionDisabled, node, "its 2 local volume(s) stay", "Pending until the node is uncordoned")
		testenv.Eventually(t, "warning recorded on the node", func() bool {
			n := getNode(t, node)
			return n.Annotations[DisabledWarnedAnnotation] != "" && n.Annotations[DisabledWarnedAnnotation] == n.Annotations[v1.EvictorCordonedAtAnnotation]
		})
		// Again and again within the same cordon: no more warnings.
		for i := 0; i < 3; i++ {
			if _, err := r.Reconcile(ctx, nodeRequest(node)); err != nil {
				t.Fatal(err)
			}
		}
		noEvent(t, rec, time.Second, "Warning "+EventEvictionDisabled, node)
		if got := migrationsOff(t, node); len(got) > 0 {
			t.Fatalf("round %d: migrations %v", round, got)
		}
		// Uncordoned: the next cordon warns again.
		cordon(t, node, false)
		testenv.Eventually(t, "annotations removed", func() bool {
			n := getNode(t, node)
			return n.Annotations[DisabledWarnedAnnotation] == "" && n.Annotations[v1.EvictorCordonedAtAnnotation] == ""
		})
	}
}

// TestPodEvictionStart: a pod labelled hwameistor.io/eviction=start gets
// the groups of its own volumes migrated off its node, and nothing else.
func TestPodEvictionStart(t *testing.T) {
	const node = "podnode-1"
	createNode(t, node, nil)
	createNode(t, "podnode-off", map[string]string{v1.EvictionLabel: v1.EvictionDisable})
	createVolume(t, "pe-single", "", node)
	createVolume(t, "pe-g-2", "lvg-pe", node)
	createVolume(t, "pe-g-1", "lvg-pe", node) // not used by the pod, moves with its group
	createVolume(t, "pe-other", "", node)     // another pod's
	createVolume(t, "pe-off", "", "podnode-off")
	createClaim(t, "pe-claim-single", "pe-single", "")
	createClaim(t, "pe-claim-g2", "pe-g-2", "")
	createClaim(t, "pe-claim-foreign", "pe-not-ours", "other.csi.example.com")
	createClaim(t, "pe-claim-other", "pe-other", "")
	createClaim(t, "pe-claim-off", "pe-off", "")
	createPod(t, "pe-neighbour", node, nil, "pe-claim-other")
	createPod(t, "pe-unscheduled", "", map[string]string{v1.EvictionLabel: v1.EvictionStart}, "pe-claim-other")
	_, rec, _ := startController(t)

	createPod(t, "pe-app", node, map[string]string{v1.EvictionLabel: v1.EvictionStart}, "pe-claim-single", "pe-claim-g2", "pe-claim-foreign", "pe-claim-missing")
	want := map[string]string{
		v1.MigrateName("pe-single", node): "pe-single",
		v1.MigrateName("lvg-pe", node):    "pe-g-1",
	}
	testenv.Eventually(t, "2 migrations", func() bool { return len(migrationsOff(t, node)) == len(want) })
	for name, m := range migrationsOff(t, node) {
		if want[name] == "" || m.Spec.VolumeName != want[name] || !m.Spec.MigrateAllVols {
			t.Errorf("unexpected migration %s: %+v", name, m.Spec)
		}
		if m.Labels[v1.MigrateTriggerLabel] != v1.MigrateTriggerPod || m.Labels[v1.MigrateSourceNodeLabel] != node {
			t.Errorf("%s: labels %v", name, m.Labels)
		}
	}
	expectEvent(t, rec, "Normal "+EventMigrationStarted, v1.MigrateName("pe-single", node), v1.MigrateName("lvg-pe", node), "3 local volume(s) off node "+node)

	// A labelled pod on a node that disables eviction: a Warning, nothing moves.
	createPod(t, "pe-stay", "podnode-off", map[string]string{v1.EvictionLabel: v1.EvictionStart}, "pe-claim-off")
	expectEvent(t, rec, "Warning "+EventEvictionDisabled, "node podnode-off")
	consistently(t, "only the app's migrations", 2*time.Second, func() bool {
		return len(migrationsOff(t, node)) == len(want) && len(migrationsOff(t, "podnode-off")) == 0
	})
}

// TestExistingMigrations: a migration someone already made for a volume
// (under any name) is not duplicated while it is unfinished; a finished one
// does not stop a new one.
func TestExistingMigrations(t *testing.T) {
	cases := []struct {
		name      string
		grouped   bool   // the node holds a group "lvg-ex-<i>" of two volumes, ex-<i>-a and ex-<i>-b
		names     string // the volume the hand-made migration names: "a" or "b"
		source    string // its source node, the cordoned one when ""
		state     v1.State
		statusVol bool // it names the volume only in status.volumes (spec names another)
		wantNew   bool
	}{
		{name: "unfinished, no state yet", names: "a"},
		{name: "Submitted", names: "a", state: v1.OperationStateSubmitted},
		{name: "SyncReplica", names: "a", state: v1.OperationStateSyncReplica},
		{name: "Aborting", names: "a", state: v1.OperationStateAborting},
		{name: "unfinished, names the group's second volume", grouped: true, names: "b", state: v1.OperationStateAddReplica},
		{name: "unfinished, volume only in status.volumes", grouped: true, names: "b", statusVol: true, state: v1.OperationStateSyncReplica},
		{name: "Completed", names: "a", state: v1.OperationStateCompleted, wantNew: true},
		{name: "Failed", names: "a", state: v1.OperationStateFailed, wantNew: true},
		{name: "Aborted", names: "a", state: v1.OperationStateAborted, wantNew: true},
		{name: "unfinished, off another node", names: "a", source: "ex-elsewhere", state: v1.OperationStateSubmitted, wantNew: true},
	}
	nodeOf := func(i int) string { return fmt.Sprintf("ex-%d", i) }
	keyOf := func(i int, grouped bool) string {
		if grouped {
			return fmt.Sprintf("lvg-ex-%d", i)
		}
		return fmt.Sprintf("ex-%d-a", i)
	}
	for i, tc := range cases {
		node := nodeOf(i)
		createNode(t, node, nil)
		group := ""
		if tc.grouped {
			group = keyOf(i, true)
			createVolume(t, fmt.Sprintf("ex-%d-b", i), group, node)
		}
		createVolume(t, fmt.Sprintf("ex-%d-a", i), group, node)
		source := tc.source
		if source == "" {
			source = node
		}
		vol := fmt.Sprintf("ex-%d-%s", i, tc.names)
		if tc.statusVol {
			createMigration(t, fmt.Sprintf("by-hand-%d", i), source, "unrelated", tc.state, vol)
		} else {
			createMigration(t, fmt.Sprintf("by-hand-%d", i), source, vol, tc.state)
		}
	}
	startController(t)
	for i := range cases {
		cordon(t, nodeOf(i), true)
	}
	// The expected migrations first, so that "none" below is checked after
	// the controller has been through every node.
	for i, tc := range cases {
		if name := v1.MigrateName(keyOf(i, tc.grouped), nodeOf(i)); tc.wantNew {
			testenv.Eventually(t, "migration "+name, func() bool { return getMigration(t, name) != nil })
		}
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := v1.MigrateName(keyOf(i, tc.grouped), nodeOf(i))
			if tc.wantNew {
				testenv.Eventually(t, "migration "+name, func() bool { return getMigration(t, name) != nil })
				if m := getMigration(t, name); m.Spec.VolumeName != fmt.Sprintf("ex-%d-a", i) {
					t.Errorf("spec %+v", m.Spec)
				}
				return
			}
			consistently(t, "no migration "+name, time.Second, func() bool { return getMigration(t, name) == nil })
		})
	}
}

// TestReplicaSelection: only replicas that stay count; a replica being
// deleted, a volume being deleted, a replica without its volume, and a node
// that is not cordoned move nothing.
func TestReplicaSelection(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name    string
		setup   func(t *testing.T, node, vol string)
		cordon  bool
		wantNew bool
	}{
		{name: "replica stays", cordon: true, wantNew: true, setup: func(t *testing.T, node, vol string) {
			createVolume(t, vol, "", node)
		}},
		{name: "replica with spec.delete", cordon: true, setup: func(t *testing.T, node, vol string) {
			createVolume(t, vol, "")
			createReplica(t, vol, node, func(r *v1.LocalVolumeReplica) { r.Spec.Delete = true })
		}},
		{name: "replica being deleted", cordon: true, setup: func(t *testing.T, node, vol string) {
			createVolume(t, vol, "")
			createReplica(t, vol, node, func(r *v1.LocalVolumeReplica) { r.Finalizers = []string{"test.hwameistor.io/keep"} })
			rep := &v1.LocalVolumeReplica{ObjectMeta: metav1.ObjectMeta{Name: v1.ReplicaName(vol, node)}}
			if err := env.Client.Delete(ctx, rep); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "volume with spec.delete", cordon: true, setup: func(t *testing.T, node, vol string) {
			createVolume(t, vol, "", node)
			lv := &v1.LocalVolume{}
			if err := env.Client.Get(ctx, client.ObjectKey{Name: vol}, lv); err != nil {
				t.Fatal(err)
			}
			lv.Spec.Delete = true
			if err := env.Client.Update(ctx, lv); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "replica without its volume", cordon: true, setup: func(t *testing.T, node, vol string) {
			createReplica(t, vol, node, nil)
		}},
		{name: "node not cordoned", setup: func(t *testing.T, node, vol string) {
			createVolume(t, vol, "", node)
		}},
	}
	for i, tc := range cases {
		node := fmt.Sprintf("sel-%d", i)
		createNode(t, node, nil)
		tc.setup(t, node, fmt.Sprintf("sel-%d-v", i))
	}
	startController(t)
	for i, tc := range cases {
		if tc.cordon {
			cordon(t, fmt.Sprintf("sel-%d", i), true)
		}
	}
	// The expected migrations first, so that "none" below is checked after
	// the controller has been through every node.
	for i, tc := range cases {
		if name := v1.MigrateName(fmt.Sprintf("sel-%d-v", i), fmt.Sprintf("sel-%d", i)); tc.wantNew {
			testenv.Eventually(t, "migration "+name, func() bool { return getMigration(t, name) != nil })
		}
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := v1.MigrateName(fmt.Sprintf("sel-%d-v", i), fmt.Sprintf("sel-%d", i))
			if tc.wantNew {
				testenv.Eventually(t, "migration "+name, func() bool { return getMigration(t, name) != nil })
				return
			}
			consistently(t, "no migration "+name, time.Second, func() bool { return getMigration(t, name) == nil })
		})
	}
}

// TestLateReplica: a replica that appears on a node already cordoned is
// moved too.
func TestLateReplica(t *testing.T) {
	const node = "late-1"
	createNode(t, node, nil)
	createVolume(t, "late-a", "", node)
	startController(t)
	cordon(t, node, true)
	testenv.Eventually(t, "first migration", func() bool { return getMigration(t, v1.MigrateName("late-a", node)) != nil })
	createVolume(t, "late-b", "", node)
	testenv.Eventually(t, "migration of the late replica", func() bool { return getMigration(t, v1.MigrateName("late-b", node)) != nil })
}

// TestNewCordonReplacesFinished: within one cordon a migration the user
// aborted (or that failed) stays as it ended; a later cordon, when the
// volume is still there, replaces it with a new one.
func TestNewCordonReplacesFinished(t *testing.T) {
	const node = "again-1"
	name := v1.MigrateName("again-a", node)
	createNode(t, node, nil)
	createVolume(t, "again-a", "", node)
	_, rec, _ := startController(t)

	cordon(t, node, true)
	testenv.Eventually(t, "migration", func() bool { return getMigration(t, name) != nil })
	first := getMigration(t, name).UID
	setMigrationState(t, name, v1.OperationStateAborted)
	consistently(t, "the aborted migration stays", 2*time.Second, func() bool {
		m := getMigration(t, name)
		return m != nil && m.UID == first && m.Status.State == v1.OperationStateAborted
	})

	cordon(t, node, false)
	testenv.Eventually(t, "cordon annotation removed", func() bool { return getNode(t, node).Annotations[v1.EvictorCordonedAtAnnotation] == "" })
	cordon(t, node, true)
	testenv.Eventually(t, "a new migration", func() bool {
		m := getMigration(t, name)
		return m != nil && m.UID != first && m.Status.State == ""
	})
	expectEvent(t, rec, "Normal "+EventMigrationRecreated, name, "Aborted")
	expectEvent(t, rec, "Normal "+EventMigrationStarted, node, "created 1 LocalVolumeMigrate(s)")
}

// TestMigrationRefused: when the apiserver refuses the migration (here a
// ValidatingAdmissionPolicy, as a cluster's policy might), the drained node
// says why its volumes do not move, and the migration is created once the
// refusal is lifted.
func TestMigrationRefused(t *testing.T) {
	ctx := context.Background()
	const node = "refused-1"
	policy := &admissionregv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "freeze-migrations"},
		Spec: admissionregv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregv1.Fail),
			MatchConstraints: &admissionregv1.MatchResources{ResourceRules: []admissionregv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregv1.RuleWithOperations{
					Operations: []admissionregv1.OperationType{admissionregv1.Create},
					Rule: admissionregv1.Rule{APIGroups: []string{v1.GroupVersion.Group}, APIVersions: []string{"*"},
						Resources: []string{"localvolumemigrates"}},
				}}}},
			Validations: []admissionregv1.Validation{{Expression: "false", Message: "migrations are frozen for maintenance"}},
		},
	}
	binding := &admissionregv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "freeze-migrations"},
		Spec: admissionregv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: policy.Name,
			ValidationActions: []admissionregv1.ValidationAction{admissionregv1.Deny}},
	}
	create(t, policy)
	create(t, binding)
	unfrozen := false
	unfreeze := func() {
		if !unfrozen {
			unfrozen = true
			_ = env.Client.Delete(ctx, binding)
			_ = env.Client.Delete(ctx, policy)
		}
	}
	t.Cleanup(unfreeze)
	// The policy takes effect once the apiserver has loaded it.
	testenv.Eventually(t, "the policy in force", func() bool {
		probe := &v1.LocalVolumeMigrate{ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-"},
			Spec: v1.LocalVolumeMigrateSpec{SourceNode: "x", VolumeName: "x"}}
		err := env.Client.Create(ctx, probe, client.DryRunAll)
		return err != nil && strings.Contains(err.Error(), "frozen")
	})

	createNode(t, node, nil)
	createVolume(t, "refused-a", "", node)
	_, rec, _ := startController(t)
	cordon(t, node, true)
	expectEvent(t, rec, "Warning "+EventMigrationNotCreated, "cannot be moved off node yet", "migrations are frozen for maintenance")
	if got := migrationsOff(t, node); len(got) > 0 {
		t.Fatalf("migrations %v despite the policy", got)
	}

	unfreeze()
	testenv.Eventually(t, "migration created after the refusal is lifted", func() bool { return len(migrationsOff(t, node)) == 1 })
	expectEvent(t, rec, "Normal "+EventMigrationStarted, node)
}
