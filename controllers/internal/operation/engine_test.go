package operation_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/internal/operation"
)

// The test kind: an expansion that goes Submitted → AddReplica →
// SyncReplica → Completed, committed in SyncReplica, whose steps the
// tests set.
const (
	testFinalizer = "test.hwameistor.io/operation"
	retryInterval = 7 * time.Second
	deadline      = time.Minute
)

func abortIgnoredWhy(op v1.Operation) string {
	return "volume " + op.(*v1.LocalVolumeExpand).Spec.VolumeName + " already grew"
}

// undoCall is what Undo got, and the stored object as it saw it.
type undoCall struct {
	end          v1.State
	cause        string
	started      bool
	stored       v1.State // the state the object had when Undo ran
	storedMsg    string
	hadFinalizer bool
}

type harness struct {
	t   *testing.T
	c   client.WithWatch
	rec *record.FakeRecorder
	e   *operation.Engine
	now time.Time

	// on are the steps, by state; a state without one fails the test.
	on        map[v1.State]func(ctx context.Context, op *v1.LocalVolumeExpand) (ctrl.Result, error)
	stepRuns  map[v1.State]int
	writes    []string // "state: message" of every status update
	undos     []undoCall
	undoErrs  []error // returned by the Undo calls in turn, then nil
	completed int     // Kind.Completed calls
	ended     int     // Kind.Ended calls
}

func newHarness(t *testing.T, objs ...client.Object) *harness {
	t.Helper()
	h := &harness{t: t, rec: record.NewFakeRecorder(100), now: t0,
		on: map[v1.State]func(context.Context, *v1.LocalVolumeExpand) (ctrl.Result, error){}, stepRuns: map[v1.State]int{}}
	h.c = newClient(t, interceptor.Funcs{
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			if err := c.SubResource(sub).Update(ctx, obj, opts...); err != nil {
				return err
			}
			if op, ok := obj.(v1.Operation); ok && sub == "status" {
				h.writes = append(h.writes, string(operation.State(op))+": "+operation.Message(op))
			}
			return nil
		},
	}, objs...)
	step := func(s v1.State) operation.Step {
		return func(ctx context.Context, op v1.Operation) (ctrl.Result, error) {
			h.stepRuns[s]++
			f := h.on[s]
			if f == nil {
				t.Errorf("unexpected step in %s", s)
				return ctrl.Result{}, nil
			}
			return f(ctx, op.(*v1.LocalVolumeExpand))
		}
	}
	h.e = &operation.Engine{Client: h.c, Recorder: h.rec, RetryInterval: retryInterval, Now: func() time.Time { return h.now },
		Kind: operation.Kind{
			New:          func() v1.Operation { return &v1.LocalVolumeExpand{} },
			FailedReason: "ExpandFailed",
			Noun:         "expansion",
			Submitted:    step(v1.OperationStateSubmitted),
			Steps: map[v1.State]operation.Step{
				v1.OperationStateAddReplica:  step(v1.OperationStateAddReplica),
				v1.OperationStateSyncReplica: step(v1.OperationStateSyncReplica),
			},
			Committed:       func(s v1.State) bool { return s == v1.OperationStateSyncReplica },
			AbortIgnoredWhy: abortIgnoredWhy,
			Cause: func(op v1.Operation, why operation.Why) string {
				switch why {
				case operation.DeadlineExceeded:
					return "deadline exceeded in " + string(operation.State(op))
				case operation.Deleted:
					return "deleted before it ended"
				}
				return "aborted by spec.abort"
			},
			Undo: func(ctx context.Context, op v1.Operation, end v1.State, cause string, started bool) (string, error) {
				call := undoCall{end: end, cause: cause, started: started}
				stored := &v1.LocalVolumeExpand{}
				if err := h.c.Get(ctx, client.ObjectKeyFromObject(op), stored); err != nil {
					t.Errorf("Undo: reading %s: %v", op.GetName(), err)
				} else {
					call.stored, call.storedMsg = stored.Status.State, stored.Status.Message
					call.hadFinalizer = controllerutil.ContainsFinalizer(stored, testFinalizer)
				}
				var err error
				if n := len(h.undos); n < len(h.undoErrs) {
					err = h.undoErrs[n]
				}
				h.undos = append(h.undos, call)
				return "undone: " + cause, err
			},
			Completed: func(context.Context, v1.Operation) error { h.completed++; return nil },
			Deadline:  deadline,
			StartTime: func(op v1.Operation) *metav1.Time { t := op.GetCreationTimestamp(); return &t },
			Finalizer: testFinalizer,
			Ended:     func(v1.Operation, time.Time) { h.ended++ },
		}}
	return h
}

