package localstorage

import (
	"context"
	"fmt"
	"math"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"hwameistor.io/local/internal/placement"
)

// Reasons the plugin gives when a pod cannot be placed; stable prefixes users
// and tests can match.
const (
	ReasonNoPeer          = "no second node can hold the HA replica"
	ReasonReplicaLocality = "node holds no ready replica of the pod's volumes"
	ReasonDisjointNodes   = "the pod's volumes have replicas on disjoint nodes"
	ReasonNotSynced       = "waiting for the hwameistor.io caches to sync (are the CRDs installed?)"
)

// preFilter resolves the pod's claims once: placed volumes fix the allowed
// nodes, new volumes become a capacity demand, and HA volumes get candidate
// peers. Pods without hwameistor claims are skipped. (PreFilter, in
// metrics.go, times it and counts its rejections.)
func (pl *LocalStorage) preFilter(_ context.Context, cs fwk.CycleState, pod *corev1.Pod, _ []fwk.NodeInfo) (*framework.PreFilterResult, *fwk.Status) {
	if !hasClaims(pod) {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	if !pl.synced() {
		// Until the ledger is rebuilt, capacity would look free that is not.
		return nil, fwk.NewStatus(fwk.Unschedulable, ReasonNotSynced)
	}
	claims, err := pl.resolveClaims(pod)
	if err != nil {
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, err.Error())
	}
	if len(claims) == 0 {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	s := &podState{claims: claims}
	var allowed, peerCandidates sets.Set[string]
	for i := range claims {
		c := &claims[i]
		if s.group == "" {
			s.group = c.group
		}
		if !c.provisioned {
			s.vols = append(s.vols, c.volume)
			if c.replicas > 1 {
				s.haVols = append(s.haVols, c.volume)
			}
		}
		if c.nodes == nil {
			continue
		}
		allowed = intersect(allowed, c.nodes)
		if c.replicas > 1 {
			// An HA claim already placed on two nodes keeps its pair: the
			// group's peer is its other node.
			peerCandidates = intersect(peerCandidates, c.nodes)
		}
	}
	if peerCandidates != nil {
		s.peerCandidates = sets.List(peerCandidates)
	}
	if allowed != nil {
		if allowed.Len() == 0 {
			return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ReasonDisjointNodes+": "+describeNodes(claims))
		}
		s.allowed = sets.List(allowed)
	}
	if s.group == "" && len(s.vols) > 0 {
		s.group = "lvg-" + claims[0].uid
	}
	if len(s.haVols) > 0 {
		// A placed group keeps its node set: the peer comes from it.
		s.peers = pl.cache.FittingNodes(nil, s.haVols, s.peerCandidates, "", 2)
		// The pod's node and its peer both need room: one fitting node
		// is as bad as none.
		if len(s.peers) < 2 {
			return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ReasonNoPeer+": "+demand(s.haVols))
		}
	}
	cs.Write(stateKey, s)
	if allowed != nil {
		return &framework.PreFilterResult{NodeNames: allowed}, nil
	}
	if len(s.vols) > 0 {
		// New volumes fit on few nodes when pools fill up or a class is
		// rare: naming them spares every Filter plugin the other nodes
		// (VolumeBinding keeps per-node state for each pod waiting in
		// PreBind, so it saves memory too). When none fits, every node
		// runs Filter, so the pod's message says what each one lacks.
		if fit := pl.cache.FittingNodes(nil, s.vols, nil, "", math.MaxInt); len(fit) > 0 {
			return &framework.PreFilterResult{NodeNames: sets.New(fit...)}, nil
		}
	}
	return nil, nil
}

// intersect returns set ∩ nodes, or the set of nodes when set is nil.
func intersect(set sets.Set[string], nodes []string) sets.Set[string] {
	if set == nil {
		return sets.New(nodes...)
	}
	return set.Intersection(sets.New(nodes...))
}

// hasClaims is the cheap test that lets pods without volumes cost nothing.
func hasClaims(pod *corev1.Pod) bool {
	for i := range pod.Spec.Volumes {
		if pod.Spec.Volumes[i].PersistentVolumeClaim != nil || pod.Spec.Volumes[i].Ephemeral != nil {
			return true
		}
	}
	return false
}

// PreFilterExtensions is nil: other pods do not change local capacity.
func (pl *LocalStorage) PreFilterExtensions() framework.PreFilterExtensions { return nil }

// filter admits a node when it is allowed (replica locality), the pod's new
// volumes fit in its pools net of reservations, and HA volumes have a peer.
// (Filter, in metrics.go, counts its rejections.)
func (pl *LocalStorage) filter(_ context.Context, cs fwk.CycleState, pod *corev1.Pod, ni fwk.NodeInfo) *fwk.Status {
	s, err := getState(cs)
	if err != nil {
		return fwk.AsStatus(err)
	}
	node := ni.Node().Name
	if s.allowed != nil && !containsString(s.allowed, node) {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ReasonReplicaLocality)
	}
	if len(s.vols) > 0 {
		if reason := pl.cache.Check(node, s.vols); reason != "" {
			if strings.HasPrefix(reason, placement.RefusedPrefix) {
				// Its next report must requeue the pod (keptoff.go).
				pl.keptOff.add(node, pod)
			}
			return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, reason)
		}
	}
	if len(s.haVols) > 0 && !hasOtherThan(s.peers, node) {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ReasonNoPeer+": "+demand(s.haVols))
	}
	return nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func hasOtherThan(list []string, s string) bool {
	for _, x := range list {
		if x != s {
			return true
		}
	}
	return false
}

// demand describes volumes for a reason string: "need 6Gi in LocalStorage_PoolHDD".
func demand(vols []placement.Volume) string { return "need " + placement.Demand(vols) }

func describeNodes(claims []claimInfo) string {
	var parts []string
	for _, c := range claims {
		if c.nodes != nil {
			parts = append(parts, fmt.Sprintf("%s on %s", c.name, strings.Join(c.nodes, ",")))
		}
	}
	return strings.Join(parts, "; ")
}
