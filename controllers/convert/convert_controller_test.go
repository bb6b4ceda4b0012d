package convert

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/internal/fixture"
	"hwameistor.io/local/internal/testenv"
)

// toSync drives a conversion to SyncReplica (the agent allocates the new
// replica) and returns the target.
func toSync(t *testing.T, name, volume string) string {
	t.Helper()
	c := waitState(t, name, v1.OperationStateAddReplica)
	target := c.Annotations[TargetNodeAnnotation]
	fixture.AgentAllocates(t, env.Client, volume, target) // once the new replica exists
	waitState(t, name, v1.OperationStateSyncReplica)
	return target
}

// TestHappyPath walks a conversion through every state, with the test in
// the node agent's place and the volume controller running.
func TestHappyPath(t *testing.T) {
	for i, grouped := range []bool{false, true} {
		t.Run(fmt.Sprintf("grouped=%v", grouped), func(t *testing.T) {
			fixture.Reset(t, env.Client)
			// b has less room than a but is in another zone than src.
			fixture.CreateNodes(t, env.Client, node{Name: "src", Free: 10 * gi, Zone: "z1"}, node{Name: "a", Free: 100 * gi, Zone: "z1"},
				node{Name: "b", Free: 40 * gi, Zone: "z2"}, node{Name: "c", Free: 500 * gi, Zone: "z2", Cordoned: true})
			volName, name, group := fmt.Sprintf("vol-happy-%d", i), fmt.Sprintf("cv-happy-%d", i), ""
			if grouped {
				group = fmt.Sprintf("grp-happy-%d", i)
				fixture.CreateGroup(t, env.Client, group, v1.VolumeInfo{PersistentVolumeClaimName: "data", LocalVolumeName: volName, Nodes: []string{"src"}})
			}
			fixture.CreateVolume(t, env.Client, vol{Name: volName, Group: group, Replicas: []string{"src"}, Convertible: true})
			srcVersion := fixture.GetReplica(t, env.Client, volName, "src").ResourceVersion
			g := watchReplicas(t)
			startController(t)
			createConvert(t, name, volName)

			// AddReplica: the choice is recorded, then the marked replica
			// exists, owned by the volume, and the volume lists b.
			c := waitState(t, name, v1.OperationStateAddReplica)
			if c.Annotations[TargetNodeAnnotation] != "b" || c.Annotations[SourceNodeAnnotation] != "src" {
				t.Fatalf("annotations %v, want target b (another zone) and source src", c.Annotations)
			}
			var rep *v1.LocalVolumeReplica
			testenv.Eventually(t, "the new replica", func() bool { rep = fixture.GetReplica(t, env.Client, volName, "b"); return rep != nil })
			if rep.Annotations[v1.SyncPendingAnnotation] != name || rep.Annotations[v1.SyncSourceAnnotation] != "src" {
				t.Errorf("replica annotations %v", rep.Annotations)
			}
			if rep.Spec.RequiredCapacityBytes != gi || rep.Spec.PoolName != v1.PoolNameHDD || rep.Spec.NodeName != "b" || rep.Spec.VolumeName != volName {
				t.Errorf("replica spec %+v", rep.Spec)
			}
			if o := rep.OwnerReferences; len(o) != 1 || o[0].Kind != "LocalVolume" || o[0].Name != volName || o[0].Controller == nil || !*o[0].Controller {
				t.Errorf("replica owner %+v", o)
			}
			testenv.Eventually(t, "volume placed on src and b", func() bool {
				lv := fixture.GetVolume(t, env.Client, volName)
				return slices.Equal(lv.ReplicaNodes(), []string{"src", "b"}) && slices.Equal(lv.Spec.Accessibility.Nodes, []string{"src", "b"})
			})
			lv := fixture.GetVolume(t, env.Client, volName)
			if lv.Spec.Config.Version != 2 || lv.Spec.ReplicaNumber != 1 || !lv.Spec.Config.Replicas[0].Primary || lv.Spec.Config.Replicas[1].Primary {
				t.Errorf("volume during AddReplica: version %d, %s", lv.Spec.Config.Version, volumeSnapshot(lv))
			}
			if grouped {
				testenv.Eventually(t, "group entry on src and b", func() bool {
					return slices.Equal(fixture.GroupNodes(t, env.Client, group, volName), []string{"src", "b"})
				})
			}
			waitConvert(t, name, "allocating", hasPrefix("allocating the new replica "+rep.Name+" on b"))

			// SyncReplica once allocated; progress and the agent's trouble
			// show in the message.
			fixture.AgentAllocates(t, env.Client, volName, "b")
			waitState(t, name, v1.OperationStateSyncReplica)
			fixture.AgentCopied(t, env.Client, volName, "b", gi/2, "")
			waitConvert(t, name, "50%", hasPrefix("copying from src to b: 50% (512Mi of 1Gi)"))
			fixture.AgentCopied(t, env.Client, volName, "b", 0, "copy from src: volume is in use on src")
			waitConvert(t, name, "copy trouble", func(c *v1.LocalVolumeConvert) bool {
				return c.Status.Message == "copying from src to b: 0% (0 of 1Gi); copy from src: volume is in use on src"
			})
			if fixture.GetVolume(t, env.Client, volName).Spec.ReplicaNumber != 1 {
				t.Fatal("replicaNumber 2 before the copy was verified")
			}

			// Completed once verified.
			fixture.AgentVerified(t, env.Client, volName, "b")
			c = waitState(t, name, v1.OperationStateCompleted)
			if want := fmt.Sprintf("volume %s is HA: replicas on src and b; the copy on b was verified", volName); c.Status.Message != want {
				t.Errorf("message %q, want %q", c.Status.Message, want)
			}
			lv = fixture.GetVolume(t, env.Client, volName)
			if lv.Spec.ReplicaNumber != 2 || !slices.Equal(lv.ReplicaNodes(), []string{"src", "b"}) {
				t.Errorf("volume after: %s", volumeSnapshot(lv))
			}
			testenv.Eventually(t, "sync annotations removed", func() bool {
				r := fixture.GetReplica(t, env.Client, volName, "b")
				_, pending := r.Annotations[v1.SyncPendingAnnotation]
				_, source := r.Annotations[v1.SyncSourceAnnotation]
				return !pending && !source
			})
			if r := fixture.GetReplica(t, env.Client, volName, "src"); r == nil || r.ResourceVersion != srcVersion {
				t.Errorf("the original replica was touched: %+v", r)
			}
			waitEvents(t, name, "TargetChosen", "ReplicaAdded", "CopyRetrying", "Completed")
			g.stop()
			if got := g.created(volName, "src"); !slices.Equal(got, []string{"b", "src"}) {
				t.Errorf("replica objects ever created: %v", got)
			}
		})
	}
}

