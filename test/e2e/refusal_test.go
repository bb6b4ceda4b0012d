package e2e

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/agent"
	"hwameistor.io/local/csidriver/backend"
	"hwameistor.io/local/csidriver/backend/backendtest"
	"hwameistor.io/local/csidriver/backend/emulated"
)

const refuser = "e2e-refuser"

// startRefuser adds the fake node e2e-refuser, served by a node agent in
// this process (the stack's agent serves e2e-node-0 only): its pool has
// 4Gi, its report says 40Gi until catchUp.
func startRefuser(t *testing.T) (*agent.Agent, *backendtest.LaggingReport) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	res := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("128Gi"), corev1.ResourcePods: resource.MustParse("110")}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: refuser, Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
			Labels: map[string]string{"kubernetes.io/hostname": refuser, "type": "kwok", corev1.LabelTopologyZone: "zone-a", v1.TopologyKey: refuser}},
		Status: corev1.NodeStatus{Capacity: res, Allocatable: res},
	}
	if _, err := h.Clientset.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	csiNode := &storagev1.CSINode{ObjectMeta: metav1.ObjectMeta{Name: refuser}, Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{{
		Name: v1.DriverName, NodeID: refuser, TopologyKeys: []string{v1.TopologyKey}}}}}
	if _, err := h.Clientset.StorageV1().CSINodes().Create(ctx, csiNode, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	be, err := emulated.New(filepath.Join(t.TempDir(), refuser), []emulated.PoolConfig{{Class: v1.PoolClassHDD, CapacityBytes: 4 << 30}}, emulated.WithoutLoop())
	if err != nil {
		t.Fatal(err)
	}
	pools, err := be.Pools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pools[0].TotalBytes, pools[0].FreeBytes = 40<<30, 40<<30
	lag := backendtest.NewLaggingReport(be, pools)

	ctrl.SetLogger(logr.Discard()) // the stack's components log; this agent is quiet
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1.AddToScheme(scheme)
	mgr, err := ctrl.NewManager(h.Config, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: ptr.To(true)}})
	if err != nil {
		t.Fatal(err)
	}
	a := &agent.Agent{Client: mgr.GetClient(), Recorder: record.NewFakeRecorder(1000), Backends: map[string]backend.Backend{refuser: lag},
		Zones: map[string]string{refuser: "zone-a"}}
	if err := a.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("refuser's agent: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		bg := context.Background()
		_ = h.Clientset.CoreV1().Nodes().Delete(bg, refuser, metav1.DeleteOptions{})
		_ = h.Clientset.StorageV1().CSINodes().Delete(bg, refuser, metav1.DeleteOptions{})
		_ = h.Client.Delete(bg, &v1.LocalStorageNode{ObjectMeta: metav1.ObjectMeta{Name: refuser}})
	})
	eventually(t, "kwok to make e2e-refuser Ready", 60*time.Second, func(ctx context.Context) (bool, error) {
		n, err := h.Clientset.CoreV1().Nodes().Get(ctx, refuser, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, taint := range n.Spec.Taints {
			if taint.Effect == corev1.TaintEffectNoSchedule || taint.Effect == corev1.TaintEffectNoExecute {
				return false, nil
			}
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status == corev1.ConditionTrue, nil
			}
		}
		return false, nil
	})
	mgr.GetCache().WaitForCacheSync(ctx)
	eventually(t, "the refuser's (stale) report", 30*time.Second, func(ctx context.Context) (bool, error) {
		if err := a.ReportNode(ctx, refuser); err != nil {
			return false, nil
		}
		lsn := &v1.LocalStorageNode{}
		return h.Client.Get(ctx, client.ObjectKey{Name: refuser}, lsn) == nil && lsn.Status.State == v1.StateReady &&
			lsn.Status.Pools[v1.PoolNameHDD].FreeCapacityBytes == 40<<30, nil
	})
	return a, lag
}

// claimEvents returns the messages of a claim's Events with reason.
func claimEvents(t *testing.T, ns, claim, reason string) []string {
	t.Helper()
	list, err := h.Clientset.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + claim})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		if e.Reason == reason {
			for range max(e.Count, 1) {
				out = append(out, e.Message)
			}
		}
	}
	return out
}

