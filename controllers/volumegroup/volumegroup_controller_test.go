package volumegroup

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/record"
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

func createGroup(t *testing.T, name string, entries ...v1.VolumeInfo) {
	t.Helper()
	g := &v1.LocalVolumeGroup{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.LocalVolumeGroupSpec{
		Namespace: ns, Volumes: entries, Accessibility: v1.AccessibilityTopology{Nodes: []string{"node-a"}},
	}}
	if err := env.Client.Create(context.Background(), g); err != nil {
		t.Fatal(err)
	}
}

func entry(pvc, lv string) v1.VolumeInfo {
	e := v1.VolumeInfo{PersistentVolumeClaimName: pvc, LocalVolumeName: lv}
	if lv == "" {
		e.Nodes, e.PoolName, e.RequiredCapacityBytes = []string{"node-a"}, v1.PoolNameHDD, 1<<30
	}
	return e
}

// getGroup returns the group, or nil when it does not exist.
func getGroup(t *testing.T, name string) *v1.LocalVolumeGroup {
	t.Helper()
	g := &v1.LocalVolumeGroup{}
	err := env.Client.Get(context.Background(), client.ObjectKey{Name: name}, g)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func claimNames(g *v1.LocalVolumeGroup) []string {
	var out []string
	for _, e := range g.Spec.Volumes {
		out = append(out, e.PersistentVolumeClaimName)
	}
	return out
}

func volumeOf(g *v1.LocalVolumeGroup, pvc string) (string, bool) {
	for _, e := range g.Spec.Volumes {
		if e.PersistentVolumeClaimName == pvc {
			return e.LocalVolumeName, true
		}
	}
	return "", false
}

func createClaim(t *testing.T, name string) {
	t.Helper()
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: ptr.To("hwameistor-storage-lvm-hdd"),
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	if err := env.Client.Create(context.Background(), pvc); err != nil {
		t.Fatal(err)
	}
}

// bindClaim does what the PV controller does: spec.volumeName, then phase
// Bound (when bound is true).
func bindClaim(t *testing.T, name, pv string, bound bool) {
	t.Helper()
	ctx := context.Background()
	pvc := &corev1.PersistentVolumeClaim{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, pvc); err != nil {
		t.Fatal(err)
	}
	pvc.Spec.VolumeName = pv
	if err := env.Client.Update(ctx, pvc); err != nil {
		t.Fatal(err)
	}
	if bound {
		pvc.Status.Phase = corev1.ClaimBound
		if err := env.Client.Status().Update(ctx, pvc); err != nil {
			t.Fatal(err)
		}
	}
}

func deleteClaim(t *testing.T, name string) {
	t.Helper()
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := env.Client.Delete(context.Background(), pvc); err != nil {
		t.Fatal(err)
	}
	// envtest runs no controller that would remove the pvc-protection
	// finalizer the apiserver's admission adds: take it off, as that
	// controller does once no pod uses the claim.
	testenv.Eventually(t, "claim "+name+" gone", func() bool {
		cur := &corev1.PersistentVolumeClaim{}
		err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(pvc), cur)
		if apierrors.IsNotFound(err) {
			return true
		}
		if err == nil && len(cur.Finalizers) > 0 {
			cur.Finalizers = nil
			_ = env.Client.Update(context.Background(), cur)
		}
		return false
	})
}

func createVolume(t *testing.T, name, pvc string, state v1.State) {
	t.Helper()
	ctx := context.Background()
	lv := &v1.LocalVolume{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.LocalVolumeSpec{
		PoolName: v1.PoolNameHDD, RequiredCapacityBytes: 1 << 30, ReplicaNumber: 1,
		PersistentVolumeClaimNamespace: ns, PersistentVolumeClaimName: pvc,
	}}
	if err := env.Client.Create(ctx, lv); err != nil {
		t.Fatal(err)
	}
	if state != "" {
		setVolumeState(t, name, state, "")
	}
}

func setVolumeState(t *testing.T, name string, state v1.State, msg string) {
	t.Helper()
	ctx := context.Background()
	lv := &v1.LocalVolume{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, lv); err != nil {
		t.Fatal(err)
	}
	lv.Status.State, lv.Status.Message = state, msg
	if err := env.Client.Status().Update(ctx, lv); err != nil {
		t.Fatal(err)
	}
}

