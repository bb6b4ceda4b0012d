package localstorage

import (
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// keptOff remembers the pods Filter kept off a node because of a capacity
// refusal (placement.Refusal), so that the node's next pool report, once
// the ledger has it, sends them back to the active queue. The scheduler's
// own event for that report (hintNode) comes through another informer and
// may run the pod before the ledger has the report, which would keep it
// off again with nothing left to requeue it.
type keptOff struct {
	mu   sync.Mutex
	pods map[string]map[string]*corev1.Pod // node -> "namespace/name" -> pod
}

// add records that pod was kept off node. It runs on a rejection only.
func (k *keptOff) add(node string, pod *corev1.Pod) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.pods == nil {
		k.pods = map[string]map[string]*corev1.Pod{}
	}
	if k.pods[node] == nil {
		k.pods[node] = map[string]*corev1.Pod{}
	}
	k.pods[node][pod.Namespace+"/"+pod.Name] = pod
}

// take returns and forgets the pods kept off node.
func (k *keptOff) take(node string) map[string]*corev1.Pod {
	k.mu.Lock()
	defer k.mu.Unlock()
	pods := k.pods[node]
	delete(k.pods, node)
	return pods
}

// activateKeptOff sends the pods kept off the node back to the active
// queue when its report of a pool changed (the ledger has it already: this
// runs after UpsertNode). Pods still refused are recorded again by Filter.
func (pl *LocalStorage) activateKeptOff(old, cur *v1.LocalStorageNode) {
	if old != nil && !poolReportsChanged(old, cur) {
		return
	}
	pods := pl.keptOff.take(cur.Name)
	if len(pods) == 0 || pl.handle == nil {
		return
	}
	logger := klog.Background()
	logger.V(2).Info("A node that refused capacity reported its pools again; scheduling the pods it kept off again", "node", cur.Name, "pods", len(pods))
	pl.handle.Activate(logger, pods)
}

// poolReportsChanged reports whether any pool's report figures differ.
func poolReportsChanged(old, cur *v1.LocalStorageNode) bool {
	if len(old.Status.Pools) != len(cur.Status.Pools) {
		return true
	}
	for name, p := range cur.Status.Pools {
		o, ok := old.Status.Pools[name]
		if !ok || o.Report() != p.Report() {
			return true
		}
	}
	return false
}
