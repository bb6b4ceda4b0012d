package expand

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/internal/fixture"
	"hwameistor.io/local/internal/testenv"
)

func hasPrefix(s string) func(*v1.LocalVolumeExpand) bool {
	return func(e *v1.LocalVolumeExpand) bool { return strings.HasPrefix(e.Status.Message, s) }
}

// TestHappyPath grows volumes with the volume controller running and the
// test in the node agents' place.
func TestHappyPath(t *testing.T) {
	cases := []struct {
		name     string
		nodes    []node
		replicas []string
	}{
		{name: "one replica", nodes: []node{{Name: "a", Free: 10 * gi}}, replicas: []string{"a"}},
		{name: "HA: both replicas grow", nodes: []node{{Name: "a", Free: 10 * gi}, {Name: "b", Free: 3 * gi}}, replicas: []string{"a", "b"}},
		// The growth is no new volume: a pool without a free volume slot grows.
		{name: "pool without free volume slots", nodes: []node{{Name: "a", Free: 10 * gi, Slots: -1}}, replicas: []string{"a"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fixture.Reset(t, env.Client)
			fixture.CreateNodes(t, env.Client, tc.nodes...)
			volName, name := fmt.Sprintf("vol-happy-%d", i), fmt.Sprintf("exp-happy-%d", i)
			fixture.CreateVolume(t, env.Client, vol{Name: volName, Replicas: tc.replicas})
			startController(t)
			createExpand(t, name, volName, 4*gi)

			e := waitState(t, name, v1.OperationStateInProgress)
			if want := fmt.Sprintf("growing %s from 1Gi to 4Gi on %s", volName, strings.Join(tc.replicas, ", ")); e.Status.Message != want &&
				!strings.HasPrefix(e.Status.Message, "waiting for the replicas") {
				t.Errorf("message %q", e.Status.Message)
			}
			testenv.Eventually(t, "volume grown", func() bool {
				lv := fixture.GetVolume(t, env.Client, volName)
				return lv.Spec.RequiredCapacityBytes == 4*gi && lv.Spec.Config.RequiredCapacityBytes == 4*gi
			})
			wait := "waiting for the replicas to grow to 4Gi: " + strings.Join(tc.replicas, " has 1Gi, ") + " has 1Gi"
			waitExpand(t, name, "waiting for every replica", func(e *v1.LocalVolumeExpand) bool { return e.Status.Message == wait })
			for j, n := range tc.replicas {
				agentGrows(t, volName, n, 4*gi)
				if j < len(tc.replicas)-1 {
					rest := "waiting for the replicas to grow to 4Gi: " + strings.Join(tc.replicas[j+1:], " has 1Gi, ") + " has 1Gi"
					waitExpand(t, name, "the others", func(e *v1.LocalVolumeExpand) bool { return e.Status.Message == rest })
					if e := getExpand(t, name); e.Status.State != v1.OperationStateInProgress || e.Status.AllocatedCapacityBytes != gi {
						t.Errorf("status with one replica grown: %+v", e.Status)
					}
				}
			}
			e = waitState(t, name, v1.OperationStateCompleted)
			if want := fmt.Sprintf("volume %s is 4Gi on %s", volName, strings.Join(tc.replicas, ", ")); e.Status.Message != want || e.Status.AllocatedCapacityBytes != 4*gi {
				t.Errorf("status %+v, want %q and 4Gi allocated", e.Status, want)
			}
			testenv.Eventually(t, "the volume controller reports 4Gi allocated", func() bool {
				return fixture.GetVolume(t, env.Client, volName).Status.AllocatedCapacityBytes == 4*gi
			})
			waitEvents(t, name, "Expanding", "Completed")
		})
	}
}

