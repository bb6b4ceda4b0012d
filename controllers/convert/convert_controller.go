// Package convert reconciles LocalVolumeConverts: it turns a convertible
// single-replica volume into an HA volume by adding a second replica on
// another node, copying the data into it and verifying the copy.
// Submitted → AddReplica → SyncReplica → Completed, or Failed / Aborted with
// a rollback that removes only what the conversion added. Every step is
// idempotent and reads its progress back from the cluster, so a restarted
// controller resumes; the original replica is never touched.
package convert

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/internal/volumes"
	"hwameistor.io/local/internal/placement"
)

// Annotations the controller keeps on the LocalVolumeConvert once it chose
// where the new replica goes (the status has no field for it): the
// decision survives a restart, and the rollback knows what to undo.
const (
	TargetNodeAnnotation = "hwameistor.io/convert-target-node"
	SourceNodeAnnotation = "hwameistor.io/convert-source-node"
)

// DefaultRetryInterval is how often a waiting conversion looks again when
// no event wakes it.
const DefaultRetryInterval = 5 * time.Second

// Reconciler reconciles LocalVolumeConverts.
type Reconciler struct {
	Client   client.Client
	Recorder record.EventRecorder
	// APIReader reads the capacity view and the volume's replicas
	// uncached, so two conversions in a row never both count on the same
	// free space; the manager's API reader when nil.
	APIReader client.Reader
	// RetryInterval is how often waiting states look again;
	// DefaultRetryInterval when zero.
	RetryInterval time.Duration
}

var _ reconcile.Reconciler = &Reconciler{}

// +kubebuilder:rbac:groups=hwameistor.io,resources=localvolumeconverts,verbs=get;list;watch;update
// +kubebuilder:rbac:groups=hwameistor.io,resources=localvolumeconverts/status,verbs=update
// +kubebuilder:rbac:groups=hwameistor.io,resources=localvolumes,verbs=get;list;watch;update
// +kubebuilder:rbac:groups=hwameistor.io,resources=localvolumes/finalizers,verbs=update
// +kubebuilder:rbac:groups=hwameistor.io,resources=localvolumereplicas,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=hwameistor.io,resources=localvolumegroups,verbs=get;list;watch;update
// +kubebuilder:rbac:groups=hwameistor.io,resources=localstoragenodes;localvolumemigrates;localvolumeexpands,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// SetupWithManager registers the controller (named localvolumeconvert).
// The new replica is mapped back to its conversion through the
// sync-pending annotation; volumes, migrations and expansions wake the
// conversions of their volumes that wait for them.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	if r.RetryInterval == 0 {
		r.RetryInterval = DefaultRetryInterval
	}
	bySyncPending := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		if name := o.GetAnnotations()[v1.SyncPendingAnnotation]; name != "" {
			return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: name}}}
		}
		return nil
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("localvolumeconvert").
		For(&v1.LocalVolumeConvert{}).
		Watches(&v1.LocalVolumeReplica{}, bySyncPending).
		Watches(&v1.LocalVolume{}, handler.EnqueueRequestsFromMapFunc(r.byVolume)).
		Watches(&v1.LocalVolumeMigrate{}, handler.EnqueueRequestsFromMapFunc(r.byVolume)).
		Watches(&v1.LocalVolumeExpand{}, handler.EnqueueRequestsFromMapFunc(r.byVolume)).
		Complete(r)
}

// byVolume maps a LocalVolume, LocalVolumeMigrate or LocalVolumeExpand to
// the unfinished conversions of the volumes it names.
func (r *Reconciler) byVolume(ctx context.Context, o client.Object) []reconcile.Request {
	var names []string
	switch o := o.(type) {
	case *v1.LocalVolume:
		names = []string{o.Name}
	case *v1.LocalVolumeMigrate:
		names = append([]string{o.Spec.VolumeName}, o.Status.Volumes...)
	case *v1.LocalVolumeExpand:
		names = []string{o.Spec.VolumeName}
	}
	list := &v1.LocalVolumeConvertList{}
	if err := r.Client.List(ctx, list); err != nil {
		return nil
	}
	var out []reconcile.Request
	for i := range list.Items {
		c := &list.Items[i]
		if !c.Status.State.Finished() && slices.Contains(names, c.Spec.VolumeName) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKey{Name: c.Name}})
		}
	}
	return out
}

