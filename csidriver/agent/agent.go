// Package agent is the node agent: it makes the LocalVolumeReplicas of its
// node(s) real through a backend (lvm or emulated), reports their state, and
// publishes the nodes' pools in LocalStorageNode status. One agent can serve
// many nodes (the simulator runs one process for every fake node); on a real
// cluster it runs in a DaemonSet and serves its own node.
package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/backend"
	"hwameistor.io/local/csidriver/drbd"
)

// Finalizer keeps a replica until the agent has removed its data.
const Finalizer = v1.ReplicaFinalizer

// VolumeTag marks a backend volume with the LocalVolume it belongs to.
const VolumeTag = "hwameistor.io/volume="

// ConditionAllocated reports whether the replica's storage exists.
const ConditionAllocated = "Allocated"

// RetryAfter is how long a failed replica waits before the next attempt
// (capacity may free up).
const RetryAfter = 30 * time.Second

// Agent reconciles the replicas of the nodes it serves.
type Agent struct {
	Client   client.Client
	Recorder record.EventRecorder
	// Backends maps each served node to its storage.
	Backends map[string]backend.Backend
	// Zones optionally gives each node's zone for its LocalStorageNode
	// (else the Node's topology.kubernetes.io/zone label is used).
	Zones map[string]string

	// Replication copies volumes between agents (migrations); nil leaves
	// migration targets waiting.
	Replication *Replication
	// DRBD replicates HA volumes on the nodes it has a manager for (the
	// lvm backend on a kernel with DRBD, hwameistor-node --drbd); on other
	// nodes an HA volume's replicas are not kept in sync.
	DRBD map[string]*drbd.Manager
	// NoDRBD says, per node, why HA volumes cannot be replicated there
	// (--drbd asked for, the kernel module missing): the node's
	// LocalStorageNode gets condition DRBD False and takes no new HA
	// replica. Nodes in neither map do not replicate and report nothing.
	NoDRBD map[string]string
	// APIReader reads from the API server, not the cache: the
	// compare-and-swap that settles which of two DRBD replicas that lost
	// each other goes on (package fence). The Client when nil.
	APIReader client.Reader
	// DRBDWatchInterval is how often each node's kernel DRBD state is
	// read for changes (watchDRBD); 0 leaves replicas to their periodic
	// passes (the simulator's emulated DRBD).
	DRBDWatchInterval time.Duration
	// drbdMinors maps a minorKey to the name of its replica.
	drbdMinors sync.Map

	// nodeLocks serialise each node's LocalStorageNode writes (one
	// *sync.Mutex per node: one lock for all would make a thousand nodes
	// wait on each other's API round trips).
	nodeLocks sync.Map
	// reports coalesces the pool reports that follow allocations, so a
	// burst of replicas on one node costs one status write; nil (an agent
	// not set up with a manager) reports at once.
	reports workqueue.TypedRateLimitingInterface[string]
}

// reportDelay is how long a pool report waits for more changes on its node.
const reportDelay = 500 * time.Millisecond

// reportWorkers write coalesced pool reports in parallel.
const reportWorkers = 4

// SetupWithManager registers the replica controller for the served nodes.
func (a *Agent) SetupWithManager(mgr ctrl.Manager) error {
	served := predicate.NewPredicateFuncs(func(o client.Object) bool {
		r, ok := o.(*v1.LocalVolumeReplica)
		return ok && a.Backends[r.Spec.NodeName] != nil
	})
	b := ctrl.NewControllerManagedBy(mgr).
		Named("node-agent").
		For(&v1.LocalVolumeReplica{}, builder.WithPredicates(served)).
		// Copies run inside Reconcile: several at once, and allocations
		// are not stuck behind them.
		WithOptions(controller.Options{MaxConcurrentReconciles: 8})
	if len(a.DRBD) > 0 {
		// A volume whose replicas change (a move, a rebuild): the
		// replica that stays adjusts to its new peer at once, not at its
		// next look (it is the only copy meanwhile).
		b = b.Watches(&v1.LocalVolume{}, handler.EnqueueRequestsFromMapFunc(a.drbdReplicasOf), builder.WithPredicates(replicaNodesChanged))
		if a.DRBDWatchInterval > 0 {
			src, err := a.watchDRBD(mgr, a.DRBDWatchInterval)
			if err != nil {
				return err
			}
			b = b.WatchesRawSource(src)
		}
	}
	if err := b.Complete(a); err != nil {
		return err
	}
	a.reports = workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "node-reports"})
	return mgr.Add(manager.RunnableFunc(a.runReports))
}

