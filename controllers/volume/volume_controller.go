// Package volume reconciles LocalVolumes: it keeps one LocalVolumeReplica
// per replica node of spec.config.replicas (the placement the scheduler and
// the CSI driver decided), grows replicas when the volume is expanded, folds
// the replicas' state into the volume's, and on deletion removes the replicas
// before letting the volume go, so their capacity is freed on the nodes.
package volume

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// Finalizer keeps a LocalVolume until its replicas are gone.
const Finalizer = v1.VolumeFinalizer

// ConditionReplicasReady says whether every wanted replica is Ready.
const ConditionReplicasReady = "ReplicasReady"

// resourceIDRetry is how often an HA volume without a DRBD resource id
// (every id taken) looks for a freed one.
const resourceIDRetry = 10 * time.Second

// Reconciler reconciles LocalVolumes.
type Reconciler struct {
	Client   client.Client
	Recorder record.EventRecorder
	// APIReader lists volumes uncached for the resource id allocation;
	// the manager's API reader when nil.
	APIReader client.Reader
	// MaxResourceIDs bounds HA volumes' DRBD resource ids (ports from
	// 43001); v1alpha1.DRBDDefaultMaxResources when zero.
	MaxResourceIDs int

	idMu    sync.Mutex
	usedIDs map[int64]bool // resource ids in use (resourceid.go)
}

var _ reconcile.Reconciler = &Reconciler{}

// replicaVolumeField indexes LocalVolumeReplicas by spec.volumeName.
const replicaVolumeField = "spec.volumeName"

// SetupWithManager registers the controller: LocalVolumes, and the
// LocalVolumeReplicas they own.
func (r *Reconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	err := mgr.GetFieldIndexer().IndexField(ctx, &v1.LocalVolumeReplica{}, replicaVolumeField, func(o client.Object) []string {
		return []string{o.(*v1.LocalVolumeReplica).Spec.VolumeName}
	})
	if err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("localvolume").
		For(&v1.LocalVolume{}).
		Owns(&v1.LocalVolumeReplica{}).
		// Each reconcile waits on API writes; a burst of new volumes
		// (thousands of claims at once) must not queue behind one worker.
		WithOptions(controller.Options{MaxConcurrentReconciles: 8}).
		Complete(r)
}

// ReplicaName names the replica of volume on node (v1alpha1.ReplicaName).
func ReplicaName(volume, node string) string { return v1.ReplicaName(volume, node) }

// Reconcile drives one LocalVolume towards its spec.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	lv := &v1.LocalVolume{}
	if err := r.Client.Get(ctx, req.NamespacedName, lv); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	replicas, err := r.replicasOf(ctx, lv.Name)
	if err != nil {
		return ctrl.Result{}, err
	}
	if lv.DeletionTimestamp != nil || lv.Spec.Delete {
		return r.delete(ctx, lv, replicas)
	}
	if controllerutil.AddFinalizer(lv, Finalizer) {
		if err := r.Client.Update(ctx, lv); err != nil {
			return ctrl.Result{}, err
		}
	}
	if ok, err := r.ensureResourceID(ctx, lv); err != nil || !ok {
		// Without an id the replicas could not replicate: it waits for
		// an HA volume to go and free one.
		return ctrl.Result{RequeueAfter: resourceIDRetry}, err
	}
	if err := r.ensureReplicas(ctx, lv, replicas); err != nil {
		r.Recorder.Eventf(lv, corev1.EventTypeWarning, "ReplicaFailed", "Cannot create or update replicas: %v", err)
		return ctrl.Result{}, err
	}
	replicas, err = r.replicasOf(ctx, lv.Name)
	if err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, r.updateStatus(ctx, lv, replicas)
}

