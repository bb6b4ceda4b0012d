// Package migrate reconciles LocalVolumeMigrates: it moves a volume (or its
// whole volume group) from a source node to a target node without losing
// data. Submitted → AddReplica → SyncReplica → PruneReplica → Completed, or
// Failed / Aborted with a rollback. Every step is idempotent and reads its
// progress back from the cluster, so a restart anywhere resumes; the source
// replica is deleted only after every target replica holds a verified copy.
package migrate

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/internal/volumes"
	"hwameistor.io/local/internal/placement"
)

// Reconciler reconciles LocalVolumeMigrates.
type Reconciler struct {
	Client   client.Client
	Recorder record.EventRecorder
	// MaxPerNode and MaxTotal bound the migrations copying at once from one
	// source node and in the whole cluster; more wait in Submitted.
	MaxPerNode, MaxTotal int
	// Deadline is how long a migration may take before it is rolled back
	// and reported Failed.
	Deadline time.Duration
	// Now is the clock (tests).
	Now func() time.Time

	// mu serialises the admission of Submitted migrations (the slot count
	// and the target choice), which run concurrently otherwise; admitted
	// holds the migrations this process let start, until the cache shows
	// them started: a migration admitted a moment ago still reads
	// Submitted there, and would not hold its slot.
	mu       sync.Mutex
	admitted map[string]bool

	// ended holds the migrations this process moved to a terminal state,
	// until the cache shows that state: a reconcile reading the older
	// copy would redo a step the rollback has just undone (recreate the
	// target replica, re-add it to the volume).
	endedMu sync.Mutex
	ended   map[types.UID]bool
}

var _ reconcile.Reconciler = &Reconciler{}

// SetupWithManager registers the controller. Target replicas are mapped
// back to their migration through the sync-pending annotation.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.MaxPerNode == 0 {
		r.MaxPerNode = v1.MigrateDefaultMaxPerNode
	}
	if r.MaxTotal == 0 {
		r.MaxTotal = v1.MigrateDefaultMaxTotal
	}
	if r.Deadline == 0 {
		r.Deadline = v1.MigrateDefaultDeadline
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	// A target replica names its migration; any other replica (a source
	// being pruned) wakes the unfinished migrations of its volume.
	toMigration := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		if m := o.GetAnnotations()[v1.SyncPendingAnnotation]; m != "" {
			return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: m}}}
		}
		rep, ok := o.(*v1.LocalVolumeReplica)
		if !ok {
			return nil
		}
		all := &v1.LocalVolumeMigrateList{}
		if err := mgr.GetClient().List(ctx, all); err != nil {
			return nil
		}
		var out []reconcile.Request
		for i := range all.Items {
			if m := &all.Items[i]; !m.Status.State.Finished() && slices.Contains(m.Status.Volumes, rep.Spec.VolumeName) {
				out = append(out, reconcile.Request{NamespacedName: client.ObjectKey{Name: m.Name}})
			}
		}
		return out
	})
	// A migration that leaves a copy slot wakes the queued ones at once.
	queued := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		m, ok := o.(*v1.LocalVolumeMigrate)
		if !ok || m.Status.State.HoldsCopySlot() {
			return nil
		}
		all := &v1.LocalVolumeMigrateList{}
		if err := mgr.GetClient().List(ctx, all); err != nil {
			return nil
		}
		var out []reconcile.Request
		for i := range all.Items {
			if st := all.Items[i].Status.State; all.Items[i].Name != m.Name && (st == "" || st == v1.OperationStateSubmitted) {
				out = append(out, reconcile.Request{NamespacedName: client.ObjectKey{Name: all.Items[i].Name}})
			}
		}
		return out
	})
	stateGauge.use(mgr.GetCache(), mgr.Elected())
	return ctrl.NewControllerManagedBy(mgr).
		Named("localvolumemigrate").
		For(&v1.LocalVolumeMigrate{}).
		Watches(&v1.LocalVolumeMigrate{}, queued).
		Watches(&v1.LocalVolumeReplica{}, toMigration).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).
		Complete(r)
}

