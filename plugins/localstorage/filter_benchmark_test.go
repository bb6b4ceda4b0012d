package localstorage

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	clientsetfake "k8s.io/client-go/kubernetes/fake"
	kubeschedv1 "k8s.io/kube-scheduler/config/v1"
	fwk "k8s.io/kube-scheduler/framework"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	configv1 "k8s.io/kubernetes/pkg/scheduler/apis/config/v1"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/feature"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/noderesources"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/internal/hwinformers"
	"hwameistor.io/local/plugins/localstorage/apis/config"
	configv1ls "hwameistor.io/local/plugins/localstorage/apis/config/v1"
	"hwameistor.io/local/plugins/localstorage/metrics"
)

// benchCluster is n nodes, each with a Node, NodeInfo and a LocalStorageNode
// holding a 1Ti HDD pool, one pod with a 6Gi claim of our class, and one
// with a 2Ti claim that no node fits.
type benchCluster struct {
	nodes  []fwk.NodeInfo
	pod    *corev1.Pod
	bigPod *corev1.Pod
	h      framework.Handle
	pl     *LocalStorage
}

func newBenchCluster(b *testing.B, n int) *benchCluster {
	b.Helper()
	ctx := context.Background()
	client := clientsetfake.NewClientset()
	factory := informers.NewSharedInformerFactory(client, 0)
	h, err := frameworkruntime.NewFramework(ctx, nil, &schedconfig.KubeSchedulerProfile{},
		frameworkruntime.WithInformerFactory(factory), frameworkruntime.WithClientSet(client))
	if err != nil {
		b.Fatal(err)
	}
	vargs := &configv1ls.LocalStorageArgs{}
	configv1ls.SetDefaults_LocalStorageArgs(vargs)
	args := &config.LocalStorageArgs{}
	if err := configv1ls.ConvertToInternal(vargs, args); err != nil {
		b.Fatal(err)
	}
	pl, err := newPlugin(args, h, hwinformers.NewFactory(nil, 0), nil)
	if err != nil {
		b.Fatal(err)
	}
	pl.synced = func() bool { return true } // the stores are filled directly
	class := "hdd"
	mode := storagev1.VolumeBindingWaitForFirstConsumer
	_ = factory.Storage().V1().StorageClasses().Informer().GetStore().Add(&storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{Name: class}, Provisioner: v1.DriverName, VolumeBindingMode: &mode,
		Parameters: map[string]string{ParamPoolClass: "HDD"}})
	_ = factory.Core().V1().PersistentVolumeClaims().Informer().GetStore().Add(&corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "data", UID: "uid-data"},
		Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: &class, Resources: corev1.VolumeResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("6Gi")}}},
	})
	_ = factory.Core().V1().PersistentVolumeClaims().Informer().GetStore().Add(&corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "big", UID: "uid-big"},
		Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: &class, Resources: corev1.VolumeResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("2Ti")}}},
	})
	c := &benchCluster{h: h, pl: pl}
	podWith := func(name, claim string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name)}, Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")}}}},
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}},
		}}
	}
	c.pod, c.bigPod = podWith("db", "data"), podWith("big", "big")
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("node-%d", i)
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("64Gi"), corev1.ResourcePods: resource.MustParse("110")}}}
		ni := framework.NewNodeInfo()
		ni.SetNode(node)
		c.nodes = append(c.nodes, ni)
		pool := int64(1) << 40
		pl.Cache().UpsertNode(&v1.LocalStorageNode{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: v1.LocalStorageNodeStatus{
			State: v1.StateReady, Pools: map[string]v1.LocalPool{v1.PoolNameHDD: {Name: v1.PoolNameHDD, Class: v1.PoolClassHDD,
				TotalCapacityBytes: pool, FreeCapacityBytes: pool - int64(i)<<20, TotalVolumeCount: 1000, FreeVolumeCount: 1000}}}})
	}
	return c
}