func (r *Reconciler) replicasOf(ctx context.Context, volume string) ([]v1.LocalVolumeReplica, error) {
	list := &v1.LocalVolumeReplicaList{}
	if err := r.Client.List(ctx, list, client.MatchingFields{replicaVolumeField: volume}); err != nil {
		return nil, err
	}
	out := list.Items
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// wantedNodes are the replica nodes of the volume's configuration.
func wantedNodes(lv *v1.LocalVolume) []string {
	if lv.Spec.Config == nil {
		return nil
	}
	nodes := make([]string, 0, len(lv.Spec.Config.Replicas))
	for _, rep := range lv.Spec.Config.Replicas {
		nodes = append(nodes, rep.Hostname)
	}
	return nodes
}

// ensureReplicas creates missing replicas and grows existing ones. Replicas
// on nodes no longer wanted are left alone: removing data is the migration
// controller's decision (it verifies the new copy first).
func (r *Reconciler) ensureReplicas(ctx context.Context, lv *v1.LocalVolume, existing []v1.LocalVolumeReplica) error {
	byNode := map[string]*v1.LocalVolumeReplica{}
	for i := range existing {
		byNode[existing[i].Spec.NodeName] = &existing[i]
	}
	for _, node := range wantedNodes(lv) {
		cur := byNode[node]
		if cur == nil {
			rep := &v1.LocalVolumeReplica{
				ObjectMeta: metav1.ObjectMeta{Name: ReplicaName(lv.Name, node), Finalizers: []string{v1.ReplicaFinalizer}},
				Spec: v1.LocalVolumeReplicaSpec{
					VolumeName: lv.Name, NodeName: node, PoolName: lv.Spec.PoolName,
					RequiredCapacityBytes: lv.Spec.RequiredCapacityBytes, VolumeKind: v1.VolumeKindLVM, Striped: lv.Spec.Striped,
				},
			}
			if err := controllerutil.SetControllerReference(lv, rep, r.Client.Scheme()); err != nil {
				return err
			}
			if err := r.Client.Create(ctx, rep); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("creating replica on %s: %w", node, err)
			}
			// No event: the replica's own Allocated event and the
			// volume's StateReady say it, and every event is an API write.
			continue
		}
		if cur.Spec.RequiredCapacityBytes < lv.Spec.RequiredCapacityBytes {
			cur.Spec.RequiredCapacityBytes = lv.Spec.RequiredCapacityBytes
			if err := r.Client.Update(ctx, cur); err != nil {
				return fmt.Errorf("expanding replica %s: %w", cur.Name, err)
			}
		}
	}
	return nil
}

