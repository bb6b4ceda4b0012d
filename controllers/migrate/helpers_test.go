package migrate

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

const gi = int64(1) << 30

// reset deletes everything a test creates. The target choice reads every
// node, volume and group of the cluster, so each test starts from nothing.
func reset(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	kinds := []struct {
		obj  client.Object
		list client.ObjectList
	}{
		{&v1.LocalVolumeMigrate{}, &v1.LocalVolumeMigrateList{}},
		{&v1.LocalVolumeReplica{}, &v1.LocalVolumeReplicaList{}},
		{&v1.LocalVolume{}, &v1.LocalVolumeList{}},
		{&v1.LocalVolumeGroup{}, &v1.LocalVolumeGroupList{}},
		{&v1.LocalStorageNode{}, &v1.LocalStorageNodeList{}},
		{&corev1.Node{}, &corev1.NodeList{}},
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
			if err := env.Client.List(ctx, k.list); err != nil {
				return false
			}
			n, _ := countItems(k.list)
			return n == 0
		})
	}
}

func countItems(l client.ObjectList) (int, error) {
	switch l := l.(type) {
	case *v1.LocalVolumeMigrateList:
		return len(l.Items), nil
	case *v1.LocalVolumeReplicaList:
		return len(l.Items), nil
	case *v1.LocalVolumeList:
		return len(l.Items), nil
	case *v1.LocalVolumeGroupList:
		return len(l.Items), nil
	case *v1.LocalStorageNodeList:
		return len(l.Items), nil
	case *corev1.NodeList:
		return len(l.Items), nil
	}
	return 0, fmt.Errorf("unknown list %T", l)
}

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

func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := env.Client.Create(context.Background(), obj); err != nil {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

// node describes a test node: a corev1 Node and its LocalStorageNode.
type node struct {
	name     string
	free     int64  // free bytes of the pool
	pool     string // LocalStorage_PoolHDD unless set
	slots    int64  // free volume count; 100 unless set, -1 for none
	zone     string
	cordoned bool
	notReady bool // the LocalStorageNode is NotReady
	noLSN    bool // only the Node exists (no node agent)
}

// createNode creates the Node and a LocalStorageNode whose status has the
// node's pool, as the node agent reports it.
func createNode(t *testing.T, n node) {
	t.Helper()
	ctx := context.Background()
	create(t, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.name}, Spec: corev1.NodeSpec{Unschedulable: n.cordoned}})
	if n.noLSN {
		return
	}
	lsn := &v1.LocalStorageNode{ObjectMeta: metav1.ObjectMeta{Name: n.name},
		Spec: v1.LocalStorageNodeSpec{Hostname: n.name, Topo: v1.Topology{Zone: n.zone}}}
	create(t, lsn)
	pool := n.pool
	if pool == "" {
		pool = v1.PoolNameHDD
	}
	class, err := v1.PoolClassOf(pool)
	if err != nil {
		t.Fatal(err)
	}
	slots := n.slots
	switch slots {
	case 0:
		slots = 100
	case -1:
		slots = 0
	}
	used := 10 * gi
	lsn.Status = v1.LocalStorageNodeStatus{State: v1.StateReady, Pools: map[string]v1.LocalPool{pool: {
		Name: pool, Class: class, Type: v1.PoolTypeRegular,
		TotalCapacityBytes: n.free + used, UsedCapacityBytes: used, FreeCapacityBytes: n.free,
		TotalVolumeCount: 100, UsedVolumeCount: 100 - slots, FreeVolumeCount: slots,
	}}}
	if n.notReady {
		lsn.Status.State = v1.StateNotReady
	}
	if err := env.Client.Status().Update(ctx, lsn); err != nil {
		t.Fatal(err)
	}
}

func createNodes(t *testing.T, nodes ...node) {
	t.Helper()
	for _, n := range nodes {
		createNode(t, n)
	}
}

// volume describes a test LocalVolume with its replicas (first is primary).
type volume struct {
	name     string
	size     int64 // 1Gi unless set
	group    string
	replicas []string
}

