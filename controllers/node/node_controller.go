// Package node keeps LocalStorageNodes in step with their Kubernetes Nodes:
// a LocalStorageNode whose Node was deleted goes Offline (it is never
// deleted: its volumes are still on the node's disks), and its
// spec.topogoly.{zone,region} follow the Node's topology labels. The node
// agent owns everything else in the object (pools, and state Ready when it
// reports).
package node

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// ConditionNodeRegistered says whether the LocalStorageNode's Kubernetes Node
// exists. It is written when the Node goes away and when it comes back;
// a LocalStorageNode whose Node never went away has none.
const ConditionNodeRegistered = "NodeRegistered"

// ConditionAgentHeartbeat says whether the node agent renews the node's
// Lease (v1.AgentLeaseName). Written when the Lease expires and when it is
// renewed again; a node whose agent never stopped has none.
const ConditionAgentHeartbeat = "AgentHeartbeat"

// Condition and event reasons.
const (
	ReasonNodeDeleted    = "NodeDeleted"
	ReasonNodeRegistered = "NodeRegistered"
	EventTopologyChanged = "TopologyChanged"
	ReasonAgentStopped   = "AgentNotReporting"
	ReasonAgentReporting = "AgentReporting"
)

// conflictRetry is how soon a reconcile that lost an optimistic-concurrency
// race (with the node agent's status report) runs again.
const conflictRetry = time.Second

// Reconciler reconciles LocalStorageNodes against their Nodes.
//
// +kubebuilder:rbac:groups=hwameistor.io,resources=localstoragenodes,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=hwameistor.io,resources=localstoragenodes/status,verbs=get;patch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
type Reconciler struct {
	Client client.Client
	// APIReader reads past the cache: a Node missing from the cache is
	// looked up live before its LocalStorageNode is marked Offline, since the
	// cache can lag a Node registered a moment ago. Nil means Client.
	APIReader client.Reader
	Recorder  record.EventRecorder
	// Namespace holds the node agents' Leases; empty leaves heartbeats
	// unchecked. The manager's cache must hold Leases of that namespace.
	Namespace string
	// Now is the clock heartbeats are judged by; time.Now when nil.
	Now func() time.Time
}

var _ reconcile.Reconciler = &Reconciler{}

// SetupWithManager registers the controller: LocalStorageNodes, and the
// Nodes of the same name. Nodes are watched as metadata only (labels are all
// it reads), which keeps node status out of the cache.
func (r *Reconciler) SetupWithManager(_ context.Context, mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		Named("localstoragenode").
		For(&v1.LocalStorageNode{}).
		Watches(&corev1.Node{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: o.GetName()}}}
		}), builder.OnlyMetadata, builder.WithPredicates(topologyChanged))
	if r.Namespace != "" {
		// A renewal after an expiry wakes the node at once; expiries are
		// found by the requeue at each Lease's end.
		b = b.Watches(&coordinationv1.Lease{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			node := o.GetAnnotations()[v1.AgentLeaseNodeAnnotation]
			if o.GetNamespace() != r.Namespace || node == "" {
				return nil
			}
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: node}}}
		}))
	}
	return b.Complete(r)
}

// topologyChanged lets through Node creation, deletion and changes of the
// topology labels.
var topologyChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels()
		return o[corev1.LabelTopologyZone] != n[corev1.LabelTopologyZone] ||
			o[corev1.LabelTopologyRegion] != n[corev1.LabelTopologyRegion]
	},
}

func nodeMeta() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Node"))
	return m
}

func (r *Reconciler) live() client.Reader {
	if r.APIReader != nil {
		return r.APIReader
	}
	return r.Client
}

// Reconcile brings one LocalStorageNode in step with its Node.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	lsn := &v1.LocalStorageNode{}
	if err := r.Client.Get(ctx, req.NamespacedName, lsn); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if lsn.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	node, err := r.node(ctx, lsn.Name)
	if err != nil {
		return ctrl.Result{}, err
	}
	if node == nil {
		return r.offline(ctx, lsn)
	}
	if err := r.syncTopology(ctx, lsn, node); err != nil {
		return r.retry(err)
	}
	if res, err := r.registered(ctx, lsn); err != nil || !res.IsZero() {
		return res, err
	}
	return r.heartbeat(ctx, lsn)
}

