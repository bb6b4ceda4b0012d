package localstorage

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// registerHandlers keeps the capacity view and ledger in step with the
// cluster: LocalStorageNode status is the pools' truth; claims carrying a
// persisted placement and LocalVolumes are reservations until the node's
// status counts them. On start the informers' initial lists replay every
// object, which rebuilds the ledger after a restart.
func (pl *LocalStorage) registerHandlers() {
	_, _ = pl.informers.LocalStorageNodes.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj interface{}) { pl.onNode(obj) },
		UpdateFunc: func(oldObj, obj interface{}) {
			pl.onNode(obj)
			old, ok1 := oldObj.(*v1.LocalStorageNode)
			n, ok2 := obj.(*v1.LocalStorageNode)
			if ok1 && ok2 {
				pl.activateKeptOff(old, n)
			}
		},
		DeleteFunc: func(obj interface{}) {
			if n, ok := unwrap(obj).(*v1.LocalStorageNode); ok {
				pl.cache.DeleteNode(n.Name)
			}
		},
	})
	_, _ = pl.informers.LocalVolumes.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { pl.onVolume(obj) },
		UpdateFunc: func(_, obj interface{}) { pl.onVolume(obj) },
		DeleteFunc: func(obj interface{}) {
			if lv, ok := unwrap(obj).(*v1.LocalVolume); ok {
				pl.cache.Release(lv.Name)
			}
		},
	})
	_, _ = pl.informers.LocalVolumeGroups.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj interface{}) { pl.onGroup(obj) },
		UpdateFunc: func(oldObj, obj interface{}) {
			pl.releaseDroppedEntries(oldObj, obj)
			pl.onGroup(obj)
		},
		// Its claims and volumes are gone (their own events released
		// the reservations): the refusals its entries recorded go too.
		DeleteFunc: func(obj interface{}) {
			if g, ok := unwrap(obj).(*v1.LocalVolumeGroup); ok {
				for _, vi := range g.Spec.Volumes {
					if vi.LocalVolumeName != "" {
						pl.cache.SetRefusals(vi.LocalVolumeName, nil)
					}
				}
			}
		},
	})
	// A deleted claim frees what was reserved for it, placed or bound, and
	// its refusals.
	_, _ = pl.handle.SharedInformerFactory().Core().V1().PersistentVolumeClaims().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: func(obj interface{}) {
			if pvc, ok := unwrap(obj).(*corev1.PersistentVolumeClaim); ok {
				pl.cache.Forget(provisionalKey(pvc))
				if pvc.Spec.VolumeName != "" {
					pl.cache.Forget(pvc.Spec.VolumeName)
				}
			}
		},
	})
}

func unwrap(obj interface{}) interface{} {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return t.Obj
	}
	return obj
}

func (pl *LocalStorage) onNode(obj interface{}) {
	if n, ok := obj.(*v1.LocalStorageNode); ok {
		pl.cache.UpsertNode(n)
	}
}

func (pl *LocalStorage) onVolume(obj interface{}) {
	if lv, ok := obj.(*v1.LocalVolume); ok {
		pl.cache.UpsertVolume(lv)
	}
}

func (pl *LocalStorage) onGroup(obj interface{}) {
	if g, ok := obj.(*v1.LocalVolumeGroup); ok {
		pl.cache.UpsertGroup(g)
	}
}

// releaseDroppedEntries releases the reservations (and refusals) of group
// entries that an update removed or re-keyed (a recreated claim placed
// anew), and the reservations of entries whose placement was withdrawn:
// CreateVolume clears the nodes of a claim a node refused for capacity, and
// the claim is then placed afresh. A LocalVolume that still exists keeps
// its own reservation (its next event sets it again).
func (pl *LocalStorage) releaseDroppedEntries(oldObj, obj interface{}) {
	old, ok1 := oldObj.(*v1.LocalVolumeGroup)
	g, ok2 := obj.(*v1.LocalVolumeGroup)
	if !ok1 || !ok2 {
		return
	}
	placed := make(map[string]bool, len(g.Spec.Volumes))
	for _, vi := range g.Spec.Volumes {
		placed[vi.LocalVolumeName] = len(vi.Nodes) > 0
	}
	for _, vi := range old.Spec.Volumes {
		if vi.LocalVolumeName == "" {
			continue
		}
		nowPlaced, kept := placed[vi.LocalVolumeName]
		switch {
		case !kept:
			pl.cache.Forget(vi.LocalVolumeName)
		case len(vi.Nodes) > 0 && !nowPlaced:
			pl.cache.Release(vi.LocalVolumeName)
			if lv, ok := pl.informers.GetLocalVolume(vi.LocalVolumeName); ok {
				pl.cache.UpsertVolume(lv)
			}
		}
	}
}

// Event resources of the hwameistor.io kinds ("<resource>.<version>.<group>"):
// the scheduler watches them through dynamic informers.
const (
	eventLocalStorageNode   fwk.EventResource = "localstoragenodes.v1alpha1.hwameistor.io"
	eventLocalVolume        fwk.EventResource = "localvolumes.v1alpha1.hwameistor.io"
	eventLocalVolumeReplica fwk.EventResource = "localvolumereplicas.v1alpha1.hwameistor.io"
)

