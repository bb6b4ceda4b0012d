// Package operation is the engine the volume operations run on
// (LocalVolumeMigrate, LocalVolumeConvert, LocalVolumeExpand; next the
// snapshot restores and HA rebuilds). A kind declares its steps, what
// undoing it means and where it can no longer be undone; the engine owns
// what they share: reading the object, the one-state-per-reconcile loop,
// admission (one operation per volume at a time, oldest first), abort,
// deadline, rollback, the cleanup finalizer, status writes with the
// Finished condition, Events, and the replica steps (add a replica, wait
// for its verified copy, switch, remove) in replicas.go.
package operation

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// DefaultRetryInterval is how often a waiting operation looks again when
// no event wakes it.
const DefaultRetryInterval = 5 * time.Second

// AbortIgnored starts the message of an operation whose abort came too late.
const AbortIgnored = "abort ignored: "

// Step moves an operation forward from one state.
type Step func(ctx context.Context, op v1.Operation) (ctrl.Result, error)

// Kind declares one kind of operation.
type Kind struct {
	// New returns an empty object of the kind.
	New func() v1.Operation
	// FailedReason is the reason of the Warning Event of a failure.
	FailedReason string
	// Noun names one operation of the kind in messages: "migration".
	Noun string
	// Steps run the states after Submitted; Submitted runs Admit.
	Submitted Step
	Steps     map[v1.State]Step
	// Committed says whether a state is past the point of no return: an
	// abort is then ignored (AbortIgnoredWhy says why, in every message
	// that follows), and a deletion finishes the operation first.
	Committed       func(v1.State) bool
	AbortIgnoredWhy func(op v1.Operation) string
	// Undo removes what the operation added (never what the volume had)
	// and returns the message of its end, given the cause; started says
	// whether the operation got past Submitted.
	Undo func(ctx context.Context, op v1.Operation, end v1.State, cause string, started bool) (string, error)
	// Cause words the cause of a rollback the engine starts.
	Cause func(op v1.Operation, why Why) string
	// Completed runs on every reconcile of a Completed operation: an
	// idempotent cleanup that a restart right after the end finishes.
	Completed func(ctx context.Context, op v1.Operation) error
	// Deadline bounds a running operation from StartTime (0: none).
	Deadline  time.Duration
	StartTime func(op v1.Operation) *metav1.Time
	// Finalizer, when set, is held exactly while the operation runs, so a
	// deletion rolls it back (or finishes it) first.
	Finalizer string
	// Ended marks the status of an operation that ends (migrations keep
	// their completion time).
	Ended func(op v1.Operation, now time.Time)
	// Observe sees every status write (metrics), with the object before it.
	Observe func(before, after v1.Operation, now time.Time)
	// Cached reads the object through the manager's cache; otherwise
	// uncached, so a step never runs on an older state than the last one
	// written.
	Cached bool
}

// Why is what made the engine roll an operation back.
type Why int

const (
	// Aborted: spec.abort.
	Aborted Why = iota
	// DeadlineExceeded: Kind.Deadline passed.
	DeadlineExceeded
	// Deleted: the object was deleted before it ended.
	Deleted
)

// Engine runs the operations of one kind.
type Engine struct {
	Client   client.Client
	Recorder record.EventRecorder
	// APIReader reads uncached (Client when nil).
	APIReader client.Reader
	// RetryInterval is how often waiting states look again.
	RetryInterval time.Duration
	// Now is the clock (tests).
	Now  func() time.Time
	Kind Kind

	// ended holds the operations this process moved to a terminal state,
	// until a read shows that state: a reconcile reading an older copy
	// would redo a step the rollback has just undone.
	endedMu sync.Mutex
	ended   map[types.UID]bool
}

// Reader is the uncached reader.
func (e *Engine) Reader() client.Reader {
	if e.APIReader != nil {
		return e.APIReader
	}
	return e.Client
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Engine) retry() time.Duration {
	if e.RetryInterval > 0 {
		return e.RetryInterval
	}
	return DefaultRetryInterval
}

// State is the operation's state, Submitted when none is written yet.
func State(op v1.Operation) v1.State {
	st, _, _ := op.OperationStatus()
	if *st == "" {
		return v1.OperationStateSubmitted
	}
	return *st
}

// Message is the operation's status message.
func Message(op v1.Operation) string {
	_, msg, _ := op.OperationStatus()
	return *msg
}