// TestCapacity: a growth some replica's pool cannot hold fails with a
// message naming the node, pool, need and free, and changes nothing.
func TestCapacity(t *testing.T) {
	cases := []struct {
		name     string
		nodes    []node
		replicas []string
		other    *vol // another volume, placed
		want     string
	}{
		{name: "pool too small", nodes: []node{{Name: "hdd-1", Free: 2 * gi}}, replicas: []string{"hdd-1"},
			want: "cannot grow vol-cap from 1Gi to 5Gi: node hdd-1 pool LocalStorage_PoolHDD: need 4Gi, free 2Gi"},
		{name: "HA: the second node is short", nodes: []node{{Name: "hdd-1", Free: 10 * gi}, {Name: "hdd-2", Free: 2 * gi}},
			replicas: []string{"hdd-1", "hdd-2"},
			want:     "cannot grow vol-cap from 1Gi to 5Gi: node hdd-2 pool LocalStorage_PoolHDD: need 4Gi, free 2Gi"},
		{name: "HA: the first node is short", nodes: []node{{Name: "hdd-1", Free: 3 * gi}, {Name: "hdd-2", Free: 10 * gi}},
			replicas: []string{"hdd-1", "hdd-2"},
			want:     "cannot grow vol-cap from 1Gi to 5Gi: node hdd-1 pool LocalStorage_PoolHDD: need 4Gi, free 3Gi"},
		{name: "HA: both nodes are short", nodes: []node{{Name: "hdd-1", Free: 3 * gi}, {Name: "hdd-2", Free: 2 * gi}},
			replicas: []string{"hdd-1", "hdd-2"},
			want:     "cannot grow vol-cap from 1Gi to 5Gi: node hdd-1 pool LocalStorage_PoolHDD: need 4Gi, free 3Gi; node hdd-2 pool LocalStorage_PoolHDD: need 4Gi, free 2Gi"},
		{name: "a placement the node does not count yet", nodes: []node{{Name: "hdd-1", Free: 6 * gi}}, replicas: []string{"hdd-1"},
			other: &vol{Name: "vol-new", Size: 3 * gi, Replicas: []string{"hdd-1"}, Unlisted: true},
			want:  "cannot grow vol-cap from 1Gi to 5Gi: node hdd-1 pool LocalStorage_PoolHDD: need 4Gi, free 3Gi (3Gi reserved in flight)"},
		{name: "node NotReady", nodes: []node{{Name: "hdd-1", Free: 10 * gi, NotReady: true}}, replicas: []string{"hdd-1"},
			want: "cannot grow vol-cap from 1Gi to 5Gi: node hdd-1: LocalStorageNode is NotReady, not Ready"},
		{name: "volume size limit", nodes: []node{{Name: "hdd-1", Free: 10 * gi, Limit: 3 * gi}}, replicas: []string{"hdd-1"},
			want: "cannot grow vol-cap from 1Gi to 5Gi: node hdd-1 pool LocalStorage_PoolHDD takes volumes up to 3Gi, 5Gi requested"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fixture.Reset(t, env.Client)
			fixture.CreateNodes(t, env.Client, tc.nodes...)
			fixture.CreateVolume(t, env.Client, vol{Name: "vol-cap", Replicas: tc.replicas})
			if tc.other != nil {
				fixture.CreateVolume(t, env.Client, *tc.other)
			}
			before := volumeSnapshot(t, "vol-cap")
			startController(t)
			name := fmt.Sprintf("exp-cap-%d", i)
			createExpand(t, name, "vol-cap", 5*gi)
			e := waitState(t, name, v1.OperationStateFailed)
			if e.Status.Message != tc.want {
				t.Errorf("message %q\n want %q", e.Status.Message, tc.want)
			}
			if got := volumeSnapshot(t, "vol-cap"); got != before {
				t.Errorf("volume changed: %s, was %s", got, before)
			}
			waitEvents(t, name, "ExpandFailed")
		})
	}
}