// TestBadInput: requests that cannot be done end at once with a message
// and change nothing.
func TestBadInput(t *testing.T) {
	cases := []struct {
		name   string
		volume string
		older  bool // an older conversion of the same volume exists
		state  v1.State
		want   string
	}{
		{name: "volume missing", volume: "vol-nope", state: v1.OperationStateFailed, want: "volume vol-nope not found"},
		{name: "not convertible", volume: "vol-plain", state: v1.OperationStateFailed,
			want: "volume vol-plain is not convertible: its StorageClass has no convertible: true"},
		{name: "already HA", volume: "vol-ha", state: v1.OperationStateCompleted, want: "volume vol-ha already has 2 replicas"},
		{name: "a second conversion of the same volume", volume: "vol-conv", older: true, state: v1.OperationStateFailed,
			want: "volume vol-conv is already being converted by cv-bad-a"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fixture.Reset(t, env.Client)
			fixture.CreateNodes(t, env.Client, node{Name: "src", Free: 10 * gi}, node{Name: "peer", Free: 10 * gi}, node{Name: "big", Free: 80 * gi})
			fixture.CreateVolume(t, env.Client, vol{Name: "vol-plain", Replicas: []string{"src"}})
			fixture.CreateVolume(t, env.Client, vol{Name: "vol-ha", Replicas: []string{"src", "peer"}, Convertible: true})
			fixture.CreateVolume(t, env.Client, vol{Name: "vol-conv", Replicas: []string{"src"}, Convertible: true})
			before := map[string]string{}
			for _, v := range []string{"vol-plain", "vol-ha", "vol-conv"} {
				before[v] = volumeSnapshot(fixture.GetVolume(t, env.Client, v)) + fmt.Sprint(fixture.ReplicaObjectNodes(t, env.Client, v))
			}
			name := "cv-bad"
			if tc.older {
				// Created back to back: the younger (by creation, then
				// name) fails whichever is reconciled first.
				createConvert(t, "cv-bad-a", tc.volume)
				name = "cv-bad-b"
			}
			createConvert(t, name, tc.volume)
			startController(t)
			c := waitState(t, name, tc.state)
			if c.Status.Message != tc.want {
				t.Errorf("message %q, want %q", c.Status.Message, tc.want)
			}
			if _, ok := c.Annotations[TargetNodeAnnotation]; ok {
				t.Errorf("a target was chosen: %v", c.Annotations)
			}
			if tc.older {
				waitState(t, "cv-bad-a", v1.OperationStateAddReplica)
				testenv.Eventually(t, "the older conversion's replica", func() bool { return len(fixture.ReplicaObjectNodes(t, env.Client, "vol-conv")) == 2 })
				delete(before, "vol-conv")
			}
			for v, b := range before {
				if got := volumeSnapshot(fixture.GetVolume(t, env.Client, v)) + fmt.Sprint(fixture.ReplicaObjectNodes(t, env.Client, v)); got != b {
					t.Errorf("%s changed: %s, was %s", v, got, b)
				}
			}
			reason := "ConvertFailed"
			if tc.state == v1.OperationStateCompleted {
				reason = "Completed"
			}
			waitEvents(t, name, reason)
		})
	}
}

