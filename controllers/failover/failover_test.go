package failover

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/internal/fixture"
	"hwameistor.io/local/controllers/node"
	"hwameistor.io/local/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

const ns = "default"

// start runs the reconciler in a manager until the test ends.
func start(t *testing.T) *record.FakeRecorder {
	rec, _ := startStoppable(t)
	return rec
}

// startStoppable is start that can also be stopped early (a restart).
func startStoppable(t *testing.T) (*record.FakeRecorder, func()) {
	t.Helper()
	rec := record.NewFakeRecorder(1000)
	synced := make(chan struct{})
	stop := env.StartManager(t, func(ctx context.Context, mgr ctrl.Manager) error {
		r := &Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: rec}
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
	return rec, stop
}

// replicaDRBD is the DRBD state the node agent reports.
func replicaDRBD(role, disk string) func(*v1.LocalVolumeReplicaStatus) {
	return func(st *v1.LocalVolumeReplicaStatus) {
		st.DRBD = &v1.ReplicaDRBDStatus{Device: "/dev/drbd1", Port: v1.DRBDPort(1), Role: role, DiskState: disk,
			Connection: "Connected", MayServe: disk == "UpToDate", InSyncPercent: "100"}
	}
}

// haSetup makes nodes a, b and c, an HA volume "vol" on a (Primary) and b
// (standby disk standbyDisk), its claim and PV, and pod db-0 on a using it,
// owned by a StatefulSet (or bare).
func haSetup(t *testing.T, standbyDisk string, bare bool) {
	t.Helper()
	fixture.Reset(t, env.Client)
	cleanupCore(t)
	fixture.CreateNodes(t, env.Client, fixture.Node{Name: "a", Free: 10 * fixture.Gi}, fixture.Node{Name: "b", Free: 10 * fixture.Gi}, fixture.Node{Name: "c", Free: 10 * fixture.Gi})
	fixture.CreateVolume(t, env.Client, fixture.Volume{Name: "vol", Replicas: []string{"a", "b"}})
	fixture.Edit(t, env.Client, "vol", func(lv *v1.LocalVolume) {
		lv.Spec.PersistentVolumeClaimName, lv.Spec.PersistentVolumeClaimNamespace = "data-db-0", ns
		lv.Spec.Config.ResourceID = 1
	})
	fixture.SetReplicaStatus(t, env.Client, "vol", "a", replicaDRBD("Primary", "UpToDate"))
	fixture.SetReplicaStatus(t, env.Client, "vol", "b", replicaDRBD("Secondary", standbyDisk))
	fixture.Create(t, env.Client,
		&corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "vol"}, Spec: corev1.PersistentVolumeSpec{
			Capacity:               corev1.ResourceList{corev1.ResourceStorage: *resourceGi()},
			AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: v1.DriverName, VolumeHandle: "vol"}},
		}},
		&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data-db-0", Namespace: ns}, Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, VolumeName: "vol",
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: *resourceGi()}},
		}})
	createPod(t, "db-0", "a", bare, corev1.PodRunning)
}

func resourceGi() *resource.Quantity { q := resource.MustParse("1Gi"); return &q }

// createPod creates a pod using claim data-db-0 on node, in phase.
func createPod(t *testing.T, name, nodeName string, bare bool, phase corev1.PodPhase) {
	t.Helper()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: corev1.PodSpec{
		NodeName:   nodeName,
		Containers: []corev1.Container{{Name: "c", Image: "app"}},
		Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data-db-0"}}}},
	}}
	if !bare {
		pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", UID: "3f7f0e0c-0000-4000-8000-000000000001", Controller: ptr.To(true)}}
	}
	fixture.Create(t, env.Client, pod)
	pod.Status.Phase = phase
	if err := env.Client.Status().Update(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
}

