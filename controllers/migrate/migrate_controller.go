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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/internal/operation"
	"hwameistor.io/local/controllers/internal/volumes"
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

	engine *operation.Engine
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
	r.engine = &operation.Engine{Client: r.Client, Recorder: r.Recorder, RetryInterval: poll, Now: r.Now,
		Kind: operation.Kind{
			New:          func() v1.Operation { return &v1.LocalVolumeMigrate{} },
			FailedReason: "MigrationFailed",
			Noun:         "migration",
			Submitted:    operation.StepOf(r.submitted),
			Steps: map[v1.State]operation.Step{
				v1.OperationStateAddReplica:   operation.StepOf(r.addReplica),
				v1.OperationStateSyncReplica:  operation.StepOf(r.syncReplica),
				v1.OperationStatePruneReplica: operation.StepOf(r.pruneReplica),
			},
			// Once the copy is verified and the volume switched, the
			// migration completes: the source goes, the target stays.
			Committed: func(s v1.State) bool { return s == v1.OperationStatePruneReplica },
			AbortIgnoredWhy: func(op v1.Operation) string {
				return "the copy is verified and the volume already switched to " + op.(*v1.LocalVolumeMigrate).Status.TargetNode
			},
			Cause: func(op v1.Operation, why operation.Why) string {
				m := op.(*v1.LocalVolumeMigrate)
				switch why {
				case operation.DeadlineExceeded:
					return fmt.Sprintf("deadline %s exceeded in state %s; rolled back, the volume stays on %s", r.Deadline, operation.State(m), m.Spec.SourceNode)
				case operation.Deleted:
					return "deleted before it ended: rolled back, the volume stays on " + m.Spec.SourceNode
				}
				return "aborted by spec.abort; the volume stays on " + m.Spec.SourceNode
			},
			Undo: func(ctx context.Context, op v1.Operation, _ v1.State, cause string, _ bool) (string, error) {
				return cause, r.undo(ctx, op.(*v1.LocalVolumeMigrate))
			},
			Deadline:  r.Deadline,
			StartTime: func(op v1.Operation) *metav1.Time { return op.(*v1.LocalVolumeMigrate).Status.StartTime },
			Finalizer: v1.MigrationFinalizer,
			Ended:     func(op v1.Operation, now time.Time) { op.(*v1.LocalVolumeMigrate).Status.CompletionTime = ptrNow(now) },
			Observe: func(before, after v1.Operation, now time.Time) {
				recordStatus(&before.(*v1.LocalVolumeMigrate).Status, after.(*v1.LocalVolumeMigrate), now)
			},
			Cached: true,
		}}
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
	// A target replica wakes its migration, any other replica (a source
	// being pruned) and the end of a conversion or expansion the
	// unfinished migrations of its volume.
	wake := r.engine.WakeOnVolumes(func() client.ObjectList { return &v1.LocalVolumeMigrateList{} })
	stateGauge.use(mgr.GetCache(), mgr.Elected())
	return ctrl.NewControllerManagedBy(mgr).
		Named("localvolumemigrate").
		For(&v1.LocalVolumeMigrate{}).
		Watches(&v1.LocalVolumeMigrate{}, queued).
		Watches(&v1.LocalVolumeReplica{}, wake).
		Watches(&v1.LocalVolumeConvert{}, wake).
		Watches(&v1.LocalVolumeExpand{}, wake).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).
		Complete(r)
}

// poll is how often waiting states look again when no event wakes them.
const poll = 5 * time.Second

// Reconcile moves one migration forward by at most one state
// (operation.Engine).
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return r.engine.Reconcile(ctx, req)
}