// drbdReplicasOf maps a volume to its replicas on the nodes this agent
// replicates with DRBD.
func (a *Agent) drbdReplicasOf(_ context.Context, o client.Object) []reconcile.Request {
	lv, ok := o.(*v1.LocalVolume)
	if !ok {
		return nil
	}
	var out []reconcile.Request
	for _, node := range lv.ReplicaNodes() {
		if a.DRBD[node] != nil {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKey{Name: v1.ReplicaName(lv.Name, node)}})
		}
	}
	return out
}

// replicaNodesChanged lets through volume updates that change the nodes of
// its replicas (the DRBD peers).
var replicaNodesChanged = predicate.Funcs{
	CreateFunc: func(event.CreateEvent) bool { return false },
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, ok1 := e.ObjectOld.(*v1.LocalVolume)
		n, ok2 := e.ObjectNew.(*v1.LocalVolume)
		return ok1 && ok2 && !slices.Equal(o.ReplicaNodes(), n.ReplicaNodes())
	},
	DeleteFunc:  func(event.DeleteEvent) bool { return false },
	GenericFunc: func(event.GenericEvent) bool { return false },
}

// reportSoon has the node's pools reported shortly (at once without a
// manager); a report already waiting covers this change too.
func (a *Agent) reportSoon(ctx context.Context, node string) error {
	if a.reports == nil {
		return a.ReportNode(ctx, node)
	}
	a.reports.AddAfter(node, reportDelay)
	return nil
}

// runReports writes the queued pool reports until ctx ends; a failed one
// is retried with backoff.
func (a *Agent) runReports(ctx context.Context) error {
	var wg sync.WaitGroup
	for range reportWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				node, shutdown := a.reports.Get()
				if shutdown {
					return
				}
				if err := a.ReportNode(ctx, node); err != nil {
					log.FromContext(ctx).Error(err, "Cannot report pools", "node", node)
					a.reports.AddRateLimited(node)
				} else {
					a.reports.Forget(node)
				}
				a.reports.Done(node)
			}
		}()
	}
	<-ctx.Done()
	a.reports.ShutDown()
	wg.Wait()
	return nil
}

// Reconcile makes one replica's storage match its spec.
func (a *Agent) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	rep := &v1.LocalVolumeReplica{}
	if err := a.Client.Get(ctx, req.NamespacedName, rep); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	be := a.Backends[rep.Spec.NodeName]
	if be == nil {
		return ctrl.Result{}, nil
	}
	if rep.DeletionTimestamp != nil || rep.Spec.Delete {
		return ctrl.Result{}, a.remove(ctx, be, rep)
	}
	if controllerutil.AddFinalizer(rep, Finalizer) {
		if err := a.Client.Update(ctx, rep); err != nil {
			return ctrl.Result{}, err
		}
	}
	vol, err := a.ensure(ctx, be, rep)
	if err != nil {
		a.Recorder.Eventf(rep, corev1.EventTypeWarning, "AllocationFailed", "Cannot allocate %s in %s on %s: %v", rep.Spec.VolumeName, rep.Spec.PoolName, rep.Spec.NodeName, err)
		refusal := a.capacityRefusal(ctx, rep, err)
		if serr := a.setStatus(ctx, rep, v1.StateNotReady, nil, err.Error(), refusal); serr != nil {
			return ctrl.Result{}, serr
		}
		if refusal != nil {
			// The pool is shorter than the node's report says: report it
			// now, so the scheduler sees what is left.
			if rerr := a.reportSoon(ctx, rep.Spec.NodeName); rerr != nil {
				log.FromContext(ctx).Error(rerr, "Cannot report pools", "node", rep.Spec.NodeName)
			}
		}
		if errors.Is(err, backend.ErrInsufficientCapacity) || errors.Is(err, backend.ErrPoolNotFound) {
			return ctrl.Result{RequeueAfter: RetryAfter}, nil
		}
		return ctrl.Result{}, err
	}
	msg := ""
	if needsSync(rep) {
		msg = rep.Status.Message // the copy's last failure stays visible
	}
	if err := a.setStatus(ctx, rep, v1.StateReady, &vol, msg, nil); err != nil {
		return ctrl.Result{}, err
	}
	if err := a.reportSoon(ctx, rep.Spec.NodeName); err != nil {
		return ctrl.Result{}, err
	}
	if needsSync(rep) {
		after, err := a.sync(ctx, be, rep, vol)
		return ctrl.Result{RequeueAfter: after}, err
	}
	after, err := a.replicate(ctx, rep, vol)
	if err != nil {
		a.Recorder.Eventf(rep, corev1.EventTypeWarning, "ReplicationFailed", "DRBD on %s: %v", rep.Spec.NodeName, err)
	}
	return ctrl.Result{RequeueAfter: after}, err
}