// TestGrowthInFlight: a growth promised to one volume but not yet made by
// the node's agent counts against the next expansion on that node.
func TestGrowthInFlight(t *testing.T) {
	fixture.Reset(t, env.Client)
	fixture.CreateNodes(t, env.Client, node{Name: "hdd-1", Free: 5 * gi})
	fixture.CreateVolume(t, env.Client, vol{Name: "vol-1", Replicas: []string{"hdd-1"}})
	fixture.CreateVolume(t, env.Client, vol{Name: "vol-2", Replicas: []string{"hdd-1"}})
	startController(t)
	createExpand(t, "exp-1", "vol-1", 4*gi)
	waitExpand(t, "exp-1", "waiting for the agent", hasPrefix("waiting for the replicas to grow"))
	before := volumeSnapshot(t, "vol-2")
	createExpand(t, "exp-2", "vol-2", 4*gi)
	e := waitState(t, "exp-2", v1.OperationStateFailed)
	if want := "cannot grow vol-2 from 1Gi to 4Gi: node hdd-1 pool LocalStorage_PoolHDD: need 3Gi, free 2Gi (3Gi reserved in flight)"; e.Status.Message != want {
		t.Errorf("message %q\n want %q", e.Status.Message, want)
	}
	if got := volumeSnapshot(t, "vol-2"); got != before {
		t.Errorf("vol-2 changed: %s", got)
	}
	// The agent grows vol-1 and reports the pool: the same 2Gi are free.
	agentGrows(t, "vol-1", "hdd-1", 4*gi)
	waitState(t, "exp-1", v1.OperationStateCompleted)
	setPoolFree(t, "hdd-1", 2*gi)
	createExpand(t, "exp-3", "vol-2", 4*gi)
	e = waitState(t, "exp-3", v1.OperationStateFailed)
	if want := "cannot grow vol-2 from 1Gi to 4Gi: node hdd-1 pool LocalStorage_PoolHDD: need 3Gi, free 2Gi"; e.Status.Message != want {
		t.Errorf("message %q\n want %q", e.Status.Message, want)
	}
}

func setPoolFree(t *testing.T, node string, free int64) {
	t.Helper()
	fixture.EditStatus(t, env.Client, node, func(lsn *v1.LocalStorageNode) {
		p := lsn.Status.Pools[v1.PoolNameHDD]
		p.UsedCapacityBytes += p.FreeCapacityBytes - free
		p.FreeCapacityBytes = free
		lsn.Status.Pools[v1.PoolNameHDD] = p
	})
}

// TestBadInput: a missing volume fails; a request no larger than the
// volume completes at once; neither changes anything.
func TestBadInput(t *testing.T) {
	cases := []struct {
		name   string
		volume string
		size   int64
		state  v1.State
		want   string
		alloc  int64
	}{
		{name: "volume missing", volume: "vol-nope", size: 4 * gi, state: v1.OperationStateFailed, want: "volume vol-nope not found"},
		{name: "smaller than the volume", volume: "vol-big", size: 4 * gi, state: v1.OperationStateCompleted, alloc: 5 * gi,
			want: "volume vol-big is already 5368709120 bytes (5Gi); 4294967296 bytes (4Gi) requested: nothing to do"},
		{name: "the volume's size", volume: "vol-big", size: 5 * gi, state: v1.OperationStateCompleted, alloc: 5 * gi,
			want: "volume vol-big is already 5368709120 bytes (5Gi); 5368709120 bytes (5Gi) requested: nothing to do"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fixture.Reset(t, env.Client)
			fixture.CreateNodes(t, env.Client, node{Name: "a", Free: 100 * gi})
			fixture.CreateVolume(t, env.Client, vol{Name: "vol-big", Size: 5 * gi, Replicas: []string{"a"}})
			before := volumeSnapshot(t, "vol-big")
			startController(t)
			name := fmt.Sprintf("exp-bad-%d", i)
			createExpand(t, name, tc.volume, tc.size)
			e := waitState(t, name, tc.state)
			if e.Status.Message != tc.want || e.Status.AllocatedCapacityBytes != tc.alloc {
				t.Errorf("status %+v\n want %q, %d allocated", e.Status, tc.want, tc.alloc)
			}
			if got := volumeSnapshot(t, "vol-big"); got != before {
				t.Errorf("volume changed: %s, was %s", got, before)
			}
			reason := "ExpandFailed"
			if tc.state == v1.OperationStateCompleted {
				reason = "Completed"
			}
			waitEvents(t, name, reason)
		})
	}
}

