package placement

import (
	"fmt"
	"slices"
	"sort"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// View is the scheduler's capacity view rebuilt from API objects, for the
// controllers and the CLI: every node's pools net of the placements
// persisted in LocalVolumes and LocalVolumeGroups that the nodes' status
// does not count yet (as the scheduler's ledger counts them), and net of
// the growth expansions promised that the nodes have not allocated yet.
// It also knows which nodes hold a replica object of each volume (one
// being deleted included), so a move never targets them.
type View struct {
	*Cache
	Nodes   []v1.LocalStorageNode
	Volumes []v1.LocalVolume
	holders map[string][]string
}

// NewView builds the view from lists of the four kinds.
func NewView(nodes []v1.LocalStorageNode, volumes []v1.LocalVolume, groups []v1.LocalVolumeGroup, replicas []v1.LocalVolumeReplica) *View {
	v := &View{Cache: NewCache(0), Nodes: nodes, Volumes: volumes, holders: map[string][]string{}}
	byNode := make(map[string]*v1.LocalStorageNode, len(nodes))
	for i := range nodes {
		v.UpsertNode(&nodes[i])
		byNode[nodes[i].Name] = &nodes[i]
	}
	// Groups first: a LocalVolume, where it exists, knows its placement
	// better than its group entry (three replicas during an HA move, where
	// an entry holds two; none once it is being deleted).
	for i := range groups {
		v.UpsertGroup(&groups[i])
	}
	size := make(map[string]int64, len(volumes))
	for i := range volumes {
		v.UpsertVolume(&volumes[i])
		if lv := &volumes[i]; lv.DeletionTimestamp == nil && !lv.Spec.Delete {
			size[lv.Name] = lv.Spec.RequiredCapacityBytes
		}
	}
	for i := range replicas {
		rep := &replicas[i]
		v.holders[rep.Spec.VolumeName] = append(v.holders[rep.Spec.VolumeName], rep.Spec.NodeName)
		// Growth in flight: a replica the node already counts (its pool
		// lists the volume) that is smaller than its volume.
		lsn, pool := byNode[rep.Spec.NodeName], rep.Spec.PoolName
		p, ok := PoolByName(pool)
		if lsn == nil || !ok || rep.Status.AllocatedCapacityBytes <= 0 || rep.DeletionTimestamp != nil {
			continue
		}
		report := lsn.Status.Pools[pool]
		if !slices.Contains(report.Volumes, rep.Spec.VolumeName) {
			continue
		}
		if d := v1.RoundUpToExtent(size[rep.Spec.VolumeName], report.ExtentSizeBytes) - v1.RoundUpToExtent(rep.Status.AllocatedCapacityBytes, report.ExtentSizeBytes); d > 0 {
			v.holdGrowth(rep.Spec.NodeName, p, d)
		}
	}
	return v
}

// holdGrowth counts bytes an expansion promised in a pool of node that the
// node has not allocated yet, as a reservation in flight. Only views do
// (the scheduler's ledger does not watch replicas); the node's next
// UpsertNode forgets it.
func (c *Cache) holdGrowth(node string, p Pool, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.nodes[node]; n != nil && n.pools[p].exists {
		n.pools[p].reservedBytes += bytes
	}
}

// CheckGrowth is the verdict on growing a volume the node already holds in
// pool p from bytes to want bytes. Growth takes no new volume slot, so only
// the bytes count, and the pool's size limit applies to the new size.
func (c *Cache) CheckGrowth(node string, p Pool, from, want int64) Reason {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var why Reason
	if !c.check(node, nil, &why) {
		return why
	}
	ps := &c.nodes[node].pools[p]
	switch {
	case !ps.exists:
		return Reason{Code: NoPool, Pool: p}
	case ps.limit > 0 && want > ps.limit:
		return Reason{Code: VolumeTooLarge, Pool: p, Need: want, Limit: ps.limit}
	}
	need := v1.RoundUpToExtent(want, ps.extent) - v1.RoundUpToExtent(from, ps.extent)
	if need > ps.free-ps.reservedBytes {
		return Reason{Code: InsufficientCapacity, Pool: p, Need: need, Free: ps.free, Reserved: ps.reservedBytes}
	}
	return Reason{}
}

// Holders are the nodes with a replica of lv: in its configuration (its
// accessibility before it has one) or as a LocalVolumeReplica object (one
// being deleted included).
func (v *View) Holders(lv *v1.LocalVolume) []string {
	out := lv.ReplicaNodes()
	if len(out) == 0 {
		out = slices.Clone(lv.Spec.Accessibility.Nodes)
	}
	for _, n := range v.holders[lv.Name] {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// NoTarget says why MoveTarget found no node.
type NoTarget struct {
	// UnknownPool names a volume whose pool is no pool class.
	Volume, UnknownPool string
	// Demand is what the target must hold: "10Gi in LocalStorage_PoolHDD".
	Demand string
	// Candidates are the Ready, schedulable nodes holding no replica (in
	// name order); Verdicts says why the first few of them cannot hold it.
	Candidates []string
	Verdicts   []NodeError
}

// maxVerdicts bounds the verdicts a NoTarget carries.
const maxVerdicts = 3

// String is the migration's wording.
func (n *NoTarget) String() string {
	switch {
	case n.UnknownPool != "":
		return fmt.Sprintf("volume %s has unknown pool %s", n.Volume, n.UnknownPool)
	case len(n.Candidates) == 0:
		return "no Ready, schedulable node without a replica of the volumes"
	}
	return fmt.Sprintf("no candidate node (%d checked) can hold %s", len(n.Candidates), n.Demand)
}

// MoveTarget chooses where a new replica of vols (lv and the rest of its
// group) goes, for a migration off source and a conversion that keeps
// source: among the nodes with a Ready LocalStorageNode whose Node is
// schedulable and that hold no replica of vols (only suggested ones, when
// given), one where the whole group fits net of reservations, preferring
// another zone than the replica of lv that stays, then the most free
// space. `kubectl hwameistor drain-check` predicts with it.
func (v *View) MoveTarget(schedulable func(node string) bool, source string, lv *v1.LocalVolume, vols []*v1.LocalVolume, suggested []string) (string, *NoTarget) {
	holding := map[string]bool{}
	var pvols []Volume
	for _, vol := range vols {
		for _, n := range v.Holders(vol) {
			holding[n] = true
		}
		pool, ok := PoolByName(vol.Spec.PoolName)
		if !ok {
			return "", &NoTarget{Volume: vol.Name, UnknownPool: vol.Spec.PoolName}
		}
		pvols = append(pvols, Volume{Key: vol.Name, Pool: pool, Bytes: vol.Spec.RequiredCapacityBytes, Replicated: vol.Spec.ReplicaNumber >= 2})
	}
	miss := &NoTarget{Demand: Demand(pvols)}
	for i := range v.Nodes {
		n := v.Nodes[i].Name
		if holding[n] || !schedulable(n) || v.Nodes[i].Status.State != v1.StateReady {
			continue
		}
		if len(suggested) > 0 && !slices.Contains(suggested, n) {
			continue
		}
		miss.Candidates = append(miss.Candidates, n)
	}
	sort.Strings(miss.Candidates)
	if len(miss.Candidates) == 0 {
		return "", miss
	}
	// The replica that stays anchors the zone preference (HA); else the source.
	anchor := source
	for _, n := range lv.ReplicaNodes() {
		if n != source {
			anchor = n
		}
	}
	if target, ok := v.PickPeer(anchor, pvols, miss.Candidates); ok {
		return target, nil
	}
	for _, n := range miss.Candidates[:min(len(miss.Candidates), maxVerdicts)] {
		miss.Verdicts = append(miss.Verdicts, NodeError{Node: n, Reason: v.Check(n, pvols)})
	}
	return "", miss
}
