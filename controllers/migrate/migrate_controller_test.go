package migrate

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/internal/fixture"
	"hwameistor.io/local/internal/testenv"
)

// migrationAt waits for the migration to reach state with a target and
// returns the target.
func migrationAt(t *testing.T, name string, state v1.State) string {
	t.Helper()
	m := waitState(t, name, state)
	if m.Status.TargetNode == "" {
		t.Fatalf("%s in %s without a target", name, state)
	}
	return m.Status.TargetNode
}

// toSync drives a single-volume migration to SyncReplica (the agent
// allocates the target) and returns the target.
func toSync(t *testing.T, name, volume string) string {
	t.Helper()
	target := migrationAt(t, name, v1.OperationStateAddReplica)
	fixture.AgentAllocates(t, env.Client, volume, target)
	waitState(t, name, v1.OperationStateSyncReplica)
	return target
}

func lvReplicas(t *testing.T, volume string) []string {
	t.Helper()
	return fixture.GetVolume(t, env.Client, volume).ReplicaNodes()
}

// TestHappyPath walks one volume through every state, with the test in
// the node agent's place.
func TestHappyPath(t *testing.T) {
	fixture.Reset(t, env.Client)
	fixture.CreateNodes(t, env.Client, node{Name: "src", Free: 50 * gi}, node{Name: "n1", Free: 80 * gi}, node{Name: "n2", Free: 40 * gi})
	fixture.CreateVolume(t, env.Client, volume{Name: "vol-happy", Replicas: []string{"src"}})
	g := watchCluster(t)
	startController(t)
	createMigration(t, "mig-happy", "vol-happy", "src")

	// AddReplica: the target replica, marked for the copy, owned by the volume.
	m := waitState(t, "mig-happy", v1.OperationStateAddReplica)
	if m.Status.TargetNode != "n1" {
		t.Fatalf("target %q, want n1 (the most free space)", m.Status.TargetNode)
	}
	if !slices.Equal(m.Status.Volumes, []string{"vol-happy"}) || m.Status.TotalBytes != gi || m.Status.Progress != "0%" || m.Status.StartTime == nil || m.Status.ReplicaNumber != 1 {
		t.Errorf("status after the target choice: %+v", m.Status)
	}
	var tgt *v1.LocalVolumeReplica
	testenv.Eventually(t, "target replica", func() bool { tgt = fixture.GetReplica(t, env.Client, "vol-happy", "n1"); return tgt != nil })
	if tgt.Annotations[v1.SyncPendingAnnotation] != "mig-happy" || tgt.Annotations[v1.SyncSourceAnnotation] != "src" {
		t.Errorf("target annotations %v", tgt.Annotations)
	}
	if tgt.Spec.RequiredCapacityBytes != gi || tgt.Spec.PoolName != v1.PoolNameHDD || tgt.Spec.NodeName != "n1" {
		t.Errorf("target spec %+v", tgt.Spec)
	}
	if len(tgt.OwnerReferences) != 1 || tgt.OwnerReferences[0].Kind != "LocalVolume" || tgt.OwnerReferences[0].Name != "vol-happy" ||
		tgt.OwnerReferences[0].Controller == nil || !*tgt.OwnerReferences[0].Controller {
		t.Errorf("target owner %+v", tgt.OwnerReferences)
	}
	testenv.Eventually(t, "volume placed on src and n1, annotated", func() bool {
		lv := fixture.GetVolume(t, env.Client, "vol-happy")
		return slices.Equal(lv.ReplicaNodes(), []string{"src", "n1"}) &&
			lv.Annotations[v1.VolumeMigrateStateAnnotation] == v1.VolumeMigrateStarted &&
			lv.Annotations[v1.MigrationProgressAnnotation] == "src → n1, 0%"
	})
	if lv := fixture.GetVolume(t, env.Client, "vol-happy"); !slices.Equal(lv.Spec.Accessibility.Nodes, []string{"src", "n1"}) {
		t.Errorf("accessibility %v", lv.Spec.Accessibility.Nodes)
	}
	// It waits for the allocation.
	waitMigration(t, "mig-happy", "waiting for the allocation", func(m *v1.LocalVolumeMigrate) bool {
		return m.Status.Message == "allocating on n1: 0/1 replicas ready"
	})

	// SyncReplica once the agent allocated the target.
	fixture.AgentAllocates(t, env.Client, "vol-happy", "n1")
	waitState(t, "mig-happy", v1.OperationStateSyncReplica)
	fixture.AgentCopied(t, env.Client, "vol-happy", "n1", gi/2, "")
	m = waitMigration(t, "mig-happy", "50%", func(m *v1.LocalVolumeMigrate) bool { return m.Status.Progress == "50%" })
	if m.Status.BytesCopied != gi/2 || !strings.Contains(m.Status.Message, "0/1 volumes verified") {
		t.Errorf("status while copying: %+v", m.Status)
	}
	testenv.Eventually(t, "volume progress annotation at 50%", func() bool {
		return fixture.GetVolume(t, env.Client, "vol-happy").Annotations[v1.MigrationProgressAnnotation] == "src → n1, 50%"
	})
	if fixture.GetReplica(t, env.Client, "vol-happy", "src") == nil {
		t.Fatal("source removed before the copy was verified")
	}

	// PruneReplica and Completed once the copy is verified.
	fixture.AgentVerified(t, env.Client, "vol-happy", "n1")
	m = waitState(t, "mig-happy", v1.OperationStateCompleted)
	if m.Status.CompletionTime == nil || m.Status.Progress != "100%" || m.Status.BytesCopied != gi || m.Status.Message != "moved to n1; data verified" {
		t.Errorf("completed status %+v", m.Status)
	}
	lv := fixture.GetVolume(t, env.Client, "vol-happy")
	if !slices.Equal(lv.ReplicaNodes(), []string{"n1"}) || !slices.Equal(lv.Spec.Accessibility.Nodes, []string{"n1"}) || !lv.Spec.Config.Replicas[0].Primary {
		t.Errorf("volume after the migration: %s", volumeSnapshot(lv))
	}
	if _, ok := lv.Annotations[v1.VolumeMigrateStateAnnotation]; ok {
		t.Errorf("migrate state annotation left: %v", lv.Annotations)
	}
	if _, ok := lv.Annotations[v1.MigrationProgressAnnotation]; ok {
		t.Errorf("progress annotation left: %v", lv.Annotations)
	}
	if fixture.GetReplica(t, env.Client, "vol-happy", "src") != nil {
		t.Error("source replica not deleted")
	}
	tgt = fixture.GetReplica(t, env.Client, "vol-happy", "n1")
	if tgt == nil || tgt.Annotations[v1.SyncPendingAnnotation] != "" || tgt.Annotations[v1.SyncSourceAnnotation] != "" {
		t.Errorf("target replica after the migration: %+v", tgt)
	}
	waitEvents(t, "mig-happy", "TargetChosen", "ReplicasAdded", "Copying", "Verified", "Completed")
	g.check(t)
	if got := g.replicasCreated("vol-happy"); !slices.Equal(got, []string{"n1", "src"}) {
		t.Errorf("replicas ever created: %v", got)
	}
}