// cleanupCore removes the pods, claims, PVs and kubelet Leases of a
// previous test (fixture.Reset does the hwameistor objects).
func cleanupCore(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	// Without kube-controller-manager nothing removes the protection
	// finalizers the apiserver adds to claims and PVs.
	pvcs, pvs := &corev1.PersistentVolumeClaimList{}, &corev1.PersistentVolumeList{}
	if err := env.Client.List(ctx, pvcs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.List(ctx, pvs); err != nil {
		t.Fatal(err)
	}
	var protected []client.Object
	for i := range pvcs.Items {
		protected = append(protected, &pvcs.Items[i])
	}
	for i := range pvs.Items {
		protected = append(protected, &pvs.Items[i])
	}
	for _, obj := range protected {
		patch := client.MergeFrom(obj.DeepCopyObject().(client.Object))
		obj.SetFinalizers(nil)
		if err := env.Client.Patch(ctx, obj, patch); client.IgnoreNotFound(err) != nil {
			t.Fatal(err)
		}
	}
	for _, obj := range []client.Object{&corev1.Pod{}, &corev1.PersistentVolumeClaim{}} {
		if err := env.Client.DeleteAllOf(ctx, obj, client.InNamespace(ns), client.GracePeriodSeconds(0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := env.Client.DeleteAllOf(ctx, &corev1.PersistentVolume{}); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.DeleteAllOf(ctx, &coordinationv1.Lease{}, client.InNamespace(NodeLeaseNamespace)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "no pods, claims or PVs left", func() bool {
		pods, pvcs, pvs := &corev1.PodList{}, &corev1.PersistentVolumeClaimList{}, &corev1.PersistentVolumeList{}
		return env.Client.List(ctx, pods, client.InNamespace(ns)) == nil && len(pods.Items) == 0 &&
			env.Client.List(ctx, pvcs, client.InNamespace(ns)) == nil && len(pvcs.Items) == 0 &&
			env.Client.List(ctx, pvs) == nil && len(pvs.Items) == 0
	})
}

// kubeletLease makes node's kubelet Lease, renewed at renewed.
func kubeletLease(t *testing.T, nodeName string, renewed time.Time) {
	t.Helper()
	fixture.Create(t, env.Client, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: nodeName, Namespace: NodeLeaseNamespace},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(nodeName), LeaseDurationSeconds: ptr.To[int32](40), RenewTime: &metav1.MicroTime{Time: renewed}}})
}

// agentStops marks node's agent heartbeat expired, as the node controller does.
func agentStops(t *testing.T, nodeName string) {
	t.Helper()
	fixture.EditStatus(t, env.Client, nodeName, func(lsn *v1.LocalStorageNode) {
		lsn.Status.State = v1.StateNotReady
		meta.SetStatusCondition(&lsn.Status.Conditions, metav1.Condition{Type: node.ConditionAgentHeartbeat, Status: metav1.ConditionFalse,
			Reason: node.ReasonAgentStopped, Message: "test"})
	})
}

func podGone(name string) func() bool {
	return func() bool {
		err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &corev1.Pod{})
		return apierrors.IsNotFound(err)
	}
}

// consistently fails if cond turns false within d.
func consistently(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if !cond() {
			t.Fatalf("no longer true: %s", what)
		}
	}
}

func failoverFrom() string {
	lv := &v1.LocalVolume{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Name: "vol"}, lv); err != nil {
		return "error: " + err.Error()
	}
	return lv.Annotations[v1.FailoverFromAnnotation]
}

// TestNodeDown: the Primary's node stops (agent heartbeat and kubelet
// Lease expired): the pod is force-deleted, the volume marked, and once
// the replacement runs on the standby's node the mark goes with an Event.
func TestNodeDown(t *testing.T) {
	haSetup(t, "UpToDate", false)
	rec := start(t)
	kubeletLease(t, "a", time.Now().Add(-5*time.Minute))
	agentStops(t, "a")
	testenv.Eventually(t, "pod db-0 force-deleted", podGone("db-0"))
	if got := failoverFrom(); got != "a" {
		t.Fatalf("failover-from = %q, want a", got)
	}
	fixture.WaitRecorded(t, rec, EventFailingOver, "force-deleted", "vol", "from node a")
	createPod(t, "db-0", "b", false, corev1.PodRunning)
	testenv.Eventually(t, "the failover mark removed", func() bool { return failoverFrom() == "" })
	fixture.WaitRecorded(t, rec, EventFailedOver, "runs on node b")
}