// op is an expansion of volume "vol" created at t0 in state with msg.
func op(name string, state v1.State, msg string, abort, finalizer bool) *v1.LocalVolumeExpand {
	e := expansion(name, at(0), state, "vol")
	e.Status.Message = msg
	e.Spec.Abort = abort
	if finalizer {
		e.Finalizers = []string{testFinalizer}
	}
	return e
}

func (h *harness) reconcile(name string) (ctrl.Result, error) {
	h.t.Helper()
	return h.e.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKey{Name: name}})
}

// mustReconcile fails the test on an error.
func (h *harness) mustReconcile(name string) ctrl.Result {
	h.t.Helper()
	res, err := h.reconcile(name)
	if err != nil {
		h.t.Fatalf("reconcile %s: %v", name, err)
	}
	return res
}

func (h *harness) get(name string) *v1.LocalVolumeExpand {
	h.t.Helper()
	e := &v1.LocalVolumeExpand{}
	if err := h.c.Get(context.Background(), client.ObjectKey{Name: name}, e); err != nil {
		h.t.Fatalf("getting %s: %v", name, err)
	}
	return e
}

func (h *harness) events() []string { return drain(h.rec) }

// checkEvents drains the events and compares them with want.
func (h *harness) checkEvents(what string, want ...string) {
	h.t.Helper()
	if got := h.events(); !slices.Equal(got, want) {
		h.t.Errorf("%s: events\n got %q\nwant %q", what, got, want)
	}
}

// checkWrites compares every status write so far with want.
func (h *harness) checkWrites(want ...string) {
	h.t.Helper()
	if !slices.Equal(h.writes, want) {
		h.t.Errorf("status writes\n got %q\nwant %q", h.writes, want)
	}
}

// checkStatus checks the state, the message and the Finished condition
// that goes with them.
func checkStatus(t *testing.T, e *v1.LocalVolumeExpand, state v1.State, msg string) {
	t.Helper()
	if e.Status.State != state || e.Status.Message != msg {
		t.Errorf("status %s %q, want %s %q", e.Status.State, e.Status.Message, state, msg)
	}
	var finished []metav1.Condition
	for _, c := range e.Status.Conditions {
		if c.Type == v1.ConditionFinished {
			finished = append(finished, c)
		}
	}
	if len(finished) != 1 {
		t.Fatalf("%d Finished conditions: %+v", len(finished), e.Status.Conditions)
	}
	c := finished[0]
	status, reason := metav1.ConditionFalse, string(state)
	switch state {
	case v1.OperationStateCompleted, v1.OperationStateFailed, v1.OperationStateAborted:
		status = metav1.ConditionTrue
	}
	if c.Status != status || c.Reason != reason || c.Message != msg || c.ObservedGeneration != e.Generation {
		t.Errorf("Finished condition %+v, want status %s reason %s message %q generation %d", c, status, reason, msg, e.Generation)
	}
	if c.LastTransitionTime.IsZero() {
		t.Errorf("Finished condition without a transition time: %+v", c)
	}
}

func hasFinalizer(e *v1.LocalVolumeExpand) bool {
	return controllerutil.ContainsFinalizer(e, testFinalizer)
}