// submitted validates the request, waits for the volumes' other
// operations and a copy slot, and picks the target.
func (r *Reconciler) submitted(ctx context.Context, m *v1.LocalVolumeMigrate) (ctrl.Result, error) {
	lv := &v1.LocalVolume{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: m.Spec.VolumeName}, lv); err != nil {
		if apierrors.IsNotFound(err) {
			return r.engine.Fail(ctx, m, "volume %s not found", m.Spec.VolumeName)
		}
		return ctrl.Result{}, err
	}
	if !slices.Contains(lv.ReplicaNodes(), m.Spec.SourceNode) {
		return r.engine.Fail(ctx, m, "node %s holds no replica of volume %s (replicas on %s)", m.Spec.SourceNode, lv.Name, strings.Join(lv.ReplicaNodes(), ", "))
	}
	vols, err := r.groupVolumes(ctx, lv)
	if err != nil {
		return ctrl.Result{}, err
	}
	if len(vols) > 1 && !m.Spec.MigrateAllVols {
		return r.engine.Fail(ctx, m, "volume %s is in volume group %s with %d volumes, which live on one node: set spec.migrateAllVols to move them together", lv.Name, lv.Spec.VolumeGroup, len(vols))
	}
	for _, v := range vols {
		if !slices.Contains(v.ReplicaNodes(), m.Spec.SourceNode) {
			return r.engine.Fail(ctx, m, "volume %s of the group has no replica on %s", v.Name, m.Spec.SourceNode)
		}
	}
	names := volumeNames(vols)
	// A conversion or expansion that goes first (operation.Blockers):
	// the copy must not start under it. Other migrations are the slot
	// count's business below.
	blockers, err := operation.Blockers(ctx, r.Client, m, names)
	if err != nil {
		return ctrl.Result{}, err
	}
	for _, o := range blockers {
		if o.OperationKind() != v1.KindMigrate {
			return r.wait(ctx, m, fmt.Sprintf("waiting: volume %s is being %s", strings.Join(names, ", "), operation.Doing(o)))
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	all := &v1.LocalVolumeMigrateList{}
	if err := r.Client.List(ctx, all); err != nil {
		return ctrl.Result{}, err
	}
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
				return r.engine.Fail(ctx, m, "volume %s is already being migrated by %s", strings.Join(names, ", "), o.Name)
			}
			// Another replica of the volume (HA) is moving off another
			// node: one move at a time, so both do not pick one target.
			return r.wait(ctx, m, fmt.Sprintf("waiting for %s, which moves the volume's replica on %s", o.Name, o.Spec.SourceNode))
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
		return r.wait(ctx, m, fmt.Sprintf("queued: %d migrations running (limit %d), %d from %s (limit %d)", running, r.MaxTotal, fromNode, m.Spec.SourceNode, r.MaxPerNode))
	}
	target, miss, err := r.engine.MoveTarget(ctx, m.Spec.SourceNode, lv, vols, m.Spec.TargetNodesSuggested)
	if err != nil {
		return ctrl.Result{}, err
	}
	if miss != nil {
		if len(m.Spec.TargetNodesSuggested) > 0 {
			return r.engine.Fail(ctx, m, "none of the suggested nodes %s can take the volumes: %s", strings.Join(m.Spec.TargetNodesSuggested, ", "), miss)
		}
		return r.engine.Progress(ctx, m, "waiting for a target: "+miss.String(), func() {
			if m.Status.StartTime == nil {
				m.Status.StartTime = ptrNow(r.Now())
			}
		})
	}
	var total int64
	for _, v := range vols {
		total += v.Spec.RequiredCapacityBytes
	}
	if _, err := r.engine.Advance(ctx, m, v1.OperationStateAddReplica, "adding replicas on "+target, func() {
		st := &m.Status
		st.TargetNode, st.Volumes = target, names
		st.ReplicaNumber, st.TotalBytes, st.BytesCopied, st.Progress = lv.Spec.ReplicaNumber, total, 0, "0%"
		if st.StartTime == nil {
			st.StartTime = ptrNow(r.Now())
		}
	}, "TargetChosen", fmt.Sprintf("Moving %s from %s to %s", strings.Join(names, ", "), m.Spec.SourceNode, target)); err != nil {
		return ctrl.Result{}, err
	}
	if r.admitted == nil {
		r.admitted = map[string]bool{}
	}
	r.admitted[m.Name] = true
	return ctrl.Result{}, nil
}

// wait keeps a migration Submitted with a message, without an Event:
// during a drain hundreds queue, and their counts change every moment.
func (r *Reconciler) wait(ctx context.Context, m *v1.LocalVolumeMigrate, msg string) (ctrl.Result, error) {
	return r.engine.Progress(ctx, m, msg, nil)
}

func findMigration(list *v1.LocalVolumeMigrateList, name string) *v1.LocalVolumeMigrate {
	for i := range list.Items {
		if list.Items[i].Name == name {
			return &list.Items[i]
		}
	}
	return nil
}

