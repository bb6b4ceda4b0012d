package migrate

import (
	"context"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/internal/operation"
	"hwameistor.io/local/controllers/internal/volumes"
)

// The online move of HA volumes replicated by DRBD (README "Online moves"):
// no copy stream and no pod restart. The source's replica leaves the DRBD
// resource (its agent takes it down; the kernel refuses while the volume is
// in use there), the volume names the target instead, the target's agent
// brings a new replica up and DRBD resyncs it in full from the replica
// that stays, which keeps serving the pod; the source's replica is deleted
// once the new one is UpToDate. Until then a rollback puts the source back:
// it comes up with its metadata and resyncs from the replica that stayed.

// drbdMove says whether m moves its volumes online with DRBD. Once a
// target replica exists, or a source was asked to leave, its marks say;
// before, every volume must be an HA volume whose replicas all run DRBD.
// Cached reads suffice: a mark the cache does not show yet leaves the
// replicas as they were, which gives the same answer.
func (r *Reconciler) drbdMove(ctx context.Context, m *v1.LocalVolumeMigrate) (bool, error) {
	for _, name := range m.Status.Volumes {
		for _, node := range []string{m.Status.TargetNode, m.Spec.SourceNode} {
			rep := &v1.LocalVolumeReplica{}
			err := r.Client.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(name, node)}, rep)
			switch {
			case apierrors.IsNotFound(err):
				continue
			case err != nil:
				return false, err
			case rep.Annotations[v1.DRBDJoinAnnotation] == m.Name || rep.Annotations[v1.DRBDLeaveAnnotation] == m.Name:
				return true, nil
			case node == m.Status.TargetNode && operation.Owns(m, rep):
				return false, nil // a copy target
			}
		}
	}
	for _, name := range m.Status.Volumes {
		lv := &v1.LocalVolume{}
		if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, lv); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		if !lv.Replicated() {
			return false, nil
		}
		var reps []*v1.LocalVolumeReplica
		for _, node := range lv.ReplicaNodes() {
			rep := &v1.LocalVolumeReplica{}
			if err := r.Client.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(name, node)}, rep); err != nil {
				return false, client.IgnoreNotFound(err)
			}
			reps = append(reps, rep)
		}
		if !v1.DRBDManaged(reps) {
			return false, nil
		}
	}
	return len(m.Status.Volumes) > 0, nil
}

