// Package expand reconciles LocalVolumeExpands: it grows a volume to
// spec.requiredCapacityBytes once every replica's pool can hold the growth.
// Submitted → InProgress → Completed, or Failed (nothing changed) /
// Aborted (only before InProgress: volumes never shrink, so a started
// expansion cannot be undone). The volume controller grows the replicas and
// the node agents the logical volumes; this controller decides and waits.
package expand

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/internal/volumes"
	"hwameistor.io/local/internal/placement"
)

// DefaultRetryInterval is how often a waiting expansion looks again when no
// event wakes it.
const DefaultRetryInterval = 5 * time.Second

// Reconciler reconciles LocalVolumeExpands.
type Reconciler struct {
	Client   client.Client
	Recorder record.EventRecorder
	// APIReader reads the capacity view uncached, so two expansions in a
	// row never both count on the same free space; the manager's API
	// reader when nil.
	APIReader client.Reader
	// RetryInterval is how often waiting states look again;
	// DefaultRetryInterval when zero.
	RetryInterval time.Duration
}

var _ reconcile.Reconciler = &Reconciler{}

// +kubebuilder:rbac:groups=hwameistor.io,resources=localvolumeexpands,verbs=get;list;watch
// +kubebuilder:rbac:groups=hwameistor.io,resources=localvolumeexpands/status,verbs=update
// +kubebuilder:rbac:groups=hwameistor.io,resources=localvolumes,verbs=get;list;watch;update
// +kubebuilder:rbac:groups=hwameistor.io,resources=localvolumereplicas;localvolumegroups;localstoragenodes;localvolumemigrates;localvolumeconverts,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// SetupWithManager registers the controller (named localvolumeexpand).
// Replicas (their allocated size), volumes, migrations, conversions and
// other expansions wake the unfinished expansions of their volume. One
// worker: each capacity decision sees the previous one's volume update.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	if r.RetryInterval == 0 {
		r.RetryInterval = DefaultRetryInterval
	}
	byVolume := handler.EnqueueRequestsFromMapFunc(r.byVolume)
	return ctrl.NewControllerManagedBy(mgr).
		Named("localvolumeexpand").
		For(&v1.LocalVolumeExpand{}).
		Watches(&v1.LocalVolumeReplica{}, byVolume).
		Watches(&v1.LocalVolume{}, byVolume).
		Watches(&v1.LocalVolumeMigrate{}, byVolume).
		Watches(&v1.LocalVolumeConvert{}, byVolume).
		Complete(r)
}

// byVolume maps an object to the unfinished expansions of the volumes it
// names (another expansion's end wakes the next one of its volume).
func (r *Reconciler) byVolume(ctx context.Context, o client.Object) []reconcile.Request {
	var names []string
	switch o := o.(type) {
	case *v1.LocalVolumeReplica:
		names = []string{o.Spec.VolumeName}
	case *v1.LocalVolume:
		names = []string{o.Name}
	case *v1.LocalVolumeMigrate:
		names = append([]string{o.Spec.VolumeName}, o.Status.Volumes...)
	case *v1.LocalVolumeConvert:
		names = []string{o.Spec.VolumeName}
	}
	list := &v1.LocalVolumeExpandList{}
	if err := r.Client.List(ctx, list); err != nil {
		return nil
	}
	var out []reconcile.Request
	for i := range list.Items {
		e := &list.Items[i]
		if !e.Status.State.Finished() && slices.Contains(names, e.Spec.VolumeName) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKey{Name: e.Name}})
		}
	}
	return out
}

const abortIgnored = "abort ignored: "

// Reconcile moves one expansion forward.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	// Uncached: a step taken on a stale object (an earlier state) could
	// redo what a later one undid.
	e := &v1.LocalVolumeExpand{}
	if err := r.reader().Get(ctx, req.NamespacedName, e); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if e.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	state := e.Status.State
	if state == "" {
		state = v1.OperationStateSubmitted
	}
	switch state {
	case v1.OperationStateCompleted:
		if e.Spec.Abort && !strings.HasPrefix(e.Status.Message, abortIgnored) {
			r.Recorder.Event(e, corev1.EventTypeWarning, "AbortIgnored", "The expansion already completed; spec.abort has no effect")
			return ctrl.Result{}, r.setStatus(ctx, e, func(st *v1.LocalVolumeExpandStatus) {
				st.Message = abortIgnored + "the expansion already completed; " + st.Message
			})
		}
		return ctrl.Result{}, nil
	case v1.OperationStateFailed, v1.OperationStateAborted:
		return ctrl.Result{}, nil
	case v1.OperationStateSubmitted:
		if e.Spec.Abort {
			msg := "aborted by spec.abort; nothing was changed"
			r.Recorder.Event(e, corev1.EventTypeNormal, "Aborted", msg)
			return ctrl.Result{}, r.setStatus(ctx, e, func(st *v1.LocalVolumeExpandStatus) {
				st.State, st.Message = v1.OperationStateAborted, msg
			})
		}
		return r.submitted(ctx, e)
	case v1.OperationStateInProgress:
		return r.inProgress(ctx, e, false)
	}
	return ctrl.Result{}, nil
}