func podScheduledMessage(ctx context.Context, ns, name string) string {
	p, err := h.Clientset.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return c.Message
		}
	}
	return ""
}

// TestCapacityRefusalMovesThePod (issue 14 item 6), with every component
// real (the scheduler, the CSI controller with external-provisioner, the
// controllers, the stack's node agent) but the agent of e2e-refuser, which
// runs here so its pool report can lag: the pool has 4Gi, the report says
// 40Gi until it catches up, more than a second after the claims are
// placed there.
//
//  1. A 10Gi claim goes to e2e-refuser (it looks roomiest); its agent
//     refuses it at allocation. CreateVolume answers ResourceExhausted with
//     the numbers (once: a ProvisioningFailed Event on the claim), leaves
//     nothing on e2e-refuser, and external-provisioner resets the selected
//     node; the scheduler places the pod on e2e-node-0, where it runs.
//  2. A 15Gi claim: e2e-node-0 has 10Gi left; e2e-refuser is tried once,
//     refuses, and the pod stays Pending with the numbers: no second try
//     while e2e-refuser's report is unchanged.
//  3. e2e-refuser's true report arrives: the refusal ends, and the pod
//     stays Pending with the new figures.
func TestCapacityRefusalMovesThePod(t *testing.T) {
	ctx := context.Background()
	ns := "e2e-refusal"
	if _, err := h.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	mode := storagev1.VolumeBindingWaitForFirstConsumer
	sc := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "e2e-refusal-hdd"}, Provisioner: v1.DriverName, VolumeBindingMode: &mode,
		Parameters: map[string]string{"poolClass": "HDD", "replicaNumber": "1", "csi.storage.k8s.io/fstype": "xfs"}}
	if _, err := h.Clientset.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "e2e-node-0's pool", 60*time.Second, func(ctx context.Context) (bool, error) {
		lsn := &v1.LocalStorageNode{}
		return h.Client.Get(ctx, client.ObjectKey{Name: nodeName}, lsn) == nil && lsn.Status.State == v1.StateReady &&
			lsn.Status.Pools[v1.PoolNameHDD].FreeCapacityBytes == 20<<30, nil
	})
	a, lag := startRefuser(t)
	newClaim := func(name, size string) *corev1.PersistentVolumeClaim {
		pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, StorageClassName: &sc.Name,
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}}}}
		pvc, err := h.Clientset.CoreV1().PersistentVolumeClaims(ns).Create(ctx, pvc, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return pvc
	}
	newPod := func(name, claim string) {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "c", Image: "busybox"}},
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}}}}
		if _, err := h.Clientset.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		// Give e2e-node-0's space back for the next test.
		_ = h.Clientset.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}, metav1.ListOptions{})
		_ = h.Clientset.CoreV1().PersistentVolumeClaims(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
		eventually(t, "e2e-node-0's pool free again", 120*time.Second, func(ctx context.Context) (bool, error) {
			lsn := &v1.LocalStorageNode{}
			return h.Client.Get(ctx, client.ObjectKey{Name: nodeName}, lsn) == nil && lsn.Status.Pools[v1.PoolNameHDD].FreeCapacityBytes == 20<<30, nil
		})
	})

	// 1. Refused on e2e-refuser, moved to e2e-node-0.
	first := newClaim("first", "10Gi")
	newPod("first", "first")
	eventually(t, "the first pod bound", 120*time.Second, func(ctx context.Context) (bool, error) {
		p, err := h.Clientset.CoreV1().Pods(ns).Get(ctx, "first", metav1.GetOptions{})
		return err == nil && p.Spec.NodeName != "", nil
	})
	placedAt := time.Now()
	if p, _ := h.Clientset.CoreV1().Pods(ns).Get(ctx, "first", metav1.GetOptions{}); p.Spec.NodeName != nodeName {
		t.Errorf("the first pod runs on %s, want %s", p.Spec.NodeName, nodeName)
	}
	// Events are written in the background: wait for the first.
	var failed []string
	eventually(t, "a ProvisioningFailed Event on the first claim", 30*time.Second, func(context.Context) (bool, error) {
		failed = claimEvents(t, ns, "first", "ProvisioningFailed")
		return len(failed) > 0, nil
	})
	if len(failed) != 1 || !strings.Contains(failed[0], "code = ResourceExhausted") ||
		!strings.Contains(failed[0], "node e2e-refuser refused 10Gi in LocalStorage_PoolHDD: 4Gi free at allocation, the node reports 40Gi free") {
		t.Errorf("ProvisioningFailed events on the first claim: %q; want one ResourceExhausted with the numbers", failed)
	}
	vol := "pvc-" + string(first.UID)
	if _, err := lag.GetVolume(ctx, v1.PoolNameHDD, vol); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("e2e-refuser keeps data of %s (%v)", vol, err)
	}
	if err := h.Client.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(vol, refuser)}, &v1.LocalVolumeReplica{}); !apierrors.IsNotFound(err) {
		t.Errorf("a replica on e2e-refuser is left (%v)", err)
	}
	lv := &v1.LocalVolume{}
	if err := h.Client.Get(ctx, client.ObjectKey{Name: vol}, lv); err != nil || strings.Join(lv.ReplicaNodes(), ",") != nodeName {
		t.Errorf("volume %s on %v (%v), want %s", vol, lv.ReplicaNodes(), err, nodeName)
	}
	// Bound, the claim's entry no longer needs the refusal.
	eventually(t, "the refusal dropped from the bound claim's group entry", 60*time.Second, func(ctx context.Context) (bool, error) {
		groups := &v1.LocalVolumeGroupList{}
		if err := h.Client.List(ctx, groups); err != nil {
			return false, nil
		}
		for _, g := range groups.Items {
			for _, e := range g.Spec.Volumes {
				if g.Spec.Namespace == ns && e.PersistentVolumeClaimName == "first" {
					return len(e.Refusals) == 0 && strings.Join(e.Nodes, ",") == nodeName, nil
				}
			}
		}
		return false, nil
	})

	// 2. Refused once, then Pending with the numbers.
	newClaim("second", "15Gi")
	newPod("second", "second")
	eventually(t, "the second pod Pending with e2e-refuser's refusal", 120*time.Second, func(ctx context.Context) (bool, error) {
		msg := podScheduledMessage(ctx, ns, "second")
		return strings.Contains(msg, "refused 15Gi in LocalStorage_PoolHDD: 4Gi free at allocation, the node reports 40Gi free") &&
			strings.Contains(msg, "need 15Gi, free 10Gi"), nil
	})
	time.Sleep(5 * time.Second)
	if failed := claimEvents(t, ns, "second", "ProvisioningFailed"); len(failed) != 1 || !strings.Contains(failed[0], "code = ResourceExhausted") {
		t.Errorf("ProvisioningFailed events on the second claim: %q; want exactly one ResourceExhausted (no retry on the refusing node)", failed)
	}
	if p, _ := h.Clientset.CoreV1().Pods(ns).Get(ctx, "second", metav1.GetOptions{}); p.Spec.NodeName != "" {
		t.Errorf("the second pod was bound to %s", p.Spec.NodeName)
	}

	// 3. The true report arrives, well over a second after the claims
	// were placed on e2e-refuser.
	if d := time.Since(placedAt); d < time.Second {
		time.Sleep(time.Second - d)
	}
	lag.CatchUp()
	if err := a.ReportNode(ctx, refuser); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the second pod's reason to follow the new report", 60*time.Second, func(ctx context.Context) (bool, error) {
		msg := podScheduledMessage(ctx, ns, "second")
		// The true pool is 4Gi, so it takes volumes up to 4Gi (the ledger
		// ignored the pool's size limit before).
		return strings.Contains(msg, "takes volumes up to 4Gi, 15Gi requested") && strings.Contains(msg, "need 15Gi, free 10Gi") && !strings.Contains(msg, "refused"), nil
	})
	if failed := claimEvents(t, ns, "second", "ProvisioningFailed"); len(failed) != 1 {
		t.Errorf("ProvisioningFailed events on the second claim: %q; want still one", failed)
	}
	t.Logf("the second pod: %s", podScheduledMessage(ctx, ns, "second"))
}
