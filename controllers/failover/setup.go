package failover

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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

// SetupWithManager registers the field indexes and the controller. It
// watches Nodes (their failover label), LocalStorageNodes (an agent's
// heartbeat going or coming back), labelled Pods, and Pods that start
// running (a failover that has reached its end).
func (r *Reconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	indexes := []struct {
		obj   client.Object
		field string
		key   func(client.Object) string
	}{
		{&corev1.Pod{}, podNodeField, func(o client.Object) string { return o.(*corev1.Pod).Spec.NodeName }},
		{&v1.LocalVolumeReplica{}, replicaVolumeField, func(o client.Object) string { return o.(*v1.LocalVolumeReplica).Spec.VolumeName }},
		{&v1.LocalVolume{}, failoverFromField, func(o client.Object) string { return o.GetAnnotations()[v1.FailoverFromAnnotation] }},
	}
	for _, ix := range indexes {
		key := ix.key
		if err := idx.IndexField(ctx, ix.obj, ix.field, func(o client.Object) []string {
			if k := key(o); k != "" {
				return []string{k}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("indexing %T by %s: %w", ix.obj, ix.field, err)
		}
	}
	if err := idx.IndexField(ctx, &corev1.Pod{}, podClaimField, podClaims); err != nil {
		return fmt.Errorf("indexing pods by claim: %w", err)
	}
	labelled, err := predicate.LabelSelectorPredicate(metav1.LabelSelector{MatchLabels: map[string]string{v1.FailoverLabel: v1.FailoverStart}})
	if err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("failover").
		For(&corev1.Node{}, builder.WithPredicates(failoverLabelChanged)).
		Watches(&v1.LocalStorageNode{}, handler.EnqueueRequestsFromMapFunc(sameName), builder.WithPredicates(heartbeatChanged)).
		Watches(&corev1.Pod{}, &handler.EnqueueRequestForObject{}, builder.WithPredicates(labelled)).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(r.failoverSources), builder.WithPredicates(startedRunning)).
		Complete(r)
}

// sameName maps a LocalStorageNode to its Node.
func sameName(_ context.Context, o client.Object) []reconcile.Request {
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: o.GetName()}}}
}

// failoverLabelChanged lets through Nodes that appear or whose failover
// label changes; not the kubelet's heartbeats.
var failoverLabelChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		return e.ObjectOld.GetLabels()[v1.FailoverLabel] != e.ObjectNew.GetLabels()[v1.FailoverLabel]
	},
	DeleteFunc: func(event.DeleteEvent) bool { return false },
}

// heartbeatChanged lets through LocalStorageNodes whose agent heartbeat
// condition or state changes.
var heartbeatChanged = predicate.Funcs{
	CreateFunc: func(event.CreateEvent) bool { return false },
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, ok1 := e.ObjectOld.(*v1.LocalStorageNode)
		n, ok2 := e.ObjectNew.(*v1.LocalStorageNode)
		if !ok1 || !ok2 {
			return true
		}
		return o.Status.State != n.Status.State || !equality.Semantic.DeepEqual(
			meta.FindStatusCondition(o.Status.Conditions, node.ConditionAgentHeartbeat),
			meta.FindStatusCondition(n.Status.Conditions, node.ConditionAgentHeartbeat))
	},
	DeleteFunc: func(event.DeleteEvent) bool { return false },
}

// startedRunning lets through pods that turn Running.
var startedRunning = predicate.Funcs{
	CreateFunc: func(e event.CreateEvent) bool { return e.Object.(*corev1.Pod).Status.Phase == corev1.PodRunning },
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, ok1 := e.ObjectOld.(*corev1.Pod)
		n, ok2 := e.ObjectNew.(*corev1.Pod)
		return ok1 && ok2 && o.Status.Phase != corev1.PodRunning && n.Status.Phase == corev1.PodRunning
	},
	DeleteFunc: func(event.DeleteEvent) bool { return false },
}

// failoverSources maps a pod that started running to the nodes its volumes
// are being failed over from.
func (r *Reconciler) failoverSources(ctx context.Context, o client.Object) []reconcile.Request {
	pod, ok := o.(*corev1.Pod)
	if !ok {
		return nil
	}
	names, err := volumes.PodVolumes(ctx, r.Client, pod)
	if err != nil {
		return nil
	}
	var out []reconcile.Request
	for _, name := range names {
		lv := &v1.LocalVolume{}
		if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, lv); err != nil {
			continue
		}
		if from := lv.Annotations[v1.FailoverFromAnnotation]; from != "" && from != pod.Spec.NodeName {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: from}})
		}
	}
	return out
}
