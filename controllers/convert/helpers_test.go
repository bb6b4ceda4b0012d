package convert

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/volume"
	"hwameistor.io/local/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	testenv.Main(m, &env)
}

const gi = int64(1) << 30

// reset deletes everything a test creates: the target choice reads every
// node, volume and group of the cluster, so each test starts from nothing.
// The volume controller's finalizer is removed first (no controller runs
// between tests).
func reset(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	lvs := &v1.LocalVolumeList{}
	if err := env.Client.List(ctx, lvs); err != nil {
		t.Fatal(err)
	}
	for i := range lvs.Items {
		if len(lvs.Items[i].Finalizers) > 0 {
			lvs.Items[i].Finalizers = nil
			if err := env.Client.Update(ctx, &lvs.Items[i]); client.IgnoreNotFound(err) != nil {
				t.Fatal(err)
			}
		}
	}
	kinds := []struct {
		obj   client.Object
		list  client.ObjectList
		count func(client.ObjectList) int
	}{
		{&v1.LocalVolumeConvert{}, &v1.LocalVolumeConvertList{}, func(l client.ObjectList) int { return len(l.(*v1.LocalVolumeConvertList).Items) }},
		{&v1.LocalVolumeMigrate{}, &v1.LocalVolumeMigrateList{}, func(l client.ObjectList) int { return len(l.(*v1.LocalVolumeMigrateList).Items) }},
		{&v1.LocalVolumeExpand{}, &v1.LocalVolumeExpandList{}, func(l client.ObjectList) int { return len(l.(*v1.LocalVolumeExpandList).Items) }},
		{&v1.LocalVolumeReplica{}, &v1.LocalVolumeReplicaList{}, func(l client.ObjectList) int { return len(l.(*v1.LocalVolumeReplicaList).Items) }},
		{&v1.LocalVolume{}, &v1.LocalVolumeList{}, func(l client.ObjectList) int { return len(l.(*v1.LocalVolumeList).Items) }},
		{&v1.LocalVolumeGroup{}, &v1.LocalVolumeGroupList{}, func(l client.ObjectList) int { return len(l.(*v1.LocalVolumeGroupList).Items) }},
		{&v1.LocalStorageNode{}, &v1.LocalStorageNodeList{}, func(l client.ObjectList) int { return len(l.(*v1.LocalStorageNodeList).Items) }},
		{&corev1.Node{}, &corev1.NodeList{}, func(l client.ObjectList) int { return len(l.(*corev1.NodeList).Items) }},
	}
	for _, k := range kinds {
		if err := env.Client.DeleteAllOf(ctx, k.obj); err != nil {
			t.Fatalf("deleting %T: %v", k.obj, err)
		}
	}
	if err := env.Client.DeleteAllOf(ctx, &corev1.Event{}, client.InNamespace(metav1.NamespaceDefault)); err != nil {
		t.Fatal(err)
	}
	for _, k := range kinds {
		testenv.Eventually(t, fmt.Sprintf("no %T left", k.list), func() bool {
			return env.Client.List(ctx, k.list) == nil && k.count(k.list) == 0
		})
	}
}

// startController runs the convert Reconciler and the volume controller
// (which creates replicas for every node of spec.config.replicas, so a
// test sees that it never creates the new replica unmarked) in one
// manager until stop is called or the test ends. Events go to the
// apiserver, as in the binary.
func startController(t *testing.T) (stop func()) {
	t.Helper()
	return env.StartManager(t, func(ctx context.Context, mgr ctrl.Manager) error {
		vc := &volume.Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorderFor("hwameistor-volume")}
		if err := vc.SetupWithManager(ctx, mgr); err != nil {
			return err
		}
		r := &Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorderFor("hwameistor-convert"), RetryInterval: 200 * time.Millisecond}
		return r.SetupWithManager(mgr)
	})
}

