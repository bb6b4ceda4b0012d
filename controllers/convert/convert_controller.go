// Package convert reconciles LocalVolumeConverts: it turns a convertible
// single-replica volume into an HA volume by adding a second replica on
// another node, copying the data into it and verifying the copy.
// Submitted → AddReplica → SyncReplica → Completed, or Failed / Aborted with
// a rollback that removes only what the conversion added. Every step is
// idempotent and reads its progress back from the cluster, so a restarted
// controller resumes; the original replica is never touched.
package convert

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/internal/operation"
	"hwameistor.io/local/controllers/internal/volumes"
)

// Annotations the controller keeps on the LocalVolumeConvert once it chose
// where the new replica goes (the status has no field for it): the
// decision survives a restart, and the rollback knows what to undo.
const (
	TargetNodeAnnotation = "hwameistor.io/convert-target-node"
	SourceNodeAnnotation = "hwameistor.io/convert-source-node"
)

// Reconciler reconciles LocalVolumeConverts on the operation engine.
type Reconciler struct {
	Client   client.Client
	Recorder record.EventRecorder
	// APIReader reads the capacity view and the volume's replicas
	// uncached, so two conversions in a row never both count on the same
	// free space; the manager's API reader when nil.
	APIReader client.Reader
	// RetryInterval is how often waiting states look again;
	// operation.DefaultRetryInterval when zero.
	RetryInterval time.Duration

	engine *operation.Engine
}

var _ reconcile.Reconciler = &Reconciler{}

// +kubebuilder:rbac:groups=hwameistor.io,resources=localvolumeconverts,verbs=get;list;watch;update
// +kubebuilder:rbac:groups=hwameistor.io,resources=localvolumeconverts/status,verbs=update
// +kubebuilder:rbac:groups=hwameistor.io,resources=localvolumes,verbs=get;list;watch;update
// +kubebuilder:rbac:groups=hwameistor.io,resources=localvolumes/finalizers,verbs=update
// +kubebuilder:rbac:groups=hwameistor.io,resources=localvolumereplicas,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=hwameistor.io,resources=localvolumegroups,verbs=get;list;watch;update
// +kubebuilder:rbac:groups=hwameistor.io,resources=localstoragenodes;localvolumemigrates;localvolumeexpands,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// SetupWithManager registers the controller (named localvolumeconvert).
// The new replica is mapped back to its conversion through the
// sync-pending annotation; volumes, migrations and expansions wake the
// conversions of their volumes that wait for them.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	r.engine = &operation.Engine{Client: r.Client, Recorder: r.Recorder, APIReader: r.APIReader, RetryInterval: r.RetryInterval,
		Kind: operation.Kind{
			New:          func() v1.Operation { return &v1.LocalVolumeConvert{} },
			FailedReason: "ConvertFailed",
			Noun:         "conversion",
			Submitted:    operation.StepOf(r.submitted),
			Steps: map[v1.State]operation.Step{
				v1.OperationStateAddReplica:  operation.StepOf(r.addReplica),
				v1.OperationStateSyncReplica: operation.StepOf(r.syncReplica),
			},
			Cause: func(v1.Operation, operation.Why) string { return "aborted by spec.abort" },
			Undo: func(ctx context.Context, op v1.Operation, end v1.State, cause string, started bool) (string, error) {
				return r.undo(ctx, op.(*v1.LocalVolumeConvert), end, cause, started)
			},
			Completed: func(ctx context.Context, op v1.Operation) error {
				return r.releaseReplica(ctx, op.(*v1.LocalVolumeConvert))
			},
		}}
	wake := r.engine.WakeOnVolumes(func() client.ObjectList { return &v1.LocalVolumeConvertList{} })
	return ctrl.NewControllerManagedBy(mgr).
		Named("localvolumeconvert").
		For(&v1.LocalVolumeConvert{}).
		Watches(&v1.LocalVolumeReplica{}, wake).
		Watches(&v1.LocalVolume{}, wake).
		Watches(&v1.LocalVolumeMigrate{}, wake).
		Watches(&v1.LocalVolumeConvert{}, wake).
		Watches(&v1.LocalVolumeExpand{}, wake).
		Complete(r)
}

// Reconcile moves one conversion forward (operation.Engine).
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return r.engine.Reconcile(ctx, req)
}