func deleteVolume(t *testing.T, name string) {
	t.Helper()
	if err := env.Client.Delete(context.Background(), &v1.LocalVolume{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
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

func expectEvent(t *testing.T, rec *record.FakeRecorder, prefix, contains string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-rec.Events:
			if strings.HasPrefix(e, prefix) && strings.Contains(e, contains) {
				return
			}
		case <-deadline:
			t.Fatalf("no event %q mentioning %q", prefix, contains)
		}
	}
}

// TestRecordsBoundVolume: rule (a), an entry gets its claim's PV name once
// the claim is bound, and is corrected when it names another volume.
func TestRecordsBoundVolume(t *testing.T) {
	startController(t)
	cases := []struct {
		name    string
		initial string // the entry's localvolume as the scheduler wrote it
		pv      string
		bound   bool
		want    string
	}{
		{name: "empty entry, bound claim", initial: "", pv: "pv-a1", bound: true, want: "pv-a1"},
		{name: "scheduler's guess differs", initial: "pvc-guess", pv: "pv-a2", bound: true, want: "pv-a2"},
		{name: "already right", initial: "pv-a3", pv: "pv-a3", bound: true, want: "pv-a3"},
		{name: "volumeName set but not yet Bound", initial: "", pv: "pv-a4", bound: false, want: ""},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			group, claim := fmt.Sprintf("lvg-fill-%d", i), fmt.Sprintf("fill-%d", i)
			createClaim(t, claim)
			createGroup(t, group, entry(claim, tc.initial))
			bindClaim(t, claim, tc.pv, tc.bound)
			if tc.want == tc.initial {
				// Nothing to change: the group must stay as written once the
				// controller has seen it (its status shows that).
				testenv.Eventually(t, "status written", func() bool { return getGroup(t, group).Status.State != "" })
				consistently(t, "entry unchanged", time.Second, func() bool {
					lv, _ := volumeOf(getGroup(t, group), claim)
					return lv == tc.want
				})
				return
			}
			testenv.Eventually(t, "entry names "+tc.want, func() bool {
				lv, _ := volumeOf(getGroup(t, group), claim)
				return lv == tc.want
			})
			// The placement the scheduler wrote is kept.
			for _, e := range getGroup(t, group).Spec.Volumes {
				if tc.initial == "" && (len(e.Nodes) != 1 || e.PoolName != v1.PoolNameHDD) {
					t.Errorf("placement lost: %+v", e)
				}
			}
		})
	}
}

// TestDropRules: rule (b) and the never-delete invariant, one group per
// case, each with an anchor entry whose claim exists so that only the case's
// entry can go.
func TestDropRules(t *testing.T) {
	rec, _ := startController(t)
	cases := []struct {
		name         string
		claimExists  bool
		volumeNamed  bool
		volumeExists bool
		wantDropped  bool
	}{
		{name: "claim and volume exist", claimExists: true, volumeNamed: true, volumeExists: true},
		{name: "claim exists, no volume yet", claimExists: true},
		{name: "claim exists, named volume missing", claimExists: true, volumeNamed: true},
		{name: "claim gone, volume exists", volumeNamed: true, volumeExists: true},
		{name: "claim gone, named volume gone", volumeNamed: true, wantDropped: true},
		{name: "claim gone, no volume named", wantDropped: true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			group := fmt.Sprintf("lvg-drop-%d", i)
			anchor, claim, lv := fmt.Sprintf("drop-anchor-%d", i), fmt.Sprintf("drop-%d", i), ""
			createClaim(t, anchor)
			if tc.volumeNamed {
				lv = fmt.Sprintf("pv-drop-%d", i)
			}
			// The claim and volume exist first, as in life; then go.
			createClaim(t, claim)
			if tc.volumeNamed {
				createVolume(t, lv, claim, v1.StateReady)
			}
			createGroup(t, group, entry(anchor, ""), entry(claim, lv))
			testenv.Eventually(t, "status written", func() bool { return getGroup(t, group).Status.State != "" })
			if !tc.claimExists {
				deleteClaim(t, claim)
			}
			if tc.volumeNamed && !tc.volumeExists {
				deleteVolume(t, lv)
			}
			if tc.wantDropped {
				testenv.Eventually(t, "entry dropped", func() bool { _, ok := volumeOf(getGroup(t, group), claim); return !ok })
				expectEvent(t, rec, "Normal "+EventVolumeDropped, "claim "+ns+"/"+claim)
				if got := claimNames(getGroup(t, group)); len(got) != 1 || got[0] != anchor {
					t.Errorf("entries %v, want only %s", got, anchor)
				}
				return
			}
			consistently(t, "entry kept", 2*time.Second, func() bool {
				g := getGroup(t, group)
				_, ok := volumeOf(g, claim)
				return g != nil && ok
			})
		})
	}
}