// TestWaiting: an expansion waits, changing nothing, while the volume's
// data is being copied (migration, older conversion) or an older
// expansion of it runs, and proceeds afterwards.
func TestWaiting(t *testing.T) {
	cases := []struct {
		name    string
		setup   func(t *testing.T)
		want    string
		unblock func(t *testing.T)
	}{
		{name: "an unfinished migration",
			setup: func(t *testing.T) {
				fixture.Create(t, env.Client, &v1.LocalVolumeMigrate{ObjectMeta: metav1.ObjectMeta{Name: "mig-1"},
					Spec: v1.LocalVolumeMigrateSpec{VolumeName: "vol-wait", SourceNode: "a"}})
			},
			want: "waiting: volume vol-wait is being migrated by mig-1",
			unblock: func(t *testing.T) {
				fixture.EditStatus(t, env.Client, "mig-1", func(m *v1.LocalVolumeMigrate) { m.Status.State = v1.OperationStateCompleted })
			}},
		{name: "an older unfinished conversion",
			setup: func(t *testing.T) {
				fixture.Create(t, env.Client, &v1.LocalVolumeConvert{ObjectMeta: metav1.ObjectMeta{Name: "cv-1"},
					Spec: v1.LocalVolumeConvertSpec{VolumeName: "vol-wait", ReplicaNumber: 2}})
			},
			want: "waiting: volume vol-wait is being converted by cv-1",
			unblock: func(t *testing.T) {
				fixture.EditStatus(t, env.Client, "cv-1", func(c *v1.LocalVolumeConvert) { c.Status.State = v1.OperationStateFailed })
			}},
		{name: "an older unfinished expansion",
			setup: func(t *testing.T) {
				// It runs too: it grows the volume to 2Gi and waits for the agent.
				createExpand(t, "exp-0", "vol-wait", 2*gi)
				time.Sleep(1100 * time.Millisecond) // creation times have one-second resolution
			},
			want: "waiting: volume vol-wait is being expanded by exp-0",
			unblock: func(t *testing.T) {
				agentGrows(t, "vol-wait", "a", 2*gi)
				waitState(t, "exp-0", v1.OperationStateCompleted)
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fixture.Reset(t, env.Client)
			fixture.CreateNodes(t, env.Client, node{Name: "a", Free: 10 * gi})
			fixture.CreateVolume(t, env.Client, vol{Name: "vol-wait", Replicas: []string{"a"}})
			tc.setup(t)
			createExpand(t, "exp-wait", "vol-wait", 3*gi)
			startController(t)
			e := waitExpand(t, "exp-wait", "waiting", func(e *v1.LocalVolumeExpand) bool { return e.Status.Message != "" })
			if e.Status.State != v1.OperationStateSubmitted || e.Status.Message != tc.want {
				t.Fatalf("status %+v, want Submitted with %q", e.Status, tc.want)
			}
			if got := fixture.GetVolume(t, env.Client, "vol-wait").Spec.RequiredCapacityBytes; got > 2*gi {
				t.Errorf("volume grown to %d bytes while waiting", got)
			}
			waitEvents(t, "exp-wait", "Waiting")
			tc.unblock(t)
			waitState(t, "exp-wait", v1.OperationStateInProgress)
			testenv.Eventually(t, "volume grown", func() bool { return fixture.GetVolume(t, env.Client, "vol-wait").Spec.RequiredCapacityBytes == 3*gi })
		})
	}
}