// submitted validates the request and chooses the node of the new replica.
// Nothing is changed in the cluster before the state is AddReplica.
func (r *Reconciler) submitted(ctx context.Context, c *v1.LocalVolumeConvert) (ctrl.Result, error) {
	name := c.Spec.VolumeName
	// Uncached: a volume created just before the request is not "not found".
	lv := &v1.LocalVolume{}
	if err := r.engine.Reader().Get(ctx, client.ObjectKey{Name: name}, lv); err != nil {
		if apierrors.IsNotFound(err) {
			return r.engine.Fail(ctx, c, "volume %s not found", name)
		}
		return ctrl.Result{}, err
	}
	if lv.DeletionTimestamp != nil || lv.Spec.Delete {
		return r.engine.Fail(ctx, c, "volume %s is being deleted", name)
	}
	if lv.Spec.ReplicaNumber >= 2 {
		msg := fmt.Sprintf("volume %s already has %d replicas", name, lv.Spec.ReplicaNumber)
		return r.engine.Advance(ctx, c, v1.OperationStateCompleted, msg, nil, "Completed", msg)
	}
	if !lv.Spec.Convertible {
		return r.engine.Fail(ctx, c, "volume %s is not convertible: its StorageClass has no convertible: true", name)
	}
	blockers, err := operation.Blockers(ctx, r.engine.Reader(), c, []string{name})
	if err != nil {
		return ctrl.Result{}, err
	}
	for _, o := range blockers {
		if o.OperationKind() == v1.KindConvert {
			return r.engine.Fail(ctx, c, "volume %s is already being converted by %s", name, o.GetName())
		}
	}
	if len(blockers) > 0 {
		return r.engine.Wait(ctx, c, v1.OperationStateSubmitted, "waiting: volume %s is being %s", name, operation.Doing(blockers[0]))
	}
	nodes := lv.ReplicaNodes()
	switch {
	case len(nodes) == 0:
		return r.engine.Wait(ctx, c, v1.OperationStateSubmitted, "waiting: volume %s has no replica yet (spec.config.replicas is empty)", name)
	case len(nodes) > 1:
		return r.engine.Wait(ctx, c, v1.OperationStateSubmitted, "waiting: volume %s lists %d replicas (%s) with replicaNumber 1; another change is under way", name, len(nodes), strings.Join(nodes, ", "))
	}
	if lv.Status.State != v1.StateReady {
		return r.engine.Wait(ctx, c, v1.OperationStateSubmitted, "waiting: volume %s is %s, not Ready", name, stateOr(lv.Status.State, "not reported yet"))
	}
	source := nodes[0]
	target, why, err := r.pickTarget(ctx, lv, source)
	if err != nil {
		return ctrl.Result{}, err
	}
	if target == "" {
		return r.engine.Wait(ctx, c, v1.OperationStateSubmitted, "%s", why)
	}
	// Record the choice before anything is created: AddReplica, a restart
	// and the rollback all read it from here. Both writes carry the
	// resourceVersion, so a reconcile that read a stale object changes
	// nothing.
	if c.Annotations[TargetNodeAnnotation] != target || c.Annotations[SourceNodeAnnotation] != source {
		if c.Annotations == nil {
			c.Annotations = map[string]string{}
		}
		c.Annotations[TargetNodeAnnotation], c.Annotations[SourceNodeAnnotation] = target, source
		if err := r.Client.Update(ctx, c); err != nil {
			return ctrl.Result{}, err
		}
	}
	return r.engine.Advance(ctx, c, v1.OperationStateAddReplica, fmt.Sprintf("adding a replica on %s (data copied from %s)", target, source), nil,
		"TargetChosen", fmt.Sprintf("The second replica of %s goes to %s; its data is copied from %s", name, target, source))
}

// pickTarget chooses the node of the second replica with the migrations'
// choice (placement.View.MoveTarget): a Ready, schedulable node holding no
// replica of the volume, where it fits net of every persisted reservation,
// preferring another zone than the source, then the most free space. It
// returns "" and the waiting message when no node fits.
func (r *Reconciler) pickTarget(ctx context.Context, lv *v1.LocalVolume, source string) (string, string, error) {
	target, miss, err := r.engine.MoveTarget(ctx, source, lv, []*v1.LocalVolume{lv}, nil)
	if err != nil {
		return "", "", err
	}
	switch {
	case miss == nil:
		return target, "", nil
	case miss.UnknownPool != "":
		return "", fmt.Sprintf("waiting: volume %s has unknown pool %s", lv.Name, lv.Spec.PoolName), nil
	}
	waiting := "waiting for a node that can hold " + miss.Demand
	if len(miss.Candidates) == 0 {
		return "", waiting + ": no Ready, schedulable node other than " + source, nil
	}
	var reasons []string
	for _, v := range miss.Verdicts {
		reasons = append(reasons, v.Node+": "+v.Reason.String())
	}
	if len(miss.Candidates) > len(miss.Verdicts) {
		reasons = append(reasons, "…")
	}
	return "", fmt.Sprintf("%s: none of %d candidate node(s) has room (%s)", waiting, len(miss.Candidates), strings.Join(reasons, "; ")), nil
}