func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := env.Client.Create(context.Background(), obj); err != nil {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

// node describes a test node: a corev1 Node and its LocalStorageNode.
type node struct {
	name     string
	free     int64 // free bytes of the HDD pool
	zone     string
	cordoned bool
	notReady bool // the LocalStorageNode is NotReady
}

// createNode creates the Node and a LocalStorageNode whose status has an
// HDD pool, as the node agent reports it.
func createNode(t *testing.T, n node) {
	t.Helper()
	create(t, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.name}, Spec: corev1.NodeSpec{Unschedulable: n.cordoned}})
	lsn := &v1.LocalStorageNode{ObjectMeta: metav1.ObjectMeta{Name: n.name},
		Spec: v1.LocalStorageNodeSpec{Hostname: n.name, Topo: v1.Topology{Zone: n.zone}}}
	create(t, lsn)
	used := 10 * gi
	lsn.Status = v1.LocalStorageNodeStatus{State: v1.StateReady, Pools: map[string]v1.LocalPool{v1.PoolNameHDD: {
		Name: v1.PoolNameHDD, Class: v1.PoolClassHDD, Type: v1.PoolTypeRegular,
		TotalCapacityBytes: n.free + used, UsedCapacityBytes: used, FreeCapacityBytes: n.free,
		TotalVolumeCount: 100, UsedVolumeCount: 10, FreeVolumeCount: 90,
	}}}
	if n.notReady {
		lsn.Status.State = v1.StateNotReady
	}
	if err := env.Client.Status().Update(context.Background(), lsn); err != nil {
		t.Fatal(err)
	}
}

func createNodes(t *testing.T, nodes ...node) {
	t.Helper()
	for _, n := range nodes {
		createNode(t, n)
	}
}

// vol describes a test LocalVolume with its replicas (the first primary).
type vol struct {
	name        string
	size        int64 // 1Gi unless set
	group       string
	replicas    []string
	convertible bool
}

// createVolume creates the LocalVolume as CreateVolume and the volume
// controller leave it (Ready), its replicas as the volume controller makes
// them (owned by the volume) and the node agent reports them (Ready, synced), and lists it in each node's pool status (its bytes are
// counted in the pool's used bytes).
func createVolume(t *testing.T, v vol) {
	t.Helper()
	ctx := context.Background()
	size := v.size
	if size == 0 {
		size = gi
	}
	lv := &v1.LocalVolume{ObjectMeta: metav1.ObjectMeta{Name: v.name}, Spec: v1.LocalVolumeSpec{
		PoolName: v1.PoolNameHDD, RequiredCapacityBytes: size, ReplicaNumber: int64(len(v.replicas)),
		VolumeKind: v1.VolumeKindLVM, VolumeGroup: v.group, Convertible: v.convertible,
		Accessibility: v1.AccessibilityTopology{Nodes: slices.Clone(v.replicas)},
		Config:        &v1.VolumeConfig{Version: 1, VolumeName: v.name, RequiredCapacityBytes: size, Convertible: v.convertible},
	}}
	for i, n := range v.replicas {
		lv.Spec.Config.Replicas = append(lv.Spec.Config.Replicas, v1.VolumeReplica{ID: int64(i + 1), Hostname: n, Primary: i == 0})
	}
	create(t, lv)
	lv.Status = v1.LocalVolumeStatus{State: v1.StateReady, AllocatedCapacityBytes: size}
	if err := env.Client.Status().Update(ctx, lv); err != nil {
		t.Fatal(err)
	}
	for _, n := range v.replicas {
		rep := &v1.LocalVolumeReplica{ObjectMeta: metav1.ObjectMeta{Name: v1.ReplicaName(v.name, n)}, Spec: v1.LocalVolumeReplicaSpec{
			VolumeName: v.name, NodeName: n, PoolName: v1.PoolNameHDD, RequiredCapacityBytes: size, VolumeKind: v1.VolumeKindLVM,
		}}
		// Owned by the volume, as the volume controller makes them.
		if err := controllerutil.SetControllerReference(lv, rep, env.Scheme); err != nil {
			t.Fatal(err)
		}
		create(t, rep)
		rep.Status = v1.LocalVolumeReplicaStatus{State: v1.StateReady, AllocatedCapacityBytes: size, Synced: true,
			StoragePath: v1.PoolNameHDD + "/" + v.name, DevicePath: "/dev/" + v1.PoolNameHDD + "/" + v.name}
		if err := env.Client.Status().Update(ctx, rep); err != nil {
			t.Fatal(err)
		}
		listVolumeOnNode(t, n, v.name)
	}
}

