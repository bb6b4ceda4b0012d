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
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/internal/operation"
	"hwameistor.io/local/controllers/internal/volumes"
	"hwameistor.io/local/internal/placement"
)

// Reconciler reconciles LocalVolumeExpands on the operation engine.
type Reconciler struct {
	Client   client.Client
	Recorder record.EventRecorder
	// APIReader reads the capacity view uncached, so two expansions in a
	// row never both count on the same free space; the manager's API
	// reader when nil.
	APIReader client.Reader
	// RetryInterval is how often waiting states look again;
	// operation.DefaultRetryInterval when zero.
	RetryInterval time.Duration

	engine *operation.Engine
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
	r.engine = &operation.Engine{Client: r.Client, Recorder: r.Recorder, APIReader: r.APIReader, RetryInterval: r.RetryInterval,
		Kind: operation.Kind{
			New:          func() v1.Operation { return &v1.LocalVolumeExpand{} },
			FailedReason: "ExpandFailed",
			Noun:         "expansion",
			Submitted:    operation.StepOf(r.submitted),
			Steps: map[v1.State]operation.Step{
				v1.OperationStateInProgress: operation.StepOf(func(ctx context.Context, e *v1.LocalVolumeExpand) (ctrl.Result, error) {
					return r.inProgress(ctx, e, false)
				}),
			},
			// Volumes never shrink: once the volume grows, it stays.
			Committed:       func(s v1.State) bool { return s == v1.OperationStateInProgress },
			AbortIgnoredWhy: func(v1.Operation) string { return "the volume is already growing" },
			Cause:           func(v1.Operation, operation.Why) string { return "aborted by spec.abort" },
			// Only a Submitted expansion is rolled back, and it changed nothing.
			Undo: func(_ context.Context, _ v1.Operation, _ v1.State, cause string, _ bool) (string, error) {
				return cause + "; nothing was changed", nil
			},
		}}
	wake := r.engine.WakeOnVolumes(func() client.ObjectList { return &v1.LocalVolumeExpandList{} })
	return ctrl.NewControllerManagedBy(mgr).
		Named("localvolumeexpand").
		For(&v1.LocalVolumeExpand{}).
		Watches(&v1.LocalVolumeReplica{}, wake).
		Watches(&v1.LocalVolume{}, wake).
		Watches(&v1.LocalVolumeMigrate{}, wake).
		Watches(&v1.LocalVolumeConvert{}, wake).
		Watches(&v1.LocalVolumeExpand{}, wake).
		Complete(r)
}

// Reconcile moves one expansion forward (operation.Engine).
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return r.engine.Reconcile(ctx, req)
}

// submitted validates the request and checks every replica's pool. The
// decision is recorded (state InProgress) before the volume is changed, so
// an abort either wins entirely or is ignored.
func (r *Reconciler) submitted(ctx context.Context, e *v1.LocalVolumeExpand) (ctrl.Result, error) {
	name, want := e.Spec.VolumeName, e.Spec.RequiredCapacityBytes
	lv := &v1.LocalVolume{}
	if err := r.engine.Reader().Get(ctx, client.ObjectKey{Name: name}, lv); err != nil {
		if apierrors.IsNotFound(err) {
			return r.engine.Fail(ctx, e, "volume %s not found", name)
		}
		return ctrl.Result{}, err
	}
	if lv.DeletionTimestamp != nil || lv.Spec.Delete {
		return r.engine.Fail(ctx, e, "volume %s is being deleted", name)
	}
	cur := lv.Spec.RequiredCapacityBytes
	if want < cur || (want == cur && lv.Status.AllocatedCapacityBytes >= want) {
		msg := fmt.Sprintf("volume %s is already %d bytes (%s); %d bytes (%s) requested: nothing to do",
			name, cur, v1.FormatBytes(cur), want, v1.FormatBytes(want))
		return r.engine.Advance(ctx, e, v1.OperationStateCompleted, msg,
			func() { e.Status.AllocatedCapacityBytes = lv.Status.AllocatedCapacityBytes }, "Completed", msg)
	}
	blockers, err := operation.Blockers(ctx, r.engine.Reader(), e, []string{name})
	if err != nil {
		return ctrl.Result{}, err
	}
	if len(blockers) > 0 {
		return r.engine.Wait(ctx, e, v1.OperationStateSubmitted, "waiting: volume %s is being %s", name, operation.Doing(blockers[0]))
	}
	nodes := lv.ReplicaNodes()
	if len(nodes) == 0 {
		return r.engine.Wait(ctx, e, v1.OperationStateSubmitted, "waiting: volume %s has no replica yet (spec.config.replicas is empty)", name)
	}
	if want > cur {
		problems, err := r.checkCapacity(ctx, lv, want, nodes)
		if err != nil {
			return ctrl.Result{}, err
		}
		if len(problems) > 0 {
			return r.engine.Fail(ctx, e, "cannot grow %s from %s to %s: %s", name, v1.FormatBytes(cur), v1.FormatBytes(want), strings.Join(problems, "; "))
		}
	}
	growing := fmt.Sprintf("growing %s from %s to %s on %s", name, v1.FormatBytes(cur), v1.FormatBytes(want), strings.Join(nodes, ", "))
	if _, err := r.engine.Advance(ctx, e, v1.OperationStateInProgress, growing, nil, "Expanding", fmt.Sprintf("Growing %s from %s to %s on %s", name, v1.FormatBytes(cur), v1.FormatBytes(want), strings.Join(nodes, ", "))); err != nil {
		return ctrl.Result{}, err
	}
	return r.inProgress(ctx, e, true)
}