// TestWriteKeepsFinishedCondition walks an operation to its end: every
// write keeps the Finished condition (False with the state as reason
// while it runs, True at the end), with the status message; a write that
// changes nothing is not made.
func TestWriteKeepsFinishedCondition(t *testing.T) {
	h := newHarness(t, op("e", "", "", false, false))
	h.on[v1.OperationStateSubmitted] = func(ctx context.Context, e *v1.LocalVolumeExpand) (ctrl.Result, error) {
		return h.e.Advance(ctx, e, v1.OperationStateAddReplica, "growing", func() { e.Status.AllocatedCapacityBytes = 5 }, "Growing", "Growing e")
	}
	if res := h.mustReconcile("e"); res != (ctrl.Result{}) {
		t.Errorf("Advance result %+v", res)
	}
	e := h.get("e")
	checkStatus(t, e, v1.OperationStateAddReplica, "growing")
	if e.Status.AllocatedCapacityBytes != 5 {
		t.Errorf("the change was not written: %+v", e.Status)
	}
	if !hasFinalizer(e) {
		t.Error("no finalizer on a running operation")
	}
	h.checkEvents("Advance", "Normal Growing Growing e")

	progress := "grown on 1 of 2 replicas"
	h.on[v1.OperationStateAddReplica] = func(ctx context.Context, e *v1.LocalVolumeExpand) (ctrl.Result, error) {
		return h.e.Progress(ctx, e, progress, nil)
	}
	if res := h.mustReconcile("e"); res.RequeueAfter != retryInterval {
		t.Errorf("Progress result %+v, want a requeue after %s", res, retryInterval)
	}
	checkStatus(t, h.get("e"), v1.OperationStateAddReplica, progress)
	h.mustReconcile("e") // the same message: nothing to write
	h.checkEvents("Progress")

	h.on[v1.OperationStateAddReplica] = func(ctx context.Context, e *v1.LocalVolumeExpand) (ctrl.Result, error) {
		return h.e.Advance(ctx, e, v1.OperationStateSyncReplica, "switching", nil, "", "")
	}
	h.mustReconcile("e")
	checkStatus(t, h.get("e"), v1.OperationStateSyncReplica, "switching")
	h.on[v1.OperationStateSyncReplica] = func(ctx context.Context, e *v1.LocalVolumeExpand) (ctrl.Result, error) {
		return h.e.Advance(ctx, e, v1.OperationStateCompleted, "grew to 2Gi", nil, "", "")
	}
	h.mustReconcile("e")
	e = h.get("e")
	checkStatus(t, e, v1.OperationStateCompleted, "grew to 2Gi")
	if e.Status.AllocatedCapacityBytes != 5 {
		t.Errorf("a later write lost a status field: %+v", e.Status)
	}
	if h.ended != 1 {
		t.Errorf("Ended called %d times, want 1", h.ended)
	}
	h.checkEvents("Advance without a reason")
	h.checkWrites("AddReplica: growing", "AddReplica: "+progress, "SyncReplica: switching", "Completed: grew to 2Gi")

	// Finished: the finalizer goes, Completed runs on every reconcile.
	h.mustReconcile("e")
	h.mustReconcile("e")
	if hasFinalizer(h.get("e")) {
		t.Error("finalizer kept on a finished operation")
	}
	if h.completed != 2 {
		t.Errorf("Kind.Completed ran %d times in 2 reconciles, want 2", h.completed)
	}
	if len(h.undos) != 0 || h.ended != 1 {
		t.Errorf("undos %+v, ended %d", h.undos, h.ended)
	}
	h.checkWrites("AddReplica: growing", "AddReplica: "+progress, "SyncReplica: switching", "Completed: grew to 2Gi")
}