// TestWaiting: a conversion that cannot start yet stays Submitted with a
// message, changes nothing, and starts once the obstacle is gone.
func TestWaiting(t *testing.T) {
	cases := []struct {
		name    string
		nodes   []node
		size    int64
		setup   func(t *testing.T) // makes the obstacle
		want    string             // the waiting message
		unblock func(t *testing.T) // removes it
		target  string             // chosen afterwards
	}{
		{name: "a migration of the volume is unfinished",
			nodes: []node{{Name: "big", Free: 80 * gi}},
			setup: func(t *testing.T) {
				fixture.Create(t, env.Client, &v1.LocalVolumeMigrate{ObjectMeta: metav1.ObjectMeta{Name: "mig-1"},
					Spec: v1.LocalVolumeMigrateSpec{VolumeName: "vol-wait", SourceNode: "src"}})
			},
			want: "waiting: volume vol-wait is being migrated by mig-1",
			unblock: func(t *testing.T) {
				fixture.EditStatus(t, env.Client, "mig-1", func(m *v1.LocalVolumeMigrate) { m.Status.State, m.Status.Message = v1.OperationStateFailed, "by hand" })
			},
			target: "big"},
		{name: "an older expansion of the volume is unfinished",
			nodes: []node{{Name: "big", Free: 80 * gi}},
			setup: func(t *testing.T) {
				fixture.Create(t, env.Client, &v1.LocalVolumeExpand{ObjectMeta: metav1.ObjectMeta{Name: "exp-1"},
					Spec: v1.LocalVolumeExpandSpec{VolumeName: "vol-wait", RequiredCapacityBytes: 2 * gi}})
				// Creation times have one-second resolution: make it older.
				time.Sleep(1100 * time.Millisecond)
			},
			want: "waiting: volume vol-wait is being expanded by exp-1",
			unblock: func(t *testing.T) {
				fixture.EditStatus(t, env.Client, "exp-1", func(e *v1.LocalVolumeExpand) { e.Status.State = v1.OperationStateCompleted })
			},
			target: "big"},
		{name: "no node has room",
			nodes: []node{{Name: "small", Free: 5 * gi}}, size: 10 * gi,
			want:    "waiting for a node that can hold 10Gi in LocalStorage_PoolHDD: none of 1 candidate node(s) has room (small: pool LocalStorage_PoolHDD: need 10Gi, free 5Gi)",
			unblock: func(t *testing.T) { fixture.CreateNodes(t, env.Client, node{Name: "roomy", Free: 20 * gi}) },
			target:  "roomy"},
		{name: "only cordoned or NotReady nodes",
			nodes:   []node{{Name: "cordoned", Free: 80 * gi, Cordoned: true}, {Name: "down", Free: 80 * gi, NotReady: true}},
			want:    "waiting for a node that can hold 1Gi in LocalStorage_PoolHDD: no Ready, schedulable node other than src",
			unblock: func(t *testing.T) { fixture.CreateNodes(t, env.Client, node{Name: "up", Free: 20 * gi}) },
			target:  "up"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fixture.Reset(t, env.Client)
			fixture.CreateNodes(t, env.Client, append([]node{{Name: "src", Free: 10 * gi}}, tc.nodes...)...)
			fixture.CreateVolume(t, env.Client, vol{Name: "vol-wait", Size: tc.size, Replicas: []string{"src"}, Convertible: true})
			before := volumeSnapshot(fixture.GetVolume(t, env.Client, "vol-wait"))
			if tc.setup != nil {
				tc.setup(t)
			}
			createConvert(t, "cv-wait", "vol-wait")
			startController(t)
			c := waitConvert(t, "cv-wait", "waiting", func(c *v1.LocalVolumeConvert) bool { return c.Status.Message != "" })
			if c.Status.State != v1.OperationStateSubmitted || c.Status.Message != tc.want {
				t.Fatalf("status %+v, want Submitted with %q", c.Status, tc.want)
			}
			if got := volumeSnapshot(fixture.GetVolume(t, env.Client, "vol-wait")); got != before {
				t.Errorf("volume changed while waiting: %s", got)
			}
			if got := fixture.ReplicaObjectNodes(t, env.Client, "vol-wait"); !slices.Equal(got, []string{"src"}) {
				t.Errorf("replicas created while waiting: %v", got)
			}
			waitEvents(t, "cv-wait", "Waiting")
			tc.unblock(t)
			c = waitState(t, "cv-wait", v1.OperationStateAddReplica)
			if c.Annotations[TargetNodeAnnotation] != tc.target {
				t.Errorf("target %q, want %s", c.Annotations[TargetNodeAnnotation], tc.target)
			}
		})
	}
}