// listVolumeOnNode adds volume to the node's HDD pool status.
func listVolumeOnNode(t *testing.T, node, volume string) {
	t.Helper()
	ctx := context.Background()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		lsn := &v1.LocalStorageNode{}
		if err := env.Client.Get(ctx, client.ObjectKey{Name: node}, lsn); err != nil {
			return err
		}
		p := lsn.Status.Pools[v1.PoolNameHDD]
		p.Volumes = append(p.Volumes, volume)
		lsn.Status.Pools[v1.PoolNameHDD] = p
		return env.Client.Status().Update(ctx, lsn)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// createGroup creates a LocalVolumeGroup whose entries place each volume
// on its nodes (1Gi in the HDD pool).
func createGroup(t *testing.T, name string, entries ...v1.VolumeInfo) {
	t.Helper()
	for i := range entries {
		entries[i].PoolName, entries[i].RequiredCapacityBytes = v1.PoolNameHDD, gi
	}
	create(t, &v1.LocalVolumeGroup{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.LocalVolumeGroupSpec{Namespace: "default", Volumes: entries}})
}

func groupNodes(t *testing.T, group, volume string) []string {
	t.Helper()
	g := &v1.LocalVolumeGroup{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: group}, g); err != nil {
		t.Fatal(err)
	}
	for _, e := range g.Spec.Volumes {
		if e.LocalVolumeName == volume {
			return e.Nodes
		}
	}
	t.Fatalf("group %s has no entry for %s", group, volume)
	return nil
}

func createConvert(t *testing.T, name, volume string) {
	t.Helper()
	create(t, &v1.LocalVolumeConvert{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.LocalVolumeConvertSpec{VolumeName: volume, ReplicaNumber: 2}})
}

func getConvert(t *testing.T, name string) *v1.LocalVolumeConvert {
	t.Helper()
	c := &v1.LocalVolumeConvert{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: name}, c); err != nil {
		t.Fatal(err)
	}
	return c
}

// waitConvert waits until cond holds and returns the conversion; on a
// timeout it logs the last status seen.
func waitConvert(t *testing.T, name, what string, cond func(*v1.LocalVolumeConvert) bool) *v1.LocalVolumeConvert {
	t.Helper()
	var last *v1.LocalVolumeConvert
	defer func() {
		if t.Failed() && last != nil {
			t.Logf("conversion %s, last status: %+v", name, last.Status)
		}
	}()
	testenv.Eventually(t, fmt.Sprintf("conversion %s: %s", name, what), func() bool {
		last = getConvert(t, name)
		return cond(last)
	})
	return last
}

func waitState(t *testing.T, name string, state v1.State) *v1.LocalVolumeConvert {
	t.Helper()
	return waitConvert(t, name, "state "+string(state), func(c *v1.LocalVolumeConvert) bool { return c.Status.State == state })
}

// editConvert changes the conversion (or, with status, its status).
func editConvert(t *testing.T, name string, status bool, change func(*v1.LocalVolumeConvert)) {
	t.Helper()
	ctx := context.Background()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		c := &v1.LocalVolumeConvert{}
		if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, c); err != nil {
			return err
		}
		change(c)
		if status {
			return env.Client.Status().Update(ctx, c)
		}
		return env.Client.Update(ctx, c)
	})
	if err != nil {
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

// getReplica returns the replica of volume on node, or nil.
func getReplica(t *testing.T, volume, node string) *v1.LocalVolumeReplica {
	t.Helper()
	rep := &v1.LocalVolumeReplica{}
	err := env.Client.Get(context.Background(), client.ObjectKey{Name: v1.ReplicaName(volume, node)}, rep)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// replicaObjects lists the nodes of every LocalVolumeReplica of volume.
func replicaObjects(t *testing.T, volume string) []string {
	t.Helper()
	list := &v1.LocalVolumeReplicaList{}
	if err := env.Client.List(context.Background(), list); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range list.Items {
		if r.Spec.VolumeName == volume {
			out = append(out, r.Spec.NodeName)
		}
	}
	sort.Strings(out)
	return out
}

// setReplicaStatus changes a replica's status as its node agent would.
func setReplicaStatus(t *testing.T, volume, node string, change func(*v1.LocalVolumeReplicaStatus)) {
	t.Helper()
	ctx := context.Background()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		rep := &v1.LocalVolumeReplica{}
		if err := env.Client.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(volume, node)}, rep); err != nil {
			return err
		}
		change(&rep.Status)
		return env.Client.Status().Update(ctx, rep)
	})
	if err != nil {
		t.Fatalf("replica of %s on %s: %v", volume, node, err)
	}
}

