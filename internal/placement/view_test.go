package placement

import (
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// lvOn is a LocalVolume of bytes in pool whose replicas (spec.config and
// accessibility) are on nodes, in order.
func lvOn(name, pool string, bytes int64, nodes ...string) *v1.LocalVolume {
	lv := &v1.LocalVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1.LocalVolumeSpec{PoolName: pool, RequiredCapacityBytes: bytes, ReplicaNumber: int64(max(1, len(nodes)))},
	}
	for _, n := range nodes {
		lv.AddReplicaNode(n)
	}
	return lv
}

// lvrOf is the LocalVolumeReplica of volume on node, allocated bytes.
func lvrOf(volume, node, pool string, allocated int64) v1.LocalVolumeReplica {
	return v1.LocalVolumeReplica{
		ObjectMeta: metav1.ObjectMeta{Name: volume + "-" + node},
		Spec:       v1.LocalVolumeReplicaSpec{VolumeName: volume, NodeName: node, PoolName: pool, RequiredCapacityBytes: allocated},
		Status:     v1.LocalVolumeReplicaStatus{AllocatedCapacityBytes: allocated},
	}
}

// groupOf is a LocalVolumeGroup with one entry per volume placed on nodes.
func groupOf(entries ...v1.VolumeInfo) v1.LocalVolumeGroup {
	return v1.LocalVolumeGroup{ObjectMeta: metav1.ObjectMeta{Name: "g"}, Spec: v1.LocalVolumeGroupSpec{Namespace: "ns", Volumes: entries}}
}

func placedEntry(volume, pool string, bytes int64, nodes ...string) v1.VolumeInfo {
	return v1.VolumeInfo{PersistentVolumeClaimName: "pvc-" + volume, LocalVolumeName: volume, PoolName: pool, RequiredCapacityBytes: bytes, Nodes: nodes}
}