// Reconcile moves one operation forward by at most one state.
func (e *Engine) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	op := e.Kind.New()
	var r client.Reader = e.Client
	if !e.Kind.Cached {
		r = e.Reader()
	}
	if err := r.Get(ctx, req.NamespacedName, op); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if e.lagsEnd(op) {
		// The update event of the terminal state wakes it again.
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	state := State(op)
	if op.GetDeletionTimestamp() != nil {
		return e.deleted(ctx, op, state)
	}
	if f := e.Kind.Finalizer; f != "" && !state.Finished() != controllerutil.ContainsFinalizer(op, f) {
		if err := e.patchFinalizer(ctx, op, !state.Finished()); err != nil {
			return ctrl.Result{}, err
		}
	}
	switch state {
	case v1.OperationStateCompleted:
		if op.AbortRequested() && !strings.HasPrefix(Message(op), AbortIgnored) {
			e.Recorder.Eventf(op, corev1.EventTypeWarning, "AbortIgnored", "The %s already completed; spec.abort has no effect", e.Kind.Noun)
			if err := e.write(ctx, op, state, AbortIgnored+"the "+e.Kind.Noun+" already completed; "+Message(op), nil); err != nil {
				return ctrl.Result{}, err
			}
		}
		if e.Kind.Completed != nil {
			return ctrl.Result{}, e.Kind.Completed(ctx, op)
		}
		return ctrl.Result{}, nil
	case v1.OperationStateFailed, v1.OperationStateAborted:
		return ctrl.Result{}, nil
	}
	if e.committed(state) {
		if op.AbortRequested() && !strings.HasPrefix(Message(op), AbortIgnored) {
			e.Recorder.Eventf(op, corev1.EventTypeWarning, "AbortIgnored", "%s; spec.abort has no effect", e.Kind.AbortIgnoredWhy(op))
		}
	} else {
		if op.AbortRequested() || state == v1.OperationStateAborting {
			return e.Rollback(ctx, op, v1.OperationStateAborted, e.Kind.Cause(op, Aborted))
		}
		if e.Kind.Deadline > 0 {
			if start := e.Kind.StartTime(op); start != nil && e.now().Sub(start.Time) > e.Kind.Deadline {
				return e.Rollback(ctx, op, v1.OperationStateFailed, e.Kind.Cause(op, DeadlineExceeded))
			}
		}
	}
	if state == v1.OperationStateSubmitted {
		return e.Kind.Submitted(ctx, op)
	}
	if step := e.Kind.Steps[state]; step != nil {
		return step(ctx, op)
	}
	return ctrl.Result{}, nil
}

func (e *Engine) committed(s v1.State) bool { return e.Kind.Committed != nil && e.Kind.Committed(s) }

// deleted handles an operation being deleted: one that has not ended is
// rolled back first, as spec.abort would (or finished, when committed), so
// nothing it added is left behind; then the finalizer goes.
func (e *Engine) deleted(ctx context.Context, op v1.Operation, state v1.State) (ctrl.Result, error) {
	f := e.Kind.Finalizer
	if f == "" || !controllerutil.ContainsFinalizer(op, f) {
		return ctrl.Result{}, nil
	}
	switch {
	case e.committed(state):
		if step := e.Kind.Steps[state]; step != nil {
			return step(ctx, op)
		}
		return ctrl.Result{}, nil
	case !state.Finished():
		if res, err := e.Rollback(ctx, op, v1.OperationStateAborted, e.Kind.Cause(op, Deleted)); err != nil || !State(op).Finished() {
			return res, err
		}
	}
	return ctrl.Result{}, e.patchFinalizer(ctx, op, false)
}

func (e *Engine) patchFinalizer(ctx context.Context, op v1.Operation, add bool) error {
	patch := client.MergeFromWithOptions(op.DeepCopyObject().(client.Object), client.MergeFromWithOptimisticLock{})
	if add {
		controllerutil.AddFinalizer(op, e.Kind.Finalizer)
	} else {
		controllerutil.RemoveFinalizer(op, e.Kind.Finalizer)
	}
	return e.Client.Patch(ctx, op, patch)
}

// Fail ends an operation that changed nothing yet.
func (e *Engine) Fail(ctx context.Context, op v1.Operation, format string, args ...any) (ctrl.Result, error) {
	msg := fmt.Sprintf(format, args...)
	e.Recorder.Event(op, corev1.EventTypeWarning, e.Kind.FailedReason, msg)
	return ctrl.Result{}, e.write(ctx, op, v1.OperationStateFailed, msg, nil)
}

