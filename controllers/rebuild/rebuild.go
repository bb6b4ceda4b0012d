// Package rebuild replaces the replica of an HA volume whose node has been
// away too long: a new replica on another node joins the volume's DRBD
// resource and resyncs from the replica that stayed, so the volume has two
// copies again without waiting for the node. The old replica is deleted;
// its node agent frees its data when the node comes back.
package rebuild

import (
	"context"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/internal/volumes"
	"hwameistor.io/local/controllers/node"
)

// DefaultAfter is v1.RebuildDefaultAfter.
const DefaultAfter = v1.RebuildDefaultAfter

// RebuildAnnotation on a LocalVolume says which replica is being rebuilt
// where ("<old node> -> <new node>") until the new one is UpToDate.
const RebuildAnnotation = "hwameistor.io/rebuild"

// Events on the LocalVolume.
const (
	EventRebuildStarted = "RebuildStarted"
	EventRebuilt        = "Rebuilt"
	// EventRebuildWaiting (Warning): the node is away but no other node
	// can take the replica, or the replica that stayed may not serve.
	EventRebuildWaiting = "RebuildWaiting"
)

// Field indexes of LocalVolumeReplicas: by node and by volume.
const (
	replicaNodeField   = "rebuild.spec.nodeName"
	replicaVolumeField = "rebuild.spec.volumeName"
)

// Reconciler rebuilds HA volumes' replicas whose nodes stay away.
//
// +kubebuilder:rbac:groups=hwameistor.io,resources=localvolumes;localvolumegroups,verbs=get;list;watch;update
// +kubebuilder:rbac:groups=hwameistor.io,resources=localvolumereplicas,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups=hwameistor.io,resources=localstoragenodes;localvolumemigrates;localvolumeexpands,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
type Reconciler struct {
	Client   client.Client
	Recorder record.EventRecorder
	// After is how long a node is away before its replicas are rebuilt;
	// DefaultAfter when zero, never when negative.
	After time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

var _ reconcile.Reconciler = &Reconciler{}

func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Reconciler) after() time.Duration {
	if r.After == 0 {
		return DefaultAfter
	}
	return r.After
}

// SetupWithManager registers the controller: LocalVolumes, their replicas'
// DRBD state, and LocalStorageNodes whose state changes (mapped to the
// volumes with a replica there).
func (r *Reconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &v1.LocalVolumeReplica{}, replicaNodeField, func(o client.Object) []string {
		return []string{o.(*v1.LocalVolumeReplica).Spec.NodeName}
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &v1.LocalVolumeReplica{}, replicaVolumeField, func(o client.Object) []string {
		return []string{o.(*v1.LocalVolumeReplica).Spec.VolumeName}
	}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("rebuild").
		For(&v1.LocalVolume{}).
		Watches(&v1.LocalVolumeReplica{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: o.(*v1.LocalVolumeReplica).Spec.VolumeName}}}
		})).
		Watches(&v1.LocalStorageNode{}, handler.EnqueueRequestsFromMapFunc(r.volumesOn), builder.WithPredicates(predicate.Funcs{
			UpdateFunc: func(e event.UpdateEvent) bool {
				return e.ObjectOld.(*v1.LocalStorageNode).Status.State != e.ObjectNew.(*v1.LocalStorageNode).Status.State
			},
		})).
		Complete(r)
}

func (r *Reconciler) volumesOn(ctx context.Context, o client.Object) []reconcile.Request {
	list := &v1.LocalVolumeReplicaList{}
	if err := r.Client.List(ctx, list, client.MatchingFields{replicaNodeField: o.GetName()}); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, rep := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: rep.Spec.VolumeName}})
	}
	return out
}

