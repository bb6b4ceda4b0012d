package cli

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/internal/placement"
)

// The drain plan replays, on one read of the cluster, what a cordon sets
// off: the evictor's choice of volumes and migrations
// (controllers/evictor) and the migrate controller's checks and target
// choice in Submitted (controllers/migrate). Both keep those steps
// unexported, so the rules are restated here from the same fields, and the
// integration test holds them to the controllers' real decisions. Targets
// come from the scheduler's placement code, as the controller's do.

// planDrain says what draining node would do with each of its volumes.
func planDrain(cl *cluster, node string, now time.Time) (*DrainCheck, error) {
	n := cl.node(node)
	if n == nil {
		return nil, fmt.Errorf("node %q not found", node)
	}
	dc := &DrainCheck{
		TypeMeta: metav1.TypeMeta{APIVersion: ReportGroupVersion.String(), Kind: "DrainCheck"},
		Node:     node, Cordoned: n.Spec.Unschedulable, EvictionDisabled: evictionDisabled(n),
		Volumes: []VolumeMove{},
	}
	vols := volumesOnNode(cl, node)
	if len(vols) == 0 {
		dc.CanDrain = true
		return dc, nil
	}
	p := &planner{cl: cl, node: n, capacity: cl.capacity(), requestAt: requestTime(n, now)}
	if dc.EvictionDisabled {
		stay := move{action: ActionStay, reason: fmt.Sprintf("node %s is labelled %s=%s: its volumes stay on it, and their drained pods wait Pending until it is uncordoned",
			node, v1.EvictionLabel, v1.EvictionDisable)}
		for _, lv := range vols {
			dc.Volumes = append(dc.Volumes, p.row(lv, stay))
		}
		return dc, nil
	}
	dc.Problems, dc.Warnings = sourceProblems(cl, node)
	for _, g := range groupVolumes(vols) {
		mv := p.decide(g)
		for _, lv := range g.onNode {
			dc.Volumes = append(dc.Volumes, p.row(lv, mv))
		}
	}
	dc.CanDrain = len(dc.Problems) == 0 && !slices.ContainsFunc(dc.Volumes, func(v VolumeMove) bool { return !v.ok() })
	return dc, nil
}

// evictionDisabled is the evictor's test: the node keeps its volumes.
func evictionDisabled(n *corev1.Node) bool {
	return n.Labels[v1.EvictionLabel] == v1.EvictionDisable
}