// fail ends an expansion that changed nothing.
func (r *Reconciler) fail(ctx context.Context, e *v1.LocalVolumeExpand, format string, args ...any) (ctrl.Result, error) {
	msg := fmt.Sprintf(format, args...)
	r.Recorder.Event(e, corev1.EventTypeWarning, "ExpandFailed", msg)
	return ctrl.Result{}, r.setStatus(ctx, e, func(st *v1.LocalVolumeExpandStatus) {
		st.State, st.Message = v1.OperationStateFailed, msg
	})
}

// wait stays Submitted with a message and looks again later; an Event
// tells when the reason changes.
func (r *Reconciler) wait(ctx context.Context, e *v1.LocalVolumeExpand, format string, args ...any) (ctrl.Result, error) {
	msg := fmt.Sprintf(format, args...)
	if msg != e.Status.Message {
		r.Recorder.Event(e, corev1.EventTypeNormal, "Waiting", msg)
	}
	return ctrl.Result{RequeueAfter: r.RetryInterval}, r.setStatus(ctx, e, func(st *v1.LocalVolumeExpandStatus) {
		st.State, st.Message = v1.OperationStateSubmitted, msg
	})
}

// submitted validates the request and checks every replica's pool. The
// decision is recorded (state InProgress) before the volume is changed, so
// an abort either wins entirely or is ignored.
func (r *Reconciler) submitted(ctx context.Context, e *v1.LocalVolumeExpand) (ctrl.Result, error) {
	name, want := e.Spec.VolumeName, e.Spec.RequiredCapacityBytes
	lv := &v1.LocalVolume{}
	if err := r.reader().Get(ctx, client.ObjectKey{Name: name}, lv); err != nil {
		if apierrors.IsNotFound(err) {
			return r.fail(ctx, e, "volume %s not found", name)
		}
		return ctrl.Result{}, err
	}
	if lv.DeletionTimestamp != nil || lv.Spec.Delete {
		return r.fail(ctx, e, "volume %s is being deleted", name)
	}
	cur := lv.Spec.RequiredCapacityBytes
	if want < cur || (want == cur && lv.Status.AllocatedCapacityBytes >= want) {
		msg := fmt.Sprintf("volume %s is already %d bytes (%s); %d bytes (%s) requested: nothing to do",
			name, cur, v1.FormatBytes(cur), want, v1.FormatBytes(want))
		r.Recorder.Event(e, corev1.EventTypeNormal, "Completed", msg)
		return ctrl.Result{}, r.setStatus(ctx, e, func(st *v1.LocalVolumeExpandStatus) {
			st.State, st.Message, st.AllocatedCapacityBytes = v1.OperationStateCompleted, msg, lv.Status.AllocatedCapacityBytes
		})
	}
	if by, err := r.busy(ctx, e); err != nil || by != "" {
		if err != nil {
			return ctrl.Result{}, err
		}
		return r.wait(ctx, e, "waiting: volume %s is being %s", name, by)
	}
	nodes := lv.ReplicaNodes()
	if len(nodes) == 0 {
		return r.wait(ctx, e, "waiting: volume %s has no replica yet (spec.config.replicas is empty)", name)
	}
	if want > cur {
		problems, err := r.checkCapacity(ctx, lv, want, nodes)
		if err != nil {
			return ctrl.Result{}, err
		}
		if len(problems) > 0 {
			return r.fail(ctx, e, "cannot grow %s from %s to %s: %s", name, v1.FormatBytes(cur), v1.FormatBytes(want), strings.Join(problems, "; "))
		}
	}
	r.Recorder.Eventf(e, corev1.EventTypeNormal, "Expanding", "Growing %s from %s to %s on %s", name, v1.FormatBytes(cur), v1.FormatBytes(want), strings.Join(nodes, ", "))
	if err := r.setStatus(ctx, e, func(st *v1.LocalVolumeExpandStatus) {
		st.State = v1.OperationStateInProgress
		st.Message = fmt.Sprintf("growing %s from %s to %s on %s", name, v1.FormatBytes(cur), v1.FormatBytes(want), strings.Join(nodes, ", "))
	}); err != nil {
		return ctrl.Result{}, err
	}
	return r.inProgress(ctx, e, true)
}