// ensure creates (or grows) the volume and attaches it where the backend
// needs that.
func (a *Agent) ensure(ctx context.Context, be backend.Backend, rep *v1.LocalVolumeReplica) (backend.Volume, error) {
	name := rep.Spec.VolumeName
	vol, err := be.GetVolume(ctx, rep.Spec.PoolName, name)
	switch {
	case errors.Is(err, backend.ErrNotFound):
		vol, err = be.CreateVolume(ctx, rep.Spec.PoolName, name, rep.Spec.RequiredCapacityBytes,
			backend.CreateOptions{Striped: rep.Spec.Striped, Tags: []string{VolumeTag + name}})
		if err != nil {
			return vol, err
		}
		// A log line, not an event: the replica's Allocated condition and
		// the volume's StateReady event say it, and at thousands of
		// replicas the events were a sixth of all API writes.
		log.FromContext(ctx).V(1).Info("Allocated", "volume", name, "pool", rep.Spec.PoolName, "bytes", vol.SizeBytes)
	case err != nil:
		return vol, err
	case vol.SizeBytes < rep.Spec.RequiredCapacityBytes:
		if vol, err = be.ExpandVolume(ctx, rep.Spec.PoolName, name, rep.Spec.RequiredCapacityBytes); err != nil {
			return vol, err
		}
		a.Recorder.Eventf(rep, corev1.EventTypeNormal, "Expanded", "Expanded to %s", v1.FormatBytes(vol.SizeBytes))
	}
	if at, ok := be.(backend.Attacher); ok {
		dev, err := at.Attach(ctx, rep.Spec.PoolName, name)
		switch {
		case errors.Is(err, backend.ErrAttachUnsupported):
			// A capacity-only simulated node: nothing is ever mounted.
		case err != nil:
			return vol, fmt.Errorf("attaching: %w", err)
		default:
			vol.DevicePath = dev
		}
	}
	return vol, nil
}

// remove deletes the replica's data and lets the object go.
func (a *Agent) remove(ctx context.Context, be backend.Backend, rep *v1.LocalVolumeReplica) error {
	if !controllerutil.ContainsFinalizer(rep, Finalizer) {
		return nil
	}
	if err := a.unreplicate(ctx, rep); err != nil {
		return fmt.Errorf("taking down DRBD of %s: %w", rep.Spec.VolumeName, err)
	}
	if at, ok := be.(backend.Attacher); ok {
		if err := at.Detach(ctx, rep.Spec.PoolName, rep.Spec.VolumeName); err != nil && !errors.Is(err, backend.ErrAttachUnsupported) {
			return fmt.Errorf("detaching %s: %w", rep.Spec.VolumeName, err)
		}
	}
	if err := be.DeleteVolume(ctx, rep.Spec.PoolName, rep.Spec.VolumeName); err != nil {
		a.Recorder.Eventf(rep, corev1.EventTypeWarning, "DeleteFailed", "Cannot delete %s: %v", rep.Spec.VolumeName, err)
		return err
	}
	log.FromContext(ctx).Info("Deleted replica data", "volume", rep.Spec.VolumeName, "node", rep.Spec.NodeName)
	controllerutil.RemoveFinalizer(rep, Finalizer)
	if err := a.Client.Update(ctx, rep); client.IgnoreNotFound(err) != nil {
		return err
	}
	return a.reportSoon(ctx, rep.Spec.NodeName)
}