// deleting sets a deletionTimestamp on o.
func deleting[T metav1.Object](o T) T {
	ts := metav1.NewTime(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	o.SetDeletionTimestamp(&ts)
	return o
}

func deletingReplica(r v1.LocalVolumeReplica) v1.LocalVolumeReplica { return *deleting(&r) }

func markedDelete(lv *v1.LocalVolume) *v1.LocalVolume { lv.Spec.Delete = true; return lv }

func newView(nodes []*lsnBuilder, lvs []*v1.LocalVolume, groups []v1.LocalVolumeGroup, replicas []v1.LocalVolumeReplica) *View {
	var ns []v1.LocalStorageNode
	for _, b := range nodes {
		ns = append(ns, *b.build())
	}
	var vs []v1.LocalVolume
	for _, lv := range lvs {
		vs = append(vs, *lv)
	}
	return NewView(ns, vs, groups, replicas)
}

type wantPool struct {
	node         string
	pool         Pool
	bytes, count int64
}

func TestNewView(t *testing.T) {
	hdd := func(name string) *lsnBuilder { return lsn(name).pool(v1.PoolNameHDD, 100*Gi, 50*Gi, 10) }
	tests := []struct {
		name     string
		nodes    []*lsnBuilder
		lvs      []*v1.LocalVolume
		groups   []v1.LocalVolumeGroup
		replicas []v1.LocalVolumeReplica
		reserved []wantPool
		ledger   []string
	}{
		{
			name:     "spec.config replicas reserve where the status does not list the volume",
			nodes:    []*lsnBuilder{hdd("n1").volumes("a"), hdd("n2")},
			lvs:      []*v1.LocalVolume{lvOn("a", v1.PoolNameHDD, 6*Gi, "n1", "n2")},
			reserved: []wantPool{{"n1", PoolHDD, 0, 0}, {"n2", PoolHDD, 6 * Gi, 1}},
			ledger:   []string{"n2/a/LocalStorage_PoolHDD/6Gi/persisted"},
		},
		{
			name:  "spec.accessibility when there is no config",
			nodes: []*lsnBuilder{hdd("n1")},
			lvs: func() []*v1.LocalVolume {
				lv := lvOn("a", v1.PoolNameHDD, 2*Gi)
				lv.Spec.Accessibility.Nodes = []string{"n1"}
				return []*v1.LocalVolume{lv}
			}(),
			reserved: []wantPool{{"n1", PoolHDD, 2 * Gi, 1}},
			ledger:   []string{"n1/a/LocalStorage_PoolHDD/2Gi/persisted"},
		},
		{
			name:     "group entries of volumes not created yet reserve, rounded to the extent",
			nodes:    []*lsnBuilder{hdd("n1").extent(4 * Mi), hdd("n2")},
			groups:   []v1.LocalVolumeGroup{groupOf(placedEntry("c", v1.PoolNameHDD, 1*Gi+1, "n1", "n2"))},
			reserved: []wantPool{{"n1", PoolHDD, 1*Gi + 4*Mi, 1}, {"n2", PoolHDD, 1*Gi + 1, 1}},
			ledger:   []string{"n1/c/LocalStorage_PoolHDD/" + v1.FormatBytes(1*Gi+4*Mi) + "/persisted", "n2/c/LocalStorage_PoolHDD/" + v1.FormatBytes(1*Gi+1) + "/persisted"},
		},
		{
			name:     "a group entry the node's status lists is not counted",
			nodes:    []*lsnBuilder{hdd("n1").volumes("c")},
			groups:   []v1.LocalVolumeGroup{groupOf(placedEntry("c", v1.PoolNameHDD, 4*Gi, "n1"))},
			reserved: []wantPool{{"n1", PoolHDD, 0, 0}},
		},
		{
			name:     "a volume in a LocalVolume and its group entry is counted once",
			nodes:    []*lsnBuilder{hdd("n1"), hdd("n2")},
			lvs:      []*v1.LocalVolume{lvOn("a", v1.PoolNameHDD, 6*Gi, "n1", "n2")},
			groups:   []v1.LocalVolumeGroup{groupOf(placedEntry("a", v1.PoolNameHDD, 6*Gi, "n1", "n2"), placedEntry("b", v1.PoolNameHDD, 1*Gi, "n1"))},
			reserved: []wantPool{{"n1", PoolHDD, 7 * Gi, 2}, {"n2", PoolHDD, 6 * Gi, 1}},
			ledger: []string{"n1/a/LocalStorage_PoolHDD/6Gi/persisted", "n1/b/LocalStorage_PoolHDD/1Gi/persisted",
				"n2/a/LocalStorage_PoolHDD/6Gi/persisted"},
		},
		{
			name:  "volumes being deleted or of an unknown pool reserve nothing",
			nodes: []*lsnBuilder{hdd("n1")},
			lvs: []*v1.LocalVolume{markedDelete(lvOn("a", v1.PoolNameHDD, 6*Gi, "n1")),
				deleting(lvOn("b", v1.PoolNameHDD, 6*Gi, "n1")), lvOn("c", "LocalStorage_PoolTape", 6*Gi, "n1")},
			reserved: []wantPool{{"n1", PoolHDD, 0, 0}},
		},
		{
			name:  "each pool counts its own volumes",
			nodes: []*lsnBuilder{hdd("n1").pool(v1.PoolNameSSD, 10*Gi, 10*Gi, 10)},
			lvs:   []*v1.LocalVolume{lvOn("a", v1.PoolNameHDD, 6*Gi, "n1"), lvOn("b", v1.PoolNameSSD, 1*Gi, "n1")},
			reserved: []wantPool{{"n1", PoolHDD, 6 * Gi, 1}, {"n1", PoolSSD, 1 * Gi, 1},
				{"n1", PoolNVMe, 0, 0}},
			ledger: []string{"n1/a/LocalStorage_PoolHDD/6Gi/persisted", "n1/b/LocalStorage_PoolSSD/1Gi/persisted"},
		},
		{
			name:     "growth in flight is held",
			nodes:    []*lsnBuilder{hdd("n1").volumes("a")},
			lvs:      []*v1.LocalVolume{lvOn("a", v1.PoolNameHDD, 10*Gi, "n1")},
			replicas: []v1.LocalVolumeReplica{lvrOf("a", "n1", v1.PoolNameHDD, 8*Gi)},
			// Bytes, no volume slot, and no ledger entry.
			reserved: []wantPool{{"n1", PoolHDD, 2 * Gi, 0}},
		},
		{
			name:  "growth in flight is rounded to the pool's extent",
			nodes: []*lsnBuilder{hdd("n1").extent(4 * Mi).volumes("a")},
			lvs:   []*v1.LocalVolume{lvOn("a", v1.PoolNameHDD, 9*Mi, "n1")},
			// 9Mi takes 12Mi, 6Mi took 8Mi: 4Mi more (not 3Mi).
			replicas: []v1.LocalVolumeReplica{lvrOf("a", "n1", v1.PoolNameHDD, 6*Mi)},
			reserved: []wantPool{{"n1", PoolHDD, 4 * Mi, 0}},
		},
		{
			name:     "growth within the last extent holds nothing",
			nodes:    []*lsnBuilder{hdd("n1").extent(4 * Mi).volumes("a")},
			lvs:      []*v1.LocalVolume{lvOn("a", v1.PoolNameHDD, 8*Mi, "n1")},
			replicas: []v1.LocalVolumeReplica{lvrOf("a", "n1", v1.PoolNameHDD, 5*Mi)},
			reserved: []wantPool{{"n1", PoolHDD, 0, 0}},
		},
		{
			name:  "growth of an HA volume is held on both replicas, with other reservations",
			nodes: []*lsnBuilder{hdd("n1").volumes("a"), hdd("n2").volumes("a")},
			lvs:   []*v1.LocalVolume{lvOn("a", v1.PoolNameHDD, 10*Gi, "n1", "n2"), lvOn("b", v1.PoolNameHDD, 3*Gi, "n2")},
			replicas: []v1.LocalVolumeReplica{lvrOf("a", "n1", v1.PoolNameHDD, 8*Gi), lvrOf("a", "n2", v1.PoolNameHDD, 7*Gi),
				lvrOf("b", "n2", v1.PoolNameHDD, 3*Gi)},
			reserved: []wantPool{{"n1", PoolHDD, 2 * Gi, 0}, {"n2", PoolHDD, 3*Gi + 3*Gi, 1}},
			ledger:   []string{"n2/b/LocalStorage_PoolHDD/3Gi/persisted"},
		},
		{
			name:     "a replica as large as its volume holds nothing",
			nodes:    []*lsnBuilder{hdd("n1").volumes("a", "b")},
			lvs:      []*v1.LocalVolume{lvOn("a", v1.PoolNameHDD, 10*Gi, "n1"), lvOn("b", v1.PoolNameHDD, 10*Gi, "n1")},
			replicas: []v1.LocalVolumeReplica{lvrOf("a", "n1", v1.PoolNameHDD, 10*Gi), lvrOf("b", "n1", v1.PoolNameHDD, 12*Gi)},
			reserved: []wantPool{{"n1", PoolHDD, 0, 0}},
		},
		{
			name:  "a replica of a volume being deleted holds nothing",
			nodes: []*lsnBuilder{hdd("n1").volumes("a", "b")},
			lvs: []*v1.LocalVolume{markedDelete(lvOn("a", v1.PoolNameHDD, 10*Gi, "n1")),
				deleting(lvOn("b", v1.PoolNameHDD, 10*Gi, "n1"))},
			replicas: []v1.LocalVolumeReplica{lvrOf("a", "n1", v1.PoolNameHDD, 8*Gi), lvrOf("b", "n1", v1.PoolNameHDD, 8*Gi)},
			reserved: []wantPool{{"n1", PoolHDD, 0, 0}},
		},
		{
			name:     "a replica whose LocalVolume is gone holds nothing",
			nodes:    []*lsnBuilder{hdd("n1").volumes("a")},
			replicas: []v1.LocalVolumeReplica{lvrOf("a", "n1", v1.PoolNameHDD, 8*Gi)},
			reserved: []wantPool{{"n1", PoolHDD, 0, 0}},
		},
		{
			name:     "a replica on a node without LocalStorageNode holds nothing",
			nodes:    []*lsnBuilder{hdd("n1")},
			lvs:      []*v1.LocalVolume{lvOn("a", v1.PoolNameHDD, 10*Gi, "n1", "n9")},
			replicas: []v1.LocalVolumeReplica{lvrOf("a", "n9", v1.PoolNameHDD, 8*Gi)},
			// n9's persisted placement waits for its node (SetPlacement);
			// the replica adds no growth to it.
			reserved: []wantPool{{"n1", PoolHDD, 10 * Gi, 1}, {"n9", PoolHDD, 10 * Gi, 1}},
			ledger:   []string{"n1/a/LocalStorage_PoolHDD/10Gi/persisted", "n9/a/LocalStorage_PoolHDD/10Gi/persisted"},
		},
		{
			name:     "a replica not allocated yet holds nothing",
			nodes:    []*lsnBuilder{hdd("n1").volumes("a")},
			lvs:      []*v1.LocalVolume{lvOn("a", v1.PoolNameHDD, 10*Gi, "n1")},
			replicas: []v1.LocalVolumeReplica{lvrOf("a", "n1", v1.PoolNameHDD, 0)},
			reserved: []wantPool{{"n1", PoolHDD, 0, 0}},
		},
		{
			name:     "a replica the node's pool does not list is counted whole, once",
			nodes:    []*lsnBuilder{hdd("n1").volumes("a"), hdd("n2")},
			lvs:      []*v1.LocalVolume{lvOn("a", v1.PoolNameHDD, 10*Gi, "n1", "n2")},
			replicas: []v1.LocalVolumeReplica{lvrOf("a", "n2", v1.PoolNameHDD, 8*Gi)},
			reserved: []wantPool{{"n1", PoolHDD, 0, 0}, {"n2", PoolHDD, 10 * Gi, 1}},
			ledger:   []string{"n2/a/LocalStorage_PoolHDD/10Gi/persisted"},
		},
		{
			name:     "a replica listed in another pool of the node holds nothing",
			nodes:    []*lsnBuilder{hdd("n1").pool(v1.PoolNameSSD, 10*Gi, 10*Gi, 10).volumes("a")},
			lvs:      []*v1.LocalVolume{lvOn("a", v1.PoolNameHDD, 10*Gi, "n1")},
			replicas: []v1.LocalVolumeReplica{lvrOf("a", "n1", v1.PoolNameHDD, 8*Gi)},
			reserved: []wantPool{{"n1", PoolHDD, 0, 0}, {"n1", PoolSSD, 0, 0}},
		},
		{
			name:     "a replica of an unknown pool holds nothing",
			nodes:    []*lsnBuilder{hdd("n1").volumes("a")},
			lvs:      []*v1.LocalVolume{lvOn("a", v1.PoolNameHDD, 10*Gi, "n1")},
			replicas: []v1.LocalVolumeReplica{lvrOf("a", "n1", "LocalStorage_PoolTape", 8*Gi)},
			reserved: []wantPool{{"n1", PoolHDD, 0, 0}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newView(tt.nodes, tt.lvs, tt.groups, tt.replicas)
			for _, w := range tt.reserved {
				wantReserved(t, v.Cache, w.node, w.pool, w.bytes, w.count)
			}
			if got := ledger(v.Cache); strings.Join(got, " ") != strings.Join(tt.ledger, " ") {
				t.Errorf("ledger = %q, want %q", got, tt.ledger)
			}
			if len(v.Nodes) != len(tt.nodes) || len(v.Volumes) != len(tt.lvs) {
				t.Errorf("view keeps %d nodes, %d volumes; want %d, %d", len(v.Nodes), len(v.Volumes), len(tt.nodes), len(tt.lvs))
			}
		})
	}

	t.Run("the node's next status forgets the growth held", func(t *testing.T) {
		n1 := hdd("n1").volumes("a")
		v := newView([]*lsnBuilder{n1}, []*v1.LocalVolume{lvOn("a", v1.PoolNameHDD, 10*Gi, "n1")}, nil,
			[]v1.LocalVolumeReplica{lvrOf("a", "n1", v1.PoolNameHDD, 8*Gi)})
		wantReserved(t, v.Cache, "n1", PoolHDD, 2*Gi, 0)
		v.UpsertNode(n1.build())
		wantReserved(t, v.Cache, "n1", PoolHDD, 0, 0)
	})
}

func TestViewHolders(t *testing.T) {
	a := lvOn("a", v1.PoolNameHDD, 1*Gi, "n1", "n2")
	v := newView(nil, []*v1.LocalVolume{a, lvOn("c", v1.PoolNameHDD, 1*Gi)}, nil, []v1.LocalVolumeReplica{
		lvrOf("a", "n2", v1.PoolNameHDD, 1*Gi),
		deletingReplica(lvrOf("a", "n3", v1.PoolNameHDD, 1*Gi)),
		lvrOf("b", "n4", v1.PoolNameHDD, 1*Gi),
	})
	tests := []struct {
		lv   *v1.LocalVolume
		want []string
	}{
		{a, []string{"n1", "n2", "n3"}},
		{lvOn("b", v1.PoolNameHDD, 1*Gi), []string{"n4"}},
		{lvOn("c", v1.PoolNameHDD, 1*Gi), nil},
	}
	for _, tt := range tests {
		if got := v.Holders(tt.lv); !slices.Equal(got, tt.want) {
			t.Errorf("Holders(%s) = %q, want %q", tt.lv.Name, got, tt.want)
		}
	}
	// Holders does not write into the volume's configuration.
	if got := a.ReplicaNodes(); !slices.Equal(got, []string{"n1", "n2"}) {
		t.Errorf("after Holders, a's replicas are %q", got)
	}
}

func TestCheckGrowth(t *testing.T) {
	tests := []struct {
		name       string
		nodes      []*lsnBuilder
		lvs        []*v1.LocalVolume
		replicas   []v1.LocalVolumeReplica
		node       string
		pool       Pool
		from, want int64
		verdict    Reason
	}{
		{
			name:  "no LocalStorageNode",
			nodes: []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 100*Gi, 50*Gi, 10)},
			node:  "n9", pool: PoolHDD, from: 1 * Gi, want: 2 * Gi,
			verdict: Reason{Code: NoStorageNode},
		},
		{
			name:  "node not Ready",
			nodes: []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 100*Gi, 50*Gi, 10).state(v1.StateOffline)},
			node:  "n1", pool: PoolHDD, from: 1 * Gi, want: 2 * Gi,
			verdict: Reason{Code: NodeNotReady, State: v1.StateOffline},
		},
		{
			name:  "no pool",
			nodes: []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 100*Gi, 50*Gi, 10)},
			node:  "n1", pool: PoolSSD, from: 1 * Gi, want: 2 * Gi,
			verdict: Reason{Code: NoPool, Pool: PoolSSD},
		},
		{
			name: "new size above volumeCapacityBytesLimit",
			nodes: []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 100*Gi, 50*Gi, 10).
				modify(func(p *v1.LocalPool) { p.VolumeCapacityBytesLimit = 10 * Gi })},
			node: "n1", pool: PoolHDD, from: 8 * Gi, want: 10*Gi + 1,
			verdict: Reason{Code: VolumeTooLarge, Pool: PoolHDD, Need: 10*Gi + 1, Limit: 10 * Gi},
		},
		{
			name: "new size at volumeCapacityBytesLimit",
			nodes: []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 100*Gi, 50*Gi, 10).
				modify(func(p *v1.LocalPool) { p.VolumeCapacityBytesLimit = 10 * Gi })},
			node: "n1", pool: PoolHDD, from: 8 * Gi, want: 10 * Gi,
		},
		{
			name:  "growth rounded to the extent is short",
			nodes: []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 100*Mi, 7*Mi, 10).extent(4 * Mi)},
			// 2Mi took 4Mi, 9Mi takes 12Mi: 8Mi more, 7Mi free (7Mi unrounded would fit).
			node: "n1", pool: PoolHDD, from: 2 * Mi, want: 9 * Mi,
			verdict: Reason{Code: InsufficientCapacity, Pool: PoolHDD, Need: 8 * Mi, Free: 7 * Mi},
		},
		{
			name:  "growth rounded to the extent fits",
			nodes: []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 100*Mi, 8*Mi, 10).extent(4 * Mi)},
			node:  "n1", pool: PoolHDD, from: 2 * Mi, want: 9 * Mi,
		},
		{
			name: "another volume's growth in flight is reserved",
			// b grows 8Gi -> 10Gi on n1, not allocated yet: 2Gi of n1's 5Gi are held.
			nodes:    []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 100*Gi, 5*Gi, 10).volumes("a", "b")},
			lvs:      []*v1.LocalVolume{lvOn("a", v1.PoolNameHDD, 4*Gi, "n1"), lvOn("b", v1.PoolNameHDD, 10*Gi, "n1")},
			replicas: []v1.LocalVolumeReplica{lvrOf("a", "n1", v1.PoolNameHDD, 4*Gi), lvrOf("b", "n1", v1.PoolNameHDD, 8*Gi)},
			node:     "n1", pool: PoolHDD, from: 4 * Gi, want: 8 * Gi,
			verdict: Reason{Code: InsufficientCapacity, Pool: PoolHDD, Need: 4 * Gi, Free: 5 * Gi, Reserved: 2 * Gi},
		},
		{
			name:     "growth fits beside another volume's growth in flight",
			nodes:    []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 100*Gi, 5*Gi, 10).volumes("a", "b")},
			lvs:      []*v1.LocalVolume{lvOn("a", v1.PoolNameHDD, 4*Gi, "n1"), lvOn("b", v1.PoolNameHDD, 10*Gi, "n1")},
			replicas: []v1.LocalVolumeReplica{lvrOf("a", "n1", v1.PoolNameHDD, 4*Gi), lvrOf("b", "n1", v1.PoolNameHDD, 8*Gi)},
			node:     "n1", pool: PoolHDD, from: 4 * Gi, want: 7 * Gi,
		},
		{
			name: "placements not counted by the node are reserved",
			nodes: []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 100*Gi, 5*Gi, 10).volumes("a"),
				lsn("n2").pool(v1.PoolNameHDD, 100*Gi, 50*Gi, 10)},
			lvs:  []*v1.LocalVolume{lvOn("a", v1.PoolNameHDD, 4*Gi, "n1"), lvOn("c", v1.PoolNameHDD, 3*Gi, "n1", "n2")},
			node: "n1", pool: PoolHDD, from: 4 * Gi, want: 7 * Gi,
			verdict: Reason{Code: InsufficientCapacity, Pool: PoolHDD, Need: 3 * Gi, Free: 5 * Gi, Reserved: 3 * Gi},
		},
		{
			name:  "growth takes no volume slot",
			nodes: []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 100*Gi, 50*Gi, 0).volumes("a")},
			lvs:   []*v1.LocalVolume{lvOn("a", v1.PoolNameHDD, 4*Gi, "n1")},
			node:  "n1", pool: PoolHDD, from: 4 * Gi, want: 40 * Gi,
		},
		{
			name:  "no growth fits a full pool",
			nodes: []*lsnBuilder{lsn("n1").pool(v1.PoolNameHDD, 100*Gi, 0, 0)},
			node:  "n1", pool: PoolHDD, from: 4 * Gi, want: 4 * Gi,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newView(tt.nodes, tt.lvs, nil, tt.replicas)
			if got := v.CheckGrowth(tt.node, tt.pool, tt.from, tt.want); got != tt.verdict {
				t.Errorf("CheckGrowth(%s, %s, %s, %s) = %+v (%q), want %+v (%q)", tt.node, tt.pool.Name(),
					v1.FormatBytes(tt.from), v1.FormatBytes(tt.want), got, got, tt.verdict, tt.verdict)
			}
		})
	}
}