// addReplica creates the new replica (marked sync-pending, so the target's
// node agent copies the data in), adds the target to the volume's
// placement and group entry, and waits for the replica to be allocated.
func (r *Reconciler) addReplica(ctx context.Context, c *v1.LocalVolumeConvert) (ctrl.Result, error) {
	target, source := c.Annotations[TargetNodeAnnotation], c.Annotations[SourceNodeAnnotation]
	if target == "" || source == "" {
		// Only a hand-edited object gets here: nothing was created.
		return r.engine.Fail(ctx, c, "the conversion lost its %s and %s annotations; create a new LocalVolumeConvert", TargetNodeAnnotation, SourceNodeAnnotation)
	}
	lv := &v1.LocalVolume{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: c.Spec.VolumeName}, lv); err != nil {
		if apierrors.IsNotFound(err) {
			return r.engine.Rollback(ctx, c, v1.OperationStateFailed, fmt.Sprintf("volume %s was deleted during the conversion", c.Spec.VolumeName))
		}
		return ctrl.Result{}, err
	}
	if !slices.Contains(lv.ReplicaNodes(), source) {
		return r.engine.Rollback(ctx, c, v1.OperationStateFailed, fmt.Sprintf("volume %s no longer has its replica on %s (replicas on %s)", lv.Name, source, strings.Join(lv.ReplicaNodes(), ", ")))
	}
	rep, err := r.engine.EnsureReplica(ctx, c, lv, target, operation.CopyMarks(c, source))
	if err != nil {
		return ctrl.Result{}, err
	}
	if !operation.Owns(c, rep) {
		return r.engine.Rollback(ctx, c, v1.OperationStateFailed, fmt.Sprintf("a replica of %s on %s exists that this conversion did not create", lv.Name, target))
	}
	if err := r.engine.AddTarget(ctx, lv, target, nil); err != nil {
		return ctrl.Result{}, err
	}
	if refused := operation.AllocationRefused(rep); refused != "" {
		return r.engine.Rollback(ctx, c, v1.OperationStateFailed, fmt.Sprintf("%s could not allocate the new replica: %s", target, refused))
	}
	if rep.Status.State != v1.StateReady {
		msg := fmt.Sprintf("allocating the new replica %s on %s", rep.Name, target)
		if rep.Status.Message != "" {
			msg += ": " + rep.Status.Message
		}
		return r.engine.Progress(ctx, c, msg, nil)
	}
	return r.engine.Advance(ctx, c, v1.OperationStateSyncReplica, fmt.Sprintf("copying from %s to %s (the volume must not be in use)", source, target), nil,
		"ReplicaAdded", fmt.Sprintf("Replica %s allocated on %s; copying the data from %s", rep.Name, target, source))
}