// Wait keeps the operation in state with a message and looks again later;
// an Event tells when the message changes.
func (e *Engine) Wait(ctx context.Context, op v1.Operation, state v1.State, format string, args ...any) (ctrl.Result, error) {
	msg := fmt.Sprintf(format, args...)
	if msg != Message(op) {
		e.Recorder.Event(op, corev1.EventTypeNormal, "Waiting", msg)
	}
	return ctrl.Result{RequeueAfter: e.retry()}, e.write(ctx, op, state, msg, nil)
}

// Progress writes a message (and change) in the current state and looks
// again later.
func (e *Engine) Progress(ctx context.Context, op v1.Operation, msg string, change func()) (ctrl.Result, error) {
	return ctrl.Result{RequeueAfter: e.retry()}, e.write(ctx, op, State(op), msg, change)
}

// Advance moves the operation to state with a message, after an Event
// (reason, eventMsg) when reason is set; change edits kind-specific status
// fields.
func (e *Engine) Advance(ctx context.Context, op v1.Operation, state v1.State, msg string, change func(), reason, eventMsg string) (ctrl.Result, error) {
	if reason != "" {
		e.Recorder.Event(op, corev1.EventTypeNormal, reason, eventMsg)
	}
	return ctrl.Result{}, e.write(ctx, op, state, msg, change)
}

// Rollback ends the operation in end (Failed or Aborted) with the cause,
// after Kind.Undo removed what it added. An abort records Aborting first,
// so a restart mid-rollback finishes it even if spec.abort were cleared.
func (e *Engine) Rollback(ctx context.Context, op v1.Operation, end v1.State, cause string) (ctrl.Result, error) {
	state := State(op)
	started := state != v1.OperationStateSubmitted
	if started && end == v1.OperationStateAborted && state != v1.OperationStateAborting {
		if err := e.write(ctx, op, v1.OperationStateAborting, "rolling back", nil); err != nil {
			return ctrl.Result{}, err
		}
	}
	msg, err := e.Kind.Undo(ctx, op, end, cause, started)
	if err != nil {
		return ctrl.Result{}, err
	}
	reason, eventType := "Aborted", corev1.EventTypeNormal
	if end == v1.OperationStateFailed {
		reason, eventType = e.Kind.FailedReason, corev1.EventTypeWarning
	}
	e.Recorder.Event(op, eventType, reason, msg)
	return ctrl.Result{}, e.write(ctx, op, end, msg, nil)
}

// write sets the state and message (prefixed while an abort is ignored),
// applies change, keeps the Finished condition, and updates the status
// when anything changed.
func (e *Engine) write(ctx context.Context, op v1.Operation, state v1.State, msg string, change func()) error {
	if op.AbortRequested() && e.committed(State(op)) && !strings.HasPrefix(msg, AbortIgnored) {
		msg = AbortIgnored + e.Kind.AbortIgnoredWhy(op) + "; " + msg
	}
	before := op.DeepCopyObject()
	prev := State(op)
	st, m, conds := op.OperationStatus()
	*st, *m = state, msg
	if change != nil {
		change()
	}
	if state.Finished() && !prev.Finished() && e.Kind.Ended != nil {
		e.Kind.Ended(op, e.now())
	}
	cond := metav1.Condition{Type: v1.ConditionFinished, Status: metav1.ConditionFalse, Reason: string(state), Message: msg, ObservedGeneration: op.GetGeneration()}
	if state.Finished() {
		cond.Status = metav1.ConditionTrue
	}
	meta.SetStatusCondition(conds, cond)
	if equality.Semantic.DeepEqual(before, op) {
		return nil
	}
	if err := e.Client.Status().Update(ctx, op); err != nil {
		return err
	}
	if e.Kind.Observe != nil {
		e.Kind.Observe(before.(v1.Operation), op, e.now())
	}
	if state.Finished() {
		e.endedMu.Lock()
		if e.ended == nil {
			e.ended = map[types.UID]bool{}
		}
		e.ended[op.GetUID()] = true
		e.endedMu.Unlock()
	}
	return nil
}

// lagsEnd says whether op is older than a terminal state this process
// wrote; once a read shows it, it is forgotten.
func (e *Engine) lagsEnd(op v1.Operation) bool {
	e.endedMu.Lock()
	defer e.endedMu.Unlock()
	if !e.ended[op.GetUID()] {
		return false
	}
	if State(op).Finished() {
		delete(e.ended, op.GetUID())
		return false
	}
	return true
}

// StepOf adapts a kind's typed step function to a Step.
func StepOf[T v1.Operation](f func(context.Context, T) (ctrl.Result, error)) Step {
	return func(ctx context.Context, op v1.Operation) (ctrl.Result, error) { return f(ctx, op.(T)) }
}