// TestTargetChoice: the most free space among Ready, schedulable nodes
// without a replica where the volume fits; targetNodesSuggested and the
// groups' persisted placements count.
func TestTargetChoice(t *testing.T) {
	cases := []struct {
		name      string
		nodes     []node
		replicas  []string // the volume's; the first is the source
		size      int64
		suggested []string
		groups    []v1.VolumeInfo // placements in another group
		want      string
		waiting   string // no target: the migration waits with this message
	}{
		{name: "most free space wins",
			nodes: []node{{Name: "a", Free: 40 * gi}, {Name: "b", Free: 60 * gi}, {Name: "c", Free: 50 * gi}}, want: "b"},
		{name: "the source is never chosen",
			nodes: []node{{Name: "src", Free: 900 * gi}, {Name: "a", Free: 40 * gi}}, want: "a"},
		{name: "cordoned node skipped",
			nodes: []node{{Name: "big", Free: 500 * gi, Cordoned: true}, {Name: "a", Free: 40 * gi}}, want: "a"},
		{name: "NotReady LocalStorageNode skipped",
			nodes: []node{{Name: "big", Free: 500 * gi, NotReady: true}, {Name: "a", Free: 40 * gi}}, want: "a"},
		{name: "node without LocalStorageNode skipped",
			nodes: []node{{Name: "big", NoLSN: true}, {Name: "a", Free: 40 * gi}}, want: "a"},
		{name: "node holding a replica skipped",
			nodes:    []node{{Name: "holder", Free: 500 * gi}, {Name: "a", Free: 40 * gi}},
			replicas: []string{"src", "holder"}, want: "a"},
		{name: "pool without free volume slots skipped",
			nodes: []node{{Name: "full", Free: 500 * gi, Slots: -1}, {Name: "a", Free: 40 * gi}}, want: "a"},
		{name: "node without the volume's pool skipped",
			nodes: []node{{Name: "ssd", Free: 500 * gi, Pool: v1.PoolNameSSD}, {Name: "a", Free: 40 * gi}}, want: "a"},
		{name: "pool too small: no target, the migration waits",
			nodes: []node{{Name: "small", Free: 5 * gi}}, size: 10 * gi,
			waiting: "waiting for a target: no candidate node (1 checked) can hold 10Gi in LocalStorage_PoolHDD"},
		{name: "only unusable nodes: the migration waits",
			nodes:   []node{{Name: "big", Free: 500 * gi, Cordoned: true}},
			waiting: "waiting for a target: no Ready, schedulable node without a replica of the volumes"},
		{name: "targetNodesSuggested restricts the choice",
			nodes: []node{{Name: "a", Free: 40 * gi}, {Name: "b", Free: 60 * gi}}, suggested: []string{"a"}, want: "a"},
		{name: "a group's persisted placement is used capacity",
			nodes:  []node{{Name: "a", Free: 60 * gi}, {Name: "b", Free: 50 * gi}},
			groups: []v1.VolumeInfo{{PersistentVolumeClaimName: "other", LocalVolumeName: "pvc-other", Nodes: []string{"a"}, RequiredCapacityBytes: 20 * gi}},
			want:   "b"},
		{name: "HA: another zone than the replica that stays",
			nodes: []node{{Name: "src", Free: 10 * gi, Zone: "z1"}, {Name: "peer", Free: 10 * gi, Zone: "z1"},
				{Name: "a", Free: 100 * gi, Zone: "z1"}, {Name: "b", Free: 40 * gi, Zone: "z2"}},
			replicas: []string{"src", "peer"}, want: "b"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fixture.Reset(t, env.Client)
			nodes := tc.nodes
			if !slices.ContainsFunc(nodes, func(n node) bool { return n.Name == "src" }) {
				nodes = append([]node{{Name: "src", Free: 10 * gi}}, nodes...)
			}
			if tc.replicas != nil && !slices.ContainsFunc(nodes, func(n node) bool { return n.Name == tc.replicas[1] }) {
				nodes = append(nodes, node{Name: tc.replicas[1], Free: 10 * gi})
			}
			fixture.CreateNodes(t, env.Client, nodes...)
			replicas := tc.replicas
			if replicas == nil {
				replicas = []string{"src"}
			}
			vol, mig := fmt.Sprintf("vol-choice-%d", i), fmt.Sprintf("mig-choice-%d", i)
			fixture.CreateVolume(t, env.Client, volume{Name: vol, Size: tc.size, Replicas: replicas})
			if tc.groups != nil {
				fixture.CreateGroup(t, env.Client, fmt.Sprintf("grp-choice-%d", i), tc.groups...)
			}
			startController(t)
			createMigration(t, mig, vol, "src", func(s *v1.LocalVolumeMigrateSpec) { s.TargetNodesSuggested = tc.suggested })
			if tc.waiting != "" {
				m := waitMigration(t, mig, "waiting", func(m *v1.LocalVolumeMigrate) bool { return m.Status.Message != "" })
				if m.Status.State != v1.OperationStateSubmitted || m.Status.Message != tc.waiting || m.Status.TargetNode != "" {
					t.Fatalf("status %+v, want Submitted with %q", m.Status, tc.waiting)
				}
				if got := fixture.ReplicaObjectNodes(t, env.Client, vol); len(got) != len(replicas) {
					t.Errorf("replicas %v created while waiting", got)
				}
				return
			}
			if got := migrationAt(t, mig, v1.OperationStateAddReplica); got != tc.want {
				t.Fatalf("target %s, want %s", got, tc.want)
			}
		})
	}
}