// TestAgentDownNodeAlive: only the node agent stopped; the kubelet renews
// the node's Lease, so the pod keeps running.
func TestAgentDownNodeAlive(t *testing.T) {
	haSetup(t, "UpToDate", false)
	rec := start(t)
	kubeletLease(t, "a", time.Now())
	agentStops(t, "a")
	fixture.WaitRecorded(t, rec, EventNodeAlive, "kubelet renews")
	consistently(t, "pod db-0 kept", 2*time.Second, func() bool { return !podGone("db-0")() && failoverFrom() == "" })

	// Said once per stop: more reconciles of the same stop (the heartbeat
	// condition's message changes) record nothing more.
	for i := range 2 {
		fixture.EditStatus(t, env.Client, "a", func(lsn *v1.LocalStorageNode) {
			meta.FindStatusCondition(lsn.Status.Conditions, node.ConditionAgentHeartbeat).Message = fmt.Sprintf("still stopped %d", i)
		})
	}
	consistently(t, "no second AgentDownNodeAlive", 2*time.Second, func() bool {
		select {
		case e := <-rec.Events:
			return !strings.Contains(e, EventNodeAlive)
		default:
			return true
		}
	})
}

// TestNoUpToDateStandby: a standby that misses writes (Outdated,
// Inconsistent) never takes the pod: it stays, with the reason.
func TestNoUpToDateStandby(t *testing.T) {
	for _, disk := range []string{"Outdated", "Inconsistent"} {
		t.Run(disk, func(t *testing.T) {
			haSetup(t, disk, false)
			rec := start(t)
			kubeletLease(t, "a", time.Now().Add(-5*time.Minute))
			agentStops(t, "a")
			fixture.WaitRecorded(t, rec, EventFailoverBlocked, "no other replica that may serve", "DRBD disk is "+disk)
			consistently(t, "pod db-0 kept", 2*time.Second, func() bool { return !podGone("db-0")() && failoverFrom() == "" })
		})
	}
}

// TestBarePod: nothing would recreate a pod without a controller.
func TestBarePod(t *testing.T) {
	haSetup(t, "UpToDate", true)
	rec := start(t)
	kubeletLease(t, "a", time.Now().Add(-5*time.Minute))
	agentStops(t, "a")
	fixture.WaitRecorded(t, rec, EventFailoverBlocked, "no controller")
	consistently(t, "pod db-0 kept", 2*time.Second, func() bool { return !podGone("db-0")() })
}

// TestNodeLabel: hwameistor.io/failover=start on a live node deletes the
// pod gracefully (its kubelet unstages and demotes), keeps the volume off
// the node, and turns the label completed once the pod runs elsewhere.
func TestNodeLabel(t *testing.T) {
	haSetup(t, "UpToDate", false)
	rec := start(t)
	kubeletLease(t, "a", time.Now())
	fixture.Edit(t, env.Client, "a", func(n *corev1.Node) { n.Labels = map[string]string{v1.FailoverLabel: v1.FailoverStart} })
	testenv.Eventually(t, "pod db-0 deleting", func() bool {
		pod := &corev1.Pod{}
		err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "db-0"}, pod)
		return apierrors.IsNotFound(err) || err == nil && pod.DeletionTimestamp != nil
	})
	fixture.WaitRecorded(t, rec, EventFailingOver, "deleted to fail over")
	if got := failoverFrom(); got != "a" {
		t.Fatalf("failover-from = %q, want a", got)
	}
	if got := fixture.Get[*corev1.Node](t, env.Client, "a").Labels[v1.FailoverLabel]; got != v1.FailoverStart {
		t.Fatalf("label = %q before the pod runs elsewhere, want start", got)
	}
	// The kubelet finishes the deletion; the StatefulSet recreates the pod.
	if err := env.Client.Delete(context.Background(), &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "db-0", Namespace: ns}}, client.GracePeriodSeconds(0)); client.IgnoreNotFound(err) != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "old pod gone", podGone("db-0"))
	createPod(t, "db-0", "b", false, corev1.PodRunning)
	testenv.Eventually(t, "label completed", func() bool {
		return fixture.Get[*corev1.Node](t, env.Client, "a").Labels[v1.FailoverLabel] == v1.FailoverCompleted
	})
	if got := failoverFrom(); got != "" {
		t.Fatalf("failover-from = %q after completion, want none", got)
	}
	fixture.WaitRecorded(t, rec, EventFailoverCompleted)
}