// busy names an unfinished migration or conversion of the volume, or an
// older unfinished expansion of it; "" when none. A migration or
// conversion copies the volume's data, which must not grow under the copy;
// conversions and expansions of one volume run oldest first.
func (r *Reconciler) busy(ctx context.Context, e *v1.LocalVolumeExpand) (string, error) {
	name := e.Spec.VolumeName
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
	converts := &v1.LocalVolumeConvertList{}
	if err := r.Client.List(ctx, converts); err != nil {
		return "", err
	}
	for i := range converts.Items {
		c := &converts.Items[i]
		if c.Spec.VolumeName == name && !c.Status.State.Finished() && v1.OperationBefore(c, kindConvert, e, kindExpand) {
			return "converted by " + c.Name, nil
		}
	}
	expands := &v1.LocalVolumeExpandList{}
	if err := r.Client.List(ctx, expands); err != nil {
		return "", err
	}
	for i := range expands.Items {
		o := &expands.Items[i]
		if o.Name != e.Name && o.Spec.VolumeName == name && !o.Status.State.Finished() && v1.OperationBefore(o, kindExpand, e, kindExpand) {
			return "expanded by " + o.Name, nil
		}
	}
	return "", nil
}

// checkCapacity says, per replica node, why the pool cannot hold the
// growth of lv to want bytes (nothing when it can). It uses the scheduler's
// view: the node's pool status, less every placement persisted but not yet
// counted by the node (placement.Cache), less the growth other expansions
// promised and the node has not made yet.
//
// The growth is not a new volume, so it is checked in bytes only
// (Cache.Check on a Volume would also ask for a free volume slot, and a
// pool with no slot left could still grow its volumes).
func (r *Reconciler) checkCapacity(ctx context.Context, lv *v1.LocalVolume, want int64, nodes []string) ([]string, error) {
	pool, ok := placement.PoolByName(lv.Spec.PoolName)
	if !ok {
		return []string{fmt.Sprintf("unknown pool %s", lv.Spec.PoolName)}, nil
	}
	view, err := volumes.LoadCapacity(ctx, r.reader())
	if err != nil {
		return nil, err
	}
	cache := view.Cache
	byNode := map[string]*v1.LocalStorageNode{}
	for i := range view.Nodes {
		byNode[view.Nodes[i].Name] = &view.Nodes[i]
	}
	size := map[string]int64{}
	for _, v := range view.Volumes {
		if v.DeletionTimestamp == nil && !v.Spec.Delete {
			size[v.Name] = v.Spec.RequiredCapacityBytes
		}
	}
	reps := &v1.LocalVolumeReplicaList{}
	if err := r.reader().List(ctx, reps); err != nil {
		return nil, err
	}
	// Growth in flight: a volume the node already counts (its pool status
	// lists it) whose replica is smaller than the volume's size.
	growing := map[string]int64{}
	for _, rep := range reps.Items {
		lsn := byNode[rep.Spec.NodeName]
		if lsn == nil || rep.Spec.PoolName != lv.Spec.PoolName || rep.Status.AllocatedCapacityBytes <= 0 {
			continue
		}
		p := lsn.Status.Pools[lv.Spec.PoolName]
		if !slices.Contains(p.Volumes, rep.Spec.VolumeName) {
			continue
		}
		if d := v1.RoundUpToExtent(size[rep.Spec.VolumeName], p.ExtentSizeBytes) - v1.RoundUpToExtent(rep.Status.AllocatedCapacityBytes, p.ExtentSizeBytes); d > 0 {
			growing[rep.Spec.NodeName] += d
		}
	}
	var problems []string
	for _, node := range nodes {
		if reason := cache.Check(node, nil); reason != "" {
			problems = append(problems, fmt.Sprintf("node %s: %s", node, reason))
			continue
		}
		p, ok := byNode[node].Status.Pools[lv.Spec.PoolName]
		if !ok {
			problems = append(problems, fmt.Sprintf("node %s has no pool %s", node, lv.Spec.PoolName))
			continue
		}
		if p.VolumeCapacityBytesLimit > 0 && want > p.VolumeCapacityBytesLimit {
			problems = append(problems, fmt.Sprintf("node %s pool %s takes volumes up to %s, %s requested",
				node, lv.Spec.PoolName, v1.FormatBytes(p.VolumeCapacityBytesLimit), v1.FormatBytes(want)))
			continue
		}
		need := v1.RoundUpToExtent(want, p.ExtentSizeBytes) - v1.RoundUpToExtent(lv.Spec.RequiredCapacityBytes, p.ExtentSizeBytes)
		reserved, _ := cache.Reserved(node, pool)
		held := reserved + growing[node]
		if free := p.FreeCapacityBytes - held; free < need {
			msg := fmt.Sprintf("node %s pool %s: need %s, free %s", node, lv.Spec.PoolName, v1.FormatBytes(need), v1.FormatBytes(free))
			if held > 0 {
				msg += fmt.Sprintf(" (%s reserved in flight)", v1.FormatBytes(held))
			}
			problems = append(problems, msg)
		}
	}
	return problems, nil
}