// capacityRefusal is the refusal to record on a replica whose allocation
// failed with err: set when a new replica (nothing allocated yet) did not
// fit in its pool, nil otherwise (a failed expansion is the
// LocalVolumeExpand controller's business). The numbers come from the
// backend's error; the report is the node's LocalStorageNode as it stands,
// so the scheduler knows when a new report ends the refusal.
func (a *Agent) capacityRefusal(ctx context.Context, rep *v1.LocalVolumeReplica, err error) *v1.CapacityRefusal {
	var ce *backend.CapacityError
	if !errors.As(err, &ce) || rep.Status.AllocatedCapacityBytes > 0 {
		return nil
	}
	r := &v1.CapacityRefusal{
		NodeName: rep.Spec.NodeName, PoolName: rep.Spec.PoolName, RequiredCapacityBytes: rep.Spec.RequiredCapacityBytes,
		FreeCapacityBytes: max(ce.FreeBytes, 0), VolumeCountLimit: ce.VolumeCountLimit, By: v1.RefusedByNodeAgent,
	}
	lsn := &v1.LocalStorageNode{}
	if err := a.Client.Get(ctx, client.ObjectKey{Name: rep.Spec.NodeName}, lsn); err == nil {
		r.Report = v1.PoolReportOf(lsn, rep.Spec.PoolName)
	}
	r.Time = metav1.Now()
	if old := rep.Status.CapacityRefusal; old != nil {
		// The same refusal again keeps its time (no status write).
		same := *old
		same.Time = r.Time
		if equality.Semantic.DeepEqual(&same, r) {
			r.Time = old.Time
		}
	}
	return r
}

func (a *Agent) setStatus(ctx context.Context, rep *v1.LocalVolumeReplica, state v1.State, vol *backend.Volume, msg string, refusal *v1.CapacityRefusal) error {
	st := rep.Status.DeepCopy()
	st.State, st.Message = state, msg
	st.CapacityRefusal = refusal
	cond := metav1.Condition{Type: ConditionAllocated, Status: metav1.ConditionFalse, Reason: "AllocationFailed", Message: msg, ObservedGeneration: rep.Generation}
	if refusal != nil {
		cond.Reason = v1.ReasonInsufficientCapacity
	}
	if vol != nil {
		st.AllocatedCapacityBytes = vol.SizeBytes
		st.DevicePath = vol.DevicePath
		st.StoragePath = vol.Pool + "/" + vol.Name
		// A new replica of a new volume holds all of its (empty) data; a
		// copy target is marked sync-pending by the migration controller
		// and synced by sync once its copy is verified.
		if rep.Annotations[v1.SyncPendingAnnotation] == "" {
			st.Synced = true
		}
		cond.Status, cond.Reason, cond.Message = metav1.ConditionTrue, "Allocated", fmt.Sprintf("%s allocated", v1.FormatBytes(vol.SizeBytes))
	}
	meta.SetStatusCondition(&st.Conditions, cond)
	if equality.Semantic.DeepEqual(st, &rep.Status) {
		return nil
	}
	rep.Status = *st
	return a.Client.Status().Update(ctx, rep)
}