// The node agent's steps on the new replica (csidriver/agent): allocate
// (Ready, not synced: it is sync-pending), report progress, then mark it
// synced with the verified checksum.
func agentAllocates(t *testing.T, volume, node string) {
	t.Helper()
	size := getVolume(t, volume).Spec.RequiredCapacityBytes
	setReplicaStatus(t, volume, node, func(st *v1.LocalVolumeReplicaStatus) {
		st.State, st.AllocatedCapacityBytes = v1.StateReady, size
		st.StoragePath, st.DevicePath = v1.PoolNameHDD+"/"+volume, "/dev/"+v1.PoolNameHDD+"/"+volume
	})
}

func agentCopied(t *testing.T, volume, node string, bytes int64, message string) {
	t.Helper()
	setReplicaStatus(t, volume, node, func(st *v1.LocalVolumeReplicaStatus) { st.SyncedBytes, st.Message = bytes, message })
}

func agentVerified(t *testing.T, volume, node string) {
	t.Helper()
	size := getVolume(t, volume).Spec.RequiredCapacityBytes
	setReplicaStatus(t, volume, node, func(st *v1.LocalVolumeReplicaStatus) {
		st.Synced, st.Checksum, st.SyncedBytes, st.Message = true, "sha256:0123456789abcdef", size, ""
	})
}

// eventReasons lists the reasons of the Events about the conversion.
func eventReasons(t *testing.T, name string) []string {
	t.Helper()
	list := &corev1.EventList{}
	if err := env.Client.List(context.Background(), list); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		if e.InvolvedObject.Kind == "LocalVolumeConvert" && e.InvolvedObject.Name == name {
			out = append(out, e.Reason)
		}
	}
	return out
}

func waitEvents(t *testing.T, name string, reasons ...string) {
	t.Helper()
	testenv.Eventually(t, fmt.Sprintf("events %v on %s", reasons, name), func() bool {
		got := eventReasons(t, name)
		for _, r := range reasons {
			if !slices.Contains(got, r) {
				return false
			}
		}
		return true
	})
}

// volumeSnapshot is what a refused or rolled-back conversion must leave as
// it was.
func volumeSnapshot(lv *v1.LocalVolume) string {
	var reps []string
	if lv.Spec.Config != nil {
		for _, r := range lv.Spec.Config.Replicas {
			reps = append(reps, fmt.Sprintf("%s/primary=%v", r.Hostname, r.Primary))
		}
	}
	return fmt.Sprintf("replicaNumber=%d replicas=%v accessibility=%v", lv.Spec.ReplicaNumber, reps, lv.Spec.Accessibility.Nodes)
}

// guard watches every LocalVolumeReplica for the whole test (a watch, so
// it sees each change in order) and records each replica object ever
// created (by UID) with the annotations it was first seen with.
type guard struct {
	mu      sync.Mutex
	first   map[string]*v1.LocalVolumeReplica // by UID, as first seen
	deleted map[string]bool                   // by UID
	stop    func()
}

func watchReplicas(t *testing.T) *guard {
	t.Helper()
	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := wc.Watch(ctx, &v1.LocalVolumeReplicaList{})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	g := &guard{first: map[string]*v1.LocalVolumeReplica{}, deleted: map[string]bool{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			rep, ok := ev.Object.(*v1.LocalVolumeReplica)
			if !ok {
				continue
			}
			g.mu.Lock()
			if _, seen := g.first[string(rep.UID)]; !seen {
				g.first[string(rep.UID)] = rep
			}
			if ev.Type == watch.Deleted {
				g.deleted[string(rep.UID)] = true
			}
			g.mu.Unlock()
		}
	}()
	var once sync.Once
	g.stop = func() {
		once.Do(func() {
			w.Stop()
			cancel()
			<-done
		})
	}
	t.Cleanup(g.stop)
	return g
}

// created lists "node" for each replica object of volume ever created, and
// "node(unmarked)" for one on a node other than the original ones that
// appeared without a sync-pending annotation (the volume controller made
// it before the conversion did: its data would be taken as synced).
func (g *guard) created(volume string, original ...string) []string {
	time.Sleep(200 * time.Millisecond) // let the watch catch up
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for _, rep := range g.first {
		if rep.Spec.VolumeName != volume {
			continue
		}
		s := rep.Spec.NodeName
		if !slices.Contains(original, s) && rep.Annotations[v1.SyncPendingAnnotation] == "" {
			s += "(unmarked)"
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func clientKey(name string) client.ObjectKey { return client.ObjectKey{Name: name} }

func hasPrefix(s string) func(*v1.LocalVolumeConvert) bool {
	return func(c *v1.LocalVolumeConvert) bool { return strings.HasPrefix(c.Status.Message, s) }
}