// addDRBDReplica is AddReplica of an online move: each source replica
// leaves the DRBD resource (only while the replica that stays is UpToDate),
// then each volume switches to its new replica on the target, which its
// agent allocates.
func (r *Reconciler) addDRBDReplica(ctx context.Context, m *v1.LocalVolumeMigrate) (ctrl.Result, error) {
	source, target := m.Spec.SourceNode, m.Status.TargetNode
	if why, err := r.replicatesWithDRBD(ctx, target); err != nil || why != "" {
		if err != nil {
			return ctrl.Result{}, err
		}
		return r.engine.Rollback(ctx, m, v1.OperationStateFailed, fmt.Sprintf("target %s cannot take a replica of a volume replicated by DRBD: %s", target, why))
	}
	// The replica that stays is the only copy once the source leaves: it
	// must hold every acknowledged write. Every volume is checked before
	// any source is asked to leave, so a group never waits half-moved.
	srcs := make([]*v1.LocalVolumeReplica, 0, len(m.Status.Volumes))
	for _, name := range m.Status.Volumes {
		lv, done, res, err := r.volumeOf(ctx, m, name)
		if done {
			return res, err
		}
		src := &v1.LocalVolumeReplica{}
		if err := r.Client.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(name, source)}, src); err != nil {
			if apierrors.IsNotFound(err) {
				return r.engine.Rollback(ctx, m, v1.OperationStateFailed, fmt.Sprintf("the replica of %s on %s disappeared", name, source))
			}
			return ctrl.Result{}, err
		}
		if src.Annotations[v1.DRBDLeaveAnnotation] != m.Name {
			if why, err := r.stayingNotServing(ctx, lv, source); err != nil || why != "" {
				if err != nil {
					return ctrl.Result{}, err
				}
				return r.engine.Progress(ctx, m, fmt.Sprintf("waiting: the replica of %s that stays %s, so the one on %s cannot leave yet", name, why, source), nil)
			}
		}
		srcs = append(srcs, src)
	}
	left, waiting := 0, ""
	for i, src := range srcs {
		if src.Annotations[v1.DRBDLeaveAnnotation] != m.Name {
			patch := client.MergeFrom(src.DeepCopy())
			if src.Annotations == nil {
				src.Annotations = map[string]string{}
			}
			src.Annotations[v1.DRBDLeaveAnnotation] = m.Name
			if err := r.Client.Patch(ctx, src, patch); err != nil {
				return ctrl.Result{}, err
			}
		}
		if !src.DRBDLeft(m.Name) {
			if d := src.Status.DRBD; waiting == "" && d != nil && d.Message != "" {
				waiting = fmt.Sprintf("; %s on %s: %s", m.Status.Volumes[i], source, d.Message)
			}
			continue
		}
		left++
	}
	if left < len(m.Status.Volumes) {
		return r.engine.Progress(ctx, m, fmt.Sprintf("waiting for the replicas on %s to leave their DRBD resources: %d/%d left%s", source, left, len(m.Status.Volumes), waiting), nil)
	}
	reps := make([]*v1.LocalVolumeReplica, 0, len(m.Status.Volumes))
	for _, name := range m.Status.Volumes {
		lv, done, res, err := r.volumeOf(ctx, m, name)
		if done {
			return res, err
		}
		rep, err := r.engine.EnsureReplica(ctx, m, lv, target, operation.JoinMarks(m))
		if err != nil {
			return ctrl.Result{}, err
		}
		if !operation.Owns(m, rep) {
			return ctrl.Result{}, fmt.Errorf("replica %s on %s was not created by migration %s", rep.Name, target, m.Name)
		}
		if err := volumes.ReplaceNode(ctx, r.Client, lv, source, target, false, nil); err != nil {
			return ctrl.Result{}, err
		}
		reps = append(reps, rep)
	}
	if res, waiting, err := r.waitAllocated(ctx, m, reps); waiting || err != nil {
		return res, err
	}
	return r.engine.Advance(ctx, m, v1.OperationStateSyncReplica, fmt.Sprintf("DRBD resyncs the new replicas on %s from the replicas that stayed", target), nil,
		"ReplicasAdded", fmt.Sprintf("Replicas allocated on %s; DRBD resyncs them from the replicas that stayed while the pods keep running", target))
}

// replicatesWithDRBD says why node cannot hold a DRBD replica ("" when it
// can): its agent must report condition DRBD True.
func (r *Reconciler) replicatesWithDRBD(ctx context.Context, node string) (string, error) {
	lsn := &v1.LocalStorageNode{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: node}, lsn); err != nil {
		if apierrors.IsNotFound(err) {
			return "it has no LocalStorageNode (no node agent)", nil
		}
		return "", err
	}
	c := meta.FindStatusCondition(lsn.Status.Conditions, v1.ConditionDRBD)
	switch {
	case c == nil:
		return "its node agent does not replicate with DRBD (no condition DRBD on its LocalStorageNode)", nil
	case c.Status != metav1.ConditionTrue:
		return "DRBD is not available there: " + c.Message, nil
	}
	return "", nil
}

// stayingNotServing says why lv's replica other than source's may not
// serve ("" when it may).
func (r *Reconciler) stayingNotServing(ctx context.Context, lv *v1.LocalVolume, source string) (string, error) {
	for _, node := range lv.ReplicaNodes() {
		if node == source {
			continue
		}
		rep := &v1.LocalVolumeReplica{}
		if err := r.Client.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(lv.Name, node)}, rep); err != nil {
			if apierrors.IsNotFound(err) {
				return "on " + node + " does not exist", nil
			}
			return "", err
		}
		if why := rep.DRBDNotServing(); why != "" {
			return "on " + node + ": " + why, nil
		}
		return "", nil
	}
	return "is missing", nil
}