func TestMoveTarget(t *testing.T) {
	hdd := func(name, zone string, free int64) *lsnBuilder {
		return lsn(name).zone(zone).pool(v1.PoolNameHDD, 100*Gi, free, 10)
	}
	// four: n1 holds a (the source); n2 has the most room, then n3, n4.
	four := func() []*lsnBuilder {
		return []*lsnBuilder{hdd("n1", "z", 50*Gi).volumes("a"), hdd("n2", "z", 40*Gi), hdd("n3", "z", 30*Gi), hdd("n4", "z", 20*Gi)}
	}
	a := func(nodes ...string) *v1.LocalVolume { return lvOn("a", v1.PoolNameHDD, 6*Gi, nodes...) }
	type test struct {
		name          string
		nodes         []*lsnBuilder
		lvs           []*v1.LocalVolume // the first is the volume moved
		replicas      []v1.LocalVolumeReplica
		move          []string // the volumes moved together; default the first of lvs
		unschedulable []string
		source        string
		suggested     []string
		want          string
		// miss, when want is "": NoTarget.String(), its candidates and verdicts.
		miss       string
		demand     string
		candidates []string
		verdicts   []NodeError
	}
	tests := []test{
		{
			name:  "most free of the nodes without a replica",
			nodes: four(), lvs: []*v1.LocalVolume{a("n1")}, source: "n1", want: "n2",
		},
		{
			name:  "excludes the nodes in spec.config",
			nodes: append(four()[:1], hdd("n2", "z", 40*Gi).volumes("a"), hdd("n3", "z", 30*Gi), hdd("n4", "z", 20*Gi)),
			lvs:   []*v1.LocalVolume{a("n1", "n2")}, source: "n1", want: "n3",
		},
		{
			name:  "excludes nodes with a replica object, one being deleted included",
			nodes: four(), lvs: []*v1.LocalVolume{a("n1")}, source: "n1",
			replicas: []v1.LocalVolumeReplica{lvrOf("a", "n1", v1.PoolNameHDD, 6*Gi), lvrOf("a", "n2", v1.PoolNameHDD, 6*Gi),
				deletingReplica(lvrOf("a", "n3", v1.PoolNameHDD, 6*Gi))},
			want: "n4",
		},
		{
			name:  "a replica object of another volume excludes nothing",
			nodes: four(), lvs: []*v1.LocalVolume{a("n1")}, source: "n1",
			replicas: []v1.LocalVolumeReplica{lvrOf("x", "n2", v1.PoolNameHDD, 6*Gi)},
			want:     "n2",
		},
		{
			name:  "excludes unschedulable nodes",
			nodes: four(), lvs: []*v1.LocalVolume{a("n1")}, source: "n1", unschedulable: []string{"n2"}, want: "n3",
		},
		{
			name:  "excludes nodes whose LocalStorageNode is not Ready",
			nodes: append(four()[:1], hdd("n2", "z", 40*Gi).state(v1.StateOffline), hdd("n3", "z", 30*Gi).state(""), hdd("n4", "z", 20*Gi)),
			lvs:   []*v1.LocalVolume{a("n1")}, source: "n1", want: "n4",
		},
		{
			name:  "only suggested nodes, when given",
			nodes: four(), lvs: []*v1.LocalVolume{a("n1")}, source: "n1", suggested: []string{"n4", "n9"}, want: "n4",
		},
		{
			name:  "reservations in flight are counted",
			nodes: append(four(), hdd("n5", "z", 50*Gi).volumes("g")),
			// n2 holds 20Gi for b, not created yet (40-20 < 30); n5 holds
			// growth of g from 10Gi to 40Gi (50-30 < 30).
			lvs:      []*v1.LocalVolume{a("n1"), lvOn("b", v1.PoolNameHDD, 20*Gi, "n2"), lvOn("g", v1.PoolNameHDD, 40*Gi, "n5")},
			replicas: []v1.LocalVolumeReplica{lvrOf("g", "n5", v1.PoolNameHDD, 10*Gi)},
			source:   "n1", want: "n3",
		},
		{
			name: "HA: another zone than the replica that stays, before more free space",
			// n2 stays in zone b; n3 (zone b) has more room than n4 (zone a).
			nodes: []*lsnBuilder{hdd("n1", "a", 50*Gi).volumes("a"), hdd("n2", "b", 50*Gi).volumes("a"),
				hdd("n3", "b", 40*Gi), hdd("n4", "a", 20*Gi)},
			lvs: []*v1.LocalVolume{a("n1", "n2")}, source: "n1", want: "n4",
		},
		{
			name: "HA: the replica that stays is the anchor whichever its position",
			nodes: []*lsnBuilder{hdd("n1", "a", 50*Gi).volumes("a"), hdd("n2", "b", 50*Gi).volumes("a"),
				hdd("n3", "b", 40*Gi), hdd("n4", "a", 20*Gi)},
			lvs: []*v1.LocalVolume{a("n2", "n1")}, source: "n1", want: "n4",
		},
		{
			name: "HA: then the most free in the other zone",
			nodes: []*lsnBuilder{hdd("n1", "a", 50*Gi).volumes("a"), hdd("n2", "b", 50*Gi).volumes("a"),
				hdd("n3", "b", 40*Gi), hdd("n4", "a", 20*Gi), hdd("n5", "a", 25*Gi), hdd("n6", "c", 22*Gi)},
			lvs: []*v1.LocalVolume{a("n1", "n2")}, source: "n1", want: "n5",
		},
		{
			name: "single replica: another zone than the source",
			nodes: []*lsnBuilder{hdd("n1", "a", 50*Gi).volumes("a"),
				hdd("n3", "a", 40*Gi), hdd("n4", "b", 20*Gi)},
			lvs: []*v1.LocalVolume{a("n1")}, source: "n1", want: "n4",
		},
		{
			name: "a volume alone goes to the other zone",
			nodes: []*lsnBuilder{hdd("n1", "a", 50*Gi).volumes("a", "b"),
				hdd("n2", "b", 11*Gi), hdd("n3", "a", 12*Gi)},
			lvs:  []*v1.LocalVolume{a("n1"), lvOn("b", v1.PoolNameHDD, 6*Gi, "n1")},
			move: []string{"a"}, source: "n1", want: "n2",
		},
		{
			name: "a group must fit together",
			nodes: []*lsnBuilder{hdd("n1", "a", 50*Gi).volumes("a", "b"),
				hdd("n2", "b", 11*Gi), hdd("n3", "a", 12*Gi)},
			lvs:  []*v1.LocalVolume{a("n1"), lvOn("b", v1.PoolNameHDD, 6*Gi, "n1")},
			move: []string{"a", "b"}, source: "n1", want: "n3",
		},
		{
			name: "a group across pools must fit in each",
			nodes: []*lsnBuilder{hdd("n1", "a", 50*Gi).volumes("a").pool(v1.PoolNameSSD, 10*Gi, 10*Gi, 10).volumes("s"),
				hdd("n2", "b", 40*Gi), hdd("n3", "b", 12*Gi).pool(v1.PoolNameSSD, 10*Gi, 1*Gi, 10)},
			lvs:  []*v1.LocalVolume{a("n1"), lvOn("s", v1.PoolNameSSD, 1*Gi, "n1")},
			move: []string{"a", "s"}, source: "n1", want: "n3",
		},
		{
			name:     "the holders of every volume of the group are excluded",
			nodes:    four(),
			lvs:      []*v1.LocalVolume{a("n1"), lvOn("b", v1.PoolNameHDD, 1*Gi, "n1", "n2")},
			replicas: []v1.LocalVolumeReplica{deletingReplica(lvrOf("b", "n3", v1.PoolNameHDD, 1*Gi))},
			move:     []string{"a", "b"}, source: "n1", want: "n4",
		},
		{
			name:  "unknown pool",
			nodes: four(),
			lvs:   []*v1.LocalVolume{a("n1"), lvOn("t", "LocalStorage_PoolTape", 1*Gi, "n1")},
			move:  []string{"a", "t"}, source: "n1",
			miss: "volume t has unknown pool LocalStorage_PoolTape",
		},
		{
			name:  "no candidate",
			nodes: append(four()[:2], hdd("n3", "z", 30*Gi).state(v1.StateOffline), hdd("n4", "z", 20*Gi)),
			lvs:   []*v1.LocalVolume{a("n1")}, source: "n1",
			replicas:      []v1.LocalVolumeReplica{lvrOf("a", "n2", v1.PoolNameHDD, 6*Gi)},
			unschedulable: []string{"n4"},
			miss:          "no Ready, schedulable node without a replica of the volumes",
			demand:        "6Gi in LocalStorage_PoolHDD",
		},
		{
			name:  "no suggested candidate",
			nodes: four(), lvs: []*v1.LocalVolume{a("n1")}, source: "n1", suggested: []string{"n1", "n9"},
			miss:   "no Ready, schedulable node without a replica of the volumes",
			demand: "6Gi in LocalStorage_PoolHDD",
		},
		{
			name: "candidates all full: the first three verdicts by name",
			// Listed out of order; n6 is not a candidate (Offline).
			nodes: []*lsnBuilder{
				hdd("n6", "z", 90*Gi).state(v1.StateOffline),
				hdd("n5", "z", 90*Gi).modify(func(p *v1.LocalPool) { p.VolumeCapacityBytesLimit = 5 * Gi }),
				lsn("n4").pool(v1.PoolNameHDD, 100*Gi, 90*Gi, 0),
				hdd("n1", "z", 50*Gi).volumes("a"),
				hdd("n3", "z", 8*Gi),
				lsn("n2").pool(v1.PoolNameSSD, 100*Gi, 90*Gi, 10),
			},
			lvs:    []*v1.LocalVolume{a("n1"), lvOn("r", v1.PoolNameHDD, 3*Gi, "n3")},
			source: "n1", move: []string{"a"},
			miss:       "no candidate node (4 checked) can hold 6Gi in LocalStorage_PoolHDD",
			demand:     "6Gi in LocalStorage_PoolHDD",
			candidates: []string{"n2", "n3", "n4", "n5"},
			verdicts: []NodeError{
				{Node: "n2", Reason: Reason{Code: NoPool, Pool: PoolHDD}},
				{Node: "n3", Reason: Reason{Code: InsufficientCapacity, Pool: PoolHDD, Need: 6 * Gi, Free: 8 * Gi, Reserved: 3 * Gi}},
				{Node: "n4", Reason: Reason{Code: NoVolumeSlot, Pool: PoolHDD, Need: 1, Free: 0}},
			},
		},
		{
			name: "a group that fits nowhere names its demand per pool",
			nodes: []*lsnBuilder{hdd("n1", "a", 50*Gi).volumes("a").pool(v1.PoolNameSSD, 10*Gi, 10*Gi, 10).volumes("s"),
				hdd("n2", "b", 40*Gi)},
			lvs:  []*v1.LocalVolume{a("n1"), lvOn("s", v1.PoolNameSSD, 1*Gi, "n1")},
			move: []string{"a", "s"}, source: "n1",
			miss:       "no candidate node (1 checked) can hold 6Gi in LocalStorage_PoolHDD and 1Gi in LocalStorage_PoolSSD",
			demand:     "6Gi in LocalStorage_PoolHDD and 1Gi in LocalStorage_PoolSSD",
			candidates: []string{"n2"},
			verdicts:   []NodeError{{Node: "n2", Reason: Reason{Code: NoPool, Pool: PoolSSD}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newView(tt.nodes, tt.lvs, nil, tt.replicas)
			byName := map[string]*v1.LocalVolume{}
			for _, lv := range tt.lvs {
				byName[lv.Name] = lv
			}
			lv := tt.lvs[0]
			move := []*v1.LocalVolume{lv}
			if tt.move != nil {
				move = nil
				for _, name := range tt.move {
					move = append(move, byName[name])
				}
			}
			schedulable := func(n string) bool { return !slices.Contains(tt.unschedulable, n) }
			got, miss := v.MoveTarget(schedulable, tt.source, lv, move, tt.suggested)
			if tt.miss == "" {
				if got != tt.want || miss != nil {
					t.Fatalf("MoveTarget = %q, %+v; want %q", got, miss, tt.want)
				}
				return
			}
			if got != "" || miss == nil {
				t.Fatalf("MoveTarget = %q, %+v; want no target (%s)", got, miss, tt.miss)
			}
			if s := miss.String(); s != tt.miss {
				t.Errorf("NoTarget.String() = %q, want %q", s, tt.miss)
			}
			if tt.demand != "" && miss.Demand != tt.demand {
				t.Errorf("NoTarget.Demand = %q, want %q", miss.Demand, tt.demand)
			}
			if !slices.Equal(miss.Candidates, tt.candidates) {
				t.Errorf("NoTarget.Candidates = %q, want %q", miss.Candidates, tt.candidates)
			}
			if !slices.Equal(miss.Verdicts, tt.verdicts) {
				t.Errorf("NoTarget.Verdicts = %+v, want %+v", miss.Verdicts, tt.verdicts)
			}
			if len(miss.Verdicts) > maxVerdicts {
				t.Errorf("NoTarget carries %d verdicts, at most %d", len(miss.Verdicts), maxVerdicts)
			}
			for _, ve := range miss.Verdicts {
				if ve.Fits() {
					t.Errorf("verdict for %s fits", ve.Node)
				}
			}
		})
	}

	t.Run("unknown pool names the volume", func(t *testing.T) {
		lv := lvOn("t", "LocalStorage_PoolTape", 1*Gi, "n1")
		v := newView(four(), []*v1.LocalVolume{lv}, nil, nil)
		_, miss := v.MoveTarget(func(string) bool { return true }, "n1", lv, []*v1.LocalVolume{lv}, nil)
		if miss == nil || miss.Volume != "t" || miss.UnknownPool != "LocalStorage_PoolTape" {
			t.Errorf("MoveTarget miss = %+v, want volume t's unknown pool", miss)
		}
	})

	t.Run("verdicts read as the scheduler's words", func(t *testing.T) {
		v := newView([]*lsnBuilder{hdd("n1", "z", 50*Gi).volumes("a"), hdd("n2", "z", 4*Gi)}, []*v1.LocalVolume{a("n1")}, nil, nil)
		lv := a("n1")
		_, miss := v.MoveTarget(func(string) bool { return true }, "n1", lv, []*v1.LocalVolume{lv}, nil)
		if miss == nil || len(miss.Verdicts) != 1 {
			t.Fatalf("MoveTarget miss = %+v, want one verdict", miss)
		}
		if got := miss.Verdicts[0].Error(); got != "node n2: pool LocalStorage_PoolHDD: need 6Gi, free 4Gi" {
			t.Errorf("verdict = %q", got)
		}
	})
}

func TestFitsPool(t *testing.T) {
	limit := func(l int64) func(p *v1.LocalPool) { return func(p *v1.LocalPool) { p.VolumeCapacityBytesLimit = l } }
	tests := []struct {
		name string
		node *lsnBuilder
		pool Pool
		size int64
		want Reason
	}{
		{
			name: "no pool",
			node: lsn("n1").pool(v1.PoolNameHDD, 100*Gi, 50*Gi, 10),
			pool: PoolSSD, size: 1 * Gi,
			want: Reason{Code: NoPool, Pool: PoolSSD},
		},
		{
			name: "larger than volumeCapacityBytesLimit",
			node: lsn("n1").pool(v1.PoolNameHDD, 100*Gi, 50*Gi, 10).modify(limit(10 * Gi)),
			pool: PoolHDD, size: 10*Gi + 1,
			want: Reason{Code: VolumeTooLarge, Pool: PoolHDD, Need: 10*Gi + 1, Limit: 10 * Gi},
		},
		{
			name: "at volumeCapacityBytesLimit",
			node: lsn("n1").pool(v1.PoolNameHDD, 100*Gi, 50*Gi, 10).modify(limit(10 * Gi)),
			pool: PoolHDD, size: 10 * Gi,
		},
		{
			name: "too large before short",
			node: lsn("n1").pool(v1.PoolNameHDD, 100*Gi, 1*Gi, 0).modify(limit(10 * Gi)),
			pool: PoolHDD, size: 20 * Gi,
			want: Reason{Code: VolumeTooLarge, Pool: PoolHDD, Need: 20 * Gi, Limit: 10 * Gi},
		},
		{
			name: "short",
			node: lsn("n1").pool(v1.PoolNameHDD, 100*Gi, 5*Gi, 10),
			pool: PoolHDD, size: 6 * Gi,
			want: Reason{Code: InsufficientCapacity, Pool: PoolHDD, Need: 6 * Gi, Free: 5 * Gi},
		},
		{
			name: "short after rounding to the extent",
			node: lsn("n1").pool(v1.PoolNameHDD, 100*Gi, 6*Mi, 10).extent(4 * Mi),
			pool: PoolHDD, size: 5 * Mi,
			want: Reason{Code: InsufficientCapacity, Pool: PoolHDD, Need: 8 * Mi, Free: 6 * Mi},
		},
		{
			name: "fits exactly after rounding to the extent",
			node: lsn("n1").pool(v1.PoolNameHDD, 100*Gi, 8*Mi, 1).extent(4 * Mi),
			pool: PoolHDD, size: 5 * Mi,
		},
		{
			name: "short before no slot",
			node: lsn("n1").pool(v1.PoolNameHDD, 100*Gi, 5*Gi, 0),
			pool: PoolHDD, size: 6 * Gi,
			want: Reason{Code: InsufficientCapacity, Pool: PoolHDD, Need: 6 * Gi, Free: 5 * Gi},
		},
		{
			name: "no volume slot",
			node: lsn("n1").pool(v1.PoolNameHDD, 100*Gi, 50*Gi, 0),
			pool: PoolHDD, size: 1 * Gi,
			want: Reason{Code: NoVolumeSlot, Pool: PoolHDD, Need: 1, Free: 0},
		},
		{
			name: "fits",
			node: lsn("n1").pool(v1.PoolNameHDD, 100*Gi, 50*Gi, 1).pool(v1.PoolNameSSD, 10*Gi, 1*Gi, 0),
			pool: PoolHDD, size: 50 * Gi,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FitsPool(tt.node.build(), tt.pool, tt.size); got != tt.want {
				t.Errorf("FitsPool(%s, %s) = %+v (%q), want %+v (%q)", tt.pool.Name(), v1.FormatBytes(tt.size), got, got, tt.want, tt.want)
			}
		})
	}
}