// updateStatus folds the replicas into the volume's state: Ready when every
// wanted replica is Ready, Creating until then, NotReady when a replica that
// was Ready is not any more.
func (r *Reconciler) updateStatus(ctx context.Context, lv *v1.LocalVolume, replicas []v1.LocalVolumeReplica) error {
	want := wantedNodes(lv)
	ready, names := 0, make([]string, 0, len(replicas))
	var allocated int64 = -1
	notReady, refused := "", false
	for _, rep := range replicas {
		names = append(names, rep.Name)
		if !contains(want, rep.Spec.NodeName) {
			continue
		}
		if rep.Status.State == v1.StateReady {
			ready++
			if usable := rep.UsableBytes(); allocated < 0 || usable < allocated {
				allocated = usable
			}
		} else if notReady == "" {
			notReady = fmt.Sprintf("replica %s on %s is %s", rep.Name, rep.Spec.NodeName, stateOr(rep.Status.State, "pending"))
			if rep.Status.Message != "" {
				notReady += ": " + rep.Status.Message
			}
			refused = rep.Status.CapacityRefusal != nil
		}
	}
	st := lv.Status.DeepCopy()
	st.Replicas = names
	if primary, ok := drbdPrimary(lv, replicas); ok {
		st.PublishedNodeName = primary
	}
	st.ObservedGeneration = lv.Generation
	cond := metav1.Condition{Type: ConditionReplicasReady, ObservedGeneration: lv.Generation}
	switch {
	case len(want) == 0:
		st.State, st.Message = v1.StateCreating, "waiting for the volume's placement (spec.config.replicas)"
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, "NoPlacement", st.Message
	case ready == len(want):
		st.State, st.Message = v1.StateReady, ""
		st.AllocatedCapacityBytes = allocated
		cond.Status, cond.Reason, cond.Message = metav1.ConditionTrue, "AllReplicasReady", fmt.Sprintf("%d/%d replicas ready", ready, len(want))
	default:
		if lv.Status.State == v1.StateReady || lv.Status.State == v1.StateNotReady {
			st.State = v1.StateNotReady
		} else {
			st.State = v1.StateCreating
		}
		st.Message = notReady
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, "ReplicasNotReady", fmt.Sprintf("%d/%d replicas ready: %s", ready, len(want), notReady)
		if refused {
			// Its node refused it for capacity (the replica's
			// status.capacityRefusal): CreateVolume moves the pod.
			cond.Reason = v1.ReasonInsufficientCapacity
		}
	}
	meta.SetStatusCondition(&st.Conditions, cond)
	if equality.Semantic.DeepEqual(&lv.Status, st) {
		return nil
	}
	from := lv.Status.State
	lv.Status = *st
	if err := r.Client.Status().Update(ctx, lv); err != nil {
		return err
	}
	// After the write, so a conflict does not repeat the event; Creating
	// is where every volume starts, so only the news gets one.
	if st.State != from && st.State != v1.StateCreating {
		eventType := corev1.EventTypeNormal
		if st.State == v1.StateNotReady {
			eventType = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(lv, eventType, "State"+string(st.State), "Volume is %s. %s", st.State, st.Message)
	}
	return nil
}

// drbdPrimary is the node whose replica of an HA volume is DRBD Primary
// (where the volume is in use), "" when none is; ok is false when the
// replicas are not replicated by DRBD. A node that stopped still shows its
// last report (Primary): while a failover moves the volume away from it,
// another Primary wins.
func drbdPrimary(lv *v1.LocalVolume, replicas []v1.LocalVolumeReplica) (string, bool) {
	ptrs := make([]*v1.LocalVolumeReplica, len(replicas))
	for i := range replicas {
		ptrs[i] = &replicas[i]
	}
	if !v1.DRBDManaged(ptrs) {
		return "", false
	}
	primary := ""
	for _, rep := range ptrs {
		if d := rep.Status.DRBD; d != nil && d.Role == "Primary" && (primary == "" || primary == lv.Annotations[v1.FailoverFromAnnotation]) {
			primary = rep.Spec.NodeName
		}
	}
	return primary, true
}

// delete removes the replicas (the node agents free their data) and then
// the finalizer.
func (r *Reconciler) delete(ctx context.Context, lv *v1.LocalVolume, replicas []v1.LocalVolumeReplica) (ctrl.Result, error) {
	if lv.Status.State != v1.StateToBeDeleted && len(replicas) > 0 {
		lv.Status.State = v1.StateToBeDeleted
		lv.Status.Message = fmt.Sprintf("deleting %d replica(s)", len(replicas))
		if err := r.Client.Status().Update(ctx, lv); err != nil {
			return ctrl.Result{}, err
		}
	}
	for i := range replicas {
		rep := &replicas[i]
		if rep.DeletionTimestamp == nil {
			if err := r.Client.Delete(ctx, rep); client.IgnoreNotFound(err) != nil {
				return ctrl.Result{}, err
			}
		}
	}
	if len(replicas) > 0 {
		// Requeued by the replicas' deletion events.
		return ctrl.Result{}, nil
	}
	if lv.DeletionTimestamp == nil {
		// spec.delete without a delete call: delete the object itself.
		log.FromContext(ctx).Info("Volume marked spec.delete; deleting it")
		return ctrl.Result{}, client.IgnoreNotFound(r.Client.Delete(ctx, lv))
	}
	if controllerutil.RemoveFinalizer(lv, Finalizer) {
		return ctrl.Result{}, client.IgnoreNotFound(r.Client.Update(ctx, lv))
	}
	return ctrl.Result{}, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func stateOr(s v1.State, def string) string {
	if s == "" {
		return def
	}
	return string(s)
}