// TestAbortIgnoredWhenCommitted: spec.abort in a committed state does not
// roll back; every message says why, prefixed exactly once.
func TestAbortIgnoredWhenCommitted(t *testing.T) {
	h := newHarness(t, op("e", v1.OperationStateSyncReplica, "switching", true, true))
	prefix := operation.AbortIgnored + "volume vol already grew; "
	var msg string
	h.on[v1.OperationStateSyncReplica] = func(ctx context.Context, e *v1.LocalVolumeExpand) (ctrl.Result, error) {
		return h.e.Progress(ctx, e, msg, nil)
	}
	msg = "switched 1 of 2"
	h.mustReconcile("e")
	checkStatus(t, h.get("e"), v1.OperationStateSyncReplica, prefix+"switched 1 of 2")
	h.checkEvents("first reconcile with spec.abort", "Warning AbortIgnored volume vol already grew; spec.abort has no effect")

	// A step that writes the message back as it reads it.
	msg = operation.Message(h.get("e"))
	h.mustReconcile("e")
	checkStatus(t, h.get("e"), v1.OperationStateSyncReplica, prefix+"switched 1 of 2")

	msg = "switched 2 of 2"
	h.mustReconcile("e")
	checkStatus(t, h.get("e"), v1.OperationStateSyncReplica, prefix+"switched 2 of 2")
	h.checkEvents("later reconciles")

	h.on[v1.OperationStateSyncReplica] = func(ctx context.Context, e *v1.LocalVolumeExpand) (ctrl.Result, error) {
		return h.e.Advance(ctx, e, v1.OperationStateCompleted, "grew to 2Gi", nil, "", "")
	}
	h.mustReconcile("e")
	checkStatus(t, h.get("e"), v1.OperationStateCompleted, prefix+"grew to 2Gi")
	// Completed: its message says the abort was ignored already.
	h.mustReconcile("e")
	e := h.get("e")
	checkStatus(t, e, v1.OperationStateCompleted, prefix+"grew to 2Gi")
	if n := strings.Count(e.Status.Message, operation.AbortIgnored); n != 1 {
		t.Errorf("%q says %d times that the abort is ignored", e.Status.Message, n)
	}
	h.checkEvents("the end")
	if len(h.undos) != 0 {
		t.Errorf("a committed operation was rolled back: %+v", h.undos)
	}
	h.checkWrites("SyncReplica: "+prefix+"switched 1 of 2", "SyncReplica: "+prefix+"switched 2 of 2", "Completed: "+prefix+"grew to 2Gi")
}