// inProgress grows the volume (idempotent) and waits until every replica
// holds the new size. checked says the capacity for want was just checked;
// otherwise a volume still smaller than want (a restart right after the
// decision, or spec.requiredCapacityBytes raised since) is checked again,
// and a refusal leaves the volume as it is.
func (r *Reconciler) inProgress(ctx context.Context, e *v1.LocalVolumeExpand, checked bool) (ctrl.Result, error) {
	name, want := e.Spec.VolumeName, e.Spec.RequiredCapacityBytes
	if !checked {
		lv := &v1.LocalVolume{}
		if err := r.reader().Get(ctx, client.ObjectKey{Name: name}, lv); err != nil {
			if apierrors.IsNotFound(err) {
				return r.fail(ctx, e, "volume %s was deleted during the expansion", name)
			}
			return ctrl.Result{}, err
		}
		if cur := lv.Spec.RequiredCapacityBytes; want > cur {
			problems, err := r.checkCapacity(ctx, lv, want, lv.ReplicaNodes())
			if err != nil {
				return ctrl.Result{}, err
			}
			if len(problems) > 0 {
				return r.fail(ctx, e, "cannot grow %s from %s to %s: %s; the volume stays at %s", name,
					v1.FormatBytes(cur), v1.FormatBytes(want), strings.Join(problems, "; "), v1.FormatBytes(cur))
			}
		}
	}
	prefix := ""
	if e.Spec.Abort {
		prefix = abortIgnored + "the volume is already growing; "
		if !strings.HasPrefix(e.Status.Message, abortIgnored) {
			r.Recorder.Event(e, corev1.EventTypeWarning, "AbortIgnored", "The volume is already growing and volumes never shrink; spec.abort has no effect")
		}
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		lv := &v1.LocalVolume{}
		if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, lv); err != nil {
			return err
		}
		before := lv.DeepCopy()
		lv.Spec.RequiredCapacityBytes = max(lv.Spec.RequiredCapacityBytes, want)
		if lv.Spec.Config != nil {
			lv.Spec.Config.RequiredCapacityBytes = max(lv.Spec.Config.RequiredCapacityBytes, want)
		}
		if equality.Semantic.DeepEqual(before, lv) {
			return nil
		}
		return r.Client.Update(ctx, lv)
	})
	if apierrors.IsNotFound(err) {
		return r.fail(ctx, e, "volume %s was deleted during the expansion", name)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	lv := &v1.LocalVolume{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, lv); err != nil {
		return ctrl.Result{}, err
	}
	nodes := lv.ReplicaNodes()
	var pending []string
	allocated := int64(-1)
	for _, node := range nodes {
		rep := &v1.LocalVolumeReplica{}
		err := r.Client.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(name, node)}, rep)
		if client.IgnoreNotFound(err) != nil {
			return ctrl.Result{}, err
		}
		got := rep.Status.AllocatedCapacityBytes
		if err == nil && (allocated < 0 || got < allocated) {
			allocated = got
		}
		if err == nil && got >= want {
			continue
		}
		p := fmt.Sprintf("%s has %s", node, v1.FormatBytes(got))
		if err != nil {
			p = node + " has no replica object yet"
		} else if rep.Status.Message != "" {
			p += " (" + rep.Status.Message + ")"
		}
		pending = append(pending, p)
	}
	if len(nodes) == 0 || len(pending) > 0 {
		msg := fmt.Sprintf("%swaiting for the replicas to grow to %s: %s", prefix, v1.FormatBytes(want), strings.Join(pending, ", "))
		return ctrl.Result{RequeueAfter: r.RetryInterval}, r.setStatus(ctx, e, func(st *v1.LocalVolumeExpandStatus) {
			st.Message = msg
			st.AllocatedCapacityBytes = max(allocated, 0)
		})
	}
	msg := fmt.Sprintf("volume %s is %s on %s", name, v1.FormatBytes(allocated), strings.Join(nodes, ", "))
	r.Recorder.Event(e, corev1.EventTypeNormal, "Completed", msg)
	return ctrl.Result{}, r.setStatus(ctx, e, func(st *v1.LocalVolumeExpandStatus) {
		st.State, st.Message, st.AllocatedCapacityBytes = v1.OperationStateCompleted, prefix+msg, allocated
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

// setStatus applies change to e's status and writes it when it changed.
func (r *Reconciler) setStatus(ctx context.Context, e *v1.LocalVolumeExpand, change func(*v1.LocalVolumeExpandStatus)) error {
	st := e.Status.DeepCopy()
	change(st)
	if equality.Semantic.DeepEqual(st, &e.Status) {
		return nil
	}
	e.Status = *st
	return r.Client.Status().Update(ctx, e)
}

const (
	kindConvert = "LocalVolumeConvert"
	kindExpand  = "LocalVolumeExpand"
)