// TestAbort: spec.abort rolls back everything the conversion added, deletes
// only the replica it made, never touches the original, and is ignored
// once the conversion completed.
func TestAbort(t *testing.T) {
	cases := []struct {
		name     string
		at       v1.State
		grouped  bool
		replaced bool // the new replica lost this conversion's annotation
		want     string
	}{
		{name: "while waiting in Submitted", at: v1.OperationStateSubmitted, want: "aborted by spec.abort; nothing was changed"},
		{name: "during AddReplica", at: v1.OperationStateAddReplica,
			want: "aborted by spec.abort; the replica on tgt was removed, the volume keeps its replica on src"},
		{name: "during SyncReplica", at: v1.OperationStateSyncReplica,
			want: "aborted by spec.abort; the replica on tgt was removed, the volume keeps its replica on src"},
		{name: "during SyncReplica, in a group", at: v1.OperationStateSyncReplica, grouped: true,
			want: "aborted by spec.abort; the replica on tgt was removed, the volume keeps its replica on src"},
		{name: "during SyncReplica, replica not ours any more", at: v1.OperationStateSyncReplica, replaced: true,
			want: "aborted by spec.abort; tgt was removed from the volume (its replica object is left: this conversion did not make it), the volume keeps its replica on src"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fixture.Reset(t, env.Client)
			fixture.CreateNodes(t, env.Client, node{Name: "src", Free: 10 * gi}, node{Name: "tgt", Free: 80 * gi})
			volName, name, group := fmt.Sprintf("vol-abort-%d", i), fmt.Sprintf("cv-abort-%d", i), ""
			if tc.grouped {
				group = "grp-abort"
				fixture.CreateGroup(t, env.Client, group, v1.VolumeInfo{PersistentVolumeClaimName: "data", LocalVolumeName: volName, Nodes: []string{"src"}})
			}
			fixture.CreateVolume(t, env.Client, vol{Name: volName, Group: group, Replicas: []string{"src"}, Convertible: true})
			before := volumeSnapshot(fixture.GetVolume(t, env.Client, volName))
			srcVersion := fixture.GetReplica(t, env.Client, volName, "src").ResourceVersion
			if tc.at == v1.OperationStateSubmitted {
				fixture.Create(t, env.Client, &v1.LocalVolumeMigrate{ObjectMeta: metav1.ObjectMeta{Name: "mig-block"},
					Spec: v1.LocalVolumeMigrateSpec{VolumeName: volName, SourceNode: "src"}})
			}
			stop := startController(t)
			createConvert(t, name, volName)
			switch tc.at {
			case v1.OperationStateSubmitted:
				waitConvert(t, name, "waiting", hasPrefix("waiting: volume "+volName+" is being migrated"))
			case v1.OperationStateAddReplica:
				waitState(t, name, tc.at)
				testenv.Eventually(t, "the new replica", func() bool { return fixture.GetReplica(t, env.Client, volName, "tgt") != nil })
				testenv.Eventually(t, "volume on tgt", func() bool { return slices.Contains(fixture.GetVolume(t, env.Client, volName).ReplicaNodes(), "tgt") })
			case v1.OperationStateSyncReplica:
				toSync(t, name, volName)
				fixture.AgentCopied(t, env.Client, volName, "tgt", gi/4, "")
				waitConvert(t, name, "25%", hasPrefix("copying from src to tgt: 25%"))
			}
			if tc.grouped {
				testenv.Eventually(t, "group entry on src and tgt", func() bool {
					return slices.Equal(fixture.GroupNodes(t, env.Client, group, volName), []string{"src", "tgt"})
				})
			}
			if tc.replaced {
				stop()
				rep := fixture.GetReplica(t, env.Client, volName, "tgt")
				delete(rep.Annotations, v1.SyncPendingAnnotation)
				if err := env.Client.Update(t.Context(), rep); err != nil {
					t.Fatal(err)
				}
			}
			fixture.Edit(t, env.Client, name, func(c *v1.LocalVolumeConvert) { c.Spec.Abort = true })
			if tc.replaced {
				startController(t)
			}
			c := waitState(t, name, v1.OperationStateAborted)
			if c.Status.Message != tc.want {
				t.Errorf("message %q, want %q", c.Status.Message, tc.want)
			}
			if got := volumeSnapshot(fixture.GetVolume(t, env.Client, volName)); got != before {
				t.Errorf("volume %s, want %s", got, before)
			}
			if tc.grouped {
				if got := fixture.GroupNodes(t, env.Client, group, volName); !slices.Equal(got, []string{"src"}) {
					t.Errorf("group entry %v after the abort", got)
				}
			}
			switch rep := fixture.GetReplica(t, env.Client, volName, "tgt"); {
			case tc.replaced && rep == nil:
				t.Error("a replica without this conversion's annotation was deleted")
			case !tc.replaced && rep != nil:
				t.Errorf("the new replica was not deleted: %+v", rep.ObjectMeta)
			}
			if r := fixture.GetReplica(t, env.Client, volName, "src"); r == nil || r.ResourceVersion != srcVersion {
				t.Errorf("the original replica was touched: %+v", r)
			}
			waitEvents(t, name, "Aborted")
		})
	}

	t.Run("after Completed", func(t *testing.T) {
		fixture.Reset(t, env.Client)
		fixture.CreateNodes(t, env.Client, node{Name: "src", Free: 10 * gi}, node{Name: "tgt", Free: 80 * gi})
		fixture.CreateVolume(t, env.Client, vol{Name: "vol-done", Replicas: []string{"src"}, Convertible: true})
		startController(t)
		createConvert(t, "cv-done", "vol-done")
		toSync(t, "cv-done", "vol-done")
		fixture.AgentVerified(t, env.Client, "vol-done", "tgt")
		done := waitState(t, "cv-done", v1.OperationStateCompleted)
		fixture.Edit(t, env.Client, "cv-done", func(c *v1.LocalVolumeConvert) { c.Spec.Abort = true })
		c := waitConvert(t, "cv-done", "abort ignored", hasPrefix("abort ignored: the conversion already completed; "))
		if c.Status.State != v1.OperationStateCompleted || !strings.HasSuffix(c.Status.Message, done.Status.Message) {
			t.Errorf("status %+v", c.Status)
		}
		if lv := fixture.GetVolume(t, env.Client, "vol-done"); lv.Spec.ReplicaNumber != 2 || !slices.Equal(lv.ReplicaNodes(), []string{"src", "tgt"}) {
			t.Errorf("volume %s", volumeSnapshot(lv))
		}
		if fixture.GetReplica(t, env.Client, "vol-done", "tgt") == nil {
			t.Error("the new replica was deleted")
		}
		waitEvents(t, "cv-done", "AbortIgnored")
	})
}