// poll is how often waiting states look again when no event wakes them.
const poll = 5 * time.Second

// Reconcile moves one migration forward by at most one state.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	m := &v1.LocalVolumeMigrate{}
	if err := r.Client.Get(ctx, req.NamespacedName, m); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if m.DeletionTimestamp != nil {
		return r.deleted(ctx, m)
	}
	if r.lagsEnd(m) {
		// The update event of the terminal state wakes it again.
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	state := m.Status.State
	if state == "" {
		state = v1.OperationStateSubmitted
	}
	if hold := !state.Finished(); hold != controllerutil.ContainsFinalizer(m, v1.MigrationFinalizer) {
		// Held exactly while the migration runs: a deletion then rolls it
		// back first, and a finished one goes at once.
		if err := r.patchFinalizer(ctx, m, hold); err != nil {
			return ctrl.Result{}, err
		}
	}
	switch state {
	case v1.OperationStateCompleted, v1.OperationStateFailed, v1.OperationStateAborted:
		if m.Spec.Abort && state == v1.OperationStateCompleted && !strings.HasPrefix(m.Status.Message, "abort ignored") {
			return ctrl.Result{}, r.setStatus(ctx, m, func(st *v1.LocalVolumeMigrateStatus) {
				st.Message = "abort ignored: the migration already completed"
			})
		}
		return ctrl.Result{}, nil
	}
	if state == v1.OperationStatePruneReplica && m.Spec.Abort && !strings.HasPrefix(m.Status.Message, "abort ignored") {
		return ctrl.Result{Requeue: true}, r.setStatus(ctx, m, func(st *v1.LocalVolumeMigrateStatus) {
			st.Message = fmt.Sprintf("abort ignored: the copy is verified and the volume already switched to %s; the migration completes", m.Status.TargetNode)
		})
	}
	if state != v1.OperationStatePruneReplica {
		if m.Spec.Abort || state == v1.OperationStateAborting {
			return r.rollback(ctx, m, v1.OperationStateAborted, "aborted by spec.abort; the volume stays on "+m.Spec.SourceNode)
		}
		if m.Status.StartTime != nil && r.Now().Sub(m.Status.StartTime.Time) > r.Deadline {
			return r.rollback(ctx, m, v1.OperationStateFailed, fmt.Sprintf("deadline %s exceeded in state %s; rolled back, the volume stays on %s", r.Deadline, state, m.Spec.SourceNode))
		}
	}
	switch state {
	case v1.OperationStateSubmitted:
		return r.submitted(ctx, m)
	case v1.OperationStateAddReplica:
		return r.addReplica(ctx, m)
	case v1.OperationStateSyncReplica:
		return r.syncReplica(ctx, m)
	case v1.OperationStatePruneReplica:
		return r.pruneReplica(ctx, m)
	}
	return ctrl.Result{}, nil
}

// deleted handles a migration being deleted: one that has not ended is
// rolled back first, as spec.abort would (or finished, once its copy is
// verified and the volume switched: PruneReplica), so that no sync-pending
// replica or migrating volume is left behind; then the finalizer goes.
func (r *Reconciler) deleted(ctx context.Context, m *v1.LocalVolumeMigrate) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(m, v1.MigrationFinalizer) {
		return ctrl.Result{}, nil
	}
	switch state := m.Status.State; {
	case state == v1.OperationStatePruneReplica:
		return r.pruneReplica(ctx, m)
	case !state.Finished():
		if res, err := r.rollback(ctx, m, v1.OperationStateAborted, "deleted before it ended: rolled back, the volume stays on "+m.Spec.SourceNode); err != nil || !m.Status.State.Finished() {
			return res, err
		}
	}
	return ctrl.Result{}, r.patchFinalizer(ctx, m, false)
}