// checkCapacity says, per replica node, why the pool cannot hold the
// growth of lv to want bytes (nothing when it can), from the scheduler's
// view (placement.View): the node's pool status, less every placement
// persisted but not yet counted by the node, less the growth other
// expansions promised and the node has not made yet.
func (r *Reconciler) checkCapacity(ctx context.Context, lv *v1.LocalVolume, want int64, nodes []string) ([]string, error) {
	pool, ok := placement.PoolByName(lv.Spec.PoolName)
	if !ok {
		return []string{fmt.Sprintf("unknown pool %s", lv.Spec.PoolName)}, nil
	}
	view, err := volumes.LoadCapacity(ctx, r.engine.Reader())
	if err != nil {
		return nil, err
	}
	var problems []string
	for _, node := range nodes {
		switch reason := view.CheckGrowth(node, pool, lv.Spec.RequiredCapacityBytes, want); reason.Code {
		case placement.Fits:
		case placement.NoPool:
			problems = append(problems, fmt.Sprintf("node %s has no pool %s", node, lv.Spec.PoolName))
		case placement.InsufficientCapacity, placement.VolumeTooLarge: // "pool ...: need 4Gi, free 2Gi"
			problems = append(problems, fmt.Sprintf("node %s %s", node, reason))
		default:
			problems = append(problems, fmt.Sprintf("node %s: %s", node, reason))
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
		if err := r.engine.Reader().Get(ctx, client.ObjectKey{Name: name}, lv); err != nil {
			if apierrors.IsNotFound(err) {
				return r.engine.Fail(ctx, e, "volume %s was deleted during the expansion", name)
			}
			return ctrl.Result{}, err
		}
		if cur := lv.Spec.RequiredCapacityBytes; want > cur {
			problems, err := r.checkCapacity(ctx, lv, want, lv.ReplicaNodes())
			if err != nil {
				return ctrl.Result{}, err
			}
			if len(problems) > 0 {
				return r.engine.Fail(ctx, e, "cannot grow %s from %s to %s: %s; the volume stays at %s", name,
					v1.FormatBytes(cur), v1.FormatBytes(want), strings.Join(problems, "; "), v1.FormatBytes(cur))
			}
		}
	}
	err := volumes.Edit(ctx, r.Client, name, false, func(lv *v1.LocalVolume) {
		lv.Spec.RequiredCapacityBytes = max(lv.Spec.RequiredCapacityBytes, want)
		if lv.Spec.Config != nil {
			lv.Spec.Config.RequiredCapacityBytes = max(lv.Spec.Config.RequiredCapacityBytes, want)
		}
	})
	if apierrors.IsNotFound(err) {
		return r.engine.Fail(ctx, e, "volume %s was deleted during the expansion", name)
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
		got := rep.UsableBytes() // a DRBD replica: once its device grew too
		if err == nil && (allocated < 0 || got < allocated) {
			allocated = got
		}
		if err == nil && got >= want {
			continue
		}
		p := fmt.Sprintf("%s has %s", node, v1.FormatBytes(got))
		switch {
		case err != nil:
			p = node + " has no replica object yet"
		case rep.Status.Message != "":
			p += " (" + rep.Status.Message + ")"
		case got < rep.Status.AllocatedCapacityBytes:
			p += fmt.Sprintf(" (its logical volume has %s; its DRBD device grows once both replicas have grown and are connected)", v1.FormatBytes(rep.Status.AllocatedCapacityBytes))
		}
		pending = append(pending, p)
	}
	if len(nodes) == 0 || len(pending) > 0 {
		msg := fmt.Sprintf("waiting for the replicas to grow to %s: %s", v1.FormatBytes(want), strings.Join(pending, ", "))
		return r.engine.Progress(ctx, e, msg, func() { e.Status.AllocatedCapacityBytes = max(allocated, 0) })
	}
	msg := fmt.Sprintf("volume %s is %s on %s", name, v1.FormatBytes(allocated), strings.Join(nodes, ", "))
	return r.engine.Advance(ctx, e, v1.OperationStateCompleted, msg, func() { e.Status.AllocatedCapacityBytes = allocated }, "Completed", msg)
}