// addReplica creates the target replicas (marked sync-pending, so the
// target's agent copies the data in), adds the target to each volume's
// placement, and waits for the target replicas to be allocated.
func (r *Reconciler) addReplica(ctx context.Context, m *v1.LocalVolumeMigrate) (ctrl.Result, error) {
	if online, err := r.drbdMove(ctx, m); err != nil || online {
		if err != nil {
			return ctrl.Result{}, err
		}
		return r.addDRBDReplica(ctx, m)
	}
	target := m.Status.TargetNode
	reps := make([]*v1.LocalVolumeReplica, 0, len(m.Status.Volumes))
	for _, name := range m.Status.Volumes {
		lv, done, res, err := r.volumeOf(ctx, m, name)
		if done {
			return res, err
		}
		rep, err := r.engine.EnsureReplica(ctx, m, lv, target, operation.CopyMarks(m, m.Spec.SourceNode))
		if err != nil {
			return ctrl.Result{}, err
		}
		if owner := rep.Annotations[v1.SyncPendingAnnotation]; owner != "" && owner != m.Name {
			// Never adopt another migration's target: both would prune
			// their source and the volume would lose a replica.
			return ctrl.Result{}, fmt.Errorf("replica %s on %s is the target of migration %s", rep.Name, target, owner)
		}
		if err := r.engine.AddTarget(ctx, lv, target, func(lv *v1.LocalVolume) {
			if lv.Spec.ReplicaNumber < 2 {
				// The pod waits for the copy (an HA volume's pod runs on its
				// other replica meanwhile).
				setAnnotation(lv, v1.VolumeMigrateStateAnnotation, v1.VolumeMigrateStarted)
				setAnnotation(lv, v1.MigrationProgressAnnotation, fmt.Sprintf("%s → %s, 0%%", m.Spec.SourceNode, target))
			}
		}); err != nil {
			return ctrl.Result{}, err
		}
		reps = append(reps, rep)
	}
	if res, waiting, err := r.waitAllocated(ctx, m, reps); waiting || err != nil {
		return res, err
	}
	return r.engine.Advance(ctx, m, v1.OperationStateSyncReplica, fmt.Sprintf("copying from %s to %s (the volumes must not be in use)", m.Spec.SourceNode, target), nil,
		"ReplicasAdded", fmt.Sprintf("Replicas allocated on %s; copying the data from %s", target, m.Spec.SourceNode))
}

// syncReplica waits for every target replica's verified copy and reports
// the progress in the migration and on the volumes (the scheduler's
// Pending reason).
func (r *Reconciler) syncReplica(ctx context.Context, m *v1.LocalVolumeMigrate) (ctrl.Result, error) {
	if online, err := r.drbdMove(ctx, m); err != nil || online {
		if err != nil {
			return ctrl.Result{}, err
		}
		return r.syncDRBDReplica(ctx, m)
	}
	var copied int64
	synced := 0
	var failing string
	for _, name := range m.Status.Volumes {
		rep := &v1.LocalVolumeReplica{}
		if err := r.Client.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(name, m.Status.TargetNode)}, rep); err != nil {
			if apierrors.IsNotFound(err) {
				return r.engine.Rollback(ctx, m, v1.OperationStateFailed, fmt.Sprintf("target replica of %s on %s disappeared", name, m.Status.TargetNode))
			}
			return ctrl.Result{}, err
		}
		if operation.Verified(rep) {
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
		return r.engine.Progress(ctx, m, msg, func() { m.Status.BytesCopied, m.Status.Progress = copied, progress })
	}
	return r.engine.Advance(ctx, m, v1.OperationStatePruneReplica, "switching the volumes to "+m.Status.TargetNode+" and removing the source replicas",
		func() { m.Status.BytesCopied, m.Status.Progress = m.Status.TotalBytes, "100%" },
		"Verified", fmt.Sprintf("Every copy on %s matches its source's checksum", m.Status.TargetNode))
}

// pruneReplica switches each volume to the target and deletes the source
// replica, but only while the target holds a verified copy.
func (r *Reconciler) pruneReplica(ctx context.Context, m *v1.LocalVolumeMigrate) (ctrl.Result, error) {
	if online, err := r.drbdMove(ctx, m); err != nil || online {
		if err != nil {
			return ctrl.Result{}, err
		}
		return r.pruneDRBDReplica(ctx, m)
	}
	source, target := m.Spec.SourceNode, m.Status.TargetNode
	// The invariant: never remove a source without a verified copy. Every
	// target is checked before any volume switches, so a group moves whole.
	targets := make([]*v1.LocalVolumeReplica, 0, len(m.Status.Volumes))
	for _, name := range m.Status.Volumes {
		tgt := &v1.LocalVolumeReplica{}
		if err := r.Client.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(name, target)}, tgt); err != nil {
			return ctrl.Result{}, fmt.Errorf("target replica of %s: %w", name, err)
		}
		if !operation.Verified(tgt) || tgt.Status.State != v1.StateReady {
			return r.engine.Progress(ctx, m, fmt.Sprintf("holding the source: the replica of %s on %s is not verified and ready", name, target), nil)
		}
		targets = append(targets, tgt)
	}
	for _, name := range m.Status.Volumes {
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
	}
	if remaining, err := r.removeSources(ctx, m, targets); err != nil || remaining > 0 {
		if err != nil {
			return ctrl.Result{}, err
		}
		return r.engine.Progress(ctx, m, fmt.Sprintf("removing %d source replica(s) on %s", remaining, source), nil)
	}
	return r.engine.Advance(ctx, m, v1.OperationStateCompleted, fmt.Sprintf("moved to %s; data verified", target), nil,
		"Completed", fmt.Sprintf("%s moved from %s to %s", strings.Join(m.Status.Volumes, ", "), source, target))
}

