// Package failover moves the pods of HA volumes off a node that stopped,
// or that an operator names, to the node of a replica that holds every
// acknowledged write. Kubernetes never does this by itself for a pod whose
// node is gone (a StatefulSet pod stays Terminating on a dead node for
// ever, and the replacement of any pod waits for its volume); this
// controller deletes the pod (forcibly when its node is down), marks its
// volumes so the scheduler keeps them off that node, and the pod's
// controller recreates it: the scheduler places it only on a node whose
// DRBD replica is UpToDate, where the CSI node service promotes it.
package failover

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/internal/volumes"
	"hwameistor.io/local/controllers/node"
)

// Events, on the pod, the Node (labelled) and the LocalVolume.
const (
	// EventFailingOver (Normal): the pod is deleted so it restarts on its
	// volumes' standby replicas.
	EventFailingOver = "FailingOver"
	// EventFailedOver (Normal, on the LocalVolume): a pod of the volume
	// runs on another node; how long it took.
	EventFailedOver = "FailedOver"
	// EventFailoverBlocked (Warning): the pod cannot be failed over (a
	// volume without a replica that may serve, a volume with one replica,
	// a pod nothing would recreate); it is left where it is.
	EventFailoverBlocked = "FailoverBlocked"
	// EventFailoverCancelled (Normal, on the LocalVolume): the node came
	// back before a pod ran elsewhere; it may take the pod again.
	EventFailoverCancelled = "FailoverCancelled"
	// EventNodeAlive (Normal, on the Node): the node agent stopped but the
	// kubelet still renews its Lease, so the pods still run: no failover.
	EventNodeAlive = "AgentDownNodeAlive"
	// EventFailoverCompleted (Normal, on a labelled Node).
	EventFailoverCompleted = "FailoverCompleted"
)

// Field indexes registered by SetupWithManager (prefixed: the cache is
// shared with other controllers).
const (
	podNodeField       = "failover.spec.nodeName"
	replicaVolumeField = "failover.spec.volumeName"
	failoverFromField  = "failover.metadata.annotations.failover-from"
	// podClaimField indexes Pods by the claims they use, "namespace/claim"
	// (a generic ephemeral volume's claim is "<pod>-<volume>").
	podClaimField = "failover.spec.volumes.claims"
)

// NodeLeaseNamespace holds the kubelets' heartbeat Leases.
const NodeLeaseNamespace = corev1.NamespaceNodeLease

// pendingRecheck is how often a node with failovers in flight is looked at
// again (besides the pod and volume watches), and blockedRecheck how often
// a blocked one is retried.
const (
	pendingRecheck = 5 * time.Second
	blockedRecheck = 30 * time.Second
)

// Reconciler fails HA volumes over. A request without a namespace is a
// Node (stopped, or labelled hwameistor.io/failover=start); one with a
// namespace is a labelled Pod.
//
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;delete;patch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims;persistentvolumes,verbs=get;list;watch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get
// +kubebuilder:rbac:groups=hwameistor.io,resources=localvolumes,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=hwameistor.io,resources=localvolumereplicas;localstoragenodes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
type Reconciler struct {
	Client client.Client
	// APIReader reads the kubelets' Leases past the cache: thousands of
	// them are renewed every ten seconds, and only a node whose agent
	// stopped needs its kubelet's looked at. Nil means Client.
	APIReader client.Reader
	Recorder  record.EventRecorder
	// Now is the clock Leases are judged by; time.Now when nil.
	Now func() time.Time

	// aliveSaid remembers, per node, the agent stop (its heartbeat
	// condition's transition) already reported as AgentDownNodeAlive:
	// once per stop, not once per reconcile.
	aliveSaid sync.Map
}

var _ reconcile.Reconciler = &Reconciler{}

func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Reconciler) reader() client.Reader {
	if r.APIReader != nil {
		return r.APIReader
	}
	return r.Client
}

// Reconcile handles one Node or one labelled Pod.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var res ctrl.Result
	var err error
	if req.Namespace == "" {
		res, err = r.reconcileNode(ctx, req.Name)
	} else {
		res, err = r.reconcilePod(ctx, req.NamespacedName)
	}
	if apierrors.IsConflict(err) {
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	return res, err
}