// createVolume creates the LocalVolume as the scheduler and the volume
// controller leave it, and its replicas as the node agent reports them: a
// new replica (no sync-pending annotation) is Synced once Ready.
func createVolume(t *testing.T, v volume) {
	t.Helper()
	ctx := context.Background()
	size := v.size
	if size == 0 {
		size = gi
	}
	lv := &v1.LocalVolume{ObjectMeta: metav1.ObjectMeta{Name: v.name}, Spec: v1.LocalVolumeSpec{
		PoolName: v1.PoolNameHDD, RequiredCapacityBytes: size, ReplicaNumber: int64(len(v.replicas)),
		VolumeKind: v1.VolumeKindLVM, VolumeGroup: v.group,
		Accessibility: v1.AccessibilityTopology{Nodes: slices.Clone(v.replicas)},
		Config:        &v1.VolumeConfig{Version: 1, VolumeName: v.name, RequiredCapacityBytes: size},
	}}
	for i, n := range v.replicas {
		lv.Spec.Config.Replicas = append(lv.Spec.Config.Replicas, v1.VolumeReplica{ID: int64(i + 1), Hostname: n, Primary: i == 0})
	}
	create(t, lv)
	lv.Status.State = v1.StateReady
	if err := env.Client.Status().Update(ctx, lv); err != nil {
		t.Fatal(err)
	}
	for _, n := range v.replicas {
		rep := &v1.LocalVolumeReplica{ObjectMeta: metav1.ObjectMeta{Name: v1.ReplicaName(v.name, n)}, Spec: v1.LocalVolumeReplicaSpec{
			VolumeName: v.name, NodeName: n, PoolName: v1.PoolNameHDD, RequiredCapacityBytes: size, VolumeKind: v1.VolumeKindLVM,
		}}
		create(t, rep)
		rep.Status = v1.LocalVolumeReplicaStatus{State: v1.StateReady, AllocatedCapacityBytes: size, Synced: true,
			StoragePath: v1.PoolNameHDD + "/" + v.name, DevicePath: "/dev/" + v1.PoolNameHDD + "/" + v.name}
		if err := env.Client.Status().Update(ctx, rep); err != nil {
			t.Fatal(err)
		}
	}
}