// TestFailure: the agent cannot allocate the new replica; the conversion
// fails and rolls back.
func TestFailure(t *testing.T) {
	fixture.Reset(t, env.Client)
	fixture.CreateNodes(t, env.Client, node{Name: "src", Free: 10 * gi}, node{Name: "tgt", Free: 80 * gi})
	fixture.CreateVolume(t, env.Client, vol{Name: "vol-fail", Replicas: []string{"src"}, Convertible: true})
	before := volumeSnapshot(fixture.GetVolume(t, env.Client, "vol-fail"))
	startController(t)
	createConvert(t, "cv-fail", "vol-fail")
	waitState(t, "cv-fail", v1.OperationStateAddReplica)
	testenv.Eventually(t, "the new replica", func() bool { return fixture.GetReplica(t, env.Client, "vol-fail", "tgt") != nil })
	fixture.SetReplicaStatus(t, env.Client, "vol-fail", "tgt", func(st *v1.LocalVolumeReplicaStatus) {
		st.State, st.Message = v1.StateNotReady, "insufficient capacity: need 1Gi, free 0"
	})
	c := waitState(t, "cv-fail", v1.OperationStateFailed)
	if want := "tgt could not allocate the new replica: insufficient capacity: need 1Gi, free 0; rolled back, the volume keeps its replica on src"; c.Status.Message != want {
		t.Errorf("message %q, want %q", c.Status.Message, want)
	}
	if got := volumeSnapshot(fixture.GetVolume(t, env.Client, "vol-fail")); got != before {
		t.Errorf("volume %s, want %s", got, before)
	}
	testenv.Eventually(t, "the new replica deleted", func() bool { return fixture.GetReplica(t, env.Client, "vol-fail", "tgt") == nil })
	waitEvents(t, "cv-fail", "ConvertFailed")
}