// reconcileNode fails over the HA pods of a node that is down or labelled,
// finishes the failovers away from it whose pods run elsewhere, and cancels
// those whose node is back.
func (r *Reconciler) reconcileNode(ctx context.Context, name string) (ctrl.Result, error) {
	n := &corev1.Node{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, n); err != nil {
		// A deleted Node: its pods are removed by the pod garbage
		// collector and recreated; the scheduler never places them there.
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	labelled := n.Labels[v1.FailoverLabel] == v1.FailoverStart
	down, alive, recheck, err := r.nodeDown(ctx, name)
	if err != nil {
		return ctrl.Result{}, err
	}
	if alive != nil && !labelled {
		if said, ok := r.aliveSaid.Load(name); !ok || !said.(time.Time).Equal(alive.since) {
			r.Recorder.Event(n, corev1.EventTypeNormal, EventNodeAlive, alive.message)
			r.aliveSaid.Store(name, alive.since)
		}
	}
	pending, err := r.settle(ctx, name, down, labelled)
	if err != nil {
		return ctrl.Result{}, err
	}
	if !down && !labelled {
		return requeue(recheck, pending), nil
	}
	pods := &corev1.PodList{}
	if err := r.Client.List(ctx, pods, client.MatchingFields{podNodeField: name}); err != nil {
		return ctrl.Result{}, err
	}
	moving, blocked := 0, 0
	for i := range pods.Items {
		pod := &pods.Items[i]
		if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			continue
		}
		if pod.DeletionTimestamp != nil && !down {
			continue // already going; its kubelet unstages the volume
		}
		trigger := v1.FailoverNodeLabel
		if down {
			trigger = v1.FailoverNodeDown
		}
		outcome, err := r.failOver(ctx, pod, name, down, trigger)
		if err != nil {
			return ctrl.Result{}, err
		}
		switch outcome {
		case movedPod:
			moving++
		case blockedPod:
			blocked++
		}
	}
	if labelled && moving == 0 && blocked == 0 && pending == 0 {
		patch := client.MergeFrom(n.DeepCopy())
		n.Labels[v1.FailoverLabel] = v1.FailoverCompleted
		if err := r.Client.Patch(ctx, n, patch); err != nil {
			return ctrl.Result{}, err
		}
		r.Recorder.Event(n, corev1.EventTypeNormal, EventFailoverCompleted, "Every pod of an HA volume on this node runs elsewhere")
		return ctrl.Result{}, nil
	}
	if blocked > 0 {
		return ctrl.Result{RequeueAfter: blockedRecheck}, nil
	}
	return requeue(recheck, pending+moving), nil
}

func requeue(recheck time.Duration, pending int) ctrl.Result {
	if pending > 0 && (recheck == 0 || recheck > pendingRecheck) {
		recheck = pendingRecheck
	}
	return ctrl.Result{RequeueAfter: recheck}
}

// reconcilePod fails over a pod labelled hwameistor.io/failover=start.
func (r *Reconciler) reconcilePod(ctx context.Context, key types.NamespacedName) (ctrl.Result, error) {
	pod := &corev1.Pod{}
	if err := r.Client.Get(ctx, key, pod); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if pod.Labels[v1.FailoverLabel] != v1.FailoverStart || pod.Spec.NodeName == "" || pod.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	down, _, _, err := r.nodeDown(ctx, pod.Spec.NodeName)
	if err != nil {
		return ctrl.Result{}, err
	}
	outcome, err := r.failOver(ctx, pod, pod.Spec.NodeName, down, v1.FailoverPodLabel)
	if err != nil || outcome != blockedPod {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: blockedRecheck}, nil
}

// nodeDown says whether node is down: its node agent's heartbeat expired
// (the node controller set condition AgentHeartbeat False) and its kubelet
// no longer renews the node's Lease. A node whose agent alone stopped is
// alive (its pods still run and DRBD still replicates in the kernel):
// alive says so, and recheck is when its kubelet's Lease would expire.
func (r *Reconciler) nodeDown(ctx context.Context, name string) (down bool, alive *agentDown, recheck time.Duration, err error) {
	lsn := &v1.LocalStorageNode{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, lsn); err != nil {
		return false, nil, 0, client.IgnoreNotFound(err)
	}
	hb := meta.FindStatusCondition(lsn.Status.Conditions, node.ConditionAgentHeartbeat)
	if hb == nil || hb.Status != metav1.ConditionFalse {
		return false, nil, 0, nil
	}
	aliveBecause := func(why string) *agentDown {
		return &agentDown{since: hb.LastTransitionTime.Time,
			message: fmt.Sprintf("The node agent on %s stopped but %s: its pods keep running and their HA volumes stay where they are", name, why)}
	}
	lease := &coordinationv1.Lease{}
	err = r.reader().Get(ctx, client.ObjectKey{Namespace: NodeLeaseNamespace, Name: name}, lease)
	switch {
	case apierrors.IsNotFound(err):
		// No kubelet Lease: judge by the Node's Ready condition.
		n := &corev1.Node{}
		if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, n); err != nil {
			return false, nil, 0, client.IgnoreNotFound(err)
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return false, aliveBecause("the Node is Ready"), 0, nil
			}
		}
		return true, nil, 0, nil
	case err != nil:
		return false, nil, 0, err
	}
	if lease.Spec.RenewTime != nil && lease.Spec.LeaseDurationSeconds != nil {
		expires := lease.Spec.RenewTime.Add(time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second)
		if left := expires.Sub(r.now()); left > 0 {
			return false, aliveBecause("the kubelet renews the node's Lease"), left, nil
		}
	}
	return true, nil, 0, nil
}