// TestVolumeGroup: a group moves whole, to one target, with its persisted
// placement following; without migrateAllVols nothing moves.
func TestVolumeGroup(t *testing.T) {
	setup := func(t *testing.T) {
		fixture.Reset(t, env.Client)
		fixture.CreateNodes(t, env.Client, node{Name: "src", Free: 10 * gi}, node{Name: "tgt", Free: 80 * gi}, node{Name: "other", Free: 40 * gi})
		fixture.CreateVolume(t, env.Client, volume{Name: "grp-a", Group: "grp", Replicas: []string{"src"}})
		fixture.CreateVolume(t, env.Client, volume{Name: "grp-b", Group: "grp", Replicas: []string{"src"}, Size: 2 * gi})
		fixture.CreateGroup(t, env.Client, "grp",
			v1.VolumeInfo{PersistentVolumeClaimName: "data-a", LocalVolumeName: "grp-a", Nodes: []string{"src"}},
			v1.VolumeInfo{PersistentVolumeClaimName: "data-b", LocalVolumeName: "grp-b", Nodes: []string{"src"}, RequiredCapacityBytes: 2 * gi})
	}
	groupIs := func(t *testing.T, nodes ...string) {
		t.Helper()
		testenv.Eventually(t, fmt.Sprintf("group entries on %v", nodes), func() bool {
			return slices.Equal(fixture.GroupNodes(t, env.Client, "grp", "grp-a"), nodes) && slices.Equal(fixture.GroupNodes(t, env.Client, "grp", "grp-b"), nodes)
		})
	}

	t.Run("migrateAllVols moves both volumes", func(t *testing.T) {
		setup(t)
		g := watchCluster(t)
		startController(t)
		createMigration(t, "mig-grp", "grp-a", "src", func(s *v1.LocalVolumeMigrateSpec) { s.MigrateAllVols = true })
		m := waitState(t, "mig-grp", v1.OperationStateAddReplica)
		if m.Status.TargetNode != "tgt" || !slices.Equal(m.Status.Volumes, []string{"grp-a", "grp-b"}) || m.Status.TotalBytes != 3*gi {
			t.Fatalf("status %+v", m.Status)
		}
		groupIs(t, "src", "tgt")
		for _, v := range []string{"grp-a", "grp-b"} {
			testenv.Eventually(t, v+" placed on src and tgt", func() bool {
				return slices.Equal(lvReplicas(t, v), []string{"src", "tgt"}) && fixture.GetReplica(t, env.Client, v, "tgt") != nil
			})
		}
		// One allocated is not enough.
		fixture.AgentAllocates(t, env.Client, "grp-a", "tgt")
		waitMigration(t, "mig-grp", "1/2 allocated", func(m *v1.LocalVolumeMigrate) bool {
			return m.Status.Message == "allocating on tgt: 1/2 replicas ready"
		})
		fixture.AgentAllocates(t, env.Client, "grp-b", "tgt")
		waitState(t, "mig-grp", v1.OperationStateSyncReplica)
		// One verified is not enough either: the group switches together.
		fixture.AgentVerified(t, env.Client, "grp-a", "tgt")
		m = waitMigration(t, "mig-grp", "1/2 verified", func(m *v1.LocalVolumeMigrate) bool {
			return strings.Contains(m.Status.Message, "1/2 volumes verified")
		})
		if m.Status.Progress != "33%" || m.Status.State != v1.OperationStateSyncReplica {
			t.Errorf("status with one of two verified: %+v", m.Status)
		}
		if fixture.GetReplica(t, env.Client, "grp-a", "src") == nil || fixture.GetReplica(t, env.Client, "grp-b", "src") == nil {
			t.Fatal("a source removed before the whole group was verified")
		}
		fixture.AgentVerified(t, env.Client, "grp-b", "tgt")
		waitState(t, "mig-grp", v1.OperationStateCompleted)
		groupIs(t, "tgt")
		for _, v := range []string{"grp-a", "grp-b"} {
			if got := lvReplicas(t, v); !slices.Equal(got, []string{"tgt"}) {
				t.Errorf("%s replicas %v", v, got)
			}
			if got := fixture.ReplicaObjectNodes(t, env.Client, v); !slices.Equal(got, []string{"tgt"}) {
				t.Errorf("%s replica objects on %v", v, got)
			}
		}
		g.check(t)
	})

	t.Run("without migrateAllVols it fails and changes nothing", func(t *testing.T) {
		setup(t)
		before := volumeSnapshot(fixture.GetVolume(t, env.Client, "grp-b"))
		startController(t)
		createMigration(t, "mig-grp-one", "grp-b", "src")
		m := waitState(t, "mig-grp-one", v1.OperationStateFailed)
		if !strings.Contains(m.Status.Message, "migrateAllVols") || !strings.Contains(m.Status.Message, "volume group grp") || m.Status.CompletionTime == nil {
			t.Errorf("status %+v", m.Status)
		}
		if got := volumeSnapshot(fixture.GetVolume(t, env.Client, "grp-b")); got != before {
			t.Errorf("volume changed: %s, was %s", got, before)
		}
		for _, v := range []string{"grp-a", "grp-b"} {
			if got := fixture.ReplicaObjectNodes(t, env.Client, v); !slices.Equal(got, []string{"src"}) {
				t.Errorf("%s replica objects on %v", v, got)
			}
		}
		groupIs(t, "src")
		waitEvents(t, "mig-grp-one", "MigrationFailed")
	})
}

// TestHAVolume: the replica that stays serves the pod meanwhile, so the
// volume is not marked migrating; it ends on the staying replica and the
// target.
func TestHAVolume(t *testing.T) {
	cases := []struct {
		name  string
		group bool
	}{
		{name: "HA volume"},
		{name: "HA volume in a group", group: true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fixture.Reset(t, env.Client)
			fixture.CreateNodes(t, env.Client, node{Name: "a", Free: 100 * gi}, node{Name: "b", Free: 90 * gi}, node{Name: "t", Free: 40 * gi}, node{Name: "u", Free: 30 * gi})
			vol, mig, grp := fmt.Sprintf("vol-ha-%d", i), fmt.Sprintf("mig-ha-%d", i), ""
			if tc.group {
				grp = fmt.Sprintf("grp-ha-%d", i)
				fixture.CreateGroup(t, env.Client, grp, v1.VolumeInfo{PersistentVolumeClaimName: "data", LocalVolumeName: vol, Nodes: []string{"a", "b"}})
			}
			fixture.CreateVolume(t, env.Client, volume{Name: vol, Group: grp, Replicas: []string{"a", "b"}})
			g := watchCluster(t)
			startController(t)
			createMigration(t, mig, vol, "a", func(s *v1.LocalVolumeMigrateSpec) { s.MigrateAllVols = tc.group })
			target := migrationAt(t, mig, v1.OperationStateAddReplica)
			if target != "t" {
				t.Fatalf("target %s, want t (neither replica node, most free)", target)
			}
			testenv.Eventually(t, "volume placed on a, b and t", func() bool {
				return slices.Equal(lvReplicas(t, vol), []string{"a", "b", "t"})
			})
			if tc.group {
				// The entry already lists two nodes, its most: the target
				// replaces the source there at the switch.
				if got := fixture.GroupNodes(t, env.Client, grp, vol); !slices.Equal(got, []string{"a", "b"}) {
					t.Errorf("group entry during the copy: %v", got)
				}
			}
			fixture.AgentAllocates(t, env.Client, vol, "t")
			waitState(t, mig, v1.OperationStateSyncReplica)
			fixture.AgentCopied(t, env.Client, vol, "t", gi/2, "")
			waitMigration(t, mig, "50%", func(m *v1.LocalVolumeMigrate) bool { return m.Status.Progress == "50%" })
			lv := fixture.GetVolume(t, env.Client, vol)
			if _, ok := lv.Annotations[v1.VolumeMigrateStateAnnotation]; ok {
				t.Errorf("HA volume annotated migrating: %v", lv.Annotations)
			}
			if _, ok := lv.Annotations[v1.MigrationProgressAnnotation]; ok {
				t.Errorf("HA volume annotated with progress: %v", lv.Annotations)
			}
			fixture.AgentVerified(t, env.Client, vol, "t")
			waitState(t, mig, v1.OperationStateCompleted)
			lv = fixture.GetVolume(t, env.Client, vol)
			if !slices.Equal(lv.ReplicaNodes(), []string{"b", "t"}) || !lv.Spec.Config.Replicas[0].Primary || lv.Spec.Config.Replicas[1].Primary {
				t.Errorf("volume after: %s", volumeSnapshot(lv))
			}
			if got := fixture.ReplicaObjectNodes(t, env.Client, vol); !slices.Equal(got, []string{"b", "t"}) {
				t.Errorf("replica objects on %v", got)
			}
			if tc.group {
				testenv.Eventually(t, "group entry on b and t", func() bool {
					nodes := slices.Clone(fixture.GroupNodes(t, env.Client, grp, vol))
					slices.Sort(nodes)
					return slices.Equal(nodes, []string{"b", "t"})
				})
			}
			g.check(t)
		})
	}
}