// Reconcile rebuilds one volume's absent replica, or finishes a rebuild.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if r.after() < 0 {
		return ctrl.Result{}, nil
	}
	lv := &v1.LocalVolume{}
	if err := r.Client.Get(ctx, req.NamespacedName, lv); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if lv.DeletionTimestamp != nil || lv.Spec.Delete || !lv.Replicated() {
		return ctrl.Result{}, nil
	}
	reps, err := r.replicas(ctx, lv.Name)
	if err != nil {
		return ctrl.Result{}, err
	}
	if lv.Annotations[RebuildAnnotation] != "" {
		return r.finish(ctx, lv, reps)
	}
	if !v1.DRBDManaged(reps) {
		return ctrl.Result{}, nil // not replicated: nothing could resync a new replica
	}
	var absent, stays *v1.LocalVolumeReplica
	var since time.Time
	for _, rep := range reps {
		if t, away := r.awaySince(ctx, rep.Spec.NodeName); away {
			absent, since = rep, t
		} else {
			stays = rep
		}
	}
	if absent == nil || stays == nil {
		return ctrl.Result{}, nil // both present, or both away: nothing to resync from
	}
	if wait := since.Add(r.after()).Sub(r.now()); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	if busy, err := r.operating(ctx, lv); err != nil || busy != "" {
		if busy != "" {
			r.Recorder.Eventf(lv, corev1.EventTypeWarning, EventRebuildWaiting, "Node %s has been away since %s; the rebuild waits for %s", absent.Spec.NodeName, since.UTC().Format(time.RFC3339), busy)
		}
		return ctrl.Result{RequeueAfter: time.Minute}, err
	}
	if why := stays.DRBDNotServing(); why != "" {
		r.Recorder.Eventf(lv, corev1.EventTypeWarning, EventRebuildWaiting, "Node %s has been away since %s, but the replica on %s cannot be the source of a rebuild: %s",
			absent.Spec.NodeName, since.UTC().Format(time.RFC3339), stays.Spec.NodeName, why)
		return ctrl.Result{RequeueAfter: time.Minute}, nil
	}
	target, miss, err := r.target(ctx, lv, absent.Spec.NodeName)
	if err != nil {
		return ctrl.Result{}, err
	}
	if target == "" {
		r.Recorder.Eventf(lv, corev1.EventTypeWarning, EventRebuildWaiting, "Node %s has been away since %s; no node can take its replica: %s",
			absent.Spec.NodeName, since.UTC().Format(time.RFC3339), miss)
		return ctrl.Result{RequeueAfter: time.Minute}, nil
	}
	return ctrl.Result{}, r.start(ctx, lv, absent, target, since)
}

// awaySince says whether node's agent has stopped (condition
// AgentHeartbeat False) or its Node is gone (NodeRegistered False), and
// since when.
func (r *Reconciler) awaySince(ctx context.Context, name string) (time.Time, bool) {
	lsn := &v1.LocalStorageNode{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, lsn); err != nil || lsn.Status.State == v1.StateReady {
		return time.Time{}, false
	}
	for _, t := range []string{node.ConditionAgentHeartbeat, node.ConditionNodeRegistered} {
		if c := meta.FindStatusCondition(lsn.Status.Conditions, t); c != nil && c.Status == metav1.ConditionFalse {
			return c.LastTransitionTime.Time, true
		}
	}
	return time.Time{}, false
}

// operating names a migration or expansion of lv that has not finished
// ("" when none): a rebuild would change the replicas under it.
func (r *Reconciler) operating(ctx context.Context, lv *v1.LocalVolume) (string, error) {
	migs := &v1.LocalVolumeMigrateList{}
	if err := r.Client.List(ctx, migs); err != nil {
		return "", err
	}
	for _, m := range migs.Items {
		if !m.Status.State.Finished() && m.Spec.VolumeName == lv.Name {
			return "LocalVolumeMigrate " + m.Name, nil
		}
	}
	exps := &v1.LocalVolumeExpandList{}
	if err := r.Client.List(ctx, exps); err != nil {
		return "", err
	}
	for _, x := range exps.Items {
		if !x.Status.State.Finished() && x.Spec.VolumeName == lv.Name {
			return "LocalVolumeExpand " + x.Name, nil
		}
	}
	return "", nil
}