// patchFinalizer adds or removes the MigrationFinalizer.
func (r *Reconciler) patchFinalizer(ctx context.Context, m *v1.LocalVolumeMigrate, add bool) error {
	patch := client.MergeFromWithOptions(m.DeepCopy(), client.MergeFromWithOptimisticLock{})
	if add {
		controllerutil.AddFinalizer(m, v1.MigrationFinalizer)
	} else {
		controllerutil.RemoveFinalizer(m, v1.MigrationFinalizer)
	}
	return r.Client.Patch(ctx, m, patch)
}

// fail ends the migration with a message, changing nothing else.
func (r *Reconciler) fail(ctx context.Context, m *v1.LocalVolumeMigrate, format string, args ...any) (ctrl.Result, error) {
	msg := fmt.Sprintf(format, args...)
	r.Recorder.Event(m, corev1.EventTypeWarning, "MigrationFailed", msg)
	return ctrl.Result{}, r.setStatus(ctx, m, func(st *v1.LocalVolumeMigrateStatus) {
		st.State, st.Message = v1.OperationStateFailed, msg
		st.CompletionTime = ptrNow(r.Now())
	})
}

// submitted validates the request, waits for a slot and picks the target.
func (r *Reconciler) submitted(ctx context.Context, m *v1.LocalVolumeMigrate) (ctrl.Result, error) {
	lv := &v1.LocalVolume{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: m.Spec.VolumeName}, lv); err != nil {
		if apierrors.IsNotFound(err) {
			return r.fail(ctx, m, "volume %s not found", m.Spec.VolumeName)
		}
		return ctrl.Result{}, err
	}
	if !slices.Contains(lv.ReplicaNodes(), m.Spec.SourceNode) {
		return r.fail(ctx, m, "node %s holds no replica of volume %s (replicas on %s)", m.Spec.SourceNode, lv.Name, strings.Join(lv.ReplicaNodes(), ", "))
	}
	vols, err := r.groupVolumes(ctx, lv)
	if err != nil {
		return ctrl.Result{}, err
	}
	if len(vols) > 1 && !m.Spec.MigrateAllVols {
		return r.fail(ctx, m, "volume %s is in volume group %s with %d volumes, which live on one node: set spec.migrateAllVols to move them together", lv.Name, lv.Spec.VolumeGroup, len(vols))
	}
	for _, v := range vols {
		if !slices.Contains(v.ReplicaNodes(), m.Spec.SourceNode) {
			return r.fail(ctx, m, "volume %s of the group has no replica on %s", v.Name, m.Spec.SourceNode)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	all := &v1.LocalVolumeMigrateList{}
	if err := r.Client.List(ctx, all); err != nil {
		return ctrl.Result{}, err
	}
	names := volumeNames(vols)
	running, fromNode := 0, 0
	for i := range all.Items {
		o := &all.Items[i]
		if o.Name == m.Name || o.Status.State.Finished() {
			continue
		}
		// The other one goes first when it is older, or already started
		// (admitted by this process, or seen active): two moves of one
		// volume at once could pick the same target.
		if o.Moves(names...) && (v1.OperationBefore(o, "", m, "") || o.Status.State.HoldsCopySlot() || r.admitted[o.Name]) {
			if o.Spec.SourceNode == m.Spec.SourceNode && v1.OperationBefore(o, "", m, "") {
				return r.fail(ctx, m, "volume %s is already being migrated by %s", strings.Join(names, ", "), o.Name)
			}
			// Another replica of the volume (HA) is moving off another
			// node: one move at a time, so both do not pick one target.
			return ctrl.Result{RequeueAfter: poll}, r.setStatus(ctx, m, func(st *v1.LocalVolumeMigrateStatus) {
				st.State = v1.OperationStateSubmitted
				st.Message = fmt.Sprintf("waiting for %s, which moves the volume's replica on %s", o.Name, o.Spec.SourceNode)
			})
		}
		if o.Status.State.HoldsCopySlot() || r.admitted[o.Name] {
			running++
			if o.Spec.SourceNode == m.Spec.SourceNode {
				fromNode++
			}
		}
	}
	for name := range r.admitted {
		if o := findMigration(all, name); o == nil || (o.Status.State != "" && o.Status.State != v1.OperationStateSubmitted) {
			delete(r.admitted, name) // the cache shows it started (or gone)
		}
	}
	if running >= r.MaxTotal || fromNode >= r.MaxPerNode {
		return ctrl.Result{RequeueAfter: poll}, r.setStatus(ctx, m, func(st *v1.LocalVolumeMigrateStatus) {
			st.State = v1.OperationStateSubmitted
			st.Message = fmt.Sprintf("queued: %d migrations running (limit %d), %d from %s (limit %d)", running, r.MaxTotal, fromNode, m.Spec.SourceNode, r.MaxPerNode)
		})
	}
	target, why, err := r.pickTarget(ctx, m, lv, vols)
	if err != nil {
		return ctrl.Result{}, err
	}
	if target == "" {
		if len(m.Spec.TargetNodesSuggested) > 0 {
			return r.fail(ctx, m, "none of the suggested nodes %s can take the volumes: %s", strings.Join(m.Spec.TargetNodesSuggested, ", "), why)
		}
		return ctrl.Result{RequeueAfter: poll}, r.setStatus(ctx, m, func(st *v1.LocalVolumeMigrateStatus) {
			st.State = v1.OperationStateSubmitted
			st.Message = "waiting for a target: " + why
			if st.StartTime == nil {
				st.StartTime = ptrNow(r.Now())
			}
		})
	}
	var total int64
	for _, v := range vols {
		total += v.Spec.RequiredCapacityBytes
	}
	if err := r.setStatus(ctx, m, func(st *v1.LocalVolumeMigrateStatus) {
		st.State, st.TargetNode, st.Volumes = v1.OperationStateAddReplica, target, names
		st.ReplicaNumber, st.TotalBytes, st.BytesCopied, st.Progress = lv.Spec.ReplicaNumber, total, 0, "0%"
		st.Message = fmt.Sprintf("adding replicas on %s", target)
		if st.StartTime == nil {
			st.StartTime = ptrNow(r.Now())
		}
	}); err != nil {
		return ctrl.Result{}, err
	}
	if r.admitted == nil {
		r.admitted = map[string]bool{}
	}
	r.admitted[m.Name] = true
	r.Recorder.Eventf(m, corev1.EventTypeNormal, "TargetChosen", "Moving %s from %s to %s", strings.Join(names, ", "), m.Spec.SourceNode, target)
	return ctrl.Result{}, nil
}

func findMigration(list *v1.LocalVolumeMigrateList, name string) *v1.LocalVolumeMigrate {
	for i := range list.Items {
		if list.Items[i].Name == name {
			return &list.Items[i]
		}
	}
	return nil
}

// pickTarget chooses the target node (Target) from the cluster as it is.
func (r *Reconciler) pickTarget(ctx context.Context, m *v1.LocalVolumeMigrate, lv *v1.LocalVolume, vols []*v1.LocalVolume) (string, string, error) {
	view, err := volumes.LoadCapacity(ctx, r.Client)
	if err != nil {
		return "", "", err
	}
	nodes := &corev1.NodeList{}
	if err := r.Client.List(ctx, nodes); err != nil {
		return "", "", err
	}
	schedulable := map[string]bool{}
	for _, n := range nodes.Items {
		schedulable[n.Name] = !n.Spec.Unschedulable
	}
	target, why := placement.MigrationTarget(view.Cache, view.Nodes, func(n string) bool { return schedulable[n] }, m.Spec.SourceNode, lv, vols, m.Spec.TargetNodesSuggested)
	return target, why, nil
}

// addReplica creates the target replicas (marked sync-pending, so the
// target's agent copies the data in), adds the target to each volume's
// placement, and waits for the target replicas to be allocated.
func (r *Reconciler) addReplica(ctx context.Context, m *v1.LocalVolumeMigrate) (ctrl.Result, error) {
	target := m.Status.TargetNode
	allocated := 0
	for _, name := range m.Status.Volumes {
		lv := &v1.LocalVolume{}
		if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, lv); err != nil {
			if apierrors.IsNotFound(err) {
				return r.rollback(ctx, m, v1.OperationStateFailed, fmt.Sprintf("volume %s was deleted during the migration", name))
			}
			return ctrl.Result{}, err
		}
		rep, err := r.ensureTargetReplica(ctx, m, lv)
		if err != nil {
			return ctrl.Result{}, err
		}
		if err := volumes.Edit(ctx, r.Client, lv.Name, false, func(lv *v1.LocalVolume) {
			lv.AddReplicaNode(target)
			if lv.Spec.ReplicaNumber < 2 {
				// The pod waits for the copy (an HA volume's pod runs on its
				// other replica meanwhile).
				setAnnotation(lv, v1.VolumeMigrateStateAnnotation, v1.VolumeMigrateStarted)
				setAnnotation(lv, v1.MigrationProgressAnnotation, fmt.Sprintf("%s → %s, 0%%", m.Spec.SourceNode, target))
			}
		}); err != nil {
			return ctrl.Result{}, err
		}
		if err := volumes.EditGroupNodes(ctx, r.Client, lv, false, func(nodes []string) []string {
			// An entry holds at most two nodes (the CRD's maxItems): an HA
			// volume's entry gets the target when the source leaves it.
			if !slices.Contains(nodes, target) && len(nodes) < volumes.MaxGroupNodes {
				nodes = append(nodes, target)
			}
			return nodes
		}); err != nil {
			return ctrl.Result{}, err
		}
		switch {
		case rep.Status.State == v1.StateReady:
			allocated++
		case rep.Status.State == v1.StateNotReady && strings.Contains(rep.Status.Message, "insufficient capacity"):
			return r.rollback(ctx, m, v1.OperationStateFailed, fmt.Sprintf("target %s could not allocate %s: %s", target, name, rep.Status.Message))
		}
	}
	if allocated < len(m.Status.Volumes) {
		return ctrl.Result{RequeueAfter: poll}, r.setStatus(ctx, m, func(st *v1.LocalVolumeMigrateStatus) {
			st.Message = fmt.Sprintf("allocating on %s: %d/%d replicas ready", target, allocated, len(m.Status.Volumes))
		})
	}
	r.Recorder.Eventf(m, corev1.EventTypeNormal, "ReplicasAdded", "Replicas allocated on %s; copying the data from %s", target, m.Spec.SourceNode)
	return ctrl.Result{}, r.setStatus(ctx, m, func(st *v1.LocalVolumeMigrateStatus) {
		st.State, st.Message = v1.OperationStateSyncReplica, fmt.Sprintf("copying from %s to %s (the volumes must not be in use)", m.Spec.SourceNode, target)
	})
}

