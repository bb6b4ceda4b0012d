package operation

import (
	"context"
	"slices"

	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// WakeOnVolumes maps an object that names volumes (a LocalVolume, a
// LocalVolumeReplica, or an operation of any kind) to the unfinished
// operations of this engine's kind on those volumes, listed from the
// cache: the end of another operation, or a change of the volume, wakes
// the operations waiting for it. A target replica (sync-pending) wakes
// the operation that made it.
func (e *Engine) WakeOnVolumes(newList func() client.ObjectList) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		var out []reconcile.Request
		var names []string
		switch o := o.(type) {
		case *v1.LocalVolume:
			names = []string{o.Name}
		case *v1.LocalVolumeReplica:
			names = []string{o.Spec.VolumeName}
			if owner := o.Annotations[v1.SyncPendingAnnotation]; owner != "" {
				out = append(out, reconcile.Request{NamespacedName: client.ObjectKey{Name: owner}})
			}
		case v1.Operation:
			names = o.OperationVolumes()
		}
		list := newList()
		if err := e.Client.List(ctx, list); err != nil {
			return out
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return out
		}
		for _, item := range items {
			op, ok := item.(v1.Operation)
			if !ok || State(op).Finished() || (op.OperationKind() == kindOf(o) && op.GetName() == o.GetName()) {
				continue
			}
			if touches(op, names) && !slices.ContainsFunc(out, func(r reconcile.Request) bool { return r.Name == op.GetName() }) {
				out = append(out, reconcile.Request{NamespacedName: client.ObjectKey{Name: op.GetName()}})
			}
		}
		return out
	})
}

func kindOf(o client.Object) string {
	if op, ok := o.(v1.Operation); ok {
		return op.OperationKind()
	}
	return ""
}