// TestRollbackWritesAbortingFirst: an abort of a started operation is
// recorded (Aborting) before Undo runs, so a failed Undo is retried even
// once spec.abort is cleared; it ends Aborted with Undo's message.
func TestRollbackWritesAbortingFirst(t *testing.T) {
	h := newHarness(t, op("e", v1.OperationStateAddReplica, "growing", true, true))
	h.undoErrs = []error{errors.New("replica busy")}
	if _, err := h.reconcile("e"); err == nil || !strings.Contains(err.Error(), "replica busy") {
		t.Fatalf("Undo's error not returned: %v", err)
	}
	if len(h.undos) != 1 {
		t.Fatalf("Undo calls %+v", h.undos)
	}
	if u := h.undos[0]; u.stored != v1.OperationStateAborting || u.storedMsg != "rolling back" || !u.started ||
		u.end != v1.OperationStateAborted || u.cause != "aborted by spec.abort" {
		t.Errorf("first Undo %+v, want it to see Aborting stored", u)
	}
	checkStatus(t, h.get("e"), v1.OperationStateAborting, "rolling back")
	h.checkEvents("failed Undo")

	// spec.abort cleared: the rollback goes on.
	e := h.get("e")
	e.Spec.Abort = false
	if err := h.c.Update(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	h.mustReconcile("e")
	if len(h.undos) != 2 || h.undos[1].stored != v1.OperationStateAborting || !h.undos[1].started || h.undos[1].end != v1.OperationStateAborted {
		t.Errorf("Undo calls %+v", h.undos)
	}
	checkStatus(t, h.get("e"), v1.OperationStateAborted, "undone: aborted by spec.abort")
	h.checkEvents("rolled back", "Normal Aborted undone: aborted by spec.abort")
	h.checkWrites("Aborting: rolling back", "Aborted: undone: aborted by spec.abort")
	if h.stepRuns[v1.OperationStateAddReplica] != 0 {
		t.Error("a step ran while aborting")
	}
	h.mustReconcile("e")
	if hasFinalizer(h.get("e")) || len(h.undos) != 2 {
		t.Errorf("after the end: finalizer %v, undos %d", hasFinalizer(h.get("e")), len(h.undos))
	}
}

// TestRollbackFromSubmitted: an operation that has not started is not
// marked Aborting; Undo is told it did not start.
func TestRollbackFromSubmitted(t *testing.T) {
	h := newHarness(t, op("e", "", "", true, false))
	h.mustReconcile("e")
	if len(h.undos) != 1 {
		t.Fatalf("Undo calls %+v", h.undos)
	}
	if u := h.undos[0]; u.started || u.stored != "" || u.end != v1.OperationStateAborted {
		t.Errorf("Undo %+v, want not started, nothing stored", u)
	}
	checkStatus(t, h.get("e"), v1.OperationStateAborted, "undone: aborted by spec.abort")
	h.checkWrites("Aborted: undone: aborted by spec.abort")
	h.checkEvents("aborted", "Normal Aborted undone: aborted by spec.abort")
	if h.stepRuns[v1.OperationStateSubmitted] != 0 {
		t.Error("Submitted ran for an aborted operation")
	}
}

// TestRollbackToFailed: a step's rollback to Failed writes no Aborting and
// reports a Warning with the kind's failure reason.
func TestRollbackToFailed(t *testing.T) {
	h := newHarness(t, op("e", v1.OperationStateAddReplica, "growing", false, true))
	h.on[v1.OperationStateAddReplica] = func(ctx context.Context, e *v1.LocalVolumeExpand) (ctrl.Result, error) {
		return h.e.Rollback(ctx, e, v1.OperationStateFailed, "target lost")
	}
	h.mustReconcile("e")
	if len(h.undos) != 1 || h.undos[0].stored != v1.OperationStateAddReplica || !h.undos[0].started || h.undos[0].end != v1.OperationStateFailed {
		t.Errorf("Undo calls %+v", h.undos)
	}
	checkStatus(t, h.get("e"), v1.OperationStateFailed, "undone: target lost")
	h.checkWrites("Failed: undone: target lost")
	h.checkEvents("failed", "Warning ExpandFailed undone: target lost")
}

// TestFail: a Warning Event with Kind.FailedReason and the Failed state.
func TestFail(t *testing.T) {
	h := newHarness(t, op("e", "", "", false, false))
	h.on[v1.OperationStateSubmitted] = func(ctx context.Context, e *v1.LocalVolumeExpand) (ctrl.Result, error) {
		return h.e.Fail(ctx, e, "volume %s not found", e.Spec.VolumeName)
	}
	if res := h.mustReconcile("e"); res != (ctrl.Result{}) {
		t.Errorf("Fail result %+v", res)
	}
	checkStatus(t, h.get("e"), v1.OperationStateFailed, "volume vol not found")
	h.checkEvents("Fail", "Warning ExpandFailed volume vol not found")
	if h.ended != 1 || len(h.undos) != 0 {
		t.Errorf("ended %d, undos %+v", h.ended, h.undos)
	}
	// Finished: nothing more runs, the finalizer added while it ran goes.
	h.mustReconcile("e")
	if hasFinalizer(h.get("e")) || h.stepRuns[v1.OperationStateSubmitted] != 1 {
		t.Errorf("after Failed: finalizer %v, Submitted ran %d times", hasFinalizer(h.get("e")), h.stepRuns[v1.OperationStateSubmitted])
	}
}

// TestWait: a Normal Waiting Event only when the message changes.
func TestWait(t *testing.T) {
	h := newHarness(t, op("e", "", "", false, true))
	var blocker string
	h.on[v1.OperationStateSubmitted] = func(ctx context.Context, e *v1.LocalVolumeExpand) (ctrl.Result, error) {
		return h.e.Wait(ctx, e, v1.OperationStateSubmitted, "waiting: volume %s is being %s", e.Spec.VolumeName, blocker)
	}
	blocker = "migrated by m-1"
	if res := h.mustReconcile("e"); res.RequeueAfter != retryInterval {
		t.Errorf("Wait result %+v", res)
	}
	checkStatus(t, h.get("e"), v1.OperationStateSubmitted, "waiting: volume vol is being migrated by m-1")
	h.checkEvents("first wait", "Normal Waiting waiting: volume vol is being migrated by m-1")
	h.mustReconcile("e")
	h.mustReconcile("e")
	h.checkEvents("the same wait")
	blocker = "converted by c-1"
	h.mustReconcile("e")
	checkStatus(t, h.get("e"), v1.OperationStateSubmitted, "waiting: volume vol is being converted by c-1")
	h.checkEvents("another wait", "Normal Waiting waiting: volume vol is being converted by c-1")
	h.checkWrites("Submitted: waiting: volume vol is being migrated by m-1", "Submitted: waiting: volume vol is being converted by c-1")
}

// TestCompletedAbortIgnored: spec.abort on a Completed operation is
// answered once in its message; Kind.Completed runs on every reconcile.
func TestCompletedAbortIgnored(t *testing.T) {
	h := newHarness(t, op("e", v1.OperationStateCompleted, "grew to 2Gi", true, false))
	want := "abort ignored: the expansion already completed; grew to 2Gi"
	h.mustReconcile("e")
	checkStatus(t, h.get("e"), v1.OperationStateCompleted, want)
	h.checkEvents("abort of a completed operation", "Warning AbortIgnored The expansion already completed; spec.abort has no effect")
	h.mustReconcile("e")
	h.mustReconcile("e")
	checkStatus(t, h.get("e"), v1.OperationStateCompleted, want)
	h.checkEvents("later reconciles")
	h.checkWrites("Completed: " + want)
	if h.completed != 3 {
		t.Errorf("Kind.Completed ran %d times in 3 reconciles", h.completed)
	}
	if len(h.undos) != 0 || h.ended != 0 {
		t.Errorf("undos %+v, ended %d", h.undos, h.ended)
	}
}

// TestDeadline: a running operation past Kind.Deadline is rolled back to
// Failed with Cause(DeadlineExceeded); a committed one finishes.
func TestDeadline(t *testing.T) {
	cases := []struct {
		name    string
		state   v1.State
		after   time.Duration
		undone  bool
		started bool
	}{
		{name: "running past the deadline", state: v1.OperationStateAddReplica, after: deadline + time.Second, undone: true, started: true},
		{name: "Submitted past the deadline", state: "", after: deadline + time.Second, undone: true},
		{name: "within the deadline", state: v1.OperationStateAddReplica, after: deadline - time.Second},
		{name: "committed past the deadline", state: v1.OperationStateSyncReplica, after: 2 * deadline},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, op("e", tc.state, "running", false, true))
			h.now = t0.Add(tc.after)
			for _, s := range []v1.State{v1.OperationStateSubmitted, v1.OperationStateAddReplica, v1.OperationStateSyncReplica} {
				h.on[s] = func(ctx context.Context, e *v1.LocalVolumeExpand) (ctrl.Result, error) {
					return h.e.Progress(ctx, e, "still running", nil)
				}
			}
			h.mustReconcile("e")
			e := h.get("e")
			if !tc.undone {
				if len(h.undos) != 0 {
					t.Errorf("rolled back: %+v", h.undos)
				}
				checkStatus(t, e, operation.State(e), "still running")
				return
			}
			if len(h.undos) != 1 {
				t.Fatalf("Undo calls %+v", h.undos)
			}
			state := tc.state
			if state == "" {
				state = v1.OperationStateSubmitted
			}
			cause := "deadline exceeded in " + string(state)
			if u := h.undos[0]; u.end != v1.OperationStateFailed || u.cause != cause || u.started != tc.started {
				t.Errorf("Undo %+v, want Failed, %q, started %v", u, cause, tc.started)
			}
			checkStatus(t, e, v1.OperationStateFailed, "undone: "+cause)
			h.checkWrites("Failed: undone: " + cause)
			h.checkEvents("deadline", "Warning ExpandFailed undone: "+cause)
			if n := h.stepRuns[state]; n != 0 {
				t.Errorf("the %s step ran past the deadline", state)
			}
		})
	}
}

