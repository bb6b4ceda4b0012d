package cli

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// wantMove is what a test expects for one volume; reason and note are
// substrings ("" for reason: none).
type wantMove struct {
	volume    string
	action    Action
	target    string
	migration string
	reason    string
	note      string
}

// TestPlanDrain drains node "src" (zone a) of small clusters and checks
// each volume's decision against the evictor's and the migrate
// controller's rules.
func TestPlanDrain(t *testing.T) {
	cordonedAt := epoch.Add(time.Hour)
	now := epoch.Add(2 * time.Hour)
	// src and three more nodes: n1 in src's zone with the most room, n2
	// and n3 in another zone.
	nodes := func(edit ...func([]testNode)) []testNode {
		ns := []testNode{
			{name: "src", zone: "a", free: 50 * gi},
			{name: "n1", zone: "a", free: 100 * gi},
			{name: "n2", zone: "b", free: 80 * gi},
			{name: "n3", zone: "b", free: 20 * gi},
		}
		for _, e := range edit {
			e(ns)
		}
		return ns
	}
	name := func(groupOrVolume string) string { return v1.MigrateName(groupOrVolume, "src") }

	tests := []struct {
		name       string
		nodes      []testNode
		vols       []testVolume
		migrations []testMigration
		groups     []v1.LocalVolumeGroup
		canDrain   bool
		problem    string
		want       []wantMove
	}{{
		name:     "no volumes: nothing moves",
		nodes:    nodes(),
		vols:     []testVolume{{name: "elsewhere", replicas: []string{"n1"}}},
		canDrain: true,
	}, {
		name:     "a volume goes to another zone than the source's, the most free space first",
		nodes:    nodes(),
		vols:     []testVolume{{name: "v1", replicas: []string{"src"}, claim: "db/data-0"}},
		canDrain: true,
		want:     []wantMove{{volume: "v1", action: ActionMove, target: "n2", migration: name("v1"), note: "waits Pending until the copy is verified"}},
	}, {
		name:  "a group moves together, to a node where the whole group fits",
		nodes: nodes(func(ns []testNode) { ns[2].free = 50 * gi }), // n2 and n3 cannot take 60Gi
		vols: []testVolume{
			{name: "ga", size: 30 * gi, group: "g", replicas: []string{"src"}},
			{name: "gb", size: 30 * gi, group: "g", replicas: []string{"src"}},
		},
		canDrain: true,
		want: []wantMove{
			{volume: "ga", action: ActionMove, target: "n1", migration: name("g")},
			{volume: "gb", action: ActionMove, target: "n1", migration: name("g")},
		},
	}, {
		name:     "an HA volume goes to neither replica node, in another zone than the replica that stays",
		nodes:    nodes(),
		vols:     []testVolume{{name: "ha", replicas: []string{"src", "n2"}}},
		canDrain: true,
		want:     []wantMove{{volume: "ha", action: ActionMove, target: "n1", note: "HA: its pod can run on the replica on n2"}},
	}, {
		name:  "each target counts the space the groups before it take",
		nodes: nodes(),
		vols: []testVolume{
			{name: "va", size: 50 * gi, replicas: []string{"src"}},
			{name: "vb", size: 50 * gi, replicas: []string{"src"}},
		},
		canDrain: true,
		want: []wantMove{
			{volume: "va", action: ActionMove, target: "n2"},
			{volume: "vb", action: ActionMove, target: "n1"}, // n2 has 30Gi left
		},
	}, {
		name:  "placements persisted in a LocalVolumeGroup count as used",
		nodes: nodes(),
		vols:  []testVolume{{name: "v1", replicas: []string{"src"}}},
		groups: []v1.LocalVolumeGroup{{ObjectMeta: metav1.ObjectMeta{Name: "lvg-x"}, Spec: v1.LocalVolumeGroupSpec{
			Namespace: "db", Volumes: []v1.VolumeInfo{{PersistentVolumeClaimName: "x", LocalVolumeName: "pvc-x",
				Nodes: []string{"n2"}, PoolName: v1.PoolNameHDD, RequiredCapacityBytes: 75 * gi}}}}},
		canDrain: true,
		want:     []wantMove{{volume: "v1", action: ActionMove, target: "n3"}}, // n2 has 5Gi left
	}, {
		name:     "eviction disabled on the node: every volume stays",
		nodes:    nodes(func(ns []testNode) { ns[0].disabled = true }),
		vols:     []testVolume{{name: "v1", replicas: []string{"src"}}, {name: "v2", replicas: []string{"src"}}},
		canDrain: false,
		want: []wantMove{
			{volume: "v1", action: ActionStay, reason: "labelled hwameistor.io/eviction=disable"},
			{volume: "v2", action: ActionStay, reason: "labelled hwameistor.io/eviction=disable"},
		},
	}, {
		name:     "no node has room: the migration would wait for a target",
		nodes:    nodes(),
		vols:     []testVolume{{name: "big", size: 200 * gi, replicas: []string{"src"}}, {name: "small", replicas: []string{"src"}}},
		canDrain: false,
		want: []wantMove{
			{volume: "big", action: ActionStay, migration: name("big"),
				reason: "waiting for a target: no candidate node (3 checked) can hold 200Gi in LocalStorage_PoolHDD"},
			{volume: "small", action: ActionMove, target: "n2"},
		},
	}, {
		name:     "no other node has the pool class",
		nodes:    nodes(func(ns []testNode) { ns[0].pool = v1.PoolNameSSD }),
		vols:     []testVolume{{name: "fast", pool: v1.PoolNameSSD, replicas: []string{"src"}}},
		canDrain: false,
		want:     []wantMove{{volume: "fast", action: ActionStay, reason: "can hold 1Gi in LocalStorage_PoolSSD"}},
	}, {
		name: "cordoned, NotReady, agent-less and Node-less nodes are no targets",
		nodes: []testNode{
			{name: "src", zone: "a", free: 50 * gi},
			{name: "cordoned", free: 100 * gi, cordoned: true},
			{name: "notready", free: 100 * gi, notReady: true},
			{name: "nolsn", noLSN: true},
			{name: "nonode", free: 100 * gi, noNode: true},
		},
		vols:     []testVolume{{name: "v1", replicas: []string{"src"}}},
		canDrain: false,
		want:     []wantMove{{volume: "v1", action: ActionStay, reason: "waiting for a target: no Ready, schedulable node without a replica of the volumes"}},
	}, {
		name:       "a running migration off the node: moving to its target",
		nodes:      nodes(),
		vols:       []testVolume{{name: "v1", replicas: []string{"src"}}},
		migrations: []testMigration{{name: "m1", volume: "v1", source: "src", target: "n3", state: v1.OperationStateSyncReplica, progress: "40%"}},
		canDrain:   true,
		want:       []wantMove{{volume: "v1", action: ActionMoving, target: "n3", migration: "m1", reason: "moving: m1 (SyncReplica, 40%)"}},
	}, {
		// From AddReplica on, the volume lists the target, which holds no
		// data yet: the volume is not HA for it.
		name:  "a running migration's target is no HA peer",
		nodes: nodes(),
		vols:  []testVolume{{name: "v1", replicas: []string{"src", "n3"}, replicaNumber: 1}},
		migrations: []testMigration{{name: "m1", volume: "v1", volumes: []string{"v1"}, source: "src", target: "n3",
			state: v1.OperationStateAddReplica}},
		canDrain: true,
		want:     []wantMove{{volume: "v1", action: ActionMoving, target: "n3", note: "its pod, once evicted, waits Pending until the copy is verified"}},
	}, {
		name:       "a queued migration off the node: placed like a new one",
		nodes:      nodes(),
		vols:       []testVolume{{name: "v1", replicas: []string{"src"}}},
		migrations: []testMigration{{name: "m1", volume: "v1", source: "src", state: v1.OperationStateSubmitted}},
		canDrain:   true,
		want:       []wantMove{{volume: "v1", action: ActionMoving, target: "n2", migration: "m1"}},
	}, {
		name:  "a migration covers its whole group through status.volumes",
		nodes: nodes(),
		vols: []testVolume{
			{name: "ga", group: "g", replicas: []string{"src"}},
			{name: "gb", group: "g", replicas: []string{"src"}},
		},
		migrations: []testMigration{{name: "m1", volume: "ga", volumes: []string{"ga", "gb"}, source: "src", target: "n3", state: v1.OperationStateAddReplica}},
		canDrain:   true,
		want: []wantMove{
			{volume: "ga", action: ActionMoving, target: "n3", migration: "m1"},
			{volume: "gb", action: ActionMoving, target: "n3", migration: "m1"},
		},
	}, {
		name:       "finished migrations off the node do not cover",
		nodes:      nodes(),
		vols:       []testVolume{{name: "v1", replicas: []string{"src"}}},
		migrations: []testMigration{{name: "old", volume: "v1", source: "src", target: "n3", state: v1.OperationStateFailed}},
		canDrain:   true,
		want:       []wantMove{{volume: "v1", action: ActionMove, target: "n2", migration: name("v1")}},
	}, {
		name:  "an HA volume whose other replica moves off another node waits for it",
		nodes: nodes(),
		vols:  []testVolume{{name: "ha", replicas: []string{"src", "n2"}}},
		migrations: []testMigration{{name: "other", volume: "ha", source: "n2", target: "n1", state: v1.OperationStateSyncReplica,
			volumes: []string{"ha"}}},
		canDrain: false,
		want:     []wantMove{{volume: "ha", action: ActionWait, reason: "waiting for other, which moves the volume's replica on n2"}},
	}, {
		name:  "an evictor migration that ended in this cordon is not retried",
		nodes: nodes(func(ns []testNode) { ns[0].cordoned, ns[0].cordonedAt = true, cordonedAt }),
		vols:  []testVolume{{name: "v1", replicas: []string{"src"}}},
		migrations: []testMigration{{name: name("v1"), volume: "v1", source: "src", state: v1.OperationStateAborted,
			trigger: v1.MigrateTriggerDrain, requestedAt: cordonedAt}},
		canDrain: false,
		want:     []wantMove{{volume: "v1", action: ActionStay, migration: name("v1"), reason: "ended Aborted during this cordon and is not retried"}},
	}, {
		name:  "an evictor migration of an earlier cordon is replaced",
		nodes: nodes(func(ns []testNode) { ns[0].cordoned, ns[0].cordonedAt = true, cordonedAt }),
		vols:  []testVolume{{name: "v1", replicas: []string{"src"}}},
		migrations: []testMigration{{name: name("v1"), volume: "v1", source: "src", state: v1.OperationStateFailed,
			trigger: v1.MigrateTriggerDrain, requestedAt: cordonedAt.Add(-time.Minute)}},
		canDrain: true,
		want:     []wantMove{{volume: "v1", action: ActionMove, target: "n2", migration: name("v1"), note: "replaces " + name("v1")}},
	}, {
		name:  "on a node not cordoned yet, the drain is a new request: an ended evictor migration is replaced",
		nodes: nodes(),
		vols:  []testVolume{{name: "v1", replicas: []string{"src"}}},
		migrations: []testMigration{{name: name("v1"), volume: "v1", source: "src", state: v1.OperationStateAborted,
			trigger: v1.MigrateTriggerDrain, requestedAt: cordonedAt}},
		canDrain: true,
		want:     []wantMove{{volume: "v1", action: ActionMove, target: "n2", note: "replaces"}},
	}, {
		name:       "a finished migration the evictor did not make holds its name",
		nodes:      nodes(),
		vols:       []testVolume{{name: "v1", replicas: []string{"src"}}},
		migrations: []testMigration{{name: name("v1"), volume: "v1", source: "src", state: v1.OperationStateCompleted}},
		canDrain:   false,
		want:       []wantMove{{volume: "v1", action: ActionStay, reason: "which the evictor did not create"}},
	}, {
		name:       "a running migration with spec.abort rolls back: the volume stays",
		nodes:      nodes(),
		vols:       []testVolume{{name: "v1", replicas: []string{"src"}}},
		migrations: []testMigration{{name: "m1", volume: "v1", source: "src", target: "n3", state: v1.OperationStateSyncReplica, abort: true}},
		canDrain:   false,
		want:       []wantMove{{volume: "v1", action: ActionStay, migration: "m1", reason: "m1 has spec.abort set"}},
	}, {
		name:       "spec.abort is ignored in PruneReplica",
		nodes:      nodes(),
		vols:       []testVolume{{name: "v1", replicas: []string{"src"}}},
		migrations: []testMigration{{name: "m1", volume: "v1", source: "src", target: "n3", state: v1.OperationStatePruneReplica, abort: true}},
		canDrain:   true,
		want:       []wantMove{{volume: "v1", action: ActionMoving, target: "n3"}},
	}, {
		name:  "volumes and replicas being deleted do not move",
		nodes: nodes(),
		vols: []testVolume{
			{name: "gone", replicas: []string{"src"}, deleting: true},
			{name: "v1", replicas: []string{"src"}},
		},
		canDrain: true,
		want:     []wantMove{{volume: "v1", action: ActionMove}},
	}, {
		name:  "a group with a volume elsewhere: the migration would fail",
		nodes: nodes(),
		vols: []testVolume{
			{name: "ga", group: "g", replicas: []string{"src"}},
			{name: "gb", group: "g", replicas: []string{"n1"}},
		},
		canDrain: false,
		want:     []wantMove{{volume: "ga", action: ActionStay, reason: "volume gb of the group has no replica on src"}},
	}, {
		name:     "a replica object on the node that the volume does not list: the migration would fail",
		nodes:    nodes(),
		vols:     []testVolume{{name: "v1", replicas: []string{"n1"}, objectsOn: []string{"n1", "src"}}},
		canDrain: false,
		want:     []wantMove{{volume: "v1", action: ActionStay, reason: "node src holds no replica of volume v1 (replicas on n1)"}},
	}, {
		name:     "a node agent without a replication address: every copy fails",
		nodes:    nodes(func(ns []testNode) { ns[0].ip = "-" }),
		vols:     []testVolume{{name: "v1", replicas: []string{"src"}}},
		canDrain: false,
		problem:  "node src publishes no replication address (spec.storageIP)",
		want:     []wantMove{{volume: "v1", action: ActionMove, target: "n2"}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := testCluster(tt.nodes, tt.vols, tt.migrations, tt.groups...)
			dc, err := planDrain(cl, "src", now)
			if err != nil {
				t.Fatal(err)
			}
			if dc.CanDrain != tt.canDrain {
				t.Errorf("canDrain %v, want %v (report %+v)", dc.CanDrain, tt.canDrain, dc)
			}
			if tt.problem != "" && (len(dc.Problems) != 1 || !strings.Contains(dc.Problems[0], tt.problem)) {
				t.Errorf("problems %q, want one with %q", dc.Problems, tt.problem)
			}
			if tt.problem == "" && len(dc.Problems) > 0 {
				t.Errorf("unexpected problems %q", dc.Problems)
			}
			if len(dc.Volumes) != len(tt.want) {
				t.Fatalf("%d volumes in the report, want %d: %+v", len(dc.Volumes), len(tt.want), dc.Volumes)
			}
			for i, w := range tt.want {
				got := dc.Volumes[i]
				if got.Volume != w.volume || got.Action != w.action {
					t.Errorf("volume %d: %s %s, want %s %s (reason %q)", i, got.Volume, got.Action, w.volume, w.action, got.Reason)
				}
				if w.target != "" && got.Target != w.target {
					t.Errorf("%s: target %q, want %q", got.Volume, got.Target, w.target)
				}
				if !got.ok() && got.Target != "" {
					t.Errorf("%s: %s with a target %q", got.Volume, got.Action, got.Target)
				}
				if w.migration != "" && got.Migration != w.migration {
					t.Errorf("%s: migration %q, want %q", got.Volume, got.Migration, w.migration)
				}
				if w.reason == "" && got.Reason != "" && got.Action == ActionMove {
					t.Errorf("%s: reason %q, want none", got.Volume, got.Reason)
				}
				if !strings.Contains(got.Reason, w.reason) {
					t.Errorf("%s: reason %q, want it to contain %q", got.Volume, got.Reason, w.reason)
				}
				if w.note != "" && !strings.Contains(strings.Join(got.Notes, "; "), w.note) {
					t.Errorf("%s: notes %q, want one with %q", got.Volume, got.Notes, w.note)
				}
			}
		})
	}
}

func TestPlanDrainUnknownNode(t *testing.T) {
	_, err := planDrain(testCluster([]testNode{{name: "n1"}}, nil, nil), "typo", epoch)
	if err == nil || err.Error() != `node "typo" not found` {
		t.Fatalf("err %v, want node \"typo\" not found", err)
	}
}

// TestPlanDrainHABothDrained: the pod of an HA volume whose other node is
// cordoned too has nowhere to run meanwhile.
func TestPlanDrainHABothDrained(t *testing.T) {
	cl := testCluster([]testNode{
		{name: "src", zone: "a", free: 10 * gi},
		{name: "peer", zone: "b", free: 10 * gi, cordoned: true},
		{name: "n1", zone: "c", free: 10 * gi},
	}, []testVolume{{name: "ha", replicas: []string{"src", "peer"}}}, nil)
	dc, err := planDrain(cl, "src", epoch)
	if err != nil {
		t.Fatal(err)
	}
	if len(dc.Volumes) != 1 || dc.Volumes[0].Target != "n1" || !strings.Contains(strings.Join(dc.Volumes[0].Notes, ";"), "peer is cordoned too") {
		t.Fatalf("report %+v", dc.Volumes)
	}
}