// Reconcile moves one conversion forward by at most one state.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	// Uncached: a step taken on a stale object (an earlier state) could
	// redo what a later one undid.
	c := &v1.LocalVolumeConvert{}
	if err := r.reader().Get(ctx, req.NamespacedName, c); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if c.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	state := c.Status.State
	if state == "" {
		state = v1.OperationStateSubmitted
	}
	switch state {
	case v1.OperationStateCompleted:
		if c.Spec.Abort && !strings.HasPrefix(c.Status.Message, abortIgnored) {
			r.Recorder.Event(c, corev1.EventTypeWarning, "AbortIgnored", "The conversion already completed; spec.abort has no effect")
			if err := r.setStatus(ctx, c, func(st *v1.LocalVolumeConvertStatus) {
				st.Message = abortIgnored + "the conversion already completed; " + st.Message
			}); err != nil {
				return ctrl.Result{}, err
			}
		}
		return ctrl.Result{}, r.releaseReplica(ctx, c)
	case v1.OperationStateFailed, v1.OperationStateAborted:
		return ctrl.Result{}, nil
	}
	if c.Spec.Abort || state == v1.OperationStateAborting {
		return r.rollback(ctx, c, v1.OperationStateAborted, "aborted by spec.abort")
	}
	switch state {
	case v1.OperationStateSubmitted:
		return r.submitted(ctx, c)
	case v1.OperationStateAddReplica:
		return r.addReplica(ctx, c)
	case v1.OperationStateSyncReplica:
		return r.syncReplica(ctx, c)
	}
	return ctrl.Result{}, nil
}

const abortIgnored = "abort ignored: "

// fail ends a conversion that changed nothing yet.
func (r *Reconciler) fail(ctx context.Context, c *v1.LocalVolumeConvert, format string, args ...any) (ctrl.Result, error) {
	msg := fmt.Sprintf(format, args...)
	r.Recorder.Event(c, corev1.EventTypeWarning, "ConvertFailed", msg)
	return ctrl.Result{}, r.setStatus(ctx, c, func(st *v1.LocalVolumeConvertStatus) {
		st.State, st.Message = v1.OperationStateFailed, msg
	})
}

// wait keeps the conversion in its state with a message and looks again
// later; an Event tells when the reason changes.
func (r *Reconciler) wait(ctx context.Context, c *v1.LocalVolumeConvert, state v1.State, format string, args ...any) (ctrl.Result, error) {
	msg := fmt.Sprintf(format, args...)
	if msg != c.Status.Message {
		r.Recorder.Event(c, corev1.EventTypeNormal, "Waiting", msg)
	}
	return ctrl.Result{RequeueAfter: r.RetryInterval}, r.setStatus(ctx, c, func(st *v1.LocalVolumeConvertStatus) {
		st.State, st.Message = state, msg
	})
}