// TestDeletesEmptyGroup: rule (c), the group goes once its last claim and
// volume are gone, not one step earlier.
func TestDeletesEmptyGroup(t *testing.T) {
	rec, _ := startController(t)
	createClaim(t, "empty-a")
	createClaim(t, "empty-b")
	createVolume(t, "pv-empty-a", "empty-a", v1.StateReady)
	createGroup(t, "lvg-empty", entry("empty-a", "pv-empty-a"), entry("empty-b", ""))
	testenv.Eventually(t, "status written", func() bool { return getGroup(t, "lvg-empty").Status.State != "" })

	deleteClaim(t, "empty-b")
	testenv.Eventually(t, "empty-b dropped", func() bool { return len(getGroup(t, "lvg-empty").Spec.Volumes) == 1 })

	// The claim goes first: its volume still exists, so the group stays.
	deleteClaim(t, "empty-a")
	consistently(t, "group kept while its volume exists", 2*time.Second, func() bool {
		g := getGroup(t, "lvg-empty")
		return g != nil && len(g.Spec.Volumes) == 1
	})

	deleteVolume(t, "pv-empty-a")
	testenv.Eventually(t, "group deleted", func() bool { return getGroup(t, "lvg-empty") == nil })
	expectEvent(t, rec, "Normal "+EventGroupDeleted, "claim default/empty-a (volume pv-empty-a)")
}

// TestStatus: rule (d), Ready only when every volume exists and is Ready;
// otherwise NotReady naming the first volume that is not.
func TestStatus(t *testing.T) {
	startController(t)
	createClaim(t, "st-a")
	createClaim(t, "st-b")
	createVolume(t, "pv-st-a", "st-a", v1.StateReady)
	createGroup(t, "lvg-st", entry("st-a", "pv-st-a"), entry("st-b", ""))

	steps := []struct {
		name      string
		do        func()
		wantState v1.State
		wantMsg   string
	}{
		{name: "second claim has no volume", do: func() {},
			wantState: v1.StateNotReady, wantMsg: "claim default/st-b has no volume yet"},
		{name: "bound to a volume that does not exist yet", do: func() { bindClaim(t, "st-b", "pv-st-b", true) },
			wantState: v1.StateNotReady, wantMsg: "volume pv-st-b of claim default/st-b does not exist (yet)"},
		{name: "volume Creating", do: func() { createVolume(t, "pv-st-b", "st-b", v1.StateCreating) },
			wantState: v1.StateNotReady, wantMsg: "volume pv-st-b of claim default/st-b is Creating"},
		{name: "both Ready", do: func() { setVolumeState(t, "pv-st-b", v1.StateReady, "") },
			wantState: v1.StateReady, wantMsg: ""},
		{name: "first volume NotReady with a message", do: func() { setVolumeState(t, "pv-st-a", v1.StateNotReady, "replica on node-a is NotReady") },
			wantState: v1.StateNotReady, wantMsg: "volume pv-st-a of claim default/st-a is NotReady: replica on node-a is NotReady"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.do()
			testenv.Eventually(t, fmt.Sprintf("state %s %q", s.wantState, s.wantMsg), func() bool {
				g := getGroup(t, "lvg-st")
				return g.Status.State == s.wantState && g.Status.Message == s.wantMsg
			})
			c := meta.FindStatusCondition(getGroup(t, "lvg-st").Status.Conditions, ConditionVolumesReady)
			if c == nil {
				t.Fatal("no condition " + ConditionVolumesReady)
			}
			wantStatus := metav1.ConditionFalse
			if s.wantState == v1.StateReady {
				wantStatus = metav1.ConditionTrue
			}
			if c.Status != wantStatus || !strings.Contains(c.Message, s.wantMsg) {
				t.Errorf("condition %+v", c)
			}
		})
	}
}

// TestRestart: a fresh controller over converged groups writes nothing and
// says nothing.
func TestRestart(t *testing.T) {
	ctx := context.Background()
	_, stop := startController(t)
	createClaim(t, "rs-a")
	createClaim(t, "rs-b")
	createVolume(t, "pv-rs-a", "rs-a", v1.StateReady)
	bindClaim(t, "rs-a", "pv-rs-a", true)
	createGroup(t, "lvg-rs", entry("rs-a", ""), entry("rs-b", ""))
	deleteClaim(t, "rs-b")
	testenv.Eventually(t, "converged", func() bool {
		g := getGroup(t, "lvg-rs")
		lv, _ := volumeOf(g, "rs-a")
		return len(g.Spec.Volumes) == 1 && lv == "pv-rs-a" && g.Status.State == v1.StateReady
	})
	rv := getGroup(t, "lvg-rs").ResourceVersion
	stop()

	// Direct, with a fresh reconciler and no cache, three times.
	for i := 0; i < 3; i++ {
		rec := record.NewFakeRecorder(10)
		r := &Reconciler{Client: env.Client, Recorder: rec}
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Name: "lvg-rs"}}); err != nil {
			t.Fatalf("reconcile %d: %v", i, err)
		}
		if ev := events(rec); len(ev) > 0 {
			t.Errorf("reconcile %d: events %v", i, ev)
		}
	}
	if got := getGroup(t, "lvg-rs").ResourceVersion; got != rv {
		t.Errorf("resourceVersion %s -> %s: a converged group was written", rv, got)
	}

	// A restarted manager: its first pass sees every group. A group created
	// after it started is handled after the existing ones were queued.
	rec, _ := startController(t)
	createClaim(t, "rs-probe")
	createGroup(t, "lvg-rs-probe", entry("rs-probe", ""))
	testenv.Eventually(t, "the new manager works", func() bool { return getGroup(t, "lvg-rs-probe").Status.State != "" })
	time.Sleep(500 * time.Millisecond)
	if got := getGroup(t, "lvg-rs").ResourceVersion; got != rv {
		t.Errorf("resourceVersion %s -> %s after restart", rv, got)
	}
	for _, e := range events(rec) {
		t.Errorf("event after restart: %s", e)
	}
}