// createGroup creates a LocalVolumeGroup whose entries place each volume on
// nodes (1Gi in the HDD pool unless the entry says otherwise).
func createGroup(t *testing.T, name string, entries ...v1.VolumeInfo) {
	t.Helper()
	for i := range entries {
		if entries[i].PoolName == "" {
			entries[i].PoolName = v1.PoolNameHDD
		}
		if entries[i].RequiredCapacityBytes == 0 {
			entries[i].RequiredCapacityBytes = gi
		}
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

// createMigration creates a LocalVolumeMigrate of volume off source.
func createMigration(t *testing.T, name, volume, source string, spec ...func(*v1.LocalVolumeMigrateSpec)) {
	t.Helper()
	m := &v1.LocalVolumeMigrate{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.LocalVolumeMigrateSpec{VolumeName: volume, SourceNode: source}}
	for _, s := range spec {
		s(&m.Spec)
	}
	create(t, m)
}

func getMigration(t *testing.T, name string) *v1.LocalVolumeMigrate {
	t.Helper()
	m := &v1.LocalVolumeMigrate{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: name}, m); err != nil {
		t.Fatal(err)
	}
	return m
}

// waitMigration waits until cond holds for the migration and returns it;
// on a timeout it logs the last status seen.
func waitMigration(t *testing.T, name, what string, cond func(*v1.LocalVolumeMigrate) bool) *v1.LocalVolumeMigrate {
	t.Helper()
	var last *v1.LocalVolumeMigrate
	defer func() {
		if t.Failed() && last != nil {
			t.Logf("migration %s, last status: %+v", name, last.Status)
		}
	}()
	testenv.Eventually(t, fmt.Sprintf("migration %s: %s", name, what), func() bool {
		last = getMigration(t, name)
		return cond(last)
	})
	return last
}

func waitState(t *testing.T, name string, state v1.State) *v1.LocalVolumeMigrate {
	t.Helper()
	return waitMigration(t, name, "state "+string(state), func(m *v1.LocalVolumeMigrate) bool { return m.Status.State == state })
}

// editMigration changes the migration's spec (or, with status, its status).
func editMigration(t *testing.T, name string, status bool, change func(*v1.LocalVolumeMigrate)) {
	t.Helper()
	ctx := context.Background()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		m := &v1.LocalVolumeMigrate{}
		if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, m); err != nil {
			return err
		}
		change(m)
		if status {
			return env.Client.Status().Update(ctx, m)
		}
		return env.Client.Update(ctx, m)
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

// replicaNodesOf lists the nodes of every LocalVolumeReplica of volume.
func replicaNodesOf(t *testing.T, volume string) []string {
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

// The node agent's steps on a migration target (csidriver/agent):
// allocate (Ready, not Synced: it is sync-pending), report progress, then
// mark Synced with the verified checksum.
func agentAllocates(t *testing.T, volume, node string) {
	t.Helper()
	// The target is created in the step after the one that chose it.
	testenv.Eventually(t, fmt.Sprintf("replica of %s on %s", volume, node), func() bool { return getReplica(t, volume, node) != nil })
	setReplicaStatus(t, volume, node, func(st *v1.LocalVolumeReplicaStatus) {
		st.State, st.AllocatedCapacityBytes = v1.StateReady, getVolume(t, volume).Spec.RequiredCapacityBytes
		st.StoragePath, st.DevicePath = v1.PoolNameHDD+"/"+volume, "/dev/"+v1.PoolNameHDD+"/"+volume
	})
}

func agentCopied(t *testing.T, volume, node string, bytes int64) {
	t.Helper()
	setReplicaStatus(t, volume, node, func(st *v1.LocalVolumeReplicaStatus) { st.SyncedBytes, st.Message = bytes, "" })
}

func agentVerified(t *testing.T, volume, node string) {
	t.Helper()
	setReplicaStatus(t, volume, node, func(st *v1.LocalVolumeReplicaStatus) {
		st.Synced, st.Checksum, st.Message = true, "sha256:0123456789abcdef", ""
		st.SyncedBytes = getVolume(t, volume).Spec.RequiredCapacityBytes
	})
}

// eventReasons lists the reasons of the Events about the migration.
func eventReasons(t *testing.T, migration string) []string {
	t.Helper()
	list := &corev1.EventList{}
	if err := env.Client.List(context.Background(), list); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		if e.InvolvedObject.Kind == "LocalVolumeMigrate" && e.InvolvedObject.Name == migration {
			out = append(out, e.Reason)
		}
	}
	return out
}

func waitEvents(t *testing.T, migration string, reasons ...string) {
	t.Helper()
	testenv.Eventually(t, fmt.Sprintf("events %v on %s", reasons, migration), func() bool {
		got := eventReasons(t, migration)
		for _, r := range reasons {
			if !slices.Contains(got, r) {
				return false
			}
		}
		return true
	})
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
	done       chan struct{}
}

func watchCluster(t *testing.T) *guard {
	t.Helper()
	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	reps, err := wc.Watch(ctx, &v1.LocalVolumeReplicaList{})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	migs, err := wc.Watch(ctx, &v1.LocalVolumeMigrateList{})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	g := &guard{replicas: map[string]*v1.LocalVolumeReplica{}, created: map[string]map[string]string{},
		migrations: map[string]*v1.LocalVolumeMigrate{}, done: make(chan struct{})}
	stopped := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for ev := range reps.ResultChan() {
			g.replicaEvent(ev)
		}
		g.closed(stopped, "replica")
	}()
	go func() {
		defer wg.Done()
		for ev := range migs.ResultChan() {
			g.migrationEvent(ev)
		}
		g.closed(stopped, "migration")
	}()
	go func() { wg.Wait(); close(g.done) }()
	g.stop = func() {
		select {
		case <-stopped:
			return
		default:
		}
		close(stopped)
		reps.Stop()
		migs.Stop()
		cancel()
		<-g.done
	}
	t.Cleanup(g.stop)
	return g
}

func (g *guard) closed(stopped chan struct{}, what string) {
	select {
	case <-stopped:
	default:
		g.mu.Lock()
		g.violations = append(g.violations, "the "+what+" watch ended early")
		g.mu.Unlock()
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
		if active(o) {
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