// TestHABothReplicasDrained: both nodes of an HA volume drained; the
// migration off the second waits for the older one off the first, then
// moves too (never both at once, so they do not pick one target).
func TestHABothReplicasDrained(t *testing.T) {
	fixture.Reset(t, env.Client)
	fixture.CreateNodes(t, env.Client, node{Name: "a", Free: 100 * gi, Cordoned: true}, node{Name: "b", Free: 90 * gi, Cordoned: true},
		node{Name: "t", Free: 40 * gi}, node{Name: "u", Free: 30 * gi})
	fixture.CreateVolume(t, env.Client, volume{Name: "vol-ha2", Replicas: []string{"a", "b"}})
	g := watchCluster(t)
	startController(t)
	createMigration(t, "mig-ha2-a", "vol-ha2", "a")
	createMigration(t, "mig-ha2-b", "vol-ha2", "b")
	if target := migrationAt(t, "mig-ha2-a", v1.OperationStateAddReplica); target != "t" {
		t.Fatalf("first target %s, want t", target)
	}
	waitMigration(t, "mig-ha2-b", "waiting for the older migration", func(m *v1.LocalVolumeMigrate) bool {
		return m.Status.State == v1.OperationStateSubmitted && m.Status.Message == "waiting for mig-ha2-a, which moves the volume's replica on a"
	})
	fixture.AgentAllocates(t, env.Client, "vol-ha2", "t")
	waitState(t, "mig-ha2-a", v1.OperationStateSyncReplica)
	fixture.AgentVerified(t, env.Client, "vol-ha2", "t")
	waitState(t, "mig-ha2-a", v1.OperationStateCompleted)
	if target := migrationAt(t, "mig-ha2-b", v1.OperationStateAddReplica); target != "u" {
		t.Fatalf("second target %s, want u", target)
	}
	fixture.AgentAllocates(t, env.Client, "vol-ha2", "u")
	waitState(t, "mig-ha2-b", v1.OperationStateSyncReplica)
	fixture.AgentVerified(t, env.Client, "vol-ha2", "u")
	waitState(t, "mig-ha2-b", v1.OperationStateCompleted)
	if got := lvReplicas(t, "vol-ha2"); !slices.Equal(got, []string{"t", "u"}) {
		t.Errorf("replicas %v, want [t u]", got)
	}
	if got := fixture.ReplicaObjectNodes(t, env.Client, "vol-ha2"); !slices.Equal(got, []string{"t", "u"}) {
		t.Errorf("replica objects on %v", got)
	}
	g.check(t)
}

// TestAbort: spec.abort rolls back before the prune (the source is never
// touched) and is ignored once the migration completed.
func TestAbort(t *testing.T) {
	for i, at := range []v1.State{v1.OperationStateSubmitted, v1.OperationStateAddReplica, v1.OperationStateSyncReplica} {
		t.Run("during "+string(at), func(t *testing.T) {
			fixture.Reset(t, env.Client)
			fixture.CreateNodes(t, env.Client, node{Name: "src", Free: 10 * gi}, node{Name: "tgt", Free: 80 * gi})
			vol, mig := fmt.Sprintf("vol-abort-%d", i), fmt.Sprintf("mig-abort-%d", i)
			fixture.CreateVolume(t, env.Client, volume{Name: vol, Replicas: []string{"src"}})
			before := volumeSnapshot(fixture.GetVolume(t, env.Client, vol))
			srcVersion := fixture.GetReplica(t, env.Client, vol, "src").ResourceVersion
			g := watchCluster(t)
			startController(t, func(r *Reconciler) {
				if at == v1.OperationStateSubmitted {
					r.MaxTotal = -1 // every migration queues
				}
			})
			createMigration(t, mig, vol, "src")
			switch at {
			case v1.OperationStateSubmitted:
				waitMigration(t, mig, "queued", func(m *v1.LocalVolumeMigrate) bool { return strings.HasPrefix(m.Status.Message, "queued") })
			case v1.OperationStateAddReplica:
				migrationAt(t, mig, at)
				testenv.Eventually(t, "target replica", func() bool { return fixture.GetReplica(t, env.Client, vol, "tgt") != nil })
			case v1.OperationStateSyncReplica:
				toSync(t, mig, vol)
				fixture.AgentCopied(t, env.Client, vol, "tgt", gi/4, "")
				waitMigration(t, mig, "25%", func(m *v1.LocalVolumeMigrate) bool { return m.Status.Progress == "25%" })
			}
			fixture.Edit(t, env.Client, mig, func(m *v1.LocalVolumeMigrate) { m.Spec.Abort = true })
			m := waitState(t, mig, v1.OperationStateAborted)
			if !strings.Contains(m.Status.Message, "aborted") || m.Status.CompletionTime == nil {
				t.Errorf("status %+v", m.Status)
			}
			if fixture.GetReplica(t, env.Client, vol, "tgt") != nil {
				t.Error("target replica not deleted")
			}
			if got := volumeSnapshot(fixture.GetVolume(t, env.Client, vol)); got != before {
				t.Errorf("volume %s, want %s", got, before)
			}
			if src := fixture.GetReplica(t, env.Client, vol, "src"); src == nil || src.ResourceVersion != srcVersion {
				t.Errorf("source replica touched: %+v", src)
			}
			waitEvents(t, mig, "Aborted")
			g.check(t)
		})
	}

	t.Run("after Completed", func(t *testing.T) {
		fixture.Reset(t, env.Client)
		fixture.CreateNodes(t, env.Client, node{Name: "src", Free: 10 * gi}, node{Name: "tgt", Free: 80 * gi})
		fixture.CreateVolume(t, env.Client, volume{Name: "vol-abort-done", Replicas: []string{"src"}})
		startController(t)
		createMigration(t, "mig-abort-done", "vol-abort-done", "src")
		toSync(t, "mig-abort-done", "vol-abort-done")
		fixture.AgentVerified(t, env.Client, "vol-abort-done", "tgt")
		done := waitState(t, "mig-abort-done", v1.OperationStateCompleted)
		fixture.Edit(t, env.Client, "mig-abort-done", func(m *v1.LocalVolumeMigrate) { m.Spec.Abort = true })
		m := waitMigration(t, "mig-abort-done", "abort ignored", func(m *v1.LocalVolumeMigrate) bool {
			return strings.HasPrefix(m.Status.Message, "abort ignored")
		})
		if m.Status.State != v1.OperationStateCompleted || !m.Status.CompletionTime.Equal(done.Status.CompletionTime) {
			t.Errorf("status %+v", m.Status)
		}
		if got := lvReplicas(t, "vol-abort-done"); !slices.Equal(got, []string{"tgt"}) {
			t.Errorf("replicas %v", got)
		}
		if fixture.GetReplica(t, env.Client, "vol-abort-done", "tgt") == nil {
			t.Error("the migrated replica was deleted")
		}
	})
}