// ensureTargetReplica creates the target replica of lv (before the volume
// names the target, so the volume controller never makes it unmarked).
func (r *Reconciler) ensureTargetReplica(ctx context.Context, m *v1.LocalVolumeMigrate, lv *v1.LocalVolume) (*v1.LocalVolumeReplica, error) {
	name := v1.ReplicaName(lv.Name, m.Status.TargetNode)
	rep := &v1.LocalVolumeReplica{}
	err := r.Client.Get(ctx, client.ObjectKey{Name: name}, rep)
	if err == nil {
		if owner := rep.Annotations[v1.SyncPendingAnnotation]; owner != "" && owner != m.Name {
			// Never adopt another migration's target: both would prune
			// their source and the volume would lose a replica.
			return nil, fmt.Errorf("replica %s on %s is the target of migration %s", name, m.Status.TargetNode, owner)
		}
		return rep, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, err
	}
	rep = &v1.LocalVolumeReplica{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{
			v1.SyncPendingAnnotation: m.Name, v1.SyncSourceAnnotation: m.Spec.SourceNode}},
		Spec: v1.LocalVolumeReplicaSpec{VolumeName: lv.Name, NodeName: m.Status.TargetNode, PoolName: lv.Spec.PoolName,
			RequiredCapacityBytes: lv.Spec.RequiredCapacityBytes, VolumeKind: v1.VolumeKindLVM, Striped: lv.Spec.Striped},
	}
	if err := controllerutil.SetControllerReference(lv, rep, r.Client.Scheme()); err != nil {
		return nil, err
	}
	if err := r.Client.Create(ctx, rep); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	return rep, nil
}