// target picks the node of the new replica with the scheduler's capacity
// view (room in the pool, DRBD there, another zone than the replica that
// stays when there is one), or says why there is none.
func (r *Reconciler) target(ctx context.Context, lv *v1.LocalVolume, absent string) (string, string, error) {
	view, err := volumes.LoadCapacity(ctx, r.Client)
	if err != nil {
		return "", "", err
	}
	schedulable := func(name string) bool {
		n := &corev1.Node{}
		return r.Client.Get(ctx, client.ObjectKey{Name: name}, n) == nil && !n.Spec.Unschedulable
	}
	target, miss := view.MoveTarget(schedulable, absent, lv, []*v1.LocalVolume{lv}, nil)
	if miss != nil {
		return "", miss.String(), nil
	}
	return target, "", nil
}

// start moves the volume's placement from the absent node to target (the
// volume controller then creates the new replica, whose node agent brings
// it into the DRBD resource, and the agent of the replica that stays
// rewrites its peer and adjusts) and deletes the absent replica.
func (r *Reconciler) start(ctx context.Context, lv *v1.LocalVolume, absent *v1.LocalVolumeReplica, target string, since time.Time) error {
	from := absent.Spec.NodeName
	err := volumes.ReplaceNode(ctx, r.Client, lv, from, target, false, func(lv *v1.LocalVolume) {
		if lv.Annotations == nil {
			lv.Annotations = map[string]string{}
		}
		lv.Annotations[RebuildAnnotation] = from + " -> " + target
	})
	if err != nil {
		return err
	}
	// Its finalizer keeps it until its node's agent frees the data.
	if err := r.Client.Delete(ctx, absent); client.IgnoreNotFound(err) != nil {
		return err
	}
	r.Recorder.Eventf(lv, corev1.EventTypeNormal, EventRebuildStarted, "Node %s has been away since %s (more than %s): rebuilding its replica on %s, resynced by DRBD from the replica that stayed",
		from, since.UTC().Format(time.RFC3339), r.after(), target)
	return nil
}

// finish ends a rebuild once the new replica is UpToDate.
func (r *Reconciler) finish(ctx context.Context, lv *v1.LocalVolume, reps []*v1.LocalVolumeReplica) (ctrl.Result, error) {
	for _, rep := range reps {
		if !slices.Contains(lv.ReplicaNodes(), rep.Spec.NodeName) || rep.DRBDNotServing() != "" {
			return ctrl.Result{RequeueAfter: 10 * time.Second}, nil
		}
	}
	if len(reps) != 2 {
		return ctrl.Result{RequeueAfter: 10 * time.Second}, nil
	}
	what := lv.Annotations[RebuildAnnotation]
	if err := volumes.Edit(ctx, r.Client, lv.Name, false, func(lv *v1.LocalVolume) { delete(lv.Annotations, RebuildAnnotation) }); err != nil {
		return ctrl.Result{}, err
	}
	r.Recorder.Eventf(lv, corev1.EventTypeNormal, EventRebuilt, "Replica rebuilt (%s): both replicas UpToDate", what)
	return ctrl.Result{}, nil
}

// replicas lists the volume's live replicas.
func (r *Reconciler) replicas(ctx context.Context, volume string) ([]*v1.LocalVolumeReplica, error) {
	list := &v1.LocalVolumeReplicaList{}
	if err := r.Client.List(ctx, list, client.MatchingFields{replicaVolumeField: volume}); err != nil {
		return nil, err
	}
	var out []*v1.LocalVolumeReplica
	for i := range list.Items {
		if rep := &list.Items[i]; !rep.Spec.Delete && rep.DeletionTimestamp == nil {
			out = append(out, rep)
		}
	}
	return out, nil
}