// agentDown is a node whose agent stopped while the node lives on.
type agentDown struct {
	message string
	since   time.Time // the heartbeat condition's transition
}

type outcome int

const (
	notOurs outcome = iota
	movedPod
	blockedPod
)

// failOver deletes pod, which runs on from, once every HA volume it uses
// has a replica elsewhere that may serve, after marking those volumes so
// the scheduler keeps them off from. A pod with no HA volume is not ours;
// one that cannot move is left running, with a Warning Event saying why.
func (r *Reconciler) failOver(ctx context.Context, pod *corev1.Pod, from string, down bool, trigger string) (outcome, error) {
	names, err := volumes.PodVolumes(ctx, r.Client, pod)
	if err != nil || len(names) == 0 {
		return notOurs, err
	}
	var ha []*v1.LocalVolume
	var why []string
	managed := 0
	for _, name := range names {
		lv := &v1.LocalVolume{}
		if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, lv); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return notOurs, err
		}
		reps, err := r.replicas(ctx, lv.Name)
		if err != nil {
			return notOurs, err
		}
		if !lv.Replicated() || !v1.DRBDManaged(reps) {
			why = append(why, fmt.Sprintf("volume %s is not replicated with DRBD: its data is on one node only", lv.Name))
			continue
		}
		managed++
		if standby, refused := r.standby(ctx, reps, from); standby == "" {
			why = append(why, fmt.Sprintf("volume %s has no other replica that may serve (%s)", lv.Name, strings.Join(refused, "; ")))
			continue
		}
		ha = append(ha, lv)
	}
	if managed == 0 {
		return notOurs, nil
	}
	if metav1.GetControllerOf(pod) == nil {
		why = append(why, "nothing would recreate the pod (it has no controller)")
	}
	if len(why) > 0 {
		r.Recorder.Eventf(pod, corev1.EventTypeWarning, EventFailoverBlocked, "Pod %s/%s stays on node %s: %s", pod.Namespace, pod.Name, from, strings.Join(why, "; "))
		return blockedPod, nil
	}
	at := r.now().UTC().Format(time.RFC3339Nano)
	for _, lv := range ha {
		err := volumes.Edit(ctx, r.Client, lv.Name, false, func(lv *v1.LocalVolume) {
			if lv.Annotations[v1.FailoverFromAnnotation] == from {
				return
			}
			if lv.Annotations == nil {
				lv.Annotations = map[string]string{}
			}
			lv.Annotations[v1.FailoverFromAnnotation] = from
			lv.Annotations[v1.FailoverAtAnnotation] = at
			lv.Annotations[v1.FailoverTriggerAnnotation] = trigger
		})
		if err != nil {
			return notOurs, err
		}
	}
	if pod.Labels[v1.FailoverLabel] == v1.FailoverStart {
		// The label is the operator's request; its replacement is a new
		// pod, so this is the last place it can say completed.
		patch := client.MergeFrom(pod.DeepCopy())
		pod.Labels[v1.FailoverLabel] = v1.FailoverCompleted
		if err := r.Client.Patch(ctx, pod, patch); err != nil {
			return notOurs, client.IgnoreNotFound(err)
		}
	}
	opts := []client.DeleteOption{client.Preconditions{UID: &pod.UID}}
	how := "deleted"
	if down {
		// The kubelet is gone and will never confirm: remove the pod now,
		// as `kubectl delete --force --grace-period=0` does.
		opts = append(opts, client.GracePeriodSeconds(0))
		how = "force-deleted (its node is down)"
	}
	if err := r.Client.Delete(ctx, pod, opts...); err != nil {
		return notOurs, client.IgnoreNotFound(err)
	}
	names = names[:0]
	for _, lv := range ha {
		names = append(names, lv.Name)
	}
	msg := fmt.Sprintf("Pod %s/%s %s to fail over HA volume(s) %s from node %s to their standby replicas", pod.Namespace, pod.Name, how, strings.Join(names, ", "), from)
	r.Recorder.Event(pod, corev1.EventTypeNormal, EventFailingOver, msg)
	for _, lv := range ha {
		r.Recorder.Event(lv, corev1.EventTypeNormal, EventFailingOver, msg)
	}
	log.FromContext(ctx).Info("Failing over", "pod", pod.Namespace+"/"+pod.Name, "from", from, "volumes", names, "forced", down)
	return movedPod, nil
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