// syncReplica waits for every target replica's verified copy and reports
// the progress in the migration and on the volumes (the scheduler's
// Pending reason).
func (r *Reconciler) syncReplica(ctx context.Context, m *v1.LocalVolumeMigrate) (ctrl.Result, error) {
	var copied int64
	synced := 0
	var failing string
	for _, name := range m.Status.Volumes {
		rep := &v1.LocalVolumeReplica{}
		if err := r.Client.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(name, m.Status.TargetNode)}, rep); err != nil {
			if apierrors.IsNotFound(err) {
				return r.rollback(ctx, m, v1.OperationStateFailed, fmt.Sprintf("target replica of %s on %s disappeared", name, m.Status.TargetNode))
			}
			return ctrl.Result{}, err
		}
		if rep.Status.Synced && rep.Status.Checksum != "" {
			synced++
			copied += rep.Spec.RequiredCapacityBytes
			continue
		}
		copied += rep.Status.SyncedBytes
		if rep.Status.Message != "" && failing == "" {
			failing = name + ": " + rep.Status.Message
		}
	}
	pct := 0
	if m.Status.TotalBytes > 0 {
		pct = int(min(100, copied*100/m.Status.TotalBytes))
	}
	progress := fmt.Sprintf("%d%%", pct)
	for _, name := range m.Status.Volumes {
		annotation := fmt.Sprintf("%s → %s, %s", m.Spec.SourceNode, m.Status.TargetNode, progress)
		if err := volumes.Edit(ctx, r.Client, name, false, func(lv *v1.LocalVolume) {
			if lv.Annotations[v1.VolumeMigrateStateAnnotation] == v1.VolumeMigrateStarted {
				setAnnotation(lv, v1.MigrationProgressAnnotation, annotation)
			}
		}); err != nil && !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
	}
	if synced < len(m.Status.Volumes) {
		msg := fmt.Sprintf("copying from %s to %s: %d/%d volumes verified", m.Spec.SourceNode, m.Status.TargetNode, synced, len(m.Status.Volumes))
		if failing != "" {
			msg += "; " + failing
		}
		if progress != m.Status.Progress {
			r.Recorder.Eventf(m, corev1.EventTypeNormal, "Copying", "%s copied", progress)
		}
		return ctrl.Result{RequeueAfter: poll}, r.setStatus(ctx, m, func(st *v1.LocalVolumeMigrateStatus) {
			st.BytesCopied, st.Progress, st.Message = copied, progress, msg
		})
	}
	r.Recorder.Eventf(m, corev1.EventTypeNormal, "Verified", "Every copy on %s matches its source's checksum", m.Status.TargetNode)
	return ctrl.Result{}, r.setStatus(ctx, m, func(st *v1.LocalVolumeMigrateStatus) {
		st.State, st.BytesCopied, st.Progress = v1.OperationStatePruneReplica, m.Status.TotalBytes, "100%"
		st.Message = "switching the volumes to " + m.Status.TargetNode + " and removing the source replicas"
	})
}