// TestBadInput: requests that cannot be done fail at once with a message
// and change nothing.
func TestBadInput(t *testing.T) {
	cases := []struct {
		name      string
		volume    string // migrated; vol-bad exists on src (10Gi)
		source    string
		suggested []string
		older     bool // an older migration of the same volume exists
		want      string
	}{
		{name: "volume missing", volume: "vol-nope", source: "src", want: "volume vol-nope not found"},
		{name: "source holds no replica", volume: "vol-bad", source: "small", want: "node small holds no replica of volume vol-bad (replicas on src)"},
		{name: "suggested target without capacity", volume: "vol-bad", source: "src", suggested: []string{"small"},
			want: "none of the suggested nodes small can take the volumes: no candidate node (1 checked) can hold 10Gi in LocalStorage_PoolHDD"},
		{name: "suggested target cordoned", volume: "vol-bad", source: "src", suggested: []string{"cordoned"},
			want: "none of the suggested nodes cordoned can take the volumes: no Ready, schedulable node without a replica of the volumes"},
		{name: "a second migration of the same volume", volume: "vol-bad", source: "src", older: true,
			want: "volume vol-bad is already being migrated by mig-bad-a"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fixture.Reset(t, env.Client)
			fixture.CreateNodes(t, env.Client, node{Name: "src", Free: 10 * gi}, node{Name: "small", Free: 5 * gi}, node{Name: "big", Free: 80 * gi},
				node{Name: "cordoned", Free: 100 * gi, Cordoned: true})
			fixture.CreateVolume(t, env.Client, volume{Name: "vol-bad", Size: 10 * gi, Replicas: []string{"src"}})
			before := volumeSnapshot(fixture.GetVolume(t, env.Client, "vol-bad"))
			startController(t)
			mig := "mig-bad"
			if tc.older {
				// Created back to back: the younger (by creation, then
				// name) fails whichever is reconciled first.
				createMigration(t, "mig-bad-a", tc.volume, tc.source)
				mig = "mig-bad-b"
			}
			createMigration(t, mig, tc.volume, tc.source, func(s *v1.LocalVolumeMigrateSpec) { s.TargetNodesSuggested = tc.suggested })
			m := waitState(t, mig, v1.OperationStateFailed)
			if m.Status.Message != tc.want {
				t.Errorf("message %q, want %q", m.Status.Message, tc.want)
			}
			if m.Status.TargetNode != "" || m.Status.CompletionTime == nil {
				t.Errorf("status %+v", m.Status)
			}
			if tc.older {
				// Only the older migration's target exists.
				older := migrationAt(t, "mig-bad-a", v1.OperationStateAddReplica)
				testenv.Eventually(t, "older's target replica", func() bool { return fixture.GetReplica(t, env.Client, "vol-bad", older) != nil })
				if got := fixture.ReplicaObjectNodes(t, env.Client, "vol-bad"); !slices.Equal(got, []string{"big", "src"}) {
					t.Errorf("replica objects on %v", got)
				}
				if rep := fixture.GetReplica(t, env.Client, "vol-bad", older); rep.Annotations[v1.SyncPendingAnnotation] != "mig-bad-a" {
					t.Errorf("target annotations %v", rep.Annotations)
				}
			} else {
				if got := fixture.ReplicaObjectNodes(t, env.Client, "vol-bad"); !slices.Equal(got, []string{"src"}) {
					t.Errorf("replica objects on %v", got)
				}
				if got := volumeSnapshot(fixture.GetVolume(t, env.Client, "vol-bad")); got != before {
					t.Errorf("volume %s, was %s", got, before)
				}
			}
			waitEvents(t, mig, "MigrationFailed")
		})
	}
}

// TestConcurrencyLimit: over the limit a migration queues in Submitted and
// starts when a slot frees; migrations created together never overrun it.
func TestConcurrencyLimit(t *testing.T) {
	cases := []struct {
		name       string
		sources    [2]string
		maxPerNode int
		maxTotal   int
		want       string // the queued message's tail
	}{
		{name: "per node", sources: [2]string{"src", "src"}, maxPerNode: 1, maxTotal: 10, want: "1 from src (limit 1)"},
		{name: "total", sources: [2]string{"src", "src2"}, maxPerNode: 10, maxTotal: 1, want: "1 migrations running (limit 1)"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fixture.Reset(t, env.Client)
			fixture.CreateNodes(t, env.Client, node{Name: "src", Free: 10 * gi}, node{Name: "src2", Free: 10 * gi}, node{Name: "tgt", Free: 80 * gi})
			vols := [2]string{fmt.Sprintf("vol-limit-%d-0", i), fmt.Sprintf("vol-limit-%d-1", i)}
			migs := [2]string{fmt.Sprintf("mig-limit-%d-0", i), fmt.Sprintf("mig-limit-%d-1", i)}
			for j := range vols {
				fixture.CreateVolume(t, env.Client, volume{Name: vols[j], Replicas: []string{tc.sources[j]}})
			}
			g := watchCluster(t)
			startController(t, func(r *Reconciler) { r.MaxPerNode, r.MaxTotal = tc.maxPerNode, tc.maxTotal })
			createMigration(t, migs[0], vols[0], tc.sources[0])
			createMigration(t, migs[1], vols[1], tc.sources[1])
			// Exactly one starts; which one is the controller's business.
			first, second := -1, -1
			defer func() {
				if t.Failed() {
					for _, name := range migs {
						t.Logf("%s: %+v", name, getMigration(t, name).Status)
					}
				}
			}()
			testenv.Eventually(t, "one started, one queued", func() bool {
				a, b := getMigration(t, migs[0]), getMigration(t, migs[1])
				switch {
				case a.Status.State == v1.OperationStateAddReplica && b.Status.State == v1.OperationStateSubmitted && strings.HasPrefix(b.Status.Message, "queued"):
					first, second = 0, 1
				case b.Status.State == v1.OperationStateAddReplica && a.Status.State == v1.OperationStateSubmitted && strings.HasPrefix(a.Status.Message, "queued"):
					first, second = 1, 0
				default:
					return false
				}
				return true
			})
			if m := getMigration(t, migs[second]); !strings.Contains(m.Status.Message, tc.want) || m.Status.TargetNode != "" {
				t.Errorf("queued status %+v", m.Status)
			}
			if got := fixture.ReplicaObjectNodes(t, env.Client, vols[second]); !slices.Equal(got, []string{tc.sources[second]}) {
				t.Errorf("queued migration created replicas: %v", got)
			}
			fixture.AgentAllocates(t, env.Client, vols[first], "tgt")
			waitState(t, migs[first], v1.OperationStateSyncReplica)
			if m := getMigration(t, migs[second]); m.Status.State != v1.OperationStateSubmitted {
				t.Fatalf("second started while the first copies: %+v", m.Status)
			}
			fixture.AgentVerified(t, env.Client, vols[first], "tgt")
			waitState(t, migs[first], v1.OperationStateCompleted)
			// The slot is free: the queued one proceeds.
			target := migrationAt(t, migs[second], v1.OperationStateAddReplica)
			fixture.AgentAllocates(t, env.Client, vols[second], target)
			waitState(t, migs[second], v1.OperationStateSyncReplica)
			fixture.AgentVerified(t, env.Client, vols[second], target)
			waitState(t, migs[second], v1.OperationStateCompleted)
			g.check(t)
			total, perNode := g.maxConcurrent()
			if total > tc.maxTotal || perNode > tc.maxPerNode {
				t.Errorf("at most %d active (%d from one node), limits %d and %d per node", total, perNode, tc.maxTotal, tc.maxPerNode)
			}
		})
	}
}

// TestDeadline: a migration that outlives the deadline is rolled back and
// fails; the source stays.
func TestDeadline(t *testing.T) {
	for i, at := range []v1.State{v1.OperationStateAddReplica, v1.OperationStateSyncReplica} {
		t.Run("in "+string(at), func(t *testing.T) {
			fixture.Reset(t, env.Client)
			fixture.CreateNodes(t, env.Client, node{Name: "src", Free: 10 * gi}, node{Name: "tgt", Free: 80 * gi})
			vol, mig := fmt.Sprintf("vol-deadline-%d", i), fmt.Sprintf("mig-deadline-%d", i)
			fixture.CreateVolume(t, env.Client, volume{Name: vol, Replicas: []string{"src"}})
			before := volumeSnapshot(fixture.GetVolume(t, env.Client, vol))
			clock := newFakeClock()
			g := watchCluster(t)
			startController(t, func(r *Reconciler) { r.Now, r.Deadline = clock.Now, 10*time.Minute })
			createMigration(t, mig, vol, "src")
			if at == v1.OperationStateSyncReplica {
				toSync(t, mig, vol)
			} else {
				migrationAt(t, mig, at)
				testenv.Eventually(t, "target replica", func() bool { return fixture.GetReplica(t, env.Client, vol, "tgt") != nil })
			}
			clock.Advance(11 * time.Minute)
			wakeWithReport(t, vol, "tgt")
			m := waitState(t, mig, v1.OperationStateFailed)
			if want := fmt.Sprintf("deadline 10m0s exceeded in state %s; rolled back, the volume stays on src", at); m.Status.Message != want {
				t.Errorf("message %q, want %q", m.Status.Message, want)
			}
			if fixture.GetReplica(t, env.Client, vol, "tgt") != nil {
				t.Error("target replica not deleted")
			}
			if fixture.GetReplica(t, env.Client, vol, "src") == nil {
				t.Error("source replica deleted")
			}
			if got := volumeSnapshot(fixture.GetVolume(t, env.Client, vol)); got != before {
				t.Errorf("volume %s, want %s", got, before)
			}
			waitEvents(t, mig, "MigrationFailed")
			g.check(t)
		})
	}
}