// ReportNode writes the node's pools into its LocalStorageNode, creating it
// when missing. Free space and volume lists come from the backend, so they
// count exactly what exists.
func (a *Agent) ReportNode(ctx context.Context, node string) error {
	be := a.Backends[node]
	if be == nil {
		return nil
	}
	mu, _ := a.nodeLocks.LoadOrStore(node, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	pools, err := be.Pools(ctx)
	if err != nil {
		a.warnNode(node, EventPoolReportFailed, "Cannot read the storage pools of node %s; its LocalStorageNode keeps the last report: %v", node, err)
		return fmt.Errorf("reading pools of %s: %w", node, err)
	}
	if len(pools) == 0 {
		a.warnNode(node, EventNoPools, "Node %s has no storage pool, so no volume can be placed on it: create an LVM volume group named %s, %s or %s (docs/install.md)",
			node, v1.PoolNameHDD, v1.PoolNameSSD, v1.PoolNameNVMe)
	}
	recordPools(node, pools)
	lsn := &v1.LocalStorageNode{}
	err = a.Client.Get(ctx, client.ObjectKey{Name: node}, lsn)
	if apierrors.IsNotFound(err) {
		lsn = &v1.LocalStorageNode{
			ObjectMeta: metav1.ObjectMeta{Name: node},
			Spec:       v1.LocalStorageNodeSpec{Hostname: node, Topo: v1.Topology{Zone: a.zone(ctx, node)}},
		}
		if err := a.Client.Create(ctx, lsn); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	} else if err != nil {
		return err
	}
	// Merge patches: the node controller patches the same object, and an
	// update from a lagging cache would conflict.
	if a.Replication != nil && a.Replication.Endpoint != "" && lsn.Spec.StorageIP != a.Replication.Endpoint {
		patch := client.MergeFrom(lsn.DeepCopy())
		lsn.Spec.StorageIP = a.Replication.Endpoint
		if err := a.Client.Patch(ctx, lsn, patch); err != nil {
			return err
		}
	}
	st := lsn.Status.DeepCopy()
	st.State = v1.StateReady
	st.Pools = map[string]v1.LocalPool{}
	var classes []string
	st.TotalCapacityBytes, st.FreeCapacityBytes = 0, 0
	for _, p := range pools {
		lp := p.LocalPool()
		st.Pools[p.Name] = lp
		classes = append(classes, string(p.Class))
		st.TotalCapacityBytes += lp.TotalCapacityBytes
		st.FreeCapacityBytes += lp.FreeCapacityBytes
	}
	sort.Strings(classes)
	st.PoolClasses = strings.Join(classes, ",")
	a.drbdCondition(node, st)
	if equality.Semantic.DeepEqual(st, &lsn.Status) {
		return nil
	}
	patch := client.MergeFrom(lsn.DeepCopy())
	lsn.Status = *st
	return a.Client.Status().Patch(ctx, lsn, patch)
}

// drbdCondition sets the node's DRBD condition: True when the agent
// replicates HA volumes there, False with the reason when it was asked to
// and cannot, none when it does not replicate.
func (a *Agent) drbdCondition(node string, st *v1.LocalStorageNodeStatus) {
	switch m, why := a.DRBD[node], a.NoDRBD[node]; {
	case m != nil:
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1.ConditionDRBD, Status: metav1.ConditionTrue, Reason: v1.ReasonDRBDLoaded,
			Message: fmt.Sprintf("DRBD %s replicates HA volumes", m.Version)})
	case why != "":
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1.ConditionDRBD, Status: metav1.ConditionFalse, Reason: v1.ReasonDRBDMissing, Message: why})
	default:
		meta.RemoveStatusCondition(&st.Conditions, v1.ConditionDRBD)
	}
}

// Warning Events on the Node a report is about, where `kubectl describe
// node` shows them.
const (
	// EventPoolReportFailed: the backend could not read the pools (an lvm
	// command failed).
	EventPoolReportFailed = "PoolReportFailed"
	// EventNoPools: the node has none of the volume groups the driver
	// uses, often a misnamed one.
	EventNoPools = "NoPools"
)

// warnNode records a Warning Event on node. The reference carries the
// node's name as its UID, as kubelet's do, which `kubectl describe node`
// finds; repeats are folded into one Event by the recorder.
func (a *Agent) warnNode(node, reason, format string, args ...any) {
	ref := &corev1.ObjectReference{Kind: "Node", Name: node, UID: types.UID(node)}
	a.Recorder.Eventf(ref, corev1.EventTypeWarning, reason, format, args...)
}

func (a *Agent) zone(ctx context.Context, node string) string {
	if z, ok := a.Zones[node]; ok {
		return z
	}
	n := &corev1.Node{}
	if err := a.Client.Get(ctx, client.ObjectKey{Name: node}, n); err == nil {
		return n.Labels[corev1.LabelTopologyZone]
	}
	return ""
}

// ReportAll reports every served node now and then every interval until ctx
// ends, so pools changed outside the agent (a disk added to a VG) show up. A
// failed report (API not reachable, cache not started yet) is retried after
// a second rather than a whole interval.
func (a *Agent) ReportAll(ctx context.Context, interval time.Duration) {
	logger := log.FromContext(ctx)
	for {
		next := interval
		for node := range a.Backends {
			if err := a.ReportNode(ctx, node); err != nil {
				logger.Error(err, "Cannot report pools", "node", node)
				next = min(interval, time.Second)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(next):
		}
	}
}