// pruneReplica switches each volume to the target and deletes the source
// replica, but only while the target holds a verified copy.
func (r *Reconciler) pruneReplica(ctx context.Context, m *v1.LocalVolumeMigrate) (ctrl.Result, error) {
	source, target := m.Spec.SourceNode, m.Status.TargetNode
	// The invariant: never remove a source without a verified copy. Every
	// target is checked before any volume switches, so a group moves whole.
	targets := make([]*v1.LocalVolumeReplica, 0, len(m.Status.Volumes))
	for _, name := range m.Status.Volumes {
		tgt := &v1.LocalVolumeReplica{}
		if err := r.Client.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(name, target)}, tgt); err != nil {
			return ctrl.Result{}, fmt.Errorf("target replica of %s: %w", name, err)
		}
		if !tgt.Status.Synced || tgt.Status.Checksum == "" || tgt.Status.State != v1.StateReady {
			return ctrl.Result{RequeueAfter: poll}, r.setStatus(ctx, m, func(st *v1.LocalVolumeMigrateStatus) {
				st.Message = fmt.Sprintf("holding the source: the replica of %s on %s is not verified and ready", name, target)
			})
		}
		targets = append(targets, tgt)
	}
	remaining := 0
	for i, name := range m.Status.Volumes {
		tgt := targets[i]
		if err := volumes.Edit(ctx, r.Client, name, false, func(lv *v1.LocalVolume) {
			lv.RemoveReplicaNode(source)
			delete(lv.Annotations, v1.VolumeMigrateStateAnnotation)
			delete(lv.Annotations, v1.MigrationProgressAnnotation)
		}); err != nil && !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		lv := &v1.LocalVolume{}
		if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, lv); err == nil {
			if err := volumes.EditGroupNodes(ctx, r.Client, lv, false, func(nodes []string) []string {
				nodes = slices.DeleteFunc(nodes, func(n string) bool { return n == source })
				if !slices.Contains(nodes, target) {
					nodes = append(nodes, target)
				}
				return nodes
			}); err != nil {
				return ctrl.Result{}, err
			}
		}
		if tgt.Annotations[v1.SyncPendingAnnotation] != "" {
			patch := client.MergeFrom(tgt.DeepCopy())
			delete(tgt.Annotations, v1.SyncPendingAnnotation)
			delete(tgt.Annotations, v1.SyncSourceAnnotation)
			if err := r.Client.Patch(ctx, tgt, patch); err != nil {
				return ctrl.Result{}, err
			}
		}
		src := &v1.LocalVolumeReplica{}
		err := r.Client.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(name, source)}, src)
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return ctrl.Result{}, err
		}
		remaining++
		if src.DeletionTimestamp == nil {
			if err := r.Client.Delete(ctx, src); client.IgnoreNotFound(err) != nil {
				return ctrl.Result{}, err
			}
		}
	}
	if remaining > 0 {
		return ctrl.Result{RequeueAfter: poll}, r.setStatus(ctx, m, func(st *v1.LocalVolumeMigrateStatus) {
			st.Message = fmt.Sprintf("removing %d source replica(s) on %s", remaining, source)
		})
	}
	r.Recorder.Eventf(m, corev1.EventTypeNormal, "Completed", "%s moved from %s to %s", strings.Join(m.Status.Volumes, ", "), source, target)
	return ctrl.Result{}, r.setStatus(ctx, m, func(st *v1.LocalVolumeMigrateStatus) {
		st.State, st.Message = v1.OperationStateCompleted, fmt.Sprintf("moved to %s; data verified", target)
		st.CompletionTime = ptrNow(r.Now())
	})
}

