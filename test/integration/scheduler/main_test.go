// Package scheduler_test runs the real kube-scheduler in-process, built with
// the same plugin registry and configuration file as hwameistor-scheduler,
// against a real kube-apiserver holding LocalStorageNodes. There is no
// provisioner: a placement is visible as the claim annotations PreBind writes
// (and the selected-node annotation VolumeBinding writes after it).
package scheduler_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/cmd/kube-scheduler/app/options"
	"k8s.io/kubernetes/pkg/scheduler"
	"k8s.io/kubernetes/pkg/scheduler/profile"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/internal/testenv"
	"hwameistor.io/local/scheduler/registry"
)

var (
	env *testenv.Env
	cs  *kubernetes.Clientset
)

func TestMain(m *testing.M) {
	klog.InitFlags(nil) // -args -v=4 shows the scheduler's decisions
	flag.Parse()
	var err error
	env, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cs = kubernetes.NewForConfigOrDie(env.Config)
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

const gi = int64(1) << 30

// startScheduler runs hwameistor-scheduler's profile from
// manifests/scheduler/scheduler-config.yaml until the returned stop is called.
func startScheduler(t *testing.T) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ctx = klog.NewContext(ctx, klog.Background())
	cfg, err := options.LoadConfigFromFile(klog.Background(), filepath.Join(testenv.RootDir(), "manifests", "scheduler", "scheduler-config.yaml"))
	if err != nil {
		t.Fatalf("loading the scheduler configuration: %v", err)
	}
	informerFactory := scheduler.NewInformerFactory(cs, 0)
	dyn := dynamicinformer.NewDynamicSharedInformerFactory(dynamic.NewForConfigOrDie(env.Config), 0)
	broadcaster := events.NewBroadcaster(&events.EventSinkImpl{Interface: cs.EventsV1()})
	broadcaster.StartRecordingToSink(ctx.Done())
	sched, err := scheduler.New(ctx, cs, informerFactory, dyn, profile.NewRecorderFactory(broadcaster),
		scheduler.WithProfiles(cfg.Profiles...),
		scheduler.WithKubeConfig(env.Config),
		scheduler.WithFrameworkOutOfTreeRegistry(registry.Registry()),
		scheduler.WithPodInitialBackoffSeconds(1),
		scheduler.WithPodMaxBackoffSeconds(2),
	)
	if err != nil {
		cancel()
		t.Fatalf("creating the scheduler: %v", err)
	}
	informerFactory.Start(ctx.Done())
	dyn.Start(ctx.Done())
	informerFactory.WaitForCacheSync(ctx.Done())
	dyn.WaitForCacheSync(ctx.Done())
	done := make(chan struct{})
	go func() { sched.Run(ctx); close(done) }()
	return func() {
		cancel()
		<-done
		broadcaster.Shutdown()
	}
}

// --- objects -------------------------------------------------------------

func createNamespace(t *testing.T, name string) string {
	t.Helper()
	_, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return name
}

// createNode creates a schedulable Node and its LocalStorageNode with one
// HDD pool of the given size.
func createNode(t *testing.T, name, zone string, poolBytes int64) {
	t.Helper()
	ctx := context.Background()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		"kubernetes.io/hostname": name, "topology.kubernetes.io/zone": zone, "test": "scheduler"}}}
	node, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.Status = corev1.NodeStatus{
		Capacity:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("64Gi"), corev1.ResourcePods: resource.MustParse("110")},
		Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("64Gi"), corev1.ResourcePods: resource.MustParse("110")},
		Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
	}
	node, err = cs.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The apiserver taints new nodes not-ready; no node lifecycle controller
	// runs here to lift it.
	node.Spec.Taints = nil
	if _, err := cs.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	lsn := &v1.LocalStorageNode{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.LocalStorageNodeSpec{Hostname: name, Topo: v1.Topology{Zone: zone}}}
	if err := env.Client.Create(ctx, lsn); err != nil {
		t.Fatal(err)
	}
	lsn.Status = v1.LocalStorageNodeStatus{State: v1.StateReady, Pools: map[string]v1.LocalPool{v1.PoolNameHDD: {
		Name: v1.PoolNameHDD, Class: v1.PoolClassHDD, Type: v1.PoolTypeRegular,
		TotalCapacityBytes: poolBytes, FreeCapacityBytes: poolBytes, VolumeCapacityBytesLimit: poolBytes,
		TotalVolumeCount: 1000, FreeVolumeCount: 1000,
	}}}
	if err := env.Client.Status().Update(ctx, lsn); err != nil {
		t.Fatal(err)
	}
}