// submitted validates the request and chooses the node of the new replica.
// Nothing is changed in the cluster before the state is AddReplica.
func (r *Reconciler) submitted(ctx context.Context, c *v1.LocalVolumeConvert) (ctrl.Result, error) {
	name := c.Spec.VolumeName
	// Uncached: a volume created just before the request is not "not found".
	lv := &v1.LocalVolume{}
	if err := r.reader().Get(ctx, client.ObjectKey{Name: name}, lv); err != nil {
		if apierrors.IsNotFound(err) {
			return r.fail(ctx, c, "volume %s not found", name)
		}
		return ctrl.Result{}, err
	}
	if lv.DeletionTimestamp != nil || lv.Spec.Delete {
		return r.fail(ctx, c, "volume %s is being deleted", name)
	}
	if lv.Spec.ReplicaNumber >= 2 {
		msg := fmt.Sprintf("volume %s already has %d replicas", name, lv.Spec.ReplicaNumber)
		r.Recorder.Event(c, corev1.EventTypeNormal, "Completed", msg)
		return ctrl.Result{}, r.setStatus(ctx, c, func(st *v1.LocalVolumeConvertStatus) {
			st.State, st.Message = v1.OperationStateCompleted, msg
		})
	}
	if !lv.Spec.Convertible {
		return r.fail(ctx, c, "volume %s is not convertible: its StorageClass has no convertible: true", name)
	}
	converts := &v1.LocalVolumeConvertList{}
	if err := r.reader().List(ctx, converts); err != nil {
		return ctrl.Result{}, err
	}
	for i := range converts.Items {
		o := &converts.Items[i]
		if o.Name != c.Name && o.Spec.VolumeName == name && !o.Status.State.Finished() && v1.OperationBefore(o, kindConvert, c, kindConvert) {
			return r.fail(ctx, c, "volume %s is already being converted by %s", name, o.Name)
		}
	}
	if by, err := r.busy(ctx, c); err != nil || by != "" {
		if err != nil {
			return ctrl.Result{}, err
		}
		return r.wait(ctx, c, v1.OperationStateSubmitted, "waiting: volume %s is being %s", name, by)
	}
	nodes := lv.ReplicaNodes()
	switch {
	case len(nodes) == 0:
		return r.wait(ctx, c, v1.OperationStateSubmitted, "waiting: volume %s has no replica yet (spec.config.replicas is empty)", name)
	case len(nodes) > 1:
		return r.wait(ctx, c, v1.OperationStateSubmitted, "waiting: volume %s lists %d replicas (%s) with replicaNumber 1; another change is under way", name, len(nodes), strings.Join(nodes, ", "))
	}
	if lv.Status.State != v1.StateReady {
		return r.wait(ctx, c, v1.OperationStateSubmitted, "waiting: volume %s is %s, not Ready", name, stateOr(lv.Status.State, "not reported yet"))
	}
	source := nodes[0]
	target, why, err := r.pickTarget(ctx, lv, source)
	if err != nil {
		return ctrl.Result{}, err
	}
	if target == "" {
		return r.wait(ctx, c, v1.OperationStateSubmitted, "%s", why)
	}
	// Record the choice before anything is created: AddReplica, a restart
	// and the rollback all read it from here. Both writes carry the
	// resourceVersion, so a reconcile that read a stale object changes
	// nothing.
	if c.Annotations[TargetNodeAnnotation] != target || c.Annotations[SourceNodeAnnotation] != source {
		if c.Annotations == nil {
			c.Annotations = map[string]string{}
		}
		c.Annotations[TargetNodeAnnotation], c.Annotations[SourceNodeAnnotation] = target, source
		if err := r.Client.Update(ctx, c); err != nil {
			return ctrl.Result{}, err
		}
	}
	r.Recorder.Eventf(c, corev1.EventTypeNormal, "TargetChosen", "The second replica of %s goes to %s; its data is copied from %s", name, target, source)
	return ctrl.Result{}, r.setStatus(ctx, c, func(st *v1.LocalVolumeConvertStatus) {
		st.State, st.Message = v1.OperationStateAddReplica, fmt.Sprintf("adding a replica on %s (data copied from %s)", target, source)
	})
}

// busy names an unfinished migration of the volume, or an older unfinished
// expansion of it ("migrated by m-1", "expanded by e-1"); "" when neither.
// Conversions and expansions of one volume run oldest first, so neither
// waits for the other forever.
func (r *Reconciler) busy(ctx context.Context, c *v1.LocalVolumeConvert) (string, error) {
	name := c.Spec.VolumeName
	migrations := &v1.LocalVolumeMigrateList{}
	if err := r.Client.List(ctx, migrations); err != nil {
		return "", err
	}
	for i := range migrations.Items {
		m := &migrations.Items[i]
		if !m.Status.State.Finished() && (m.Spec.VolumeName == name || slices.Contains(m.Status.Volumes, name)) {
			return "migrated by " + m.Name, nil
		}
	}
	expands := &v1.LocalVolumeExpandList{}
	if err := r.Client.List(ctx, expands); err != nil {
		return "", err
	}
	for i := range expands.Items {
		e := &expands.Items[i]
		if e.Spec.VolumeName == name && !e.Status.State.Finished() && v1.OperationBefore(e, kindExpand, c, kindConvert) {
			return "expanded by " + e.Name, nil
		}
	}
	return "", nil
}