// rollback undoes AddReplica: the target leaves each volume's placement and
// its (unverified, or not yet switched) replica is deleted; the source is
// never touched. It ends in state with msg.
func (r *Reconciler) rollback(ctx context.Context, m *v1.LocalVolumeMigrate, state v1.State, msg string) (ctrl.Result, error) {
	target := m.Status.TargetNode
	if m.Status.State != v1.OperationStateAborting && state == v1.OperationStateAborted && target != "" {
		// Record the intent first, so a restart mid-rollback finishes it
		// even if spec.abort were cleared.
		if err := r.setStatus(ctx, m, func(st *v1.LocalVolumeMigrateStatus) {
			st.State, st.Message = v1.OperationStateAborting, "rolling back"
		}); err != nil {
			return ctrl.Result{}, err
		}
	}
	for _, name := range m.Status.Volumes {
		if target == "" {
			break
		}
		err := volumes.Edit(ctx, r.Client, name, true, func(lv *v1.LocalVolume) {
			if slices.Contains(lv.ReplicaNodes(), m.Spec.SourceNode) {
				lv.RemoveReplicaNode(target)
			}
			delete(lv.Annotations, v1.VolumeMigrateStateAnnotation)
			delete(lv.Annotations, v1.MigrationProgressAnnotation)
		})
		if err != nil && !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		lv := &v1.LocalVolume{}
		if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, lv); err == nil && slices.Contains(lv.ReplicaNodes(), m.Spec.SourceNode) {
			if err := volumes.EditGroupNodes(ctx, r.Client, lv, true, func(nodes []string) []string {
				return slices.DeleteFunc(nodes, func(n string) bool { return n == target })
			}); err != nil {
				return ctrl.Result{}, err
			}
		}
		rep := &v1.LocalVolumeReplica{}
		err = r.Client.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(name, target)}, rep)
		if err == nil && rep.Annotations[v1.SyncPendingAnnotation] == m.Name && rep.DeletionTimestamp == nil {
			if err := r.Client.Delete(ctx, rep); client.IgnoreNotFound(err) != nil {
				return ctrl.Result{}, err
			}
		} else if client.IgnoreNotFound(err) != nil {
			return ctrl.Result{}, err
		}
	}
	reason, eventType := "Aborted", corev1.EventTypeNormal
	if state == v1.OperationStateFailed {
		reason, eventType = "MigrationFailed", corev1.EventTypeWarning
	}
	r.Recorder.Event(m, eventType, reason, msg)
	return ctrl.Result{}, r.setStatus(ctx, m, func(st *v1.LocalVolumeMigrateStatus) {
		st.State, st.Message = state, msg
		st.CompletionTime = ptrNow(r.Now())
	})
}