// TestAbort: before InProgress an abort ends the expansion with nothing
// changed; afterwards (volumes never shrink) it is ignored with a message.
func TestAbort(t *testing.T) {
	t.Run("while waiting in Submitted", func(t *testing.T) {
		fixture.Reset(t, env.Client)
		fixture.CreateNodes(t, env.Client, node{Name: "a", Free: 10 * gi})
		fixture.CreateVolume(t, env.Client, vol{Name: "vol-abort", Replicas: []string{"a"}})
		before := volumeSnapshot(t, "vol-abort")
		fixture.Create(t, env.Client, &v1.LocalVolumeMigrate{ObjectMeta: metav1.ObjectMeta{Name: "mig-block"},
			Spec: v1.LocalVolumeMigrateSpec{VolumeName: "vol-abort", SourceNode: "a"}})
		startController(t)
		createExpand(t, "exp-abort", "vol-abort", 4*gi)
		waitExpand(t, "exp-abort", "waiting", hasPrefix("waiting: volume vol-abort is being migrated"))
		fixture.Edit(t, env.Client, "exp-abort", func(e *v1.LocalVolumeExpand) { e.Spec.Abort = true })
		e := waitState(t, "exp-abort", v1.OperationStateAborted)
		if e.Status.Message != "aborted by spec.abort; nothing was changed" {
			t.Errorf("message %q", e.Status.Message)
		}
		if got := volumeSnapshot(t, "vol-abort"); got != before {
			t.Errorf("volume changed: %s, was %s", got, before)
		}
		waitEvents(t, "exp-abort", "Aborted")
	})
	t.Run("during InProgress, then Completed", func(t *testing.T) {
		fixture.Reset(t, env.Client)
		fixture.CreateNodes(t, env.Client, node{Name: "a", Free: 10 * gi})
		fixture.CreateVolume(t, env.Client, vol{Name: "vol-late", Replicas: []string{"a"}})
		startController(t)
		createExpand(t, "exp-late", "vol-late", 4*gi)
		waitExpand(t, "exp-late", "waiting for the agent", hasPrefix("waiting for the replicas"))
		fixture.Edit(t, env.Client, "exp-late", func(e *v1.LocalVolumeExpand) { e.Spec.Abort = true })
		e := waitExpand(t, "exp-late", "abort ignored", hasPrefix("abort ignored: the volume is already growing; waiting for the replicas to grow to 4Gi: a has 1Gi"))
		if e.Status.State != v1.OperationStateInProgress {
			t.Errorf("state %s", e.Status.State)
		}
		waitEvents(t, "exp-late", "AbortIgnored")
		agentGrows(t, "vol-late", "a", 4*gi)
		e = waitState(t, "exp-late", v1.OperationStateCompleted)
		if e.Status.Message != "abort ignored: the volume is already growing; volume vol-late is 4Gi on a" || e.Status.AllocatedCapacityBytes != 4*gi {
			t.Errorf("status %+v", e.Status)
		}
	})
	t.Run("after Completed", func(t *testing.T) {
		fixture.Reset(t, env.Client)
		fixture.CreateNodes(t, env.Client, node{Name: "a", Free: 10 * gi})
		fixture.CreateVolume(t, env.Client, vol{Name: "vol-done", Replicas: []string{"a"}})
		startController(t)
		createExpand(t, "exp-done", "vol-done", 2*gi)
		waitState(t, "exp-done", v1.OperationStateInProgress)
		agentGrows(t, "vol-done", "a", 2*gi)
		waitState(t, "exp-done", v1.OperationStateCompleted)
		fixture.Edit(t, env.Client, "exp-done", func(e *v1.LocalVolumeExpand) { e.Spec.Abort = true })
		e := waitExpand(t, "exp-done", "abort ignored", hasPrefix("abort ignored: the expansion already completed; volume vol-done is 2Gi on a"))
		if e.Status.State != v1.OperationStateCompleted || fixture.GetVolume(t, env.Client, "vol-done").Spec.RequiredCapacityBytes != 2*gi {
			t.Errorf("status %+v", e.Status)
		}
	})
}