// TestNewViewLocalVolumeOverGroupEntry: where a LocalVolume exists, its
// replica configuration (or its deletion) is the placement, not its
// LocalVolumeGroup entry, which may lag it or be capped. The migrate
// controller edits the LocalVolume first and the entry after, and an entry
// lists at most two nodes: during the migration of an HA volume the
// LocalVolume has three replicas and the entry keeps the two it had.
//
// BUG (reported, not fixed here): NewView applies the group entries after
// the LocalVolumes, so an entry's SetPlacement drops the reservation of the
// LocalVolume's third replica and re-reserves a volume being deleted.
// Applying the groups before the volumes passes it and every other test.
func TestNewViewLocalVolumeOverGroupEntry(t *testing.T) {
	hdd := func(name string) *lsnBuilder { return lsn(name).pool(v1.PoolNameHDD, 100*Gi, 50*Gi, 10) }
	t.Run("the new replica of an HA volume being migrated is reserved", func(t *testing.T) {
		// a moves n1 -> n3; n3 has not created its replica yet.
		lv := lvOn("a", v1.PoolNameHDD, 6*Gi, "n1", "n2", "n3")
		lv.Spec.ReplicaNumber = 2
		v := newView([]*lsnBuilder{hdd("n1").volumes("a"), hdd("n2").volumes("a"), hdd("n3")}, []*v1.LocalVolume{lv},
			[]v1.LocalVolumeGroup{groupOf(placedEntry("a", v1.PoolNameHDD, 6*Gi, "n1", "n2"))}, nil)
		wantReserved(t, v.Cache, "n3", PoolHDD, 6*Gi, 1)
		if got := ledger(v.Cache); strings.Join(got, " ") != "n3/a/LocalStorage_PoolHDD/6Gi/persisted" {
			t.Errorf("ledger = %q, want n3's reservation of a", got)
		}
	})
	t.Run("a volume being deleted reserves nothing though its entry remains", func(t *testing.T) {
		// The node has removed a already; the entry goes once the claim
		// and the volume are gone.
		v := newView([]*lsnBuilder{hdd("n1")}, []*v1.LocalVolume{markedDelete(lvOn("a", v1.PoolNameHDD, 6*Gi, "n1"))},
			[]v1.LocalVolumeGroup{groupOf(placedEntry("a", v1.PoolNameHDD, 6*Gi, "n1"))}, nil)
		wantReserved(t, v.Cache, "n1", PoolHDD, 0, 0)
	})
}