// EventsToRegister requeues a rejected pod only on events that can help it:
// more free space or a node becoming Ready, its own volume or replica
// becoming ready (or its migration ending), its own claims changing, and
// storage classes appearing.
func (pl *LocalStorage) EventsToRegister(context.Context) ([]fwk.ClusterEventWithHint, error) {
	return []fwk.ClusterEventWithHint{
		{Event: fwk.ClusterEvent{Resource: eventLocalStorageNode, ActionType: fwk.Add | fwk.Update}, QueueingHintFn: pl.hintNode},
		{Event: fwk.ClusterEvent{Resource: eventLocalVolume, ActionType: fwk.Add | fwk.Update}, QueueingHintFn: pl.hintVolume},
		{Event: fwk.ClusterEvent{Resource: eventLocalVolumeReplica, ActionType: fwk.Add | fwk.Update}, QueueingHintFn: pl.hintReplica},
		{Event: fwk.ClusterEvent{Resource: fwk.PersistentVolumeClaim, ActionType: fwk.Add | fwk.Update}, QueueingHintFn: pl.hintClaim},
		{Event: fwk.ClusterEvent{Resource: fwk.StorageClass, ActionType: fwk.Add}},
	}, nil
}

// convert turns the scheduler's dynamic-informer object into our type.
func convert[T any](obj interface{}) (*T, bool) {
	if obj == nil {
		return nil, false
	}
	if t, ok := obj.(*T); ok {
		return t, true
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, false
	}
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, out); err != nil {
		return nil, false
	}
	return out, true
}

// hintNode queues when a node appears, becomes Ready, any pool gains free
// bytes or free volume slots, or a node with capacity refusals reports a
// pool differently (which ends them).
func (pl *LocalStorage) hintNode(logger klog.Logger, pod *corev1.Pod, oldObj, newObj interface{}) (fwk.QueueingHint, error) {
	n, ok := convert[v1.LocalStorageNode](newObj)
	if !ok {
		return fwk.Queue, nil
	}
	old, ok := convert[v1.LocalStorageNode](oldObj)
	if !ok {
		return fwk.Queue, nil // added
	}
	if n.Status.State == v1.StateReady && old.Status.State != v1.StateReady {
		return fwk.Queue, nil
	}
	refused := pl.cache.HasRefusals(n.Name)
	for key, p := range n.Status.Pools {
		o, had := old.Status.Pools[key]
		if !had || p.FreeCapacityBytes > o.FreeCapacityBytes || p.FreeVolumeCount > o.FreeVolumeCount {
			return fwk.Queue, nil
		}
		if refused && p.Report() != o.Report() {
			return fwk.Queue, nil
		}
	}
	logger.V(5).Info("LocalStorageNode change frees nothing", "pod", klog.KObj(pod), "node", n.Name)
	return fwk.QueueSkip, nil
}

// hintVolume queues when one of the pod's own volumes changes state,
// replicas, or finishes migrating.
func (pl *LocalStorage) hintVolume(_ klog.Logger, pod *corev1.Pod, oldObj, newObj interface{}) (fwk.QueueingHint, error) {
	lv, ok := convert[v1.LocalVolume](newObj)
	if !ok {
		return fwk.Queue, nil
	}
	if lv.Spec.PersistentVolumeClaimNamespace != pod.Namespace || !usesClaim(pod, lv.Spec.PersistentVolumeClaimName) {
		return fwk.QueueSkip, nil
	}
	return fwk.Queue, nil
}

// hintReplica queues when a replica of one of the pod's volumes becomes Ready.
func (pl *LocalStorage) hintReplica(_ klog.Logger, pod *corev1.Pod, _, newObj interface{}) (fwk.QueueingHint, error) {
	r, ok := convert[v1.LocalVolumeReplica](newObj)
	if !ok {
		return fwk.Queue, nil
	}
	if r.Status.State != v1.StateReady {
		return fwk.QueueSkip, nil
	}
	lv, ok := pl.informers.GetLocalVolume(r.Spec.VolumeName)
	if !ok {
		return fwk.Queue, nil
	}
	if lv.Spec.PersistentVolumeClaimNamespace != pod.Namespace || !usesClaim(pod, lv.Spec.PersistentVolumeClaimName) {
		return fwk.QueueSkip, nil
	}
	return fwk.Queue, nil
}

// hintClaim queues when one of the pod's own claims is added or changes.
func (pl *LocalStorage) hintClaim(_ klog.Logger, pod *corev1.Pod, _, newObj interface{}) (fwk.QueueingHint, error) {
	pvc, ok := newObj.(*corev1.PersistentVolumeClaim)
	if !ok {
		return fwk.Queue, nil
	}
	if pvc.Namespace != pod.Namespace || !usesClaim(pod, pvc.Name) {
		return fwk.QueueSkip, nil
	}
	return fwk.Queue, nil
}

func usesClaim(pod *corev1.Pod, claim string) bool {
	for i := range pod.Spec.Volumes {
		if claimName(pod, &pod.Spec.Volumes[i]) == claim {
			return true
		}
	}
	return false
}