// syncReplica waits for the node agent's verified copy, then makes the
// volume HA.
func (r *Reconciler) syncReplica(ctx context.Context, c *v1.LocalVolumeConvert) (ctrl.Result, error) {
	target, source := c.Annotations[TargetNodeAnnotation], c.Annotations[SourceNodeAnnotation]
	lv := &v1.LocalVolume{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: c.Spec.VolumeName}, lv); err != nil {
		if apierrors.IsNotFound(err) {
			return r.engine.Rollback(ctx, c, v1.OperationStateFailed, fmt.Sprintf("volume %s was deleted during the conversion", c.Spec.VolumeName))
		}
		return ctrl.Result{}, err
	}
	// Uncached: a replica the cache has not seen yet is not a lost one.
	rep := &v1.LocalVolumeReplica{}
	if err := r.engine.Reader().Get(ctx, client.ObjectKey{Name: v1.ReplicaName(lv.Name, target)}, rep); err != nil {
		if apierrors.IsNotFound(err) {
			return r.engine.Rollback(ctx, c, v1.OperationStateFailed, fmt.Sprintf("the new replica of %s on %s disappeared", lv.Name, target))
		}
		return ctrl.Result{}, err
	}
	if rep.DeletionTimestamp != nil || rep.Annotations[v1.SyncPendingAnnotation] != c.Name {
		return r.engine.Rollback(ctx, c, v1.OperationStateFailed, fmt.Sprintf("the new replica of %s on %s was deleted or replaced during the copy", lv.Name, target))
	}
	if !operation.Verified(rep) || rep.Status.State != v1.StateReady {
		size := rep.Spec.RequiredCapacityBytes
		pct := int64(0)
		if size > 0 {
			pct = min(100, rep.Status.SyncedBytes*100/size)
		}
		msg := fmt.Sprintf("copying from %s to %s: %d%% (%s of %s)", source, target, pct, v1.FormatBytes(rep.Status.SyncedBytes), v1.FormatBytes(size))
		if operation.Verified(rep) {
			msg = fmt.Sprintf("the copy on %s is verified; waiting for the replica to be Ready (it is %s)", target, stateOr(rep.Status.State, "not reported"))
		}
		if m := rep.Status.Message; m != "" {
			msg += "; " + m
			if !strings.Contains(c.Status.Message, m) {
				r.Recorder.Eventf(c, corev1.EventTypeWarning, "CopyRetrying", "Replica %s on %s: %s", rep.Name, target, m)
			}
		}
		return r.engine.Progress(ctx, c, msg, nil)
	}
	// Verified: the volume is HA from now on.
	ha := false
	if err := volumes.Edit(ctx, r.Client, lv.Name, false, func(lv *v1.LocalVolume) {
		if nodes := lv.ReplicaNodes(); slices.Contains(nodes, source) && slices.Contains(nodes, target) {
			lv.Spec.ReplicaNumber, ha = 2, true
		}
	}); err != nil {
		return ctrl.Result{}, err
	}
	if !ha {
		return r.engine.Rollback(ctx, c, v1.OperationStateFailed, fmt.Sprintf("volume %s no longer lists both %s and %s as replicas", lv.Name, source, target))
	}
	msg := fmt.Sprintf("volume %s is HA: replicas on %s and %s; the copy on %s was verified", lv.Name, source, target, target)
	if _, err := r.engine.Advance(ctx, c, v1.OperationStateCompleted, msg, nil, "Completed", msg); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, r.releaseReplica(ctx, c)
}

// releaseReplica makes the new replica of a completed conversion an
// ordinary replica. It runs on every reconcile of a Completed conversion,
// so a restart between the state change and this patch finishes it.
func (r *Reconciler) releaseReplica(ctx context.Context, c *v1.LocalVolumeConvert) error {
	target := c.Annotations[TargetNodeAnnotation]
	if target == "" {
		return nil
	}
	rep := &v1.LocalVolumeReplica{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(c.Spec.VolumeName, target)}, rep); err != nil {
		return client.IgnoreNotFound(err)
	}
	return r.engine.Release(ctx, c, rep)
}

// undo removes what the conversion added: the target leaves the volume's
// placement and its group entry, and the new replica is deleted if this
// conversion made it; the original replica is never touched. It returns
// the message of the end.
func (r *Reconciler) undo(ctx context.Context, c *v1.LocalVolumeConvert, end v1.State, msg string, started bool) (string, error) {
	target, source := c.Annotations[TargetNodeAnnotation], c.Annotations[SourceNodeAnnotation]
	started = started && target != ""
	foreign := false
	if started {
		var err error
		foreign, err = r.engine.RemoveTarget(ctx, c, c.Spec.VolumeName, target, false, func(lv *v1.LocalVolume) bool {
			return lv.Spec.ReplicaNumber < 2 && slices.Contains(lv.ReplicaNodes(), source)
		}, nil)
		if err != nil {
			return "", err
		}
	}
	switch {
	case started && foreign:
		msg += fmt.Sprintf("; %s was removed from the volume (its replica object is left: this conversion did not make it), the volume keeps its replica on %s", target, source)
	case started && end == v1.OperationStateAborted:
		msg += fmt.Sprintf("; the replica on %s was removed, the volume keeps its replica on %s", target, source)
	case started:
		msg += fmt.Sprintf("; rolled back, the volume keeps its replica on %s", source)
	case end == v1.OperationStateAborted:
		msg += "; nothing was changed"
	}
	return msg, nil
}

func stateOr(s v1.State, def string) string {
	if s == "" {
		return def
	}
	return string(s)
}