func deleteNodes(t *testing.T, names ...string) {
	ctx := context.Background()
	for _, n := range names {
		_ = cs.CoreV1().Nodes().Delete(ctx, n, metav1.DeleteOptions{})
		_ = env.Client.Delete(ctx, &v1.LocalStorageNode{ObjectMeta: metav1.ObjectMeta{Name: n}})
	}
}

func createStorageClass(t *testing.T, name string, params map[string]string) {
	t.Helper()
	mode := storagev1.VolumeBindingWaitForFirstConsumer
	sc := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: v1.DriverName, Parameters: params, VolumeBindingMode: &mode}
	if _, err := cs.StorageV1().StorageClasses().Create(context.Background(), sc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func createClaim(t *testing.T, ns, name, class string, bytes int64) *corev1.PersistentVolumeClaim {
	t.Helper()
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: &class,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: *resource.NewQuantity(bytes, resource.BinarySI)}},
		},
	}
	pvc, err := cs.CoreV1().PersistentVolumeClaims(ns).Create(context.Background(), pvc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pvc
}

func createPod(t *testing.T, ns, name string, claims ...string) {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.PodSpec{
			SchedulerName: v1.SchedulerName,
			Containers:    []corev1.Container{{Name: "c", Image: "busybox"}},
		},
	}
	for i, c := range claims {
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: fmt.Sprintf("v%d", i),
			VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: c}}})
	}
	if _, err := cs.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// --- observations ----------------------------------------------------------

// placements returns claim name -> replica nodes that PreBind persisted in
// the namespace's LocalVolumeGroups. Every placed claim must also carry the
// selected-node annotation VolumeBinding writes after our PreBind, naming
// the first replica node.
func placements(t *testing.T, ns string) map[string][]string {
	t.Helper()
	groups := &v1.LocalVolumeGroupList{}
	if err := env.Client.List(context.Background(), groups); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, g := range groups.Items {
		if g.Spec.Namespace != ns {
			continue
		}
		for _, v := range g.Spec.Volumes {
			if len(v.Nodes) > 0 {
				out[v.PersistentVolumeClaimName] = v.Nodes
			}
		}
	}
	return out
}

// selectedNodes returns claim name -> the selected-node annotation.
func selectedNodes(t *testing.T, ns string) map[string]string {
	t.Helper()
	list, err := cs.CoreV1().PersistentVolumeClaims(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, pvc := range list.Items {
		if n := pvc.Annotations["volume.kubernetes.io/selected-node"]; n != "" {
			out[pvc.Name] = n
		}
	}
	return out
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, error)) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, timeout, true, func(context.Context) (bool, error) { return cond() })
	if err != nil {
		t.Fatalf("waiting for %s: %v\n%s", what, err, dumpPods())
	}
}

// unschedulableMessage returns the PodScheduled=False message of a pod.
func unschedulableMessage(t *testing.T, ns, name string) string {
	t.Helper()
	pod, err := cs.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return c.Message
		}
	}
	return ""
}

// dumpPods describes every pod's scheduling state, for failure messages.
func dumpPods() string {
	pods, err := cs.CoreV1().Pods("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, p := range pods.Items {
		fmt.Fprintf(&b, "pod %s/%s node=%q", p.Namespace, p.Name, p.Spec.NodeName)
		for _, c := range p.Status.Conditions {
			fmt.Fprintf(&b, " %s=%s %q", c.Type, c.Status, c.Message)
		}
		b.WriteString("\n")
	}
	return b.String()
}