// heartbeat marks the LocalStorageNode NotReady when its agent's Lease has
// expired (with a Warning Event, once), records its return, and otherwise
// looks again when the Lease would expire. A node without a Lease (an
// agent that does not renew one) is left alone.
func (r *Reconciler) heartbeat(ctx context.Context, lsn *v1.LocalStorageNode) (ctrl.Result, error) {
	if r.Namespace == "" {
		return ctrl.Result{}, nil
	}
	lease := &coordinationv1.Lease{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: v1.AgentLeaseName(lsn.Name)}, lease)
	if apierrors.IsNotFound(err) || (err == nil && (lease.Spec.RenewTime == nil || lease.Spec.LeaseDurationSeconds == nil)) {
		return ctrl.Result{}, nil
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	now := time.Now()
	if r.Now != nil {
		now = r.Now()
	}
	expires := lease.Spec.RenewTime.Add(time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second)
	prev := meta.FindStatusCondition(lsn.Status.Conditions, ConditionAgentHeartbeat)
	if now.Before(expires) {
		if prev == nil || prev.Status == metav1.ConditionTrue {
			return ctrl.Result{RequeueAfter: expires.Sub(now) + time.Second}, nil
		}
		// Back: the agent's next report sets the state Ready again.
		base := lsn.DeepCopy()
		msg := fmt.Sprintf("the node agent renews its Lease %s/%s again", r.Namespace, lease.Name)
		meta.SetStatusCondition(&lsn.Status.Conditions, metav1.Condition{Type: ConditionAgentHeartbeat, Status: metav1.ConditionTrue,
			Reason: ReasonAgentReporting, Message: msg, ObservedGeneration: lsn.Generation})
		if err := r.patchStatus(ctx, lsn, base); err != nil {
			return r.retry(err)
		}
		r.Recorder.Event(lsn, corev1.EventTypeNormal, ReasonAgentReporting, msg)
		return ctrl.Result{RequeueAfter: expires.Sub(now) + time.Second}, nil
	}
	if prev != nil && prev.Status == metav1.ConditionFalse && lsn.Status.State != v1.StateReady {
		return ctrl.Result{}, nil // marked already; the Lease's next renewal wakes it
	}
	base := lsn.DeepCopy()
	msg := fmt.Sprintf("the node agent has not renewed its Lease %s/%s since %s: the node takes no new volumes and its volumes' pods wait; check the hwameistor-node pod on %s",
		r.Namespace, lease.Name, lease.Spec.RenewTime.UTC().Format(time.RFC3339), lsn.Name)
	lsn.Status.State = v1.StateNotReady
	meta.SetStatusCondition(&lsn.Status.Conditions, metav1.Condition{Type: ConditionAgentHeartbeat, Status: metav1.ConditionFalse,
		Reason: ReasonAgentStopped, Message: msg, ObservedGeneration: lsn.Generation})
	if err := r.patchStatus(ctx, lsn, base); err != nil {
		return r.retry(err)
	}
	if prev == nil || prev.Status != metav1.ConditionFalse {
		r.Recorder.Event(lsn, corev1.EventTypeWarning, ReasonAgentStopped, msg+"; state NotReady")
	}
	return ctrl.Result{}, nil
}

// node returns the Node's metadata, or nil when the Node does not exist.
func (r *Reconciler) node(ctx context.Context, name string) (*metav1.PartialObjectMetadata, error) {
	n := nodeMeta()
	err := r.Client.Get(ctx, client.ObjectKey{Name: name}, n)
	if apierrors.IsNotFound(err) {
		n = nodeMeta()
		err = r.live().Get(ctx, client.ObjectKey{Name: name}, n)
	}
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return n, nil
}