// TestFinalizer: held exactly while the operation runs.
func TestFinalizer(t *testing.T) {
	h := newHarness(t, op("e", "", "", false, false), op("failed", v1.OperationStateFailed, "gone", false, true))
	h.on[v1.OperationStateSubmitted] = func(ctx context.Context, e *v1.LocalVolumeExpand) (ctrl.Result, error) {
		if !hasFinalizer(h.get(e.Name)) {
			t.Error("a step ran before the finalizer was stored")
		}
		return h.e.Advance(ctx, e, v1.OperationStateAddReplica, "growing", nil, "", "")
	}
	h.on[v1.OperationStateAddReplica] = func(ctx context.Context, e *v1.LocalVolumeExpand) (ctrl.Result, error) {
		return h.e.Advance(ctx, e, v1.OperationStateCompleted, "grew", nil, "", "")
	}
	h.mustReconcile("e")
	if !hasFinalizer(h.get("e")) {
		t.Error("no finalizer while Submitted")
	}
	h.mustReconcile("e")
	if e := h.get("e"); e.Status.State != v1.OperationStateCompleted || !hasFinalizer(e) {
		t.Errorf("state %s, finalizer %v: the finalizer goes on the next reconcile", e.Status.State, hasFinalizer(e))
	}
	h.mustReconcile("e")
	if hasFinalizer(h.get("e")) {
		t.Error("finalizer kept on a Completed operation")
	}
	h.mustReconcile("failed")
	if hasFinalizer(h.get("failed")) {
		t.Error("finalizer kept on a Failed operation")
	}
}

