package volume

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

const gi = int64(1) << 30

// startController runs the reconciler in a manager until the test ends and
// returns the recorder's events.
func startController(t *testing.T) *record.FakeRecorder {
	t.Helper()
	rec := record.NewFakeRecorder(100)
	env.StartManager(t, func(ctx context.Context, mgr ctrl.Manager) error {
		return (&Reconciler{Client: mgr.GetClient(), Recorder: rec}).SetupWithManager(ctx, mgr)
	})
	return rec
}

func newVolume(name string, bytes int64, nodes ...string) *v1.LocalVolume {
	lv := &v1.LocalVolume{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.LocalVolumeSpec{
		PoolName: v1.PoolNameHDD, RequiredCapacityBytes: bytes, ReplicaNumber: int64(len(nodes)),
		PersistentVolumeClaimNamespace: "default", PersistentVolumeClaimName: "data-" + name,
		Config: &v1.VolumeConfig{},
	}}
	for i, n := range nodes {
		lv.Spec.Config.Replicas = append(lv.Spec.Config.Replicas, v1.VolumeReplica{ID: int64(i + 1), Hostname: n, Primary: i == 0})
	}
	return lv
}

func replicas(t *testing.T, volume string) []v1.LocalVolumeReplica {
	t.Helper()
	list := &v1.LocalVolumeReplicaList{}
	if err := env.Client.List(context.Background(), list); err != nil {
		t.Fatal(err)
	}
	var out []v1.LocalVolumeReplica
	for _, r := range list.Items {
		if r.Spec.VolumeName == volume {
			out = append(out, r)
		}
	}
	return out
}

func setReplicaState(t *testing.T, name string, state v1.State, allocated int64) {
	t.Helper()
	r := &v1.LocalVolumeReplica{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: name}, r); err != nil {
		t.Fatal(err)
	}
	r.Status.State = state
	r.Status.AllocatedCapacityBytes = allocated
	if state != v1.StateReady {
		r.Status.Message = "disk gone"
	}
	if err := env.Client.Status().Update(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}

func getVolume(t *testing.T, name string) *v1.LocalVolume {
	t.Helper()
	lv := &v1.LocalVolume{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: name}, lv); err != nil {
		t.Fatal(err)
	}
	return lv
}

// TestVolumeLifecycle walks one HA volume through creation, readiness, a
// replica failure, expansion and deletion.
func TestVolumeLifecycle(t *testing.T) {
	rec := startController(t)
	ctx := context.Background()
	lv := newVolume("pvc-life", 2*gi, "node-a", "node-b")
	if err := env.Client.Create(ctx, lv); err != nil {
		t.Fatal(err)
	}

	testenv.Eventually(t, "two replicas", func() bool { return len(replicas(t, "pvc-life")) == 2 })
	for _, r := range replicas(t, "pvc-life") {
		if r.Spec.RequiredCapacityBytes != 2*gi || r.Spec.PoolName != v1.PoolNameHDD || r.Name != ReplicaName("pvc-life", r.Spec.NodeName) {
			t.Errorf("replica %s: %+v", r.Name, r.Spec)
		}
		if owner := metav1.GetControllerOf(&r); owner == nil || owner.Name != "pvc-life" {
			t.Errorf("replica %s is not owned by its volume", r.Name)
		}
		if !slices.Equal(r.Finalizers, []string{v1.ReplicaFinalizer}) {
			t.Errorf("replica %s finalizers %v, want the node agent's from creation", r.Name, r.Finalizers)
		}
	}
	testenv.Eventually(t, "state Creating with the finalizer", func() bool {
		v := getVolume(t, "pvc-life")
		return v.Status.State == v1.StateCreating && len(v.Finalizers) == 1
	})

	setReplicaState(t, ReplicaName("pvc-life", "node-a"), v1.StateReady, 2*gi)
	setReplicaState(t, ReplicaName("pvc-life", "node-b"), v1.StateReady, 2*gi)
	testenv.Eventually(t, "state Ready", func() bool { return getVolume(t, "pvc-life").Status.State == v1.StateReady })
	v := getVolume(t, "pvc-life")
	if c := meta.FindStatusCondition(v.Status.Conditions, ConditionReplicasReady); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("condition %s: %+v", ConditionReplicasReady, c)
	}
	if v.Status.AllocatedCapacityBytes != 2*gi || len(v.Status.Replicas) != 2 {
		t.Errorf("status %+v", v.Status)
	}

	setReplicaState(t, ReplicaName("pvc-life", "node-b"), v1.StateNotReady, 0)
	testenv.Eventually(t, "state NotReady naming the replica", func() bool {
		v := getVolume(t, "pvc-life")
		return v.Status.State == v1.StateNotReady && v.Status.Message != ""
	})
	if msg := getVolume(t, "pvc-life").Status.Message; msg != fmt.Sprintf("replica %s on node-b is NotReady: disk gone", ReplicaName("pvc-life", "node-b")) {
		t.Errorf("message %q", msg)
	}
	expectEvent(t, rec, "Warning StateNotReady")

	v = getVolume(t, "pvc-life")
	v.Spec.RequiredCapacityBytes = 3 * gi
	if err := env.Client.Update(ctx, v); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "replicas grown", func() bool {
		for _, r := range replicas(t, "pvc-life") {
			if r.Spec.RequiredCapacityBytes != 3*gi {
				return false
			}
		}
		return true
	})

	if err := env.Client.Delete(ctx, getVolume(t, "pvc-life")); err != nil {
		t.Fatal(err)
	}
	// The replicas wait for their node agent to free the data; play it.
	testenv.Eventually(t, "replicas deleting", func() bool {
		reps := replicas(t, "pvc-life")
		for _, r := range reps {
			if r.DeletionTimestamp == nil {
				return false
			}
		}
		return len(reps) == 2
	})
	if err := env.Client.Get(ctx, client.ObjectKey{Name: "pvc-life"}, &v1.LocalVolume{}); err != nil {
		t.Fatalf("the volume went before its replicas: %v", err)
	}
	for _, r := range replicas(t, "pvc-life") {
		r.Finalizers = nil
		if err := env.Client.Update(ctx, &r); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, "volume and replicas gone", func() bool {
		err := env.Client.Get(ctx, client.ObjectKey{Name: "pvc-life"}, &v1.LocalVolume{})
		return apierrors.IsNotFound(err) && len(replicas(t, "pvc-life")) == 0
	})
}