// TestRestart: a fresh controller resumes an expansion in InProgress; one
// recorded InProgress before the volume was changed (a crash between the
// two writes) checks the capacity again; a request raised beyond the
// pools' room is refused and leaves the volume as it is.
func TestRestart(t *testing.T) {
	t.Run("mid-InProgress", func(t *testing.T) {
		fixture.Reset(t, env.Client)
		fixture.CreateNodes(t, env.Client, node{Name: "a", Free: 10 * gi}, node{Name: "b", Free: 10 * gi})
		fixture.CreateVolume(t, env.Client, vol{Name: "vol-restart", Replicas: []string{"a", "b"}})
		stop := startController(t)
		createExpand(t, "exp-restart", "vol-restart", 4*gi)
		waitExpand(t, "exp-restart", "waiting for the agents", hasPrefix("waiting for the replicas"))
		testenv.Eventually(t, "replicas grown by the volume controller", func() bool {
			return fixture.GetReplica(t, env.Client, "vol-restart", "a").Spec.RequiredCapacityBytes == 4*gi && fixture.GetReplica(t, env.Client, "vol-restart", "b").Spec.RequiredCapacityBytes == 4*gi
		})
		stop()
		agentGrows(t, "vol-restart", "a", 4*gi)
		stop = startController(t)
		waitExpand(t, "exp-restart", "b left", hasPrefix("waiting for the replicas to grow to 4Gi: b has 1Gi"))
		stop()
		agentGrows(t, "vol-restart", "b", 4*gi)
		startController(t)
		e := waitState(t, "exp-restart", v1.OperationStateCompleted)
		if e.Status.AllocatedCapacityBytes != 4*gi {
			t.Errorf("status %+v", e.Status)
		}
	})
	t.Run("InProgress recorded, volume not changed yet", func(t *testing.T) {
		fixture.Reset(t, env.Client)
		fixture.CreateNodes(t, env.Client, node{Name: "a", Free: 10 * gi})
		fixture.CreateVolume(t, env.Client, vol{Name: "vol-crash", Replicas: []string{"a"}})
		createExpand(t, "exp-crash", "vol-crash", 3*gi)
		fixture.EditStatus(t, env.Client, "exp-crash", func(e *v1.LocalVolumeExpand) { e.Status.State = v1.OperationStateInProgress })
		startController(t)
		testenv.Eventually(t, "volume grown", func() bool { return fixture.GetVolume(t, env.Client, "vol-crash").Spec.RequiredCapacityBytes == 3*gi })
		agentGrows(t, "vol-crash", "a", 3*gi)
		waitState(t, "exp-crash", v1.OperationStateCompleted)
	})
	t.Run("request raised beyond the pool while InProgress", func(t *testing.T) {
		fixture.Reset(t, env.Client)
		fixture.CreateNodes(t, env.Client, node{Name: "a", Free: 4 * gi})
		fixture.CreateVolume(t, env.Client, vol{Name: "vol-raise", Replicas: []string{"a"}})
		stop := startController(t)
		createExpand(t, "exp-raise", "vol-raise", 3*gi)
		waitExpand(t, "exp-raise", "waiting for the agent", hasPrefix("waiting for the replicas"))
		testenv.Eventually(t, "replica grown by the volume controller", func() bool {
			return fixture.GetReplica(t, env.Client, "vol-raise", "a").Spec.RequiredCapacityBytes == 3*gi
		})
		stop()
		// While no controller runs, the agent grows the replica and the
		// user asks for more than the pool holds.
		fixture.SetReplicaStatus(t, env.Client, "vol-raise", "a", func(st *v1.LocalVolumeReplicaStatus) { st.AllocatedCapacityBytes = 3 * gi })
		fixture.Edit(t, env.Client, "exp-raise", func(e *v1.LocalVolumeExpand) { e.Spec.RequiredCapacityBytes = 20 * gi })
		startController(t)
		e := waitState(t, "exp-raise", v1.OperationStateFailed)
		if want := "cannot grow vol-raise from 3Gi to 20Gi: node a pool LocalStorage_PoolHDD: need 17Gi, free 4Gi; the volume stays at 3Gi"; e.Status.Message != want {
			t.Errorf("message %q\n want %q", e.Status.Message, want)
		}
		if got := fixture.GetVolume(t, env.Client, "vol-raise").Spec.RequiredCapacityBytes; got != 3*gi {
			t.Errorf("volume is %d bytes, want 3Gi", got)
		}
	})
}