// hiding reads through to the apiserver but reports the kinds in hide as not
// found, like a cache that has not caught up.
type hiding struct {
	client.Client
	hide map[string]bool // kinds
}

func (h hiding) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	gvk, err := h.GroupVersionKindFor(obj)
	if err != nil {
		return err
	}
	if h.hide[gvk.Kind] {
		return apierrors.NewNotFound(schema.GroupResource{Resource: strings.ToLower(gvk.Kind) + "s"}, key.Name)
	}
	return h.Client.Get(ctx, key, obj, opts...)
}

// TestLaggingCacheNeverDrops: an entry whose claim and volume the cache does
// not show yet is kept, because the live read finds them.
func TestLaggingCacheNeverDrops(t *testing.T) {
	ctx := context.Background()
	createClaim(t, "lag-a")
	createVolume(t, "pv-lag-b", "lag-b", v1.StateReady)
	createGroup(t, "lvg-lag", entry("lag-a", ""), entry("lag-b", "pv-lag-b"))
	rec := record.NewFakeRecorder(10)
	r := &Reconciler{
		Client:    hiding{Client: env.Client, hide: map[string]bool{"PersistentVolumeClaim": true, "LocalVolume": true}},
		APIReader: env.Client, Recorder: rec,
	}
	if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Name: "lvg-lag"}}); err != nil {
		t.Fatal(err)
	}
	g := getGroup(t, "lvg-lag")
	if g == nil || len(g.Spec.Volumes) != 2 {
		t.Fatalf("group %v: want both entries kept", g)
	}
	if ev := events(rec); len(ev) > 0 {
		t.Errorf("events %v", ev)
	}
}

// stale returns a snapshot of the group taken earlier, as a controller would
// see it just before the scheduler adds a claim.
type stale struct {
	client.Client
	group *v1.LocalVolumeGroup
}

func (s stale) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if g, ok := obj.(*v1.LocalVolumeGroup); ok && key.Name == s.group.Name {
		s.group.DeepCopyInto(g)
		return nil
	}
	return s.Client.Get(ctx, key, obj, opts...)
}

// TestDeleteLosesToConcurrentAdd: the controller decides the group is empty
// from an old version while the scheduler has just added a claim; the
// delete's precondition fails and the group survives with the new claim.
func TestDeleteLosesToConcurrentAdd(t *testing.T) {
	ctx := context.Background()
	createGroup(t, "lvg-race", entry("race-gone", ""))
	snapshot := getGroup(t, "lvg-race")

	createClaim(t, "race-new")
	g := getGroup(t, "lvg-race")
	g.Spec.Volumes = append(g.Spec.Volumes, entry("race-new", ""))
	if err := env.Client.Update(ctx, g); err != nil {
		t.Fatal(err)
	}

	rec := record.NewFakeRecorder(10)
	r := &Reconciler{Client: stale{Client: env.Client, group: snapshot}, Recorder: rec}
	res, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Name: "lvg-race"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.RequeueAfter == 0 {
		t.Error("want a requeue after losing the race")
	}
	if getGroup(t, "lvg-race") == nil {
		t.Fatal("group deleted while it held a claim")
	}
	if ev := events(rec); len(ev) > 0 {
		t.Errorf("events %v", ev)
	}

	// The next pass, from the current version, drops only the gone claim.
	r = &Reconciler{Client: env.Client, Recorder: rec}
	if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Name: "lvg-race"}}); err != nil {
		t.Fatal(err)
	}
	if got := claimNames(getGroup(t, "lvg-race")); len(got) != 1 || got[0] != "race-new" {
		t.Errorf("entries %v, want [race-new]", got)
	}
}