// wakeWithReport plays the agent's next progress report on the replica of
// volume on node, which wakes the controller. Another event may have woken
// it first and the rollback may already have deleted the replica: that is
// not an error.
func wakeWithReport(t *testing.T, volume, node string) {
	t.Helper()
	ctx, key := context.Background(), client.ObjectKey{Name: v1.ReplicaName(volume, node)}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		rep := &v1.LocalVolumeReplica{}
		if err := env.Client.Get(ctx, key, rep); err != nil {
			return err
		}
		rep.Status.SyncedBytes = gi / 10
		return env.Client.Status().Update(ctx, rep)
	})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("reporting progress on %s: %v", key.Name, err)
	}
}

// TestFailureRollsBack: a target the agent cannot allocate, or one that
// disappears during the copy, fails the migration with a rollback.
func TestFailureRollsBack(t *testing.T) {
	cases := []struct {
		name    string
		at      v1.State
		breakIt func(t *testing.T, volume string)
		want    string
	}{
		{name: "allocation fails for capacity", at: v1.OperationStateAddReplica,
			breakIt: func(t *testing.T, v string) {
				fixture.SetReplicaStatus(t, env.Client, v, "tgt", func(st *v1.LocalVolumeReplicaStatus) {
					st.State, st.Message = v1.StateNotReady, "creating volume: insufficient capacity"
				})
			},
			want: "target tgt could not allocate %s: creating volume: insufficient capacity"},
		{name: "target replica deleted during the copy", at: v1.OperationStateSyncReplica,
			breakIt: func(t *testing.T, v string) {
				if err := env.Client.Delete(context.Background(), fixture.GetReplica(t, env.Client, v, "tgt")); err != nil {
					t.Fatal(err)
				}
			},
			want: "target replica of %s on tgt disappeared"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fixture.Reset(t, env.Client)
			fixture.CreateNodes(t, env.Client, node{Name: "src", Free: 10 * gi}, node{Name: "tgt", Free: 80 * gi})
			vol, mig := fmt.Sprintf("vol-fail-%d", i), fmt.Sprintf("mig-fail-%d", i)
			fixture.CreateVolume(t, env.Client, volume{Name: vol, Replicas: []string{"src"}})
			before := volumeSnapshot(fixture.GetVolume(t, env.Client, vol))
			g := watchCluster(t)
			startController(t)
			createMigration(t, mig, vol, "src")
			if tc.at == v1.OperationStateSyncReplica {
				toSync(t, mig, vol)
			} else {
				migrationAt(t, mig, tc.at)
				testenv.Eventually(t, "target replica", func() bool { return fixture.GetReplica(t, env.Client, vol, "tgt") != nil })
			}
			tc.breakIt(t, vol)
			m := waitState(t, mig, v1.OperationStateFailed)
			if want := fmt.Sprintf(tc.want, vol); m.Status.Message != want {
				t.Errorf("message %q, want %q", m.Status.Message, want)
			}
			if fixture.GetReplica(t, env.Client, vol, "tgt") != nil {
				t.Error("target replica left")
			}
			if fixture.GetReplica(t, env.Client, vol, "src") == nil {
				t.Error("source replica deleted")
			}
			if got := volumeSnapshot(fixture.GetVolume(t, env.Client, vol)); got != before {
				t.Errorf("volume %s, want %s", got, before)
			}
			g.check(t)
			// The rollback is not undone by a late reconcile of the
			// migration read from a cache that lags its Failed state.
			if got := g.replicasCreated(vol); !slices.Equal(got, []string{"src", "tgt"}) {
				t.Errorf("replica objects ever created on %v", got)
			}
		})
	}
}

// TestRestartBeforeVolumeEdit: a controller stopped after creating the
// target replica but before adding it to the volume, while the agent failed
// to allocate it. The fresh one adds the target to the volume and rolls
// back in the same reconcile: the rollback must see its own edit.
func TestRestartBeforeVolumeEdit(t *testing.T) {
	for i, group := range []bool{false, true} {
		t.Run(fmt.Sprintf("group=%v", group), func(t *testing.T) {
			fixture.Reset(t, env.Client)
			ctx := context.Background()
			vol, mig, grp := fmt.Sprintf("vol-early-%d", i), fmt.Sprintf("mig-early-%d", i), ""
			fixture.CreateNodes(t, env.Client, node{Name: "src", Free: 10 * gi}, node{Name: "tgt", Free: 80 * gi})
			if group {
				grp = fmt.Sprintf("grp-early-%d", i)
				fixture.CreateGroup(t, env.Client, grp, v1.VolumeInfo{PersistentVolumeClaimName: "data", LocalVolumeName: vol, Nodes: []string{"src"}})
			}
			fixture.CreateVolume(t, env.Client, volume{Name: vol, Group: grp, Replicas: []string{"src"}})
			before := volumeSnapshot(fixture.GetVolume(t, env.Client, vol))
			createMigration(t, mig, vol, "src", func(s *v1.LocalVolumeMigrateSpec) { s.MigrateAllVols = group })
			fixture.EditStatus(t, env.Client, mig, func(m *v1.LocalVolumeMigrate) {
				m.Status = v1.LocalVolumeMigrateStatus{State: v1.OperationStateAddReplica, TargetNode: "tgt", Volumes: []string{vol},
					ReplicaNumber: 1, TotalBytes: gi, Progress: "0%", StartTime: ptrNow(time.Now())}
			})
			rep := &v1.LocalVolumeReplica{ObjectMeta: metav1.ObjectMeta{Name: v1.ReplicaName(vol, "tgt"),
				Annotations: map[string]string{v1.SyncPendingAnnotation: mig, v1.SyncSourceAnnotation: "src"}},
				Spec: v1.LocalVolumeReplicaSpec{VolumeName: vol, NodeName: "tgt", PoolName: v1.PoolNameHDD, RequiredCapacityBytes: gi, VolumeKind: v1.VolumeKindLVM}}
			if err := controllerutil.SetControllerReference(fixture.GetVolume(t, env.Client, vol), rep, env.Scheme); err != nil {
				t.Fatal(err)
			}
			fixture.Create(t, env.Client, rep)
			rep.Status = v1.LocalVolumeReplicaStatus{State: v1.StateNotReady, Message: "creating volume: insufficient capacity"}
			if err := env.Client.Status().Update(ctx, rep); err != nil {
				t.Fatal(err)
			}
			g := watchCluster(t)
			startController(t)
			m := waitState(t, mig, v1.OperationStateFailed)
			if want := "target tgt could not allocate " + vol + ": creating volume: insufficient capacity"; m.Status.Message != want {
				t.Errorf("message %q, want %q", m.Status.Message, want)
			}
			testenv.Eventually(t, "target replica deleted", func() bool { return fixture.GetReplica(t, env.Client, vol, "tgt") == nil })
			if got := volumeSnapshot(fixture.GetVolume(t, env.Client, vol)); got != before {
				t.Errorf("volume %s, want %s", got, before)
			}
			if group {
				if got := fixture.GroupNodes(t, env.Client, grp, vol); !slices.Equal(got, []string{"src"}) {
					t.Errorf("group entry %v, want [src]", got)
				}
			}
			g.check(t)
		})
	}
}