// syncDRBDReplica is SyncReplica of an online move: it reports DRBD's
// resync of each new replica until all are UpToDate.
func (r *Reconciler) syncDRBDReplica(ctx context.Context, m *v1.LocalVolumeMigrate) (ctrl.Result, error) {
	var copied int64
	synced := 0
	var pending []string
	for _, name := range m.Status.Volumes {
		rep := &v1.LocalVolumeReplica{}
		if err := r.Client.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(name, m.Status.TargetNode)}, rep); err != nil {
			if apierrors.IsNotFound(err) {
				return r.engine.Rollback(ctx, m, v1.OperationStateFailed, fmt.Sprintf("target replica of %s on %s disappeared", name, m.Status.TargetNode))
			}
			return ctrl.Result{}, err
		}
		why := rep.DRBDNotServing()
		if why == "" {
			synced++
			copied += rep.Spec.RequiredCapacityBytes
			continue
		}
		pending = append(pending, name+": "+why)
		if d := rep.Status.DRBD; d != nil && d.Device != "" {
			copied += rep.Spec.RequiredCapacityBytes - min(d.OutOfSyncBytes, rep.Spec.RequiredCapacityBytes)
		}
	}
	pct := 0
	if m.Status.TotalBytes > 0 {
		pct = int(min(100, copied*100/m.Status.TotalBytes))
	}
	progress := fmt.Sprintf("%d%%", pct)
	if synced < len(m.Status.Volumes) {
		msg := fmt.Sprintf("DRBD resyncs %s from the replicas that stayed: %d/%d UpToDate; %s", m.Status.TargetNode, synced, len(m.Status.Volumes), strings.Join(pending, "; "))
		return r.engine.Progress(ctx, m, msg, func() { m.Status.BytesCopied, m.Status.Progress = copied, progress })
	}
	return r.engine.Advance(ctx, m, v1.OperationStatePruneReplica, "removing the source replicas from "+m.Spec.SourceNode,
		func() { m.Status.BytesCopied, m.Status.Progress = m.Status.TotalBytes, "100%" },
		"Verified", fmt.Sprintf("Every new replica on %s is UpToDate in its DRBD resource", m.Status.TargetNode))
}

// pruneDRBDReplica is PruneReplica of an online move: the invariant is
// that every new replica is Ready and UpToDate before any source goes.
func (r *Reconciler) pruneDRBDReplica(ctx context.Context, m *v1.LocalVolumeMigrate) (ctrl.Result, error) {
	source, target := m.Spec.SourceNode, m.Status.TargetNode
	targets := make([]*v1.LocalVolumeReplica, 0, len(m.Status.Volumes))
	for _, name := range m.Status.Volumes {
		tgt := &v1.LocalVolumeReplica{}
		if err := r.Client.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(name, target)}, tgt); err != nil {
			return ctrl.Result{}, fmt.Errorf("target replica of %s: %w", name, err)
		}
		if why := tgt.DRBDNotServing(); why != "" {
			return r.engine.Progress(ctx, m, fmt.Sprintf("holding the source: the replica of %s on %s may not serve: %s", name, target, why), nil)
		}
		targets = append(targets, tgt)
	}
	if remaining, err := r.removeSources(ctx, m, targets); err != nil || remaining > 0 {
		if err != nil {
			return ctrl.Result{}, err
		}
		return r.engine.Progress(ctx, m, fmt.Sprintf("removing %d source replica(s) on %s", remaining, source), nil)
	}
	return r.engine.Advance(ctx, m, v1.OperationStateCompleted, fmt.Sprintf("moved to %s online; DRBD resynced it", target), nil,
		"Completed", fmt.Sprintf("%s moved from %s to %s while in use", strings.Join(m.Status.Volumes, ", "), source, target))
}

// undoDRBDMove puts the source back where the volume names the target
// instead, and lets it rejoin its DRBD resource; the target replica is
// then deleted by undo like a copy target.
func (r *Reconciler) undoDRBDMove(ctx context.Context, m *v1.LocalVolumeMigrate, name string) error {
	source, target := m.Spec.SourceNode, m.Status.TargetNode
	lv := &v1.LocalVolume{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, lv); err != nil {
		return client.IgnoreNotFound(err)
	}
	// Written even when the cached volume looks undone already: it may
	// not show the switch this process made a moment ago (volumes.Edit).
	if err := volumes.ReplaceNode(ctx, r.Client, lv, target, source, true, nil); err != nil {
		return client.IgnoreNotFound(err)
	}
	src := &v1.LocalVolumeReplica{}
	if err := r.engine.Reader().Get(ctx, client.ObjectKey{Name: v1.ReplicaName(name, source)}, src); err != nil {
		return client.IgnoreNotFound(err)
	}
	if src.Annotations[v1.DRBDLeaveAnnotation] != m.Name {
		return nil
	}
	patch := client.MergeFrom(src.DeepCopy())
	delete(src.Annotations, v1.DRBDLeaveAnnotation)
	return r.Client.Patch(ctx, src, patch)
}