// standby is a node other than from whose replica may serve (UpToDate) and
// whose node agent is alive, or "" with why none is.
func (r *Reconciler) standby(ctx context.Context, reps []*v1.LocalVolumeReplica, from string) (string, []string) {
	var refused []string
	for _, rep := range reps {
		if rep.Spec.NodeName == from {
			continue
		}
		if why := rep.DRBDNotServing(); why != "" {
			refused = append(refused, fmt.Sprintf("on node %s %s", rep.Spec.NodeName, why))
			continue
		}
		lsn := &v1.LocalStorageNode{}
		if err := r.Client.Get(ctx, client.ObjectKey{Name: rep.Spec.NodeName}, lsn); err != nil || lsn.Status.State != v1.StateReady {
			refused = append(refused, fmt.Sprintf("node %s is not Ready", rep.Spec.NodeName))
			continue
		}
		return rep.Spec.NodeName, nil
	}
	if len(refused) == 0 {
		refused = append(refused, "no replica on another node")
	}
	return "", refused
}

// settle finishes the failovers away from node: a volume one of whose pods
// runs on another node has failed over (its mark goes, with an Event
// saying how long it took); a volume no pod runs with yet is released back
// to the node when what triggered its failover is gone (the node is up
// again, or its label was removed). It returns how many are still in
// flight.
func (r *Reconciler) settle(ctx context.Context, node string, down, labelled bool) (int, error) {
	list := &v1.LocalVolumeList{}
	if err := r.Client.List(ctx, list, client.MatchingFields{failoverFromField: node}); err != nil {
		return 0, err
	}
	pending := 0
	for i := range list.Items {
		lv := &list.Items[i]
		runs, err := r.runningElsewhere(ctx, lv, node)
		if err != nil {
			return 0, err
		}
		switch {
		case runs != "":
			took := ""
			if at, err := time.Parse(time.RFC3339Nano, lv.Annotations[v1.FailoverAtAnnotation]); err == nil {
				took = fmt.Sprintf(", %s after the failover began", r.now().Sub(at).Round(100*time.Millisecond))
			}
			r.Recorder.Eventf(lv, corev1.EventTypeNormal, EventFailedOver, "Failed over from node %s: %s%s", node, runs, took)
		case lv.Annotations[v1.FailoverTriggerAnnotation] == v1.FailoverNodeDown && !down:
			r.Recorder.Eventf(lv, corev1.EventTypeNormal, EventFailoverCancelled, "Node %s is back before a pod of the volume ran elsewhere: the pod may run there again", node)
		case lv.Annotations[v1.FailoverTriggerAnnotation] == v1.FailoverNodeLabel && !labelled && !down:
			r.Recorder.Eventf(lv, corev1.EventTypeNormal, EventFailoverCancelled, "Node %s's %s label was removed before a pod of the volume ran elsewhere: the pod may run there again", node, v1.FailoverLabel)
		default:
			pending++
			continue
		}
		if err := volumes.Edit(ctx, r.Client, lv.Name, false, func(lv *v1.LocalVolume) {
			if lv.Annotations[v1.FailoverFromAnnotation] == node {
				delete(lv.Annotations, v1.FailoverFromAnnotation)
				delete(lv.Annotations, v1.FailoverAtAnnotation)
				delete(lv.Annotations, v1.FailoverTriggerAnnotation)
			}
		}); err != nil {
			return 0, err
		}
	}
	return pending, nil
}

// podClaims are the index keys of a pod's claims (podClaimField).
func podClaims(o client.Object) []string {
	p := o.(*corev1.Pod)
	var out []string
	for _, v := range p.Spec.Volumes {
		switch {
		case v.PersistentVolumeClaim != nil:
			out = append(out, p.Namespace+"/"+v.PersistentVolumeClaim.ClaimName)
		case v.Ephemeral != nil:
			out = append(out, p.Namespace+"/"+p.Name+"-"+v.Name)
		}
	}
	return out
}

// runningElsewhere names a Running pod using lv's claim on a node other
// than node ("pod ns/name runs on node x"), or "".
func (r *Reconciler) runningElsewhere(ctx context.Context, lv *v1.LocalVolume, node string) (string, error) {
	ns, claim := lv.Spec.PersistentVolumeClaimNamespace, lv.Spec.PersistentVolumeClaimName
	if claim == "" {
		return "", nil
	}
	pods := &corev1.PodList{}
	if err := r.Client.List(ctx, pods, client.MatchingFields{podClaimField: ns + "/" + claim}); err != nil {
		return "", err
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Spec.NodeName == "" || p.Spec.NodeName == node || p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
			continue
		}
		return fmt.Sprintf("pod %s/%s runs on node %s", p.Namespace, p.Name, p.Spec.NodeName), nil
	}
	return "", nil
}