// pickTarget chooses the node of the second replica with the scheduler's
// placement code: a Ready, schedulable node holding no replica of the
// volume, where the volume fits net of every persisted reservation,
// preferring another zone than the source, then the most free space. It
// returns "" and the waiting message when no node fits.
func (r *Reconciler) pickTarget(ctx context.Context, lv *v1.LocalVolume, source string) (string, string, error) {
	pool, ok := placement.PoolByName(lv.Spec.PoolName)
	if !ok {
		return "", fmt.Sprintf("waiting: volume %s has unknown pool %s", lv.Name, lv.Spec.PoolName), nil
	}
	vols := []placement.Volume{{Key: lv.Name, Pool: pool, Bytes: lv.Spec.RequiredCapacityBytes}}
	waiting := "waiting for a node that can hold " + placement.Demand(vols)
	cache, lsns, err := r.capacityView(ctx)
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
	holding, err := r.holdingNodes(ctx, lv)
	if err != nil {
		return "", "", err
	}
	var candidates []string
	for i := range lsns {
		n := lsns[i].Name
		if !holding[n] && schedulable[n] && lsns[i].Status.State == v1.StateReady {
			candidates = append(candidates, n)
		}
	}
	sort.Strings(candidates)
	if len(candidates) == 0 {
		return "", waiting + ": no Ready, schedulable node other than " + source, nil
	}
	if target, ok := cache.PickPeer(source, vols, candidates); ok {
		return target, "", nil
	}
	var reasons []string
	for _, n := range candidates {
		if len(reasons) == 3 {
			reasons = append(reasons, "…")
			break
		}
		reasons = append(reasons, n+": "+cache.Check(n, vols))
	}
	return "", fmt.Sprintf("%s: none of %d candidate node(s) has room (%s)", waiting, len(candidates), strings.Join(reasons, "; ")), nil
}

// capacityView builds the scheduler's view of every pool: the nodes'
// status overlaid with every placement persisted in LocalVolumes and
// LocalVolumeGroups, read uncached.
func (r *Reconciler) capacityView(ctx context.Context) (*placement.Cache, []v1.LocalStorageNode, error) {
	view, err := volumes.LoadCapacity(ctx, r.reader())
	if err != nil {
		return nil, nil, err
	}
	return view.Cache, view.Nodes, nil
}

// holdingNodes are the nodes with a replica of lv: in its configuration or
// as a LocalVolumeReplica object (one being deleted included).
func (r *Reconciler) holdingNodes(ctx context.Context, lv *v1.LocalVolume) (map[string]bool, error) {
	out := map[string]bool{}
	for _, n := range lv.ReplicaNodes() {
		out[n] = true
	}
	reps := &v1.LocalVolumeReplicaList{}
	if err := r.reader().List(ctx, reps); err != nil {
		return nil, err
	}
	for _, rep := range reps.Items {
		if rep.Spec.VolumeName == lv.Name {
			out[rep.Spec.NodeName] = true
		}
	}
	return out, nil
}

