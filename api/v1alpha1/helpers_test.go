package v1alpha1

import (
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

func volumeOn(nodes ...string) *LocalVolume {
	lv := &LocalVolume{ObjectMeta: metav1.ObjectMeta{Name: "pvc-1"}}
	lv.Spec.Config = &VolumeConfig{Version: 1}
	for i, n := range nodes {
		lv.Spec.Config.Replicas = append(lv.Spec.Config.Replicas, VolumeReplica{ID: int64(i + 1), Hostname: n, Primary: i == 0})
	}
	lv.Spec.Accessibility.Nodes = slices.Clone(nodes)
	return lv
}

func TestReplicaNodeEdits(t *testing.T) {
	for _, tc := range []struct {
		name        string
		lv          *LocalVolume
		edit        func(*LocalVolume)
		wantNodes   []string
		wantVersion int64
		wantPrimary string
	}{
		{"add a node", volumeOn("a"), func(lv *LocalVolume) { lv.AddReplicaNode("b") }, []string{"a", "b"}, 2, "a"},
		{"add a node already there", volumeOn("a"), func(lv *LocalVolume) { lv.AddReplicaNode("a") }, []string{"a"}, 1, "a"},
		{"add to a volume without config", &LocalVolume{}, func(lv *LocalVolume) { lv.AddReplicaNode("a") }, []string{"a"}, 1, ""},
		{"remove the primary: the next becomes primary", volumeOn("a", "b"), func(lv *LocalVolume) { lv.RemoveReplicaNode("a") }, []string{"b"}, 2, "b"},
		{"remove a node not there", volumeOn("a"), func(lv *LocalVolume) { lv.RemoveReplicaNode("z") }, []string{"a"}, 1, "a"},
		{"move: add then remove", volumeOn("a"), func(lv *LocalVolume) { lv.AddReplicaNode("b"); lv.RemoveReplicaNode("a") }, []string{"b"}, 3, "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.edit(tc.lv)
			if got := tc.lv.ReplicaNodes(); !slices.Equal(got, tc.wantNodes) {
				t.Errorf("replicas %v, want %v", got, tc.wantNodes)
			}
			if !slices.Equal(tc.lv.Spec.Accessibility.Nodes, tc.wantNodes) {
				t.Errorf("accessibility %v, want %v", tc.lv.Spec.Accessibility.Nodes, tc.wantNodes)
			}
			if tc.lv.Spec.Config.Version != tc.wantVersion {
				t.Errorf("version %d, want %d", tc.lv.Spec.Config.Version, tc.wantVersion)
			}
			primary := ""
			for _, r := range tc.lv.Spec.Config.Replicas {
				if r.Primary {
					primary = r.Hostname
				}
			}
			if primary != tc.wantPrimary {
				t.Errorf("primary %q, want %q", primary, tc.wantPrimary)
			}
		})
	}
}

func TestFinishedAndOrder(t *testing.T) {
	for s, want := range map[State]bool{OperationStateCompleted: true, OperationStateFailed: true, OperationStateAborted: true,
		OperationStateSubmitted: false, OperationStateSyncReplica: false, OperationStateAborting: false, "": false} {
		if s.Finished() != want {
			t.Errorf("%q.Finished() = %v, want %v", s, !want, want)
		}
	}
	t0 := metav1.NewTime(time.Unix(100, 0))
	t1 := metav1.NewTime(time.Unix(200, 0))
	a := &LocalVolumeMigrate{ObjectMeta: metav1.ObjectMeta{Name: "b", CreationTimestamp: t0}}
	b := &LocalVolumeMigrate{ObjectMeta: metav1.ObjectMeta{Name: "a", CreationTimestamp: t1}}
	c := &LocalVolumeMigrate{ObjectMeta: metav1.ObjectMeta{Name: "a", CreationTimestamp: t0}}
	if !OperationBefore(a, "", b, "") || OperationBefore(b, "", a, "") {
		t.Error("the older operation must go first")
	}
	if !OperationBefore(c, "", a, "") || OperationBefore(a, "", c, "") {
		t.Error("same age: by name")
	}
	if !OperationBefore(a, "LocalVolumeConvert", c, "LocalVolumeExpand") {
		t.Error("same age: by kind before name")
	}
}

func TestMigrateName(t *testing.T) {
	long := strings.Repeat("a", 250)
	cases := []struct {
		name          string
		groupOrVolume string
		node          string
		want          string // "" checks only validity
	}{
		{name: "volume", groupOrVolume: "pvc-1234", node: "node-a", want: "pvc-1234-" + nameHash("node-a")},
		{name: "group", groupOrVolume: "lvg-5678", node: "node-a", want: "lvg-5678-" + nameHash("node-a")},
		{name: "longest name that fits", groupOrVolume: strings.Repeat("b", 244), node: "node-a", want: strings.Repeat("b", 244) + "-" + nameHash("node-a")},
		{name: "too long", groupOrVolume: long, node: "node-a"},
		{name: "too long, cut at a dot", groupOrVolume: strings.Repeat("c", 234) + "." + strings.Repeat("d", 18), node: "node-a"},
		{name: "long node", groupOrVolume: "pvc-1", node: strings.Repeat("n", 253)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := MigrateName(tc.groupOrVolume, tc.node)
			if errs := validation.IsDNS1123Subdomain(got); len(errs) > 0 {
				t.Errorf("%q: %v", got, errs)
			}
			if tc.want != "" && got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if again := MigrateName(tc.groupOrVolume, tc.node); again != got {
				t.Errorf("not deterministic: %q then %q", got, again)
			}
			if other := MigrateName(tc.groupOrVolume, tc.node+"x"); other == got {
				t.Errorf("another node gives the same name %q", got)
			}
		})
	}
	// Names cut to fit still differ.
	if a, b := MigrateName(long+"x", "n"), MigrateName(long+"y", "n"); a == b {
		t.Errorf("cut names collide: %q", a)
	}
}

func TestSourceNodeLabelValue(t *testing.T) {
	for _, node := range []string{"node-a", strings.Repeat("n", 63), strings.Repeat("n", 64), strings.Repeat("x", 53) + "-.y" + strings.Repeat("z", 100)} {
		got := SourceNodeLabelValue(node)
		if errs := validation.IsValidLabelValue(got); len(errs) > 0 {
			t.Errorf("%q: %v", got, errs)
		}
		if len(node) <= 63 && got != node {
			t.Errorf("%q became %q", node, got)
		}
	}
	if SourceNodeLabelValue(strings.Repeat("n", 64)) == SourceNodeLabelValue(strings.Repeat("n", 65)) {
		t.Error("long node names collide")
	}
}
