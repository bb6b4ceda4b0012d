package operation

import (
	"context"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/internal/volumes"
	"hwameistor.io/local/internal/placement"
)

// The replica steps an operation declares: a new replica of a volume on a
// target node, filled by the target's node agent with a verified copy of
// the source's data, then either switched to (a move) or kept beside the
// source (a conversion); undone by removing the target.

// CopyMarks mark a new replica as op's copy target: its node agent copies
// the data in from source and verifies it.
func CopyMarks(op v1.Operation, source string) map[string]string {
	return map[string]string{v1.SyncPendingAnnotation: op.GetName(), v1.SyncSourceAnnotation: source}
}

// JoinMarks mark a new replica as op's replacement in an HA volume's DRBD
// resource: DRBD fills it from the replica that stays.
func JoinMarks(op v1.Operation) map[string]string {
	return map[string]string{v1.DRBDJoinAnnotation: op.GetName()}
}

// EnsureReplica returns lv's replica on target, creating it first with
// op's marks (CopyMarks or JoinMarks) and owned by lv. It is created
// before the volume names the target, so the volume controller never makes
// it unmarked, and read uncached, so a replica the previous reconcile
// created is found. Owns says whether a found replica is op's.
func (e *Engine) EnsureReplica(ctx context.Context, op v1.Operation, lv *v1.LocalVolume, target string, marks map[string]string) (*v1.LocalVolumeReplica, error) {
	name := v1.ReplicaName(lv.Name, target)
	rep := &v1.LocalVolumeReplica{}
	err := e.Reader().Get(ctx, client.ObjectKey{Name: name}, rep)
	if err == nil || !apierrors.IsNotFound(err) {
		return rep, err
	}
	rep = &v1.LocalVolumeReplica{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: marks},
		Spec: v1.LocalVolumeReplicaSpec{VolumeName: lv.Name, NodeName: target, PoolName: lv.Spec.PoolName,
			RequiredCapacityBytes: lv.Spec.RequiredCapacityBytes, VolumeKind: v1.VolumeKindLVM, Striped: lv.Spec.Striped},
	}
	if err := controllerutil.SetControllerReference(lv, rep, e.Client.Scheme()); err != nil {
		return nil, err
	}
	if err := e.Client.Create(ctx, rep); err != nil {
		if apierrors.IsAlreadyExists(err) {
			err = e.Reader().Get(ctx, client.ObjectKey{Name: name}, rep)
		}
		return rep, err
	}
	return rep, nil
}

// Owns says whether rep is the target replica op created.
func Owns(op v1.Operation, rep *v1.LocalVolumeReplica) bool {
	return rep.Annotations[v1.SyncPendingAnnotation] == op.GetName() || rep.Annotations[v1.DRBDJoinAnnotation] == op.GetName()
}

// AddTarget adds target to the placement of lv (its replicas and its
// group entry, which the scheduler's ledger and CreateVolume read); edit,
// when set, changes the volume in the same write. A group entry holds at
// most two nodes (an HA volume's entry gets the target when the source
// leaves it).
func (e *Engine) AddTarget(ctx context.Context, lv *v1.LocalVolume, target string, edit func(*v1.LocalVolume)) error {
	if err := volumes.Edit(ctx, e.Client, lv.Name, false, func(lv *v1.LocalVolume) {
		lv.AddReplicaNode(target)
		if edit != nil {
			edit(lv)
		}
	}); err != nil {
		return err
	}
	return volumes.EditGroupNodes(ctx, e.Client, lv, false, func(nodes []string) []string {
		if !slices.Contains(nodes, target) && len(nodes) < volumes.MaxGroupNodes {
			nodes = append(nodes, target)
		}
		return nodes
	})
}

// AllocationRefused is the target's capacity refusal of a new replica
// ("" when none): the operation cannot go on there.
func AllocationRefused(rep *v1.LocalVolumeReplica) string {
	if rep.Status.State == v1.StateNotReady && strings.Contains(rep.Status.Message, "insufficient capacity") {
		return rep.Status.Message
	}
	return ""
}

// Verified says whether rep holds a verified copy of its source.
func Verified(rep *v1.LocalVolumeReplica) bool {
	return rep.Status.Synced && rep.Status.Checksum != ""
}

// Release makes op's target replica an ordinary replica (no longer
// sync-pending). Idempotent.
func (e *Engine) Release(ctx context.Context, op v1.Operation, rep *v1.LocalVolumeReplica) error {
	if !Owns(op, rep) {
		return nil
	}
	patch := client.MergeFrom(rep.DeepCopy())
	delete(rep.Annotations, v1.SyncPendingAnnotation)
	delete(rep.Annotations, v1.SyncSourceAnnotation)
	delete(rep.Annotations, v1.DRBDJoinAnnotation)
	return e.Client.Patch(ctx, rep, patch)
}

// RemoveTarget undoes AddTarget and EnsureReplica for the volume named
// name: while keep(lv) holds (the source is still a replica: the move was
// not switched), target leaves the volume's replicas and group entry, and
// op's target replica is deleted. edit changes the volume in the same
// write. always is volumes.Edit's. It reports a replica on target that op
// did not create (left alone).
func (e *Engine) RemoveTarget(ctx context.Context, op v1.Operation, name, target string, always bool, keep func(*v1.LocalVolume) bool, edit func(*v1.LocalVolume)) (foreign bool, err error) {
	err = volumes.Edit(ctx, e.Client, name, always, func(lv *v1.LocalVolume) {
		if keep(lv) {
			lv.RemoveReplicaNode(target)
		}
		if edit != nil {
			edit(lv)
		}
	})
	if client.IgnoreNotFound(err) != nil {
		return false, err
	}
	lv := &v1.LocalVolume{}
	if err := e.Client.Get(ctx, client.ObjectKey{Name: name}, lv); err == nil && keep(lv) {
		if err := volumes.EditGroupNodes(ctx, e.Client, lv, always, func(nodes []string) []string {
			return slices.DeleteFunc(nodes, func(n string) bool { return n == target })
		}); err != nil {
			return false, err
		}
	} else if client.IgnoreNotFound(err) != nil {
		return false, err
	}
	rep := &v1.LocalVolumeReplica{}
	err = e.Reader().Get(ctx, client.ObjectKey{Name: v1.ReplicaName(name, target)}, rep)
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, err
	case !Owns(op, rep):
		return true, nil
	case rep.DeletionTimestamp == nil:
		if err := e.Client.Delete(ctx, rep, client.Preconditions{UID: &rep.UID}); client.IgnoreNotFound(err) != nil {
			return false, err
		}
	}
	return false, nil
}

// MoveTarget chooses the node of a new replica of vols (lv and the rest of
// its group) away from source with placement.View.MoveTarget, on the
// capacity view read through Reader and the Nodes' schedulability.
func (e *Engine) MoveTarget(ctx context.Context, source string, lv *v1.LocalVolume, vols []*v1.LocalVolume, suggested []string) (string, *placement.NoTarget, error) {
	view, err := volumes.LoadCapacity(ctx, e.Reader())
	if err != nil {
		return "", nil, err
	}
	nodes := &corev1.NodeList{}
	if err := e.Client.List(ctx, nodes); err != nil {
		return "", nil, err
	}
	schedulable := make(map[string]bool, len(nodes.Items))
	for _, n := range nodes.Items {
		schedulable[n.Name] = !n.Spec.Unschedulable
	}
	target, miss := view.MoveTarget(func(n string) bool { return schedulable[n] }, source, lv, vols, suggested)
	return target, miss, nil
}