// BenchmarkFilter runs one Filter call per node, for our plugin and for the
// in-tree NodeResourcesFit in the same run, so their ns/op (per node) and
// allocs/op compare directly.
func BenchmarkFilter(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		c := newBenchCluster(b, n)
		ctx := context.Background()

		b.Run(fmt.Sprintf("LocalStorage/nodes=%d", n), func(b *testing.B) {
			cs := framework.NewCycleState()
			if _, st := c.pl.PreFilter(ctx, cs, c.pod, c.nodes); !st.IsSuccess() {
				b.Fatal(st)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if st := c.pl.Filter(ctx, cs, c.pod, c.nodes[i%n]); !st.IsSuccess() {
					b.Fatal(st)
				}
				i++
			}
		})

		// A cycle the framework samples for plugin metrics (10% of them),
		// where one Filter call in 8 is timed (Filter, filter.go): this variant
		// shows what that costs.
		b.Run(fmt.Sprintf("LocalStorageSampled/nodes=%d", n), func(b *testing.B) {
			metrics.Register()
			cs := framework.NewCycleState()
			cs.SetRecordPluginMetrics(true)
			if _, st := c.pl.PreFilter(ctx, cs, c.pod, c.nodes); !st.IsSuccess() {
				b.Fatal(st)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if st := c.pl.Filter(ctx, cs, c.pod, c.nodes[i%n]); !st.IsSuccess() {
					b.Fatal(st)
				}
				i++
			}
		})

		// A pod no node fits: every call is a rejection, with its message,
		// its status and its counted reason (insufficient_capacity).
		b.Run(fmt.Sprintf("LocalStorageRejected/nodes=%d", n), func(b *testing.B) {
			metrics.Register()
			cs := framework.NewCycleState()
			if _, st := c.pl.PreFilter(ctx, cs, c.bigPod, c.nodes); !st.IsSuccess() {
				b.Fatal(st)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if st := c.pl.Filter(ctx, cs, c.bigPod, c.nodes[i%n]); st.Code() != fwk.UnschedulableAndUnresolvable {
					b.Fatal(st)
				}
				i++
			}
		})

		// The scheduler filters nodes from 16 goroutines: this variant shows
		// what the cache's shared lock costs under that parallelism.
		b.Run(fmt.Sprintf("LocalStorageParallel/nodes=%d", n), func(b *testing.B) {
			cs := framework.NewCycleState()
			if _, st := c.pl.PreFilter(ctx, cs, c.pod, c.nodes); !st.IsSuccess() {
				b.Fatal(st)
			}
			b.ReportAllocs()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if st := c.pl.Filter(ctx, cs, c.pod, c.nodes[i%n]); !st.IsSuccess() {
						b.Error(st)
						return
					}
					i++
				}
			})
		})

		b.Run(fmt.Sprintf("NodeResourcesFit/nodes=%d", n), func(b *testing.B) {
			fitArgs := &kubeschedv1.NodeResourcesFitArgs{}
			// Defaults as the scheduler applies them.
			configv1.SetDefaults_NodeResourcesFitArgs(fitArgs)
			internal := &schedconfig.NodeResourcesFitArgs{}
			if err := configv1.Convert_v1_NodeResourcesFitArgs_To_config_NodeResourcesFitArgs(fitArgs, internal, nil); err != nil {
				b.Fatal(err)
			}
			p, err := noderesources.NewFit(ctx, internal, c.h, feature.Features{})
			if err != nil {
				b.Fatal(err)
			}
			fit := p.(framework.FilterPlugin)
			cs := framework.NewCycleState()
			if _, st := p.(framework.PreFilterPlugin).PreFilter(ctx, cs, c.pod, c.nodes); !st.IsSuccess() {
				b.Fatal(st)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if st := fit.Filter(ctx, cs, c.pod, c.nodes[i%n]); !st.IsSuccess() {
					b.Fatal(st)
				}
				i++
			}
		})

		b.Run(fmt.Sprintf("LocalStorageScore/nodes=%d", n), func(b *testing.B) {
			cs := framework.NewCycleState()
			if _, st := c.pl.PreFilter(ctx, cs, c.pod, c.nodes); !st.IsSuccess() {
				b.Fatal(st)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, st := c.pl.Score(ctx, cs, c.pod, c.nodes[i%n]); !st.IsSuccess() {
					b.Fatal(st)
				}
				i++
			}
		})
	}
}