// volumesOnNode are the evictor's volumes of a node: those with a
// LocalVolumeReplica there that is not being deleted (deletionTimestamp or
// spec.delete), and which exist and are not being deleted themselves.
func volumesOnNode(cl *cluster, node string) []*v1.LocalVolume {
	var out []*v1.LocalVolume
	for i := range cl.Replicas {
		r := &cl.Replicas[i]
		if r.Spec.NodeName != node || r.DeletionTimestamp != nil || r.Spec.Delete {
			continue
		}
		lv := cl.volume(r.Spec.VolumeName)
		if lv == nil || lv.DeletionTimestamp != nil || lv.Spec.Delete || slices.Contains(out, lv) {
			continue
		}
		out = append(out, lv)
	}
	slices.SortFunc(out, func(a, b *v1.LocalVolume) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// requestTime is when the drain's request begins for the evictor: the
// cordon it already stamped, or, for a node not yet cordoned (or not yet
// seen cordoned), now.
func requestTime(n *corev1.Node, now time.Time) time.Time {
	if n.Spec.Unschedulable {
		if t, err := time.Parse(time.RFC3339Nano, n.Annotations[v1.EvictorCordonedAtAnnotation]); err == nil {
			return t
		}
	}
	return now
}

// sourceProblems are what stops every copy off node: the target's node
// agent reads the source's address from its LocalStorageNode
// (spec.storageIP) and pulls from the agent there.
func sourceProblems(cl *cluster, node string) (problems, warnings []string) {
	lsn := cl.storageNode(node)
	switch {
	case lsn == nil:
		problems = append(problems, fmt.Sprintf("node %s has no LocalStorageNode: no node agent serves it, and the copies, which read from that agent, fail", node))
	case lsn.Spec.StorageIP == "":
		problems = append(problems, fmt.Sprintf("node %s publishes no replication address (spec.storageIP): the copies, which read from its node agent, fail; start the agent with --replication-address", node))
	case lsn.Status.State != v1.StateReady:
		warnings = append(warnings, fmt.Sprintf("the node agent of %s reports %s: the copies read from it", node, orNone(string(lsn.Status.State))))
	}
	return problems, warnings
}

// group is the evictor's unit: a volume group with replicas on the node,
// or a volume without a group.
type group struct {
	key     string // spec.volumegroup, or the volume's name
	onNode  []*v1.LocalVolume
	grouped bool
}

// groupVolumes groups vols (sorted by name) by spec.volumegroup, in the
// order of their keys, as the evictor creates their migrations.
func groupVolumes(vols []*v1.LocalVolume) []*group {
	byKey := map[string]*group{}
	var out []*group
	for _, lv := range vols {
		key := cmp.Or(lv.Spec.VolumeGroup, lv.Name)
		g := byKey[key]
		if g == nil {
			g = &group{key: key, grouped: lv.Spec.VolumeGroup != ""}
			byKey[key] = g
			out = append(out, g)
		}
		g.onNode = append(g.onNode, lv)
	}
	slices.SortFunc(out, func(a, b *group) int { return strings.Compare(a.key, b.key) })
	return out
}

// move is the decision for a group; every volume of it on the node shares it.
type move struct {
	action    Action
	target    string
	migration *v1.LocalVolumeMigrate // the existing one, if any
	name      string                 // its name, or the one the evictor would give
	reason    string
	notes     []string
}

// planner decides group by group; capacity carries the targets chosen for
// earlier groups, as the controller's view does once they are placed.
type planner struct {
	cl        *cluster
	node      *corev1.Node
	capacity  *placement.View
	requestAt time.Time
}

// decide follows a group through the evictor, then the migrate
// controller's Submitted state.
func (p *planner) decide(g *group) move {
	src := p.node.Name
	// The evictor skips a group that an unfinished migration off the node
	// moves (by spec.volumeName or status.volumes), whoever made it.
	members := volumeNames(g.onNode)
	if g.grouped {
		for i := range p.cl.Volumes {
			if p.cl.Volumes[i].Spec.VolumeGroup == g.key {
				members = append(members, p.cl.Volumes[i].Name)
			}
		}
	}
	if m := p.covering(members); m != nil {
		mv := move{action: ActionMoving, migration: m, name: m.Name}
		state := stateOf(m.Status.State)
		switch {
		case state == v1.OperationStateAborting,
			m.Spec.Abort && state != v1.OperationStatePruneReplica:
			return move{action: ActionStay, migration: m, name: m.Name,
				reason: fmt.Sprintf("%s has spec.abort set: it rolls back and the volume stays on %s", m.Name, src)}
		case state != v1.OperationStateSubmitted:
			mv.target = m.Status.TargetNode
			return mv
		}
		// Still Submitted: it is checked and placed like a new one.
		return p.admit(mv, m.Spec.VolumeName)
	}
	name := v1.MigrateName(g.key, src)
	mv := move{action: ActionMove, name: name}
	if old := p.cl.migration(name); old != nil {
		reason, note := p.nameTaken(old)
		if reason != "" {
			return move{action: ActionStay, migration: old, name: name, reason: reason}
		}
		mv.notes = append(mv.notes, note)
	}
	return p.admit(mv, g.onNode[0].Name)
}

// covering is the oldest unfinished migration off the node that moves one
// of volumes: the one that runs (a younger one of the same volumes fails).
func (p *planner) covering(volumes []string) *v1.LocalVolumeMigrate {
	var oldest *v1.LocalVolumeMigrate
	for i := range p.cl.Migrations {
		m := &p.cl.Migrations[i]
		if m.Spec.SourceNode != p.node.Name || m.Status.State.Finished() || !m.Moves(volumes...) {
			continue
		}
		if oldest == nil || v1.OperationBefore(m, "", oldest, "") {
			oldest = m
		}
	}
	return oldest
}

// nameTaken replays the evictor's handling of an existing migration with
// the name it would create: a reason when it creates nothing, else a note.
func (p *planner) nameTaken(old *v1.LocalVolumeMigrate) (reason, note string) {
	state := stateOf(old.Status.State)
	switch {
	case old.DeletionTimestamp != nil:
		return "", fmt.Sprintf("%s is being deleted; the evictor creates it anew once it is gone", old.Name)
	case !old.Status.State.Finished():
		return fmt.Sprintf("the unfinished migration %s (off node %s) has the name the evictor would give this one, so it creates none", old.Name, old.Spec.SourceNode), ""
	case old.Labels[v1.MigrateTriggerLabel] == "":
		return fmt.Sprintf("the finished migration %s, which the evictor did not create, has the name it would use: delete it", old.Name), ""
	case !requestedAt(old).Before(p.requestAt):
		return fmt.Sprintf("%s ended %s during this cordon and is not retried: delete it (the evictor creates it again), or uncordon and drain again", old.Name, state), ""
	}
	return "", fmt.Sprintf("replaces %s, which ended %s in an earlier request", old.Name, state)
}

// requestedAt is the evictor's: the request a migration serves began at
// its RequestedAtAnnotation, else at its creation.
func requestedAt(m *v1.LocalVolumeMigrate) time.Time {
	if t, err := time.Parse(time.RFC3339Nano, m.Annotations[v1.EvictorRequestedAtAnnotation]); err == nil {
		return t
	}
	return m.CreationTimestamp.Time
}

// admit replays the migrate controller's Submitted state for a migration
// whose spec.volumeName is head: validation, the wait for a move of the
// volume off another node, then the target.
func (p *planner) admit(mv move, head string) move {
	src := p.node.Name
	stay := func(format string, args ...any) move {
		mv.action, mv.reason = ActionStay, fmt.Sprintf(format, args...)
		return mv
	}
	lv := p.cl.volume(head)
	if lv == nil {
		return stay("volume %s not found", head)
	}
	if !slices.Contains(lv.ReplicaNodes(), src) {
		return stay("node %s holds no replica of volume %s (replicas on %s): the migration would fail", src, lv.Name, strings.Join(lv.ReplicaNodes(), ", "))
	}
	vols := groupOf(p.cl, lv)
	for _, v := range vols {
		if !slices.Contains(v.ReplicaNodes(), src) {
			return stay("volume %s of the group has no replica on %s: the migration would fail", v.Name, src)
		}
	}
	names := volumeNames(vols)
	for i := range p.cl.Migrations {
		o := &p.cl.Migrations[i]
		if o.Spec.SourceNode == src || o.Status.State.Finished() || !o.Moves(names...) {
			continue
		}
		if mv.migration == nil || v1.OperationBefore(o, "", mv.migration, "") || o.Status.State.HoldsCopySlot() {
			mv.action, mv.reason = ActionWait, fmt.Sprintf("waiting for %s, which moves the volume's replica on %s", o.Name, o.Spec.SourceNode)
			return mv
		}
	}
	var suggested []string
	if mv.migration != nil {
		suggested = mv.migration.Spec.TargetNodesSuggested
	}
	target, why := p.pickTarget(lv, vols, suggested)
	if target == "" {
		if len(suggested) > 0 {
			return stay("none of the suggested nodes %s can take the volumes: %s", strings.Join(suggested, ", "), why)
		}
		return stay("waiting for a target: %s", why)
	}
	mv.target = target
	return mv
}

// pickTarget is the migrate controller's target choice
// (placement.View.MoveTarget) on the cluster read, the drained node counted
// as cordoned. The choice is reserved, so the next group sees the space
// taken.
func (p *planner) pickTarget(lv *v1.LocalVolume, vols []*v1.LocalVolume, suggested []string) (target, why string) {
	src := p.node.Name
	schedulable := func(n string) bool {
		node := p.cl.node(n)
		return n != src && node != nil && !node.Spec.Unschedulable
	}
	target, miss := p.capacity.MoveTarget(schedulable, src, lv, vols, suggested)
	if miss != nil {
		return "", miss.String()
	}
	pvols := make([]placement.Volume, 0, len(vols))
	for _, v := range vols {
		pool, _ := placement.PoolByName(v.Spec.PoolName) // Target checked it
		pvols = append(pvols, placement.Volume{Key: v.Name, Pool: pool, Bytes: v.Spec.RequiredCapacityBytes, Replicated: v.Spec.ReplicaNumber >= 2})
	}
	if _, err := p.capacity.Reserve(target, pvols); err != nil {
		return "", err.Error() // Target found room a moment ago: not expected
	}
	return target, ""
}

// row is the report's line for one volume of a group.
func (p *planner) row(lv *v1.LocalVolume, mv move) VolumeMove {
	claim := ""
	if lv.Spec.PersistentVolumeClaimName != "" {
		claim = lv.Spec.PersistentVolumeClaimNamespace + "/" + lv.Spec.PersistentVolumeClaimName
	}
	pool := lv.Spec.PoolName
	if c, err := v1.PoolClassOf(pool); err == nil {
		pool = string(c)
	}
	r := VolumeMove{
		Volume: lv.Name, Claim: claim, Group: lv.Spec.VolumeGroup, Pool: pool,
		CapacityBytes: lv.Spec.RequiredCapacityBytes, Replicas: lv.ReplicaNodes(),
		Action: mv.action, Target: mv.target, Migration: mv.name, Reason: mv.reason,
		Notes: slices.Clone(mv.notes),
	}
	if mv.migration != nil {
		r.MigrationState = stateOf(mv.migration.Status.State)
		if mv.action == ActionMoving {
			r.Reason = "moving: " + migrationSummary(mv.migration)
		}
	}
	if r.ok() {
		r.Notes = append(r.Notes, p.podNotes(lv, mv.target)...)
	}
	return r
}

// podNotes say what the volume's pod does while it moves to target
// (docs/operations.md, "What the evicted pods show", "HA volumes"). Only
// replicaNumber makes a volume HA: a migration's target is listed among
// the replicas from AddReplica on, but holds no data yet.
func (p *planner) podNotes(lv *v1.LocalVolume, target string) []string {
	var notes []string
	if lv.Status.PublishedNodeName == p.node.Name {
		notes = append(notes, fmt.Sprintf("in use on %s: the copy starts once its pod is evicted", p.node.Name))
	}
	if lv.Spec.ReplicaNumber < 2 {
		return append(notes, "its pod, once evicted, waits Pending until the copy is verified")
	}
	var peers []string
	for _, n := range lv.ReplicaNodes() {
		if n != p.node.Name && n != target {
			peers = append(peers, n)
		}
	}
	for _, peer := range peers {
		if n := p.cl.node(peer); n != nil && !n.Spec.Unschedulable {
			return append(notes, fmt.Sprintf("HA: its pod can run on the replica on %s meanwhile", peer))
		}
	}
	return append(notes, fmt.Sprintf("HA, but the other replica's node %s is cordoned too: its pod waits Pending until this copy is verified", orNone(strings.Join(peers, ", "))))
}