// addReplica creates the new replica (marked sync-pending, so the target's
// node agent copies the data in), adds the target to the volume's
// placement and group entry, and waits for the replica to be allocated.
func (r *Reconciler) addReplica(ctx context.Context, c *v1.LocalVolumeConvert) (ctrl.Result, error) {
	target, source := c.Annotations[TargetNodeAnnotation], c.Annotations[SourceNodeAnnotation]
	if target == "" || source == "" {
		// Only a hand-edited object gets here: nothing was created.
		return r.fail(ctx, c, "the conversion lost its %s and %s annotations; create a new LocalVolumeConvert", TargetNodeAnnotation, SourceNodeAnnotation)
	}
	lv := &v1.LocalVolume{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: c.Spec.VolumeName}, lv); err != nil {
		if apierrors.IsNotFound(err) {
			return r.rollback(ctx, c, v1.OperationStateFailed, fmt.Sprintf("volume %s was deleted during the conversion", c.Spec.VolumeName))
		}
		return ctrl.Result{}, err
	}
	if !slices.Contains(lv.ReplicaNodes(), source) {
		return r.rollback(ctx, c, v1.OperationStateFailed, fmt.Sprintf("volume %s no longer has its replica on %s (replicas on %s)", lv.Name, source, strings.Join(lv.ReplicaNodes(), ", ")))
	}
	rep, err := r.ensureReplica(ctx, c, lv, target, source)
	if err != nil {
		return ctrl.Result{}, err
	}
	if rep.Annotations[v1.SyncPendingAnnotation] != c.Name {
		return r.rollback(ctx, c, v1.OperationStateFailed, fmt.Sprintf("a replica of %s on %s exists that this conversion did not create", lv.Name, target))
	}
	if err := volumes.Edit(ctx, r.Client, lv.Name, false, func(lv *v1.LocalVolume) { lv.AddReplicaNode(target) }); err != nil {
		return ctrl.Result{}, err
	}
	if err := volumes.EditGroupNodes(ctx, r.Client, lv, false, func(nodes []string) []string {
		if !slices.Contains(nodes, target) && len(nodes) < volumes.MaxGroupNodes {
			nodes = append(nodes, target)
		}
		return nodes
	}); err != nil {
		return ctrl.Result{}, err
	}
	switch {
	case rep.Status.State == v1.StateReady:
	case rep.Status.State == v1.StateNotReady && strings.Contains(rep.Status.Message, "insufficient capacity"):
		return r.rollback(ctx, c, v1.OperationStateFailed, fmt.Sprintf("%s could not allocate the new replica: %s", target, rep.Status.Message))
	default:
		msg := fmt.Sprintf("allocating the new replica %s on %s", rep.Name, target)
		if rep.Status.Message != "" {
			msg += ": " + rep.Status.Message
		}
		return ctrl.Result{RequeueAfter: r.RetryInterval}, r.setStatus(ctx, c, func(st *v1.LocalVolumeConvertStatus) { st.Message = msg })
	}
	r.Recorder.Eventf(c, corev1.EventTypeNormal, "ReplicaAdded", "Replica %s allocated on %s; copying the data from %s", rep.Name, target, source)
	return ctrl.Result{}, r.setStatus(ctx, c, func(st *v1.LocalVolumeConvertStatus) {
		st.State = v1.OperationStateSyncReplica
		st.Message = fmt.Sprintf("copying from %s to %s (the volume must not be in use)", source, target)
	})
}

// ensureReplica returns the replica of the volume on target, creating it
// first (before the volume names the target, so the volume controller
// never creates it unmarked). It reads uncached: a replica created by the
// previous reconcile is found, never created twice.
func (r *Reconciler) ensureReplica(ctx context.Context, c *v1.LocalVolumeConvert, lv *v1.LocalVolume, target, source string) (*v1.LocalVolumeReplica, error) {
	name := v1.ReplicaName(lv.Name, target)
	rep := &v1.LocalVolumeReplica{}
	err := r.reader().Get(ctx, client.ObjectKey{Name: name}, rep)
	if err == nil || !apierrors.IsNotFound(err) {
		return rep, err
	}
	rep = &v1.LocalVolumeReplica{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{
			v1.SyncPendingAnnotation: c.Name, v1.SyncSourceAnnotation: source}},
		Spec: v1.LocalVolumeReplicaSpec{VolumeName: lv.Name, NodeName: target, PoolName: lv.Spec.PoolName,
			RequiredCapacityBytes: lv.Spec.RequiredCapacityBytes, VolumeKind: v1.VolumeKindLVM, Striped: lv.Spec.Striped},
	}
	if err := controllerutil.SetControllerReference(lv, rep, r.Client.Scheme()); err != nil {
		return nil, err
	}
	if err := r.Client.Create(ctx, rep); err != nil {
		if apierrors.IsAlreadyExists(err) {
			err = r.reader().Get(ctx, client.ObjectKey{Name: name}, rep)
		}
		return rep, err
	}
	return rep, nil
}