// TestPodLabel: hwameistor.io/failover=start on a pod fails over that pod;
// the label says completed on it as it goes.
func TestPodLabel(t *testing.T) {
	haSetup(t, "UpToDate", false)
	rec := start(t)
	kubeletLease(t, "a", time.Now())
	pod := &corev1.Pod{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "db-0"}, pod); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(pod.DeepCopy())
	pod.Labels = map[string]string{v1.FailoverLabel: v1.FailoverStart}
	if err := env.Client.Patch(context.Background(), pod, patch); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "pod db-0 labelled completed and deleting", func() bool {
		pod := &corev1.Pod{}
		if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "db-0"}, pod); err != nil {
			return false
		}
		return pod.Labels[v1.FailoverLabel] == v1.FailoverCompleted && pod.DeletionTimestamp != nil
	})
	fixture.WaitRecorded(t, rec, EventFailingOver, "db-0")
	if got := failoverFrom(); got != "a" {
		t.Fatalf("failover-from = %q, want a", got)
	}
}

// TestNodeBack: the node returns before a pod ran elsewhere: the mark goes
// and the pod may return there.
func TestNodeBack(t *testing.T) {
	haSetup(t, "UpToDate", false)
	rec := start(t)
	kubeletLease(t, "a", time.Now().Add(-5*time.Minute))
	agentStops(t, "a")
	testenv.Eventually(t, "pod db-0 force-deleted", podGone("db-0"))
	fixture.EditStatus(t, env.Client, "a", func(lsn *v1.LocalStorageNode) {
		lsn.Status.State = v1.StateReady
		meta.SetStatusCondition(&lsn.Status.Conditions, metav1.Condition{Type: node.ConditionAgentHeartbeat, Status: metav1.ConditionTrue,
			Reason: node.ReasonAgentReporting, Message: "test"})
	})
	testenv.Eventually(t, "the failover mark removed", func() bool { return failoverFrom() == "" })
	fixture.WaitRecorded(t, rec, EventFailoverCancelled, "Node a is back")
}

// TestRestartMidFailover: the controller stops after deleting the pod; a
// new one finishes the failover when the replacement runs elsewhere.
func TestRestartMidFailover(t *testing.T) {
	haSetup(t, "UpToDate", false)
	_, stop := startStoppable(t)
	kubeletLease(t, "a", time.Now().Add(-5*time.Minute))
	agentStops(t, "a")
	testenv.Eventually(t, "pod db-0 force-deleted", podGone("db-0"))
	stop()
	createPod(t, "db-0", "b", false, corev1.PodRunning)
	rec := start(t)
	testenv.Eventually(t, "the failover mark removed by the new controller", func() bool { return failoverFrom() == "" })
	fixture.WaitRecorded(t, rec, EventFailedOver, "runs on node b")
}

// TestPodClaims: the index keys of a pod's claims, a generic ephemeral
// volume's included.
func TestPodClaims(t *testing.T) {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "db", Name: "web-0"}, Spec: corev1.PodSpec{Volumes: []corev1.Volume{
		{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data-web-0"}}},
		{Name: "scratch", VolumeSource: corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{}}},
		{Name: "config", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	}}}
	if got, want := podClaims(p), []string{"db/data-web-0", "db/web-0-scratch"}; !slices.Equal(got, want) {
		t.Errorf("podClaims = %v, want %v", got, want)
	}
}