// TestWaitsForPlacement: a volume without replicas configured stays Creating
// with a message saying why, and gets replicas once placed.
func TestWaitsForPlacement(t *testing.T) {
	startController(t)
	ctx := context.Background()
	lv := newVolume("pvc-wait", gi)
	lv.Spec.ReplicaNumber = 1
	if err := env.Client.Create(ctx, lv); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "Creating with a reason", func() bool {
		v := getVolume(t, "pvc-wait")
		return v.Status.State == v1.StateCreating && v.Status.Message == "waiting for the volume's placement (spec.config.replicas)"
	})
	v := getVolume(t, "pvc-wait")
	v.Spec.Config.Replicas = []v1.VolumeReplica{{ID: 1, Hostname: "node-c", Primary: true}}
	if err := env.Client.Update(ctx, v); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "one replica", func() bool { return len(replicas(t, "pvc-wait")) == 1 })
}

// TestReconcileIsIdempotent runs Reconcile directly, twice and with a fresh
// reconciler each time (a restart between steps), and expects no duplicate
// replicas and no error.
func TestReconcileIsIdempotent(t *testing.T) {
	ctx := context.Background()
	lv := newVolume("pvc-idem", gi, "node-a")
	if err := env.Client.Create(ctx, lv); err != nil {
		t.Fatal(err)
	}
	// A direct client (no cache, no index): List falls back to a full list.
	c, err := client.New(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		r := &Reconciler{Client: indexless{c}, Recorder: record.NewFakeRecorder(10)}
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Name: "pvc-idem"}}); err != nil {
			t.Fatalf("reconcile %d: %v", i, err)
		}
	}
	if n := len(replicas(t, "pvc-idem")); n != 1 {
		t.Errorf("%d replicas after three reconciles, want 1", n)
	}
}

// indexless drops field selectors the live apiserver does not support for
// custom resources and filters on the client side instead.
type indexless struct{ client.Client }

func (c indexless) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	var keep []client.ListOption
	var volume string
	for _, o := range opts {
		if f, ok := o.(client.MatchingFields); ok {
			volume = f[replicaVolumeField]
			continue
		}
		keep = append(keep, o)
	}
	if err := c.Client.List(ctx, list, keep...); err != nil {
		return err
	}
	if l, ok := list.(*v1.LocalVolumeReplicaList); ok && volume != "" {
		items := l.Items[:0]
		for _, r := range l.Items {
			if r.Spec.VolumeName == volume {
				items = append(items, r)
			}
		}
		l.Items = items
	}
	return nil
}

func expectEvent(t *testing.T, rec *record.FakeRecorder, prefix string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-rec.Events:
			if len(e) >= len(prefix) && e[:len(prefix)] == prefix {
				return
			}
		case <-deadline:
			t.Fatalf("no event starting with %q", prefix)
		}
	}
}
