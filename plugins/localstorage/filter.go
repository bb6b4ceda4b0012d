package localstorage

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"hwameistor.io/local/internal/placement"
	"hwameistor.io/local/plugins/localstorage/metrics"
)

// Reasons the plugin gives when a pod cannot be placed; stable prefixes users
// and tests can match.
const (
	ReasonNoPeer          = "no second node can hold the HA replica"
	ReasonReplicaLocality = "node holds no ready replica of the pod's volumes"
	ReasonDisjointNodes   = "the pod's volumes have replicas on disjoint nodes"
	ReasonNotSynced       = "waiting for the hwameistor.io caches to sync (are the CRDs installed?)"
)

// PreFilter is preFilter, timed, with its rejections counted by the
// reason preFilter gives with them.
func (pl *LocalStorage) PreFilter(ctx context.Context, cs fwk.CycleState, pod *corev1.Pod, nodes []fwk.NodeInfo) (*framework.PreFilterResult, *fwk.Status) {
	start := time.Now()
	res, st, reason := pl.preFilter(ctx, cs, pod, nodes)
	metrics.PreFilterDuration.WithLabelValues(resultOf(st)).Observe(time.Since(start).Seconds())
	countRejection(metrics.PreFilter, st, reason)
	return res, st
}

// preFilter resolves the pod's claims once: placed volumes fix the allowed
// nodes, new volumes become a capacity demand, and HA volumes get candidate
// peers. Pods without hwameistor claims are skipped. A rejection comes
// with its reason (the metric label); other statuses with none.
func (pl *LocalStorage) preFilter(_ context.Context, cs fwk.CycleState, pod *corev1.Pod, _ []fwk.NodeInfo) (*framework.PreFilterResult, *fwk.Status, metrics.Reason) {
	if !hasClaims(pod) {
		return nil, fwk.NewStatus(fwk.Skip), noRejection
	}
	if !pl.synced() {
		// Until the ledger is rebuilt, capacity would look free that is not.
		return nil, fwk.NewStatus(fwk.Unschedulable, ReasonNotSynced), metrics.NotSynced
	}
	claims, err := pl.resolveClaims(pod)
	if err != nil {
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, err.Error()), reasonOf(err)
	}
	if len(claims) == 0 {
		return nil, fwk.NewStatus(fwk.Skip), noRejection
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
			return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ReasonDisjointNodes+": "+describeNodes(claims)), metrics.DisjointNodes
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
			return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ReasonNoPeer+": "+demand(s.haVols)), metrics.HANoPeer
		}
	}
	cs.Write(stateKey, s)
	if allowed != nil {
		return &framework.PreFilterResult{NodeNames: allowed}, nil, noRejection
	}
	if len(s.vols) > 0 {
		// New volumes fit on few nodes when pools fill up or a class is
		// rare: naming them spares every Filter plugin the other nodes
		// (VolumeBinding keeps per-node state for each pod waiting in
		// PreBind, so it saves memory too). When none fits, every node
		// runs Filter, so the pod's message says what each one lacks.
		if fit := pl.cache.FittingNodes(nil, s.vols, nil, "", math.MaxInt); len(fit) > 0 {
			return &framework.PreFilterResult{NodeNames: sets.New(fit...)}, nil, noRejection
		}
	}
	return nil, nil, noRejection
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

// filterTimedOneIn: in a sampled cycle, one Filter call in this many is
// timed.
const filterTimedOneIn = 8

// Filter is filter with its rejections counted by the reason filter gives
// with them. It runs per node in ~60ns, and two clock reads and an
// observation cost about twice that, so it is timed only in the cycles the
// framework samples for its own plugin metrics
// (CycleState.ShouldRecordPluginMetrics, 10%), and there for one call in
// filterTimedOneIn (a per-thread random number, no shared counter): about
// one call in 80 overall.
func (pl *LocalStorage) Filter(ctx context.Context, cs fwk.CycleState, pod *corev1.Pod, ni fwk.NodeInfo) *fwk.Status {
	timed := cs.ShouldRecordPluginMetrics() && rand.Uint32()%filterTimedOneIn == 0
	var start time.Time
	if timed {
		start = time.Now()
	}
	st, reason := pl.filter(ctx, cs, pod, ni)
	if timed {
		metrics.FilterDuration.Observe(time.Since(start).Seconds())
	}
	if st != nil {
		countRejection(metrics.Filter, st, reason)
	}
	return st
}

// filter admits a node when it is allowed (replica locality), the pod's new
// volumes fit in its pools net of reservations, and HA volumes have a peer.
// A rejection comes with its reason (the metric label): the ledger's
// verdict (placement.Reason) gives both its message and its label.
func (pl *LocalStorage) filter(_ context.Context, cs fwk.CycleState, pod *corev1.Pod, ni fwk.NodeInfo) (*fwk.Status, metrics.Reason) {
	s, err := getState(cs)
	if err != nil {
		return fwk.AsStatus(err), noRejection
	}
	node := ni.Node().Name
	if s.allowed != nil && !containsString(s.allowed, node) {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ReasonReplicaLocality), metrics.VolumePinned
	}
	if len(s.vols) > 0 {
		if verdict := pl.cache.Check(node, s.vols); !verdict.Fits() {
			if verdict.Code == placement.CapacityRefused {
				// Its next report must requeue the pod (keptoff.go).
				pl.keptOff.add(node, pod)
			}
			return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, verdict.String()), metrics.ReasonOf(verdict.Code)
		}
	}
	if len(s.haVols) > 0 && !hasOtherThan(s.peers, node) {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ReasonNoPeer+": "+demand(s.haVols)), metrics.HANoPeer
	}
	return nil, noRejection
}

// noRejection goes with a status that is not a rejection (success, skip,
// error): countRejection ignores it.
const noRejection = metrics.Other

// countRejection counts an Unschedulable status with its reason; other
// statuses are not rejections.
func countRejection(p metrics.Point, st *fwk.Status, r metrics.Reason) {
	if code := st.Code(); code == fwk.Unschedulable || code == fwk.UnschedulableAndUnresolvable {
		metrics.CountRejection(p, r)
	}
}

// resultOf is the result label of PreFilter's latency.
func resultOf(st *fwk.Status) string {
	switch st.Code() {
	case fwk.Success:
		return metrics.ResultSuccess
	case fwk.Skip:
		return metrics.ResultSkip
	case fwk.Unschedulable, fwk.UnschedulableAndUnresolvable:
		return metrics.ResultUnschedulable
	}
	return metrics.ResultError
}

// reasonOf is the reason of resolveClaims' error: its claimError's, else
// Other (a lister error).
func reasonOf(err error) metrics.Reason {
	var ce *claimError
	if errors.As(err, &ce) {
		return ce.reason
	}
	return metrics.Other
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