// groupVolumes returns lv and the other volumes of its group, by name.
func (r *Reconciler) groupVolumes(ctx context.Context, lv *v1.LocalVolume) ([]*v1.LocalVolume, error) {
	if lv.Spec.VolumeGroup == "" {
		return []*v1.LocalVolume{lv}, nil
	}
	all := &v1.LocalVolumeList{}
	if err := r.Client.List(ctx, all); err != nil {
		return nil, err
	}
	var out []*v1.LocalVolume
	for i := range all.Items {
		if all.Items[i].Spec.VolumeGroup == lv.Spec.VolumeGroup && !all.Items[i].Spec.Delete && all.Items[i].DeletionTimestamp == nil {
			out = append(out, &all.Items[i])
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// setStatus applies change to m's status and writes it when it changed.
func (r *Reconciler) setStatus(ctx context.Context, m *v1.LocalVolumeMigrate, change func(*v1.LocalVolumeMigrateStatus)) error {
	st := m.Status.DeepCopy()
	change(st)
	if equality.Semantic.DeepEqual(st, &m.Status) {
		return nil
	}
	prev := m.Status
	m.Status = *st
	if err := r.Client.Status().Update(ctx, m); err != nil {
		return err
	}
	recordStatus(&prev, m, r.Now())
	if m.Status.State.Finished() {
		r.endedMu.Lock()
		if r.ended == nil {
			r.ended = map[types.UID]bool{}
		}
		r.ended[m.UID] = true
		r.endedMu.Unlock()
	}
	return nil
}

// lagsEnd says whether m, read from the cache, is older than a terminal
// state this process wrote; once the cache shows it, it is forgotten.
func (r *Reconciler) lagsEnd(m *v1.LocalVolumeMigrate) bool {
	r.endedMu.Lock()
	defer r.endedMu.Unlock()
	if !r.ended[m.UID] {
		return false
	}
	if m.Status.State.Finished() {
		delete(r.ended, m.UID)
		return false
	}
	return true
}

func ptrNow(t time.Time) *metav1.Time { mt := metav1.NewTime(t); return &mt }

func setAnnotation(lv *v1.LocalVolume, k, v string) {
	if lv.Annotations == nil {
		lv.Annotations = map[string]string{}
	}
	lv.Annotations[k] = v
}

func volumeNames(vols []*v1.LocalVolume) []string {
	out := make([]string, 0, len(vols))
	for _, v := range vols {
		out = append(out, v.Name)
	}
	return out
}
