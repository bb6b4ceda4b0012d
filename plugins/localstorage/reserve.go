package localstorage

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/internal/placement"
	"hwameistor.io/local/plugins/localstorage/metrics"
)

// Reserve is reserve with its rejections counted by the reason reserve
// gives with them.
func (pl *LocalStorage) Reserve(ctx context.Context, cs fwk.CycleState, pod *corev1.Pod, node string) *fwk.Status {
	st, reason := pl.reserve(ctx, cs, pod, node)
	if st != nil {
		countRejection(metrics.Reserve, st, reason)
	}
	return st
}

// reserve holds the pod's new volumes on node and, for HA volumes, on a peer
// it picks now (another zone first, then the most free space). It fails,
// holding nothing, if capacity went away since Filter; a rejection comes
// with its reason (the metric label).
func (pl *LocalStorage) reserve(ctx context.Context, cs fwk.CycleState, pod *corev1.Pod, node string) (*fwk.Status, metrics.Reason) {
	s, err := optionalState(cs)
	if err != nil {
		return fwk.AsStatus(err), noRejection
	}
	if s == nil || len(s.vols) == 0 {
		return nil, noRejection
	}
	added, err := pl.cache.Reserve(node, s.vols)
	if err != nil {
		return ledgerRejection(err)
	}
	if s.node != node {
		s.addedOnNode = nil
	}
	// A repeated Reserve adds nothing new but must not forget what the
	// first one added.
	s.node, s.addedOnNode = node, append(s.addedOnNode, added...)
	if len(s.haVols) == 0 {
		return nil, noRejection
	}
	peer, ok := pl.cache.PickPeer(node, s.haVols, s.peerCandidates)
	if !ok {
		pl.Unreserve(ctx, cs, pod, node)
		return fwk.NewStatus(fwk.Unschedulable, ReasonNoPeer+": "+demand(s.haVols)), metrics.HANoPeer
	}
	addedOnPeer, err := pl.cache.Reserve(peer, s.haVols)
	if err != nil {
		pl.Unreserve(ctx, cs, pod, node)
		return ledgerRejection(err)
	}
	if s.peer != peer {
		s.addedOnPeer = nil
	}
	s.peer, s.addedOnPeer = peer, append(s.addedOnPeer, addedOnPeer...)
	klog.FromContext(ctx).V(4).Info("Reserved local volumes", "pod", klog.KObj(pod), "node", node, "peer", peer, "volumes", len(s.vols))
	return nil, noRejection
}

// ledgerRejection is Reserve's status when the ledger no longer fits the
// volumes: the message is the ledger's error ("node a: pool …"), the
// reason its verdict's (*placement.NodeError).
func ledgerRejection(err error) (*fwk.Status, metrics.Reason) {
	reason := metrics.Other
	var ne *placement.NodeError
	if errors.As(err, &ne) {
		reason = metrics.ReasonOf(ne.Code)
	}
	return fwk.NewStatus(fwk.Unschedulable, err.Error()), reason
}

// Unreserve releases what this pod's Reserve added, and nothing else: a
// claim another pod holds, or a placement PreBind already recorded in the
// LocalVolumeGroup, keeps its reservation (the ledger follows the group).
func (pl *LocalStorage) Unreserve(ctx context.Context, cs fwk.CycleState, pod *corev1.Pod, node string) {
	s, err := optionalState(cs)
	if err != nil || s == nil || s.node == "" {
		return
	}
	pl.cache.Unreserve(s.node, s.addedOnNode)
	if s.peer != "" {
		pl.cache.Unreserve(s.peer, s.addedOnPeer)
	}
	klog.FromContext(ctx).V(4).Info("Unreserved local volumes", "pod", klog.KObj(pod), "node", s.node, "peer", s.peer)
	s.node, s.peer, s.addedOnNode, s.addedOnPeer = "", "", nil, nil
}

// PreBindPreFlight tells the framework whether PreBind has work: only pods
// with new volumes do.
func (pl *LocalStorage) PreBindPreFlight(_ context.Context, cs fwk.CycleState, _ *corev1.Pod, _ string) *fwk.Status {
	s, err := optionalState(cs)
	if err != nil {
		return fwk.AsStatus(err)
	}
	if s == nil || len(s.vols) == 0 {
		return fwk.NewStatus(fwk.Skip)
	}
	return nil
}

