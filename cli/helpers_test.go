package cli

import (
	"cmp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "hwameistor.io/local/api/v1alpha1"
)

const gi = int64(1) << 30

// testNode describes a Node and its LocalStorageNode with one pool, the
// way the node agent reports it.
type testNode struct {
	name     string
	zone     string
	free     int64  // free bytes of the pool; 10Gi more are used
	pool     string // v1.PoolNameHDD unless set
	cordoned bool
	// cordonedAt is the evictor's stamp of the cordon (zero: none).
	cordonedAt time.Time
	disabled   bool // labelled hwameistor.io/eviction=disable
	notReady   bool
	noLSN      bool   // only the Node
	noNode     bool   // only the LocalStorageNode
	ip         string // spec.storageIP; "10.0.0.1" unless set, "-" for none
	volumes    []string
}

func (n testNode) objects() (*corev1.Node, *v1.LocalStorageNode) {
	var node *corev1.Node
	if !n.noNode {
		node = &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.name, Labels: map[string]string{}},
			Spec: corev1.NodeSpec{Unschedulable: n.cordoned}}
		if !n.cordonedAt.IsZero() {
			node.Annotations = map[string]string{v1.EvictorCordonedAtAnnotation: n.cordonedAt.Format(time.RFC3339Nano)}
		}
		if n.disabled {
			node.Labels[v1.EvictionLabel] = v1.EvictionDisable
		}
	}
	if n.noLSN {
		return node, nil
	}
	pool := cmp.Or(n.pool, v1.PoolNameHDD)
	class, _ := v1.PoolClassOf(pool)
	ip := cmp.Or(n.ip, "10.0.0.1")
	if ip == "-" {
		ip = ""
	}
	state := v1.StateReady
	if n.notReady {
		state = v1.StateNotReady
	}
	used := 10 * gi
	lsn := &v1.LocalStorageNode{ObjectMeta: metav1.ObjectMeta{Name: n.name},
		Spec: v1.LocalStorageNodeSpec{Hostname: n.name, StorageIP: ip, Topo: v1.Topology{Zone: n.zone}},
		Status: v1.LocalStorageNodeStatus{State: state, Pools: map[string]v1.LocalPool{pool: {
			Name: pool, Class: class, Type: v1.PoolTypeRegular,
			TotalCapacityBytes: n.free + used, UsedCapacityBytes: used, FreeCapacityBytes: n.free,
			TotalVolumeCount: 100, UsedVolumeCount: int64(len(n.volumes)), FreeVolumeCount: 100 - int64(len(n.volumes)),
			Volumes: slices.Clone(n.volumes),
		}}}}
	return node, lsn
}

// testVolume describes a LocalVolume and its replica objects.
type testVolume struct {
	name     string
	size     int64 // 1Gi unless set
	pool     string
	group    string
	replicas []string // nodes, the first primary
	// replicaNumber is spec.replicaNumber (default: len(replicas)); less
	// while a migration's target is listed too.
	replicaNumber int64
	claim         string // "ns/name"
	deleting      bool   // spec.delete
	// objectsOn, when set, are the nodes with a LocalVolumeReplica object
	// (default: replicas).
	objectsOn []string
}

func (v testVolume) objects() (*v1.LocalVolume, []v1.LocalVolumeReplica) {
	size := v.size
	if size == 0 {
		size = gi
	}
	pool := cmp.Or(v.pool, v1.PoolNameHDD)
	lv := &v1.LocalVolume{ObjectMeta: metav1.ObjectMeta{Name: v.name}, Spec: v1.LocalVolumeSpec{
		PoolName: pool, RequiredCapacityBytes: size, ReplicaNumber: cmp.Or(v.replicaNumber, int64(max(len(v.replicas), 1))),
		VolumeKind: v1.VolumeKindLVM, VolumeGroup: v.group, Delete: v.deleting,
		Accessibility: v1.AccessibilityTopology{Nodes: slices.Clone(v.replicas)},
		Config:        &v1.VolumeConfig{Version: 1, VolumeName: v.name, RequiredCapacityBytes: size},
	}, Status: v1.LocalVolumeStatus{State: v1.StateReady}}
	if ns, name, ok := strings.Cut(v.claim, "/"); ok {
		lv.Spec.PersistentVolumeClaimNamespace, lv.Spec.PersistentVolumeClaimName = ns, name
	}
	for i, n := range v.replicas {
		lv.Spec.Config.Replicas = append(lv.Spec.Config.Replicas, v1.VolumeReplica{ID: int64(i + 1), Hostname: n, Primary: i == 0})
	}
	on := v.objectsOn
	if on == nil {
		on = v.replicas
	}
	var reps []v1.LocalVolumeReplica
	for _, n := range on {
		reps = append(reps, v1.LocalVolumeReplica{ObjectMeta: metav1.ObjectMeta{Name: v1.ReplicaName(v.name, n)},
			Spec:   v1.LocalVolumeReplicaSpec{VolumeName: v.name, NodeName: n, PoolName: pool, RequiredCapacityBytes: size},
			Status: v1.LocalVolumeReplicaStatus{State: v1.StateReady, Synced: true}})
	}
	return lv, reps
}

// testMigration is a LocalVolumeMigrate; created is its age order
// (creation timestamps one second apart from a fixed time).
type testMigration struct {
	name, volume, source, target string
	state                        v1.State
	volumes                      []string
	abort                        bool
	trigger                      string // v1.MigrateTriggerLabel
	requestedAt                  time.Time
	created                      int
	progress                     string
}

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func (m testMigration) object() v1.LocalVolumeMigrate {
	o := v1.LocalVolumeMigrate{ObjectMeta: metav1.ObjectMeta{Name: m.name, Labels: map[string]string{}, Annotations: map[string]string{},
		CreationTimestamp: metav1.NewTime(epoch.Add(time.Duration(m.created) * time.Second))},
		Spec:   v1.LocalVolumeMigrateSpec{VolumeName: m.volume, SourceNode: m.source, Abort: m.abort, MigrateAllVols: true},
		Status: v1.LocalVolumeMigrateStatus{State: m.state, TargetNode: m.target, Volumes: m.volumes, Progress: m.progress}}
	if m.trigger != "" {
		o.Labels[v1.MigrateTriggerLabel] = m.trigger
		o.Labels[v1.MigrateSourceNodeLabel] = m.source
	}
	if !m.requestedAt.IsZero() {
		o.Annotations[v1.EvictorRequestedAtAnnotation] = m.requestedAt.Format(time.RFC3339Nano)
	}
	return o
}

// testCluster builds the cluster a command reads.
func testCluster(nodes []testNode, vols []testVolume, migrations []testMigration, groups ...v1.LocalVolumeGroup) *cluster {
	cl := &cluster{read: partAll, Groups: groups}
	for _, n := range nodes {
		node, lsn := n.objects()
		if node != nil {
			cl.Nodes = append(cl.Nodes, *node)
		}
		if lsn != nil {
			cl.StorageNodes = append(cl.StorageNodes, *lsn)
		}
	}
	for _, v := range vols {
		lv, reps := v.objects()
		cl.Volumes = append(cl.Volumes, *lv)
		cl.Replicas = append(cl.Replicas, reps...)
	}
	for _, m := range migrations {
		cl.Migrations = append(cl.Migrations, m.object())
	}
	cl.index()
	return cl
}