// TestRestart: a fresh controller resumes a migration stopped in AddReplica
// and in SyncReplica; no second target appears, and the source goes only
// after the target's copy is verified (the guard sees every change).
func TestRestart(t *testing.T) {
	fixture.Reset(t, env.Client)
	fixture.CreateNodes(t, env.Client, node{Name: "src", Free: 10 * gi}, node{Name: "tgt", Free: 80 * gi}, node{Name: "alt", Free: 70 * gi})
	fixture.CreateVolume(t, env.Client, volume{Name: "vol-restart", Replicas: []string{"src"}})
	g := watchCluster(t)

	stop := startController(t)
	createMigration(t, "mig-restart", "vol-restart", "src")
	target := migrationAt(t, "mig-restart", v1.OperationStateAddReplica)
	testenv.Eventually(t, "target replica", func() bool { return fixture.GetReplica(t, env.Client, "vol-restart", target) != nil })
	uid := fixture.GetReplica(t, env.Client, "vol-restart", target).UID
	stop()

	// Restart in AddReplica; the agent allocates while no controller runs.
	fixture.AgentAllocates(t, env.Client, "vol-restart", target)
	stop = startController(t)
	waitState(t, "mig-restart", v1.OperationStateSyncReplica)
	stop()

	// Restart in SyncReplica, with progress made meanwhile.
	fixture.AgentCopied(t, env.Client, "vol-restart", target, gi/2, "")
	stop = startController(t)
	waitMigration(t, "mig-restart", "50%", func(m *v1.LocalVolumeMigrate) bool { return m.Status.Progress == "50%" })
	if getMigration(t, "mig-restart").Status.TargetNode != target {
		t.Fatal("the target changed across restarts")
	}
	if fixture.GetReplica(t, env.Client, "vol-restart", "src") == nil {
		t.Fatal("source gone before the copy was verified")
	}
	stop()

	fixture.AgentVerified(t, env.Client, "vol-restart", target)
	startController(t)
	waitState(t, "mig-restart", v1.OperationStateCompleted)
	if rep := fixture.GetReplica(t, env.Client, "vol-restart", target); rep == nil || rep.UID != uid {
		t.Errorf("the target replica was recreated: %+v", rep)
	}
	if got := lvReplicas(t, "vol-restart"); !slices.Equal(got, []string{target}) {
		t.Errorf("replicas %v", got)
	}
	g.check(t)
	if got := g.replicasCreated("vol-restart"); len(got) != 2 || !slices.Contains(got, target) {
		t.Errorf("replica objects ever created on %v, want src and %s once each", got, target)
	}
}

// TestInvariant: with the status forced to PruneReplica by hand, a target
// that is not Ready, synced and checksummed never lets the source go; the
// controller holds with a message (also across a restart) and finishes
// once the copy is verified.
func TestInvariant(t *testing.T) {
	cases := []struct {
		name  string
		agent func(t *testing.T, volume, node string) // the target's state when forced
	}{
		{name: "Ready, not synced", agent: func(t *testing.T, v, n string) { fixture.AgentCopied(t, env.Client, v, n, gi/2, "") }},
		{name: "synced without checksum", agent: func(t *testing.T, v, n string) {
			fixture.SetReplicaStatus(t, env.Client, v, n, func(st *v1.LocalVolumeReplicaStatus) { st.Synced = true })
		}},
		{name: "verified but NotReady", agent: func(t *testing.T, v, n string) {
			fixture.AgentVerified(t, env.Client, v, n)
			fixture.SetReplicaStatus(t, env.Client, v, n, func(st *v1.LocalVolumeReplicaStatus) { st.State, st.Message = v1.StateNotReady, "disk gone" })
		}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fixture.Reset(t, env.Client)
			fixture.CreateNodes(t, env.Client, node{Name: "src", Free: 10 * gi}, node{Name: "tgt", Free: 80 * gi})
			vol, mig := fmt.Sprintf("vol-inv-%d", i), fmt.Sprintf("mig-inv-%d", i)
			fixture.CreateVolume(t, env.Client, volume{Name: vol, Replicas: []string{"src"}})
			g := watchCluster(t)
			stop := startController(t)
			createMigration(t, mig, vol, "src")
			toSync(t, mig, vol)
			if tc.name == "verified but NotReady" {
				// Stop first, or the controller would prune at once.
				stop()
			}
			tc.agent(t, vol, "tgt")
			fixture.EditStatus(t, env.Client, mig, func(m *v1.LocalVolumeMigrate) { m.Status.State = v1.OperationStatePruneReplica })
			stop()
			stop = startController(t)
			hold := fmt.Sprintf("holding the source: the replica of %s on tgt is not verified and ready", vol)
			waitMigration(t, mig, "holding", func(m *v1.LocalVolumeMigrate) bool { return m.Status.Message == hold })
			if fixture.GetReplica(t, env.Client, vol, "src") == nil || !slices.Contains(lvReplicas(t, vol), "src") {
				t.Fatal("source released without a verified copy")
			}
			// A restart holds as well.
			stop()
			startController(t)
			fixture.EditStatus(t, env.Client, mig, func(m *v1.LocalVolumeMigrate) { m.Status.Message = "" })
			waitMigration(t, mig, "holding after a restart", func(m *v1.LocalVolumeMigrate) bool { return m.Status.Message == hold })
			if fixture.GetReplica(t, env.Client, vol, "src") == nil {
				t.Fatal("source deleted")
			}
			// Once verified and Ready it completes.
			fixture.AgentVerified(t, env.Client, vol, "tgt")
			fixture.SetReplicaStatus(t, env.Client, vol, "tgt", func(st *v1.LocalVolumeReplicaStatus) { st.State, st.Message = v1.StateReady, "" })
			waitState(t, mig, v1.OperationStateCompleted)
			if fixture.GetReplica(t, env.Client, vol, "src") != nil {
				t.Error("source not pruned")
			}
			g.check(t)
		})
	}
}