// offline marks the LocalStorageNode of a deleted Node Offline. The Warning
// event goes out once, when the condition turns False.
func (r *Reconciler) offline(ctx context.Context, lsn *v1.LocalStorageNode) (ctrl.Result, error) {
	prev := meta.FindStatusCondition(lsn.Status.Conditions, ConditionNodeRegistered)
	wasRegistered := prev == nil || prev.Status != metav1.ConditionFalse
	if lsn.Status.State == v1.StateOffline && !wasRegistered {
		return ctrl.Result{}, nil
	}
	msg := fmt.Sprintf("Node %s does not exist; its volumes stay on its disks and the node takes no new ones", lsn.Name)
	base := lsn.DeepCopy()
	lsn.Status.State = v1.StateOffline
	meta.SetStatusCondition(&lsn.Status.Conditions, metav1.Condition{
		Type: ConditionNodeRegistered, Status: metav1.ConditionFalse, Reason: ReasonNodeDeleted,
		Message: msg, ObservedGeneration: lsn.Generation,
	})
	if err := r.patchStatus(ctx, lsn, base); err != nil {
		return r.retry(err)
	}
	if wasRegistered {
		r.Recorder.Event(lsn, corev1.EventTypeWarning, ReasonNodeDeleted, msg+"; state Offline")
	} else {
		// The Node is still gone but something (a node agent that kept
		// reporting) set another state meanwhile.
		log.FromContext(ctx).Info("Node still absent; state back to Offline", "node", lsn.Name, "was", base.Status.State)
	}
	return ctrl.Result{}, nil
}

// registered records that a Node that went away is back. The state is left
// alone: the node agent reports Ready when it serves the node again.
func (r *Reconciler) registered(ctx context.Context, lsn *v1.LocalStorageNode) (ctrl.Result, error) {
	prev := meta.FindStatusCondition(lsn.Status.Conditions, ConditionNodeRegistered)
	if prev == nil || prev.Status == metav1.ConditionTrue {
		return ctrl.Result{}, nil
	}
	base := lsn.DeepCopy()
	msg := fmt.Sprintf("Node %s exists again; the node agent reports the state", lsn.Name)
	meta.SetStatusCondition(&lsn.Status.Conditions, metav1.Condition{
		Type: ConditionNodeRegistered, Status: metav1.ConditionTrue, Reason: ReasonNodeRegistered,
		Message: msg, ObservedGeneration: lsn.Generation,
	})
	if err := r.patchStatus(ctx, lsn, base); err != nil {
		return r.retry(err)
	}
	r.Recorder.Event(lsn, corev1.EventTypeNormal, ReasonNodeRegistered, msg)
	return ctrl.Result{}, nil
}

// patchStatus writes lsn's status with a merge patch guarded by the
// resourceVersion it was read at, so a report the node agent wrote meanwhile
// is never overwritten.
func (r *Reconciler) patchStatus(ctx context.Context, lsn, base *v1.LocalStorageNode) error {
	return r.Client.Status().Patch(ctx, lsn, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
}

func (r *Reconciler) retry(err error) (ctrl.Result, error) {
	if apierrors.IsConflict(err) {
		return ctrl.Result{RequeueAfter: conflictRetry}, nil
	}
	return ctrl.Result{}, client.IgnoreNotFound(err)
}

// syncTopology copies the Node's zone and region labels into
// spec.topogoly. A label the Node does not carry leaves the field as it is:
// the node agent may have set it from its own configuration.
func (r *Reconciler) syncTopology(ctx context.Context, lsn *v1.LocalStorageNode, node *metav1.PartialObjectMetadata) error {
	want := lsn.Spec.Topo
	if z, ok := node.Labels[corev1.LabelTopologyZone]; ok {
		want.Zone = z
	}
	if reg, ok := node.Labels[corev1.LabelTopologyRegion]; ok {
		want.Region = reg
	}
	if want == lsn.Spec.Topo {
		return nil
	}
	base := lsn.DeepCopy()
	lsn.Spec.Topo = want
	// Only spec.topogoly is in the patch. It is guarded by the
	// resourceVersion read, so a stale cache cannot repeat a change (and its
	// event) that is already made.
	if err := r.Client.Patch(ctx, lsn, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return err
	}
	r.Recorder.Eventf(lsn, corev1.EventTypeNormal, EventTopologyChanged, "Topology from Node %s: zone %q, region %q (was zone %q, region %q)",
		lsn.Name, want.Zone, want.Region, base.Spec.Topo.Zone, base.Spec.Topo.Region)
	return nil
}