// syncReplica waits for the node agent's verified copy, then makes the
// volume HA.
func (r *Reconciler) syncReplica(ctx context.Context, c *v1.LocalVolumeConvert) (ctrl.Result, error) {
	target, source := c.Annotations[TargetNodeAnnotation], c.Annotations[SourceNodeAnnotation]
	lv := &v1.LocalVolume{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: c.Spec.VolumeName}, lv); err != nil {
		if apierrors.IsNotFound(err) {
			return r.rollback(ctx, c, v1.OperationStateFailed, fmt.Sprintf("volume %s was deleted during the conversion", c.Spec.VolumeName))
		}
		return ctrl.Result{}, err
	}
	// Uncached: a replica the cache has not seen yet is not a lost one.
	rep := &v1.LocalVolumeReplica{}
	if err := r.reader().Get(ctx, client.ObjectKey{Name: v1.ReplicaName(lv.Name, target)}, rep); err != nil {
		if apierrors.IsNotFound(err) {
			return r.rollback(ctx, c, v1.OperationStateFailed, fmt.Sprintf("the new replica of %s on %s disappeared", lv.Name, target))
		}
		return ctrl.Result{}, err
	}
	if rep.DeletionTimestamp != nil || rep.Annotations[v1.SyncPendingAnnotation] != c.Name {
		return r.rollback(ctx, c, v1.OperationStateFailed, fmt.Sprintf("the new replica of %s on %s was deleted or replaced during the copy", lv.Name, target))
	}
	if !rep.Status.Synced || rep.Status.Checksum == "" || rep.Status.State != v1.StateReady {
		size := rep.Spec.RequiredCapacityBytes
		pct := int64(0)
		if size > 0 {
			pct = min(100, rep.Status.SyncedBytes*100/size)
		}
		msg := fmt.Sprintf("copying from %s to %s: %d%% (%s of %s)", source, target, pct, v1.FormatBytes(rep.Status.SyncedBytes), v1.FormatBytes(size))
		if rep.Status.Synced && rep.Status.Checksum != "" {
			msg = fmt.Sprintf("the copy on %s is verified; waiting for the replica to be Ready (it is %s)", target, stateOr(rep.Status.State, "not reported"))
		}
		if m := rep.Status.Message; m != "" {
			msg += "; " + m
			if !strings.Contains(c.Status.Message, m) {
				r.Recorder.Eventf(c, corev1.EventTypeWarning, "CopyRetrying", "Replica %s on %s: %s", rep.Name, target, m)
			}
		}
		return ctrl.Result{RequeueAfter: r.RetryInterval}, r.setStatus(ctx, c, func(st *v1.LocalVolumeConvertStatus) { st.Message = msg })
	}
	// Verified: the volume is HA from now on.
	ha := false
	if err := volumes.Edit(ctx, r.Client, lv.Name, false, func(lv *v1.LocalVolume) {
		if nodes := lv.ReplicaNodes(); slices.Contains(nodes, source) && slices.Contains(nodes, target) {
			lv.Spec.ReplicaNumber, ha = 2, true
		}
	}); err != nil {
		return ctrl.Result{}, err
	}
	if !ha {
		return r.rollback(ctx, c, v1.OperationStateFailed, fmt.Sprintf("volume %s no longer lists both %s and %s as replicas", lv.Name, source, target))
	}
	msg := fmt.Sprintf("volume %s is HA: replicas on %s and %s; the copy on %s was verified", lv.Name, source, target, target)
	r.Recorder.Event(c, corev1.EventTypeNormal, "Completed", msg)
	if err := r.setStatus(ctx, c, func(st *v1.LocalVolumeConvertStatus) {
		st.State, st.Message = v1.OperationStateCompleted, msg
	}); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, r.releaseReplica(ctx, c)
}

// releaseReplica removes the sync annotations from the new replica of a
// completed conversion: it is an ordinary replica now. It runs on every
// reconcile of a Completed conversion, so a restart between the state
// change and this patch finishes it.
func (r *Reconciler) releaseReplica(ctx context.Context, c *v1.LocalVolumeConvert) error {
	target := c.Annotations[TargetNodeAnnotation]
	if target == "" {
		return nil
	}
	rep := &v1.LocalVolumeReplica{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(c.Spec.VolumeName, target)}, rep); err != nil {
		return client.IgnoreNotFound(err)
	}
	if rep.Annotations[v1.SyncPendingAnnotation] != c.Name {
		return nil
	}
	patch := client.MergeFrom(rep.DeepCopy())
	delete(rep.Annotations, v1.SyncPendingAnnotation)
	delete(rep.Annotations, v1.SyncSourceAnnotation)
	return r.Client.Patch(ctx, rep, patch)
}