// TestDeleted: a deleted running operation is rolled back (Cause(Deleted))
// before its finalizer goes; a committed one finishes first.
func TestDeleted(t *testing.T) {
	ctx := context.Background()
	gone := func(h *harness, name string) bool {
		err := h.c.Get(ctx, client.ObjectKey{Name: name}, &v1.LocalVolumeExpand{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		return apierrors.IsNotFound(err)
	}
	del := func(h *harness, name string) {
		if err := h.c.Delete(ctx, h.get(name)); err != nil {
			t.Fatal(err)
		}
		if h.get(name).DeletionTimestamp == nil {
			t.Fatal("deleted without a deletion timestamp")
		}
	}

	t.Run("running", func(t *testing.T) {
		h := newHarness(t, op("e", v1.OperationStateAddReplica, "growing", false, true))
		del(h, "e")
		h.undoErrs = []error{errors.New("replica busy")}
		if _, err := h.reconcile("e"); err == nil {
			t.Fatal("Undo's error not returned")
		}
		e := h.get("e")
		if !hasFinalizer(e) {
			t.Fatal("finalizer removed before the rollback ended")
		}
		checkStatus(t, e, v1.OperationStateAborting, "rolling back")
		h.mustReconcile("e")
		if !gone(h, "e") {
			t.Errorf("still there after the rollback: %+v", h.get("e"))
		}
		if len(h.undos) != 2 {
			t.Fatalf("Undo calls %+v", h.undos)
		}
		for _, u := range h.undos {
			if u.cause != "deleted before it ended" || u.end != v1.OperationStateAborted || !u.started || !u.hadFinalizer || u.stored != v1.OperationStateAborting {
				t.Errorf("Undo %+v", u)
			}
		}
		h.checkWrites("Aborting: rolling back", "Aborted: undone: deleted before it ended")
		h.checkEvents("rolled back", "Normal Aborted undone: deleted before it ended")
		if h.stepRuns[v1.OperationStateAddReplica] != 0 {
			t.Error("a step ran on a deleted operation")
		}
	})

	t.Run("Submitted", func(t *testing.T) {
		h := newHarness(t, op("e", "", "", false, true))
		del(h, "e")
		h.mustReconcile("e")
		if !gone(h, "e") {
			t.Error("still there")
		}
		if len(h.undos) != 1 || h.undos[0].started || h.undos[0].cause != "deleted before it ended" || !h.undos[0].hadFinalizer {
			t.Errorf("Undo calls %+v", h.undos)
		}
		h.checkWrites("Aborted: undone: deleted before it ended")
	})

	t.Run("committed", func(t *testing.T) {
		h := newHarness(t, op("e", v1.OperationStateSyncReplica, "switching", false, true))
		h.on[v1.OperationStateSyncReplica] = func(ctx context.Context, e *v1.LocalVolumeExpand) (ctrl.Result, error) {
			return h.e.Advance(ctx, e, v1.OperationStateCompleted, "grew", nil, "", "")
		}
		del(h, "e")
		h.mustReconcile("e")
		if e := h.get("e"); !hasFinalizer(e) || e.Status.State != v1.OperationStateCompleted {
			t.Errorf("finalizer %v, state %s: a committed operation finishes first", hasFinalizer(e), e.Status.State)
		}
		h.mustReconcile("e")
		if !gone(h, "e") {
			t.Error("still there once finished")
		}
		if len(h.undos) != 0 {
			t.Errorf("a committed operation was rolled back: %+v", h.undos)
		}
	})

	t.Run("finished", func(t *testing.T) {
		h := newHarness(t, op("e", v1.OperationStateFailed, "failed", false, true))
		del(h, "e")
		h.mustReconcile("e")
		if !gone(h, "e") {
			t.Error("still there")
		}
		if len(h.undos) != 0 || len(h.writes) != 0 {
			t.Errorf("undos %+v, writes %q", h.undos, h.writes)
		}
	})
}

// staleReader serves a stale copy of the object while stale is set.
type staleReader struct {
	client.Reader
	stale *v1.LocalVolumeExpand
}

func (r *staleReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if r.stale != nil {
		r.stale.DeepCopyInto(obj.(*v1.LocalVolumeExpand))
		return nil
	}
	return r.Reader.Get(ctx, key, obj, opts...)
}

// TestLagsEnd: a read older than the terminal state this engine wrote
// runs no step (it would redo what the rollback undid) until a read shows
// that state.
func TestLagsEnd(t *testing.T) {
	h := newHarness(t, op("e", v1.OperationStateAddReplica, "growing", false, true))
	reader := &staleReader{Reader: h.c}
	h.e.APIReader = reader
	h.on[v1.OperationStateAddReplica] = func(ctx context.Context, e *v1.LocalVolumeExpand) (ctrl.Result, error) {
		return h.e.Rollback(ctx, e, v1.OperationStateFailed, "target lost")
	}
	stale := h.get("e")
	h.mustReconcile("e")
	checkStatus(t, h.get("e"), v1.OperationStateFailed, "undone: target lost")

	reader.stale = stale
	if res := h.mustReconcile("e"); res.RequeueAfter <= 0 {
		t.Errorf("stale read: result %+v, want a requeue", res)
	}
	if h.stepRuns[v1.OperationStateAddReplica] != 1 || len(h.undos) != 1 {
		t.Errorf("a stale read ran the step again: runs %d, undos %d", h.stepRuns[v1.OperationStateAddReplica], len(h.undos))
	}
	reader.stale = nil
	h.mustReconcile("e")
	h.checkWrites("Failed: undone: target lost")
	if hasFinalizer(h.get("e")) {
		t.Error("finalizer kept once the end was read")
	}
}