// TestRestart: a fresh controller resumes a conversion stopped in each
// state; the new replica is created once and keeps its UID.
func TestRestart(t *testing.T) {
	t.Run("mid-AddReplica and mid-SyncReplica", func(t *testing.T) {
		fixture.Reset(t, env.Client)
		fixture.CreateNodes(t, env.Client, node{Name: "src", Free: 10 * gi}, node{Name: "tgt", Free: 80 * gi}, node{Name: "alt", Free: 70 * gi})
		fixture.CreateVolume(t, env.Client, vol{Name: "vol-restart", Replicas: []string{"src"}, Convertible: true})
		g := watchReplicas(t)

		stop := startController(t)
		createConvert(t, "cv-restart", "vol-restart")
		target := waitState(t, "cv-restart", v1.OperationStateAddReplica).Annotations[TargetNodeAnnotation]
		testenv.Eventually(t, "the new replica", func() bool { return fixture.GetReplica(t, env.Client, "vol-restart", target) != nil })
		uid := fixture.GetReplica(t, env.Client, "vol-restart", target).UID
		stop()

		// Restart in AddReplica; the agent allocates while no controller runs.
		fixture.AgentAllocates(t, env.Client, "vol-restart", target)
		stop = startController(t)
		waitState(t, "cv-restart", v1.OperationStateSyncReplica)
		stop()

		// Restart in SyncReplica, with progress made meanwhile.
		fixture.AgentCopied(t, env.Client, "vol-restart", target, gi/2, "")
		stop = startController(t)
		waitConvert(t, "cv-restart", "50%", hasPrefix("copying from src to "+target+": 50%"))
		stop()

		fixture.AgentVerified(t, env.Client, "vol-restart", target)
		startController(t)
		waitState(t, "cv-restart", v1.OperationStateCompleted)
		if rep := fixture.GetReplica(t, env.Client, "vol-restart", target); rep == nil || rep.UID != uid {
			t.Errorf("the new replica was recreated: %+v", rep)
		}
		if lv := fixture.GetVolume(t, env.Client, "vol-restart"); lv.Spec.ReplicaNumber != 2 || !slices.Equal(lv.ReplicaNodes(), []string{"src", target}) || lv.Spec.Config.Version != 2 {
			t.Errorf("volume %s, version %d", volumeSnapshot(lv), lv.Spec.Config.Version)
		}
		g.stop()
		if got := g.created("vol-restart", "src"); len(got) != 2 || !slices.Contains(got, target) {
			t.Errorf("replica objects ever created: %v, want src and %s once each", got, target)
		}
	})

	// The states a crash between two writes leaves, made by hand.
	t.Run("AddReplica recorded, nothing created yet", func(t *testing.T) {
		fixture.Reset(t, env.Client)
		fixture.CreateNodes(t, env.Client, node{Name: "src", Free: 10 * gi}, node{Name: "tgt", Free: 80 * gi}, node{Name: "roomier", Free: 90 * gi})
		fixture.CreateVolume(t, env.Client, vol{Name: "vol-crash", Replicas: []string{"src"}, Convertible: true})
		createConvert(t, "cv-crash", "vol-crash")
		fixture.Edit(t, env.Client, "cv-crash", func(c *v1.LocalVolumeConvert) {
			c.Annotations = map[string]string{TargetNodeAnnotation: "tgt", SourceNodeAnnotation: "src"}
		})
		fixture.EditStatus(t, env.Client, "cv-crash", func(c *v1.LocalVolumeConvert) { c.Status.State = v1.OperationStateAddReplica })
		startController(t)
		testenv.Eventually(t, "the replica on the recorded target", func() bool {
			return slices.Equal(fixture.GetVolume(t, env.Client, "vol-crash").ReplicaNodes(), []string{"src", "tgt"}) && fixture.GetReplica(t, env.Client, "vol-crash", "tgt") != nil
		})
		if got := fixture.ReplicaObjectNodes(t, env.Client, "vol-crash"); !slices.Equal(got, []string{"src", "tgt"}) {
			t.Errorf("replica objects %v", got)
		}
	})
	t.Run("Completed recorded, annotations left", func(t *testing.T) {
		fixture.Reset(t, env.Client)
		fixture.CreateNodes(t, env.Client, node{Name: "src", Free: 10 * gi}, node{Name: "tgt", Free: 80 * gi})
		fixture.CreateVolume(t, env.Client, vol{Name: "vol-left", Replicas: []string{"src"}, Convertible: true})
		stop := startController(t)
		createConvert(t, "cv-left", "vol-left")
		toSync(t, "cv-left", "vol-left")
		stop()
		fixture.AgentVerified(t, env.Client, "vol-left", "tgt")
		fixture.EditStatus(t, env.Client, "cv-left", func(c *v1.LocalVolumeConvert) { c.Status.State = v1.OperationStateCompleted })
		startController(t)
		testenv.Eventually(t, "sync annotations removed", func() bool {
			return fixture.GetReplica(t, env.Client, "vol-left", "tgt").Annotations[v1.SyncPendingAnnotation] == ""
		})
	})
}