// rollback undoes AddReplica: the target leaves the volume's placement and
// its group entry, and the new replica is deleted if this conversion made
// it; the original replica is never touched. It ends in state with msg.
func (r *Reconciler) rollback(ctx context.Context, c *v1.LocalVolumeConvert, state v1.State, msg string) (ctrl.Result, error) {
	target, source := c.Annotations[TargetNodeAnnotation], c.Annotations[SourceNodeAnnotation]
	started, foreign := false, false
	switch c.Status.State {
	case v1.OperationStateAddReplica, v1.OperationStateSyncReplica, v1.OperationStateAborting:
		started = target != ""
	}
	if started && state == v1.OperationStateAborted && c.Status.State != v1.OperationStateAborting {
		// Record the intent first, so a restart mid-rollback finishes it
		// even if spec.abort were cleared.
		if err := r.setStatus(ctx, c, func(st *v1.LocalVolumeConvertStatus) {
			st.State, st.Message = v1.OperationStateAborting, "rolling back: removing the replica on "+target
		}); err != nil {
			return ctrl.Result{}, err
		}
	}
	if started {
		err := volumes.Edit(ctx, r.Client, c.Spec.VolumeName, false, func(lv *v1.LocalVolume) {
			if lv.Spec.ReplicaNumber < 2 && slices.Contains(lv.ReplicaNodes(), source) {
				lv.RemoveReplicaNode(target)
			}
		})
		if client.IgnoreNotFound(err) != nil {
			return ctrl.Result{}, err
		}
		lv := &v1.LocalVolume{}
		if err := r.Client.Get(ctx, client.ObjectKey{Name: c.Spec.VolumeName}, lv); err == nil && lv.Spec.ReplicaNumber < 2 {
			if err := volumes.EditGroupNodes(ctx, r.Client, lv, false, func(nodes []string) []string {
				if !slices.Contains(nodes, source) {
					return nodes
				}
				return slices.DeleteFunc(nodes, func(n string) bool { return n == target })
			}); err != nil {
				return ctrl.Result{}, err
			}
		} else if client.IgnoreNotFound(err) != nil {
			return ctrl.Result{}, err
		}
		rep := &v1.LocalVolumeReplica{}
		err = r.reader().Get(ctx, client.ObjectKey{Name: v1.ReplicaName(c.Spec.VolumeName, target)}, rep)
		switch {
		case err == nil && rep.Annotations[v1.SyncPendingAnnotation] != c.Name:
			foreign = true
		case err == nil && rep.DeletionTimestamp == nil:
			if err := r.Client.Delete(ctx, rep, client.Preconditions{UID: &rep.UID}); client.IgnoreNotFound(err) != nil {
				return ctrl.Result{}, err
			}
		case client.IgnoreNotFound(err) != nil:
			return ctrl.Result{}, err
		}
	}
	switch {
	case started && foreign:
		msg += fmt.Sprintf("; %s was removed from the volume (its replica object is left: this conversion did not make it), the volume keeps its replica on %s", target, source)
	case started && state == v1.OperationStateAborted:
		msg += fmt.Sprintf("; the replica on %s was removed, the volume keeps its replica on %s", target, source)
	case started:
		msg += fmt.Sprintf("; rolled back, the volume keeps its replica on %s", source)
	case state == v1.OperationStateAborted:
		msg += "; nothing was changed"
	}
	reason, eventType := "Aborted", corev1.EventTypeNormal
	if state == v1.OperationStateFailed {
		reason, eventType = "ConvertFailed", corev1.EventTypeWarning
	}
	r.Recorder.Event(c, eventType, reason, msg)
	return ctrl.Result{}, r.setStatus(ctx, c, func(st *v1.LocalVolumeConvertStatus) {
		st.State, st.Message = state, msg
	})
}

// reader is APIReader, or Client for a Reconciler used without
// SetupWithManager.
func (r *Reconciler) reader() client.Reader {
	if r.APIReader != nil {
		return r.APIReader
	}
	return r.Client
}

// setStatus applies change to c's status and writes it when it changed.
func (r *Reconciler) setStatus(ctx context.Context, c *v1.LocalVolumeConvert, change func(*v1.LocalVolumeConvertStatus)) error {
	st := c.Status.DeepCopy()
	change(st)
	if equality.Semantic.DeepEqual(st, &c.Status) {
		return nil
	}
	c.Status = *st
	return r.Client.Status().Update(ctx, c)
}

const (
	kindConvert = "LocalVolumeConvert"
	kindExpand  = "LocalVolumeExpand"
)

func stateOr(s v1.State, def string) string {
	if s == "" {
		return def
	}
	return string(s)
}