// TestInvariantGroup: forced to PruneReplica with one volume of the group
// verified and the other not, no volume switches: the group moves whole.
func TestInvariantGroup(t *testing.T) {
	fixture.Reset(t, env.Client)
	fixture.CreateNodes(t, env.Client, node{Name: "src", Free: 10 * gi}, node{Name: "tgt", Free: 80 * gi})
	fixture.CreateVolume(t, env.Client, volume{Name: "inv-a", Group: "inv-grp", Replicas: []string{"src"}})
	fixture.CreateVolume(t, env.Client, volume{Name: "inv-b", Group: "inv-grp", Replicas: []string{"src"}})
	fixture.CreateGroup(t, env.Client, "inv-grp",
		v1.VolumeInfo{PersistentVolumeClaimName: "data-a", LocalVolumeName: "inv-a", Nodes: []string{"src"}},
		v1.VolumeInfo{PersistentVolumeClaimName: "data-b", LocalVolumeName: "inv-b", Nodes: []string{"src"}})
	g := watchCluster(t)
	startController(t)
	createMigration(t, "mig-inv-grp", "inv-a", "src", func(s *v1.LocalVolumeMigrateSpec) { s.MigrateAllVols = true })
	migrationAt(t, "mig-inv-grp", v1.OperationStateAddReplica)
	fixture.AgentAllocates(t, env.Client, "inv-a", "tgt")
	fixture.AgentAllocates(t, env.Client, "inv-b", "tgt")
	waitState(t, "mig-inv-grp", v1.OperationStateSyncReplica)
	// The first volume sorts first: verified; the second is not.
	fixture.AgentVerified(t, env.Client, "inv-a", "tgt")
	fixture.AgentCopied(t, env.Client, "inv-b", "tgt", gi/2, "")
	waitMigration(t, "mig-inv-grp", "1/2 verified", func(m *v1.LocalVolumeMigrate) bool { return m.Status.Progress == "75%" })
	fixture.EditStatus(t, env.Client, "mig-inv-grp", func(m *v1.LocalVolumeMigrate) { m.Status.State = v1.OperationStatePruneReplica })
	waitMigration(t, "mig-inv-grp", "holding", func(m *v1.LocalVolumeMigrate) bool {
		return m.Status.Message == "holding the source: the replica of inv-b on tgt is not verified and ready"
	})
	for _, v := range []string{"inv-a", "inv-b"} {
		if fixture.GetReplica(t, env.Client, v, "src") == nil {
			t.Errorf("source of %s deleted while inv-b is not verified", v)
		}
		if got := lvReplicas(t, v); !slices.Equal(got, []string{"src", "tgt"}) {
			t.Errorf("%s switched while inv-b is not verified: %v", v, got)
		}
		if got := fixture.GroupNodes(t, env.Client, "inv-grp", v); !slices.Equal(got, []string{"src", "tgt"}) {
			t.Errorf("group entry of %s: %v", v, got)
		}
	}
	fixture.AgentVerified(t, env.Client, "inv-b", "tgt")
	waitState(t, "mig-inv-grp", v1.OperationStateCompleted)
	for _, v := range []string{"inv-a", "inv-b"} {
		if got := fixture.ReplicaObjectNodes(t, env.Client, v); !slices.Equal(got, []string{"tgt"}) {
			t.Errorf("%s replica objects on %v", v, got)
		}
	}
	g.check(t)
}

// TestDeleted: a migration deleted before it ends is rolled back as an
// abort would be, and goes only then; one deleted after the switch
// (PruneReplica) finishes first. Nothing is left behind for the volume.
func TestDeleted(t *testing.T) {
	for i, at := range []v1.State{v1.OperationStateSubmitted, v1.OperationStateAddReplica, v1.OperationStateSyncReplica} {
		t.Run("during "+string(at), func(t *testing.T) {
			fixture.Reset(t, env.Client)
			fixture.CreateNodes(t, env.Client, node{Name: "src", Free: 10 * gi}, node{Name: "tgt", Free: 80 * gi})
			vol, mig := fmt.Sprintf("vol-deleted-%d", i), fmt.Sprintf("mig-deleted-%d", i)
			fixture.CreateVolume(t, env.Client, volume{Name: vol, Replicas: []string{"src"}})
			before := volumeSnapshot(fixture.GetVolume(t, env.Client, vol))
			g := watchCluster(t)
			startController(t, func(r *Reconciler) {
				if at == v1.OperationStateSubmitted {
					r.MaxTotal = -1 // every migration queues
				}
			})
			createMigration(t, mig, vol, "src")
			waitMigration(t, mig, "the finalizer", func(m *v1.LocalVolumeMigrate) bool {
				return slices.Contains(m.Finalizers, v1.MigrationFinalizer)
			})
			switch at {
			case v1.OperationStateSubmitted:
				waitMigration(t, mig, "queued", func(m *v1.LocalVolumeMigrate) bool { return strings.HasPrefix(m.Status.Message, "queued") })
			case v1.OperationStateAddReplica:
				migrationAt(t, mig, at)
				testenv.Eventually(t, "target replica", func() bool { return fixture.GetReplica(t, env.Client, vol, "tgt") != nil })
			case v1.OperationStateSyncReplica:
				toSync(t, mig, vol)
				fixture.AgentCopied(t, env.Client, vol, "tgt", gi/4, "")
			}
			if err := env.Client.Delete(context.Background(), getMigration(t, mig)); err != nil {
				t.Fatal(err)
			}
			testenv.Eventually(t, "the migration gone", func() bool {
				return apierrors.IsNotFound(env.Client.Get(context.Background(), client.ObjectKey{Name: mig}, &v1.LocalVolumeMigrate{}))
			})
			if fixture.GetReplica(t, env.Client, vol, "tgt") != nil {
				t.Error("target replica left behind")
			}
			if got := volumeSnapshot(fixture.GetVolume(t, env.Client, vol)); got != before {
				t.Errorf("volume %s, want %s", got, before)
			}
			g.check(t)
		})
	}

	t.Run("during PruneReplica", func(t *testing.T) {
		fixture.Reset(t, env.Client)
		fixture.CreateNodes(t, env.Client, node{Name: "src", Free: 10 * gi}, node{Name: "tgt", Free: 80 * gi})
		fixture.CreateVolume(t, env.Client, volume{Name: "vol-deleted-prune", Replicas: []string{"src"}})
		// The source's agent never lets go of its replica: the migration
		// stays in PruneReplica until the test removes the finalizer.
		src := fixture.GetReplica(t, env.Client, "vol-deleted-prune", "src")
		src.Finalizers = append(src.Finalizers, v1.ReplicaFinalizer)
		if err := env.Client.Update(context.Background(), src); err != nil {
			t.Fatal(err)
		}
		startController(t)
		createMigration(t, "mig-deleted-prune", "vol-deleted-prune", "src")
		toSync(t, "mig-deleted-prune", "vol-deleted-prune")
		fixture.AgentVerified(t, env.Client, "vol-deleted-prune", "tgt")
		waitState(t, "mig-deleted-prune", v1.OperationStatePruneReplica)
		fixture.Edit(t, env.Client, "mig-deleted-prune", func(m *v1.LocalVolumeMigrate) { m.Spec.Abort = true })
		waitMigration(t, "mig-deleted-prune", "abort ignored", func(m *v1.LocalVolumeMigrate) bool {
			return strings.HasPrefix(m.Status.Message, "abort ignored: the copy is verified")
		})
		if err := env.Client.Delete(context.Background(), getMigration(t, "mig-deleted-prune")); err != nil {
			t.Fatal(err)
		}
		// Deleted, but it finishes the switch first.
		fixture.Edit(t, env.Client, src.Name, func(r *v1.LocalVolumeReplica) { r.Finalizers = nil })
		testenv.Eventually(t, "the migration gone", func() bool {
			return apierrors.IsNotFound(env.Client.Get(context.Background(), client.ObjectKey{Name: "mig-deleted-prune"}, &v1.LocalVolumeMigrate{}))
		})
		if got := lvReplicas(t, "vol-deleted-prune"); !slices.Equal(got, []string{"tgt"}) {
			t.Errorf("replicas %v, want the migration finished on tgt", got)
		}
	})
}