// PreBind persists the decision before the in-tree VolumeBinding sets the
// selected node (which starts provisioning): the pod's LocalVolumeGroup gets,
// for each new claim, its replica nodes, pool and size. CreateVolume reads it
// there, and a restarted scheduler rebuilds its ledger from it. It is not
// written on the claims: VolumeBinding updates them from its assume cache
// and would fail on the conflict. The profile must run this PreBind before
// VolumeBinding's.
func (pl *LocalStorage) PreBind(ctx context.Context, cs fwk.CycleState, pod *corev1.Pod, node string) *fwk.Status {
	s, err := optionalState(cs)
	if err != nil {
		return fwk.AsStatus(err)
	}
	if s == nil || len(s.vols) == 0 {
		return nil
	}
	if err := pl.ensureGroup(ctx, pod, s); err != nil {
		return fwk.AsStatus(fmt.Errorf("persisting placement in LocalVolumeGroup %s: %w", s.group, err))
	}
	for i := range s.claims {
		if c := &s.claims[i]; !c.provisioned {
			// Persisted: the reservation no longer expires.
			pl.cache.SetPlacement(c.volume, s.replicaNodes(c))
		}
	}
	return nil
}

// replicaNodes are the nodes of a claim's replicas after Reserve.
func (s *podState) replicaNodes(c *claimInfo) []string {
	if c.replicas > 1 && s.peer != "" {
		return []string{s.node, s.peer}
	}
	return []string{s.node}
}

// ensureGroup creates the pod's LocalVolumeGroup, or records the pod and its
// claims' placement in an existing one. A group the informer does not know
// (the common case: a new pod with new claims) costs one create call; a
// known one that already says everything costs none; otherwise it is read
// and updated.
func (pl *LocalStorage) ensureGroup(ctx context.Context, pod *corev1.Pod, s *podState) error {
	if cached, ok := pl.informers.GetLocalVolumeGroup(s.group); ok {
		if !mergeGroup(cached.DeepCopy(), pod, s) {
			return nil
		}
	} else {
		g := &v1.LocalVolumeGroup{
			TypeMeta:   metav1.TypeMeta{APIVersion: v1.GroupVersion.String(), Kind: "LocalVolumeGroup"},
			ObjectMeta: metav1.ObjectMeta{Name: s.group},
			Spec:       v1.LocalVolumeGroupSpec{Namespace: pod.Namespace},
		}
		mergeGroup(g, pod, s)
		err := pl.rest.Post().Resource("localvolumegroups").Body(g).Do(ctx).Error()
		if !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur := &v1.LocalVolumeGroup{}
		if err := pl.rest.Get().Resource("localvolumegroups").Name(s.group).Do(ctx).Into(cur); err != nil {
			return err
		}
		if !mergeGroup(cur, pod, s) {
			return nil
		}
		return pl.rest.Put().Resource("localvolumegroups").Name(s.group).Body(cur).Do(ctx).Error()
	})
}

// mergeGroup records the pod, its claims and their placement in g; it
// reports whether g changed.
func mergeGroup(g *v1.LocalVolumeGroup, pod *corev1.Pod, s *podState) bool {
	changed := false
	for i := range s.claims {
		c := &s.claims[i]
		want := v1.VolumeInfo{PersistentVolumeClaimName: c.name, LocalVolumeName: c.volume.Key}
		if !c.provisioned {
			want.Nodes = s.replicaNodes(c)
			want.PoolName = c.volume.Pool.Name()
			want.RequiredCapacityBytes = c.volume.Bytes
		}
		idx := -1
		for j := range g.Spec.Volumes {
			if g.Spec.Volumes[j].PersistentVolumeClaimName == c.name {
				idx = j
			}
		}
		if idx >= 0 && g.Spec.Volumes[idx].LocalVolumeName == want.LocalVolumeName {
			// The nodes that refused this volume stay on record: the
			// ledger keeps it off them while their report is unchanged.
			want.Refusals = g.Spec.Volumes[idx].Refusals
		}
		switch {
		case idx < 0:
			g.Spec.Volumes = append(g.Spec.Volumes, want)
			changed = true
		case !c.provisioned && !equality.Semantic.DeepEqual(g.Spec.Volumes[idx], want):
			g.Spec.Volumes[idx] = want
			changed = true
		}
	}
	if !containsString(g.Spec.Pods, pod.Name) {
		g.Spec.Pods = append(g.Spec.Pods, pod.Name)
		changed = true
	}
	nodes := []string{s.node}
	if s.peer != "" {
		nodes = append(nodes, s.peer)
	}
	if !equality.Semantic.DeepEqual(g.Spec.Accessibility.Nodes, nodes) {
		g.Spec.Accessibility.Nodes = nodes
		changed = true
	}
	return changed
}