// removeSources makes each volume's target (targets, in the order of
// status.volumes) an ordinary replica and deletes its source replica (its
// agent frees the data, then its finalizer goes); remaining counts the
// sources that still exist.
func (r *Reconciler) removeSources(ctx context.Context, m *v1.LocalVolumeMigrate, targets []*v1.LocalVolumeReplica) (remaining int, err error) {
	for i, name := range m.Status.Volumes {
		if err := r.engine.Release(ctx, m, targets[i]); err != nil {
			return 0, err
		}
		src := &v1.LocalVolumeReplica{}
		err := r.Client.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(name, m.Spec.SourceNode)}, src)
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return 0, err
		}
		remaining++
		if src.DeletionTimestamp == nil {
			if err := r.Client.Delete(ctx, src); client.IgnoreNotFound(err) != nil {
				return 0, err
			}
		}
	}
	return remaining, nil
}

// waitAllocated rolls m back when the target's agent refused one of its
// new replicas (reps, in the order of status.volumes), and reports it
// waiting while not all are allocated (Ready).
func (r *Reconciler) waitAllocated(ctx context.Context, m *v1.LocalVolumeMigrate, reps []*v1.LocalVolumeReplica) (res ctrl.Result, waiting bool, err error) {
	allocated := 0
	for i, rep := range reps {
		if refused := operation.AllocationRefused(rep); refused != "" {
			res, err := r.engine.Rollback(ctx, m, v1.OperationStateFailed, fmt.Sprintf("target %s could not allocate %s: %s", m.Status.TargetNode, m.Status.Volumes[i], refused))
			return res, true, err
		}
		if rep.Status.State == v1.StateReady {
			allocated++
		}
	}
	if allocated < len(reps) {
		res, err := r.engine.Progress(ctx, m, fmt.Sprintf("allocating on %s: %d/%d replicas ready", m.Status.TargetNode, allocated, len(reps)), nil)
		return res, true, err
	}
	return ctrl.Result{}, false, nil
}

// volumeOf reads volume name of m; a volume deleted meanwhile rolls m
// back (done).
func (r *Reconciler) volumeOf(ctx context.Context, m *v1.LocalVolumeMigrate, name string) (lv *v1.LocalVolume, done bool, res ctrl.Result, err error) {
	lv = &v1.LocalVolume{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, lv); err != nil {
		if apierrors.IsNotFound(err) {
			res, err = r.engine.Rollback(ctx, m, v1.OperationStateFailed, fmt.Sprintf("volume %s was deleted during the migration", name))
			return nil, true, res, err
		}
		return nil, true, ctrl.Result{}, err
	}
	return lv, false, ctrl.Result{}, nil
}

// undo removes what AddReplica added: the target leaves each volume's
// placement and its (unverified, or not yet switched) replica is deleted;
// the source's data is never touched (an online move's source rejoins
// its DRBD resource).
func (r *Reconciler) undo(ctx context.Context, m *v1.LocalVolumeMigrate) error {
	target := m.Status.TargetNode
	if target == "" {
		return nil
	}
	for _, name := range m.Status.Volumes {
		if err := r.undoDRBDMove(ctx, m, name); err != nil {
			return err
		}
		if _, err := r.engine.RemoveTarget(ctx, m, name, target, true, func(lv *v1.LocalVolume) bool {
			return slices.Contains(lv.ReplicaNodes(), m.Spec.SourceNode)
		}, func(lv *v1.LocalVolume) {
			delete(lv.Annotations, v1.VolumeMigrateStateAnnotation)
			delete(lv.Annotations, v1.MigrationProgressAnnotation)
		}); err != nil {
			return err
		}
	}
	return nil
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
