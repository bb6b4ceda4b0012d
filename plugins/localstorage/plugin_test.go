package localstorage

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/internal/placement"
	"hwameistor.io/local/plugins/localstorage/apis/config"
)

// classes are the StorageClasses every case sees: good ones of our driver,
// one of another driver, and one per bad parameter.
func classes() []runtime.Object {
	return []runtime.Object{
		makeSC("hdd").StorageClass,
		makeSC("hdd-ha").with(ParamReplicaNumber, "2").StorageClass,
		makeSC("ssd").with(ParamPoolClass, "SSD").StorageClass,
		scBuilder{&storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "minimal"}, Provisioner: v1.DriverName}}.StorageClass,
		makeSC("other").provisioner("ebs.csi.aws.com").StorageClass,
		makeSC("tape").with(ParamPoolClass, "TAPE").StorageClass,
		makeSC("three").with(ParamReplicaNumber, "3").StorageClass,
		makeSC("thin").with(ParamPoolType, "THIN").StorageClass,
		makeSC("block").with(ParamVolumeKind, "BLOCK").StorageClass,
		makeSC("typo").with("replicaNumbr", "2").StorageClass,
	}
}

// inFlight is a reservation another pod holds when the case starts.
type inFlight struct {
	node string
	vol  placement.Volume
}

func otherVol(key string, sizeGi int64) placement.Volume {
	return placement.Volume{Key: key, Pool: placement.PoolHDD, Bytes: sizeGi * gi}
}

// TestSchedulingCycle walks the scheduling cycle's extension points in the
// scheduler's order: PreFilter, Filter on every node, PreScore, Score and
// NormalizeScore on the nodes that passed.
func TestSchedulingCycle(t *testing.T) {
	hdd, ssd := placement.PoolHDD, placement.PoolSSD
	twoNodes := []runtime.Object{makeLSN("node-a").pool(hdd, 100, 100).LocalStorageNode, makeLSN("node-b").pool(hdd, 100, 100).LocalStorageNode}
	boundData := []runtime.Object{
		makePVC("data").boundTo("pv-data").PersistentVolumeClaim,
		makePV("pv-data", v1.DriverName),
	}

	tests := []struct {
		name     string
		knownBug string // when set, the case is skipped with this reason
		pod      *corev1.Pod
		objs     []runtime.Object
		inFlight []inFlight
		args     *config.LocalStorageArgs
		nodes    []string

		wantPreFilterResult sets.Set[string]
		wantPreFilter       *want
		wantFilter          map[string]*want // by node; absent means Success
		wantPreScoreSkip    bool
		wantScores          map[string]int64 // after NormalizeScore
	}{
		// ---- PreFilter: pods the plugin is not about
		{
			name:          "pod without volumes is skipped",
			pod:           makePod("p").Pod,
			wantPreFilter: wantCode(fwk.Skip),
		},
		{
			name:          "pod with only an emptyDir is skipped",
			pod:           makePod("p").withEmptyDir("scratch").Pod,
			wantPreFilter: wantCode(fwk.Skip),
		},
		{
			name: "pod with only claims of other drivers is skipped",
			pod:  makePod("p").withPVC("ebs", "noclass", "missingclass").Pod,
			objs: []runtime.Object{
				makePVC("ebs").withClass("other").PersistentVolumeClaim,
				makePVC("noclass").withClass("").PersistentVolumeClaim,
				makePVC("missingclass").withClass("gone").PersistentVolumeClaim,
			},
			wantPreFilter: wantCode(fwk.Skip),
		},
		{
			name: "bound claim whose PV is another driver's is skipped",
			pod:  makePod("p").withPVC("ebs").Pod,
			objs: []runtime.Object{
				makePVC("ebs").boundTo("pv-ebs").PersistentVolumeClaim,
				makePV("pv-ebs", "ebs.csi.aws.com"),
			},
			wantPreFilter: wantCode(fwk.Skip),
		},
		// ---- PreFilter: errors the user must see
		{
			name:          "missing claim",
			pod:           makePod("p").withPVC("data").Pod,
			wantPreFilter: wantCode(fwk.UnschedulableAndUnresolvable, `persistentvolumeclaim "data" not found`),
		},
		{
			name:          "claim being deleted",
			pod:           makePod("p").withPVC("data").Pod,
			objs:          []runtime.Object{makePVC("data").deleting().PersistentVolumeClaim},
			wantPreFilter: wantCode(fwk.UnschedulableAndUnresolvable, `"data" is being deleted`),
		},
		{
			name:          "poolClass TAPE",
			pod:           makePod("p").withPVC("data").Pod,
			objs:          []runtime.Object{makePVC("data").withClass("tape").PersistentVolumeClaim},
			wantPreFilter: wantCode(fwk.UnschedulableAndUnresolvable, "storageclass tape", "parameter poolClass", `"TAPE"`, "HDD, SSD, NVMe"),
		},
		{
			name:          "replicaNumber 3",
			pod:           makePod("p").withPVC("data").Pod,
			objs:          []runtime.Object{makePVC("data").withClass("three").PersistentVolumeClaim},
			wantPreFilter: wantCode(fwk.UnschedulableAndUnresolvable, "parameter replicaNumber", `"3"`, `use "1" or "2"`),
		},
		{
			name:          "mistyped parameter",
			pod:           makePod("p").withPVC("data").Pod,
			objs:          []runtime.Object{makePVC("data").withClass("typo").PersistentVolumeClaim},
			wantPreFilter: wantCode(fwk.UnschedulableAndUnresolvable, "storageclass typo", `unknown parameter "replicaNumbr": did you mean replicaNumber?`),
		},
		{
			name:          "poolType THIN",
			pod:           makePod("p").withPVC("data").Pod,
			objs:          []runtime.Object{makePVC("data").withClass("thin").PersistentVolumeClaim},
			wantPreFilter: wantCode(fwk.UnschedulableAndUnresolvable, "parameter poolType", `"THIN"`, "REGULAR"),
		},
		{
			name:          "volumeKind BLOCK",
			pod:           makePod("p").withPVC("data").Pod,
			objs:          []runtime.Object{makePVC("data").withClass("block").PersistentVolumeClaim},
			wantPreFilter: wantCode(fwk.UnschedulableAndUnresolvable, "parameter volumeKind", `"BLOCK"`, "LVM"),
		},
		{
			name:          "claim requesting no size",
			pod:           makePod("p").withPVC("data").Pod,
			objs:          []runtime.Object{makePVC("data").withoutSize().PersistentVolumeClaim},
			wantPreFilter: wantCode(fwk.UnschedulableAndUnresolvable, `"data" requests no storage size`),
		},
		{
			name:          "bound claim of our driver whose LocalVolume is missing",
			pod:           makePod("p").withPVC("data").Pod,
			objs:          boundData,
			wantPreFilter: wantCode(fwk.UnschedulableAndUnresolvable, `"data"`, "LocalVolume pv-data not found"),
		},
		{
			name: "migrating volume",
			pod:  makePod("p").withPVC("data").Pod,
			objs: append(boundData,
				makeLV("pv-data", "data").migrating().LocalVolume,
				makeLVR("pv-data", "node-a", v1.StateReady)),
			wantPreFilter: wantCode(fwk.UnschedulableAndUnresolvable, "volume pv-data", "is migrating"),
		},
		{
			name: "migrating volume with progress names the move",
			pod:  makePod("p").withPVC("data").Pod,
			objs: append(boundData,
				makeLV("pv-data", "data").migratingTo("node-a → node-b, 40%").LocalVolume,
				makeLVR("pv-data", "node-a", v1.StateReady)),
			wantPreFilter: wantCode(fwk.UnschedulableAndUnresolvable, "volume pv-data", "migrating node-a → node-b, 40%"),
		},
		{
			name: "a migration's target replica is not admitted before its copy is verified",
			pod:  makePod("p").withPVC("data").Pod,
			objs: append(append(boundData,
				makeLV("pv-data", "data").LocalVolume,
				makeLVR("pv-data", "node-a", v1.StateReady),
				unsynced(makeLVR("pv-data", "node-b", v1.StateReady))), twoNodes...),
			nodes:               []string{"node-a", "node-b"},
			wantPreFilterResult: sets.New("node-a"),
			wantFilter:          map[string]*want{"node-b": wantCode(fwk.UnschedulableAndUnresolvable, ReasonReplicaLocality)},
			wantPreScoreSkip:    true,
		},
		{
			name: "bound volume whose only replica is not ready",
			pod:  makePod("p").withPVC("data").Pod,
			objs: append(boundData,
				makeLV("pv-data", "data").LocalVolume,
				makeLVR("pv-data", "node-a", v1.StateCreating)),
			wantPreFilter: wantCode(fwk.UnschedulableAndUnresolvable, "volume pv-data", "has no ready replica"),
		},
		{
			name: "two bound volumes on disjoint nodes",
			pod:  makePod("p").withPVC("data", "logs").Pod,
			objs: append(boundData,
				makeLV("pv-data", "data").LocalVolume,
				makeLVR("pv-data", "node-a", v1.StateReady),
				makePVC("logs").boundTo("pv-logs").PersistentVolumeClaim,
				makePV("pv-logs", v1.DriverName),
				makeLV("pv-logs", "logs").LocalVolume,
				makeLVR("pv-logs", "node-b", v1.StateReady)),
			wantPreFilter: wantCode(fwk.UnschedulableAndUnresolvable, ReasonDisjointNodes, "data on node-a", "logs on node-b"),
		},
		{
			name:          "HA claim when no node can hold a replica",
			pod:           makePod("p").withPVC("data").Pod,
			objs:          []runtime.Object{makePVC("data").withClass("hdd-ha").PersistentVolumeClaim, makeLSN("node-a").pool(hdd, 100, 4).LocalStorageNode},
			wantPreFilter: wantCode(fwk.UnschedulableAndUnresolvable, ReasonNoPeer, "need 6Gi in LocalStorage_PoolHDD"),
		},
		// ---- PreFilter: the allowed nodes
		{
			name: "bound volume with a ready replica fixes the node and skips scoring",
			pod:  makePod("p").withPVC("data").Pod,
			objs: append(append(boundData,
				makeLV("pv-data", "data").LocalVolume,
				makeLVR("pv-data", "node-a", v1.StateNotReady),
				makeLVR("pv-data", "node-b", v1.StateReady)), twoNodes...),
			nodes:               []string{"node-a", "node-b"},
			wantPreFilterResult: sets.New("node-b"),
			wantFilter:          map[string]*want{"node-a": wantCode(fwk.UnschedulableAndUnresolvable, ReasonReplicaLocality)},
			wantPreScoreSkip:    true,
		},
		{
			name: "HA volume goes where it was staged last: the replicas are not kept in sync",
			pod:  makePod("p").withPVC("data").Pod,
			objs: append(append(boundData,
				makeLV("pv-data", "data").LocalVolume,
				staged(makeLVR("pv-data", "node-a", v1.StateReady), 1),
				staged(makeLVR("pv-data", "node-b", v1.StateReady), 2)), twoNodes...),
			nodes:               []string{"node-a", "node-b"},
			wantPreFilterResult: sets.New("node-b"),
			wantFilter:          map[string]*want{"node-a": wantCode(fwk.UnschedulableAndUnresolvable, ReasonReplicaLocality)},
			wantPreScoreSkip:    true,
		},
		{
			name: "HA volume staged on one replica only: the other is empty",
			pod:  makePod("p").withPVC("data").Pod,
			objs: append(append(boundData,
				makeLV("pv-data", "data").LocalVolume,
				makeLVR("pv-data", "node-a", v1.StateReady),
				staged(makeLVR("pv-data", "node-b", v1.StateReady), 1)), twoNodes...),
			nodes:               []string{"node-a", "node-b"},
			wantPreFilterResult: sets.New("node-b"),
			wantFilter:          map[string]*want{"node-a": wantCode(fwk.UnschedulableAndUnresolvable, ReasonReplicaLocality)},
			wantPreScoreSkip:    true,
		},
		{
			name: "HA volume whose last-written replica is not ready waits for it",
			pod:  makePod("p").withPVC("data").Pod,
			objs: append(boundData,
				makeLV("pv-data", "data").LocalVolume,
				staged(makeLVR("pv-data", "node-a", v1.StateReady), 1),
				staged(makeLVR("pv-data", "node-b", v1.StateNotReady), 2)),
			wantPreFilter: wantCode(fwk.UnschedulableAndUnresolvable, "volume pv-data", "last written on node node-b, whose replica is not ready",
				"not kept in sync", "waits for node-b"),
		},
		{
			name: "volume imported without replica objects uses spec.config",
			pod:  makePod("p").withPVC("data").Pod,
			objs: append(boundData,
				makeLV("pv-data", "data").onNodes("node-c").LocalVolume),
			wantPreFilterResult: sets.New("node-c"),
			wantPreScoreSkip:    true,
		},
		{
			name: "bound volumes sharing a node allow only that node",
			pod:  makePod("p").withPVC("data", "logs").Pod,
			objs: append(boundData,
				makeLV("pv-data", "data").LocalVolume,
				makeLVR("pv-data", "node-a", v1.StateReady),
				makeLVR("pv-data", "node-b", v1.StateReady),
				makePVC("logs").boundTo("pv-logs").PersistentVolumeClaim,
				makePV("pv-logs", v1.DriverName),
				makeLV("pv-logs", "logs").LocalVolume,
				makeLVR("pv-logs", "node-b", v1.StateReady)),
			wantPreFilterResult: sets.New("node-b"),
			wantPreScoreSkip:    true,
		},
		{
			name: "claim placed in a LocalVolumeGroup keeps its nodes, and its held bytes count as fitting",
			pod:  makePod("p").withPVC("data").Pod,
			objs: []runtime.Object{
				makePVC("data").PersistentVolumeClaim,
				makeLSN("node-a").pool(hdd, 100, 100).LocalStorageNode,
				makeLSN("node-b").pool(hdd, 100, 8).LocalStorageNode, // 6Gi of the 8 are held for data
				makeLVG("lvg-data").placed("data", makePVC("data").key(), hdd, 6, "node-b").LocalVolumeGroup,
			},
			nodes:               []string{"node-a", "node-b"},
			wantPreFilterResult: sets.New("node-b"),
			wantFilter:          map[string]*want{"node-a": wantCode(fwk.UnschedulableAndUnresolvable, ReasonReplicaLocality)},
			wantScores:          map[string]int64{"node-b": 2},
		},
		{
			name:                "stale group entry of an earlier claim with the same name does not pin the new claim",
			wantPreFilterResult: sets.New("node-a", "node-b"),
			pod:                 makePod("p").withPVC("data").Pod,
			objs: append([]runtime.Object{
				makePVC("data").PersistentVolumeClaim, // recreated: its UID is not the one the group recorded
				makeLVG("lvg-data").placed("data", "pvc-uid-of-deleted-claim", hdd, 6, "node-b").LocalVolumeGroup,
			}, twoNodes...),
			nodes:      []string{"node-a", "node-b"},
			wantScores: map[string]int64{"node-a": 94, "node-b": 88},
		},
		{
			name:                "group entry without nodes does not pin the claim",
			wantPreFilterResult: sets.New("node-a", "node-b"),
			pod:                 makePod("p").withPVC("data").Pod,
			objs: append([]runtime.Object{
				makePVC("data").PersistentVolumeClaim,
				makeLVG("lvg-data").placed("data", makePVC("data").key(), hdd, 6).LocalVolumeGroup,
			}, twoNodes...),
			nodes:      []string{"node-a", "node-b"},
			wantScores: map[string]int64{"node-a": 94, "node-b": 94},
		},
		{
			name: "generic ephemeral volume is resolved by its claim name",
			pod:  makePod("web").withEphemeral("scratch").Pod,
			objs: []runtime.Object{
				makePVC("web-scratch").withSize("10Gi").PersistentVolumeClaim,
				makeLSN("node-a").pool(hdd, 100, 8).LocalStorageNode,
			},
			nodes:      []string{"node-a"},
			wantFilter: map[string]*want{"node-a": wantCode(fwk.UnschedulableAndUnresolvable, "need 10Gi, free 8Gi")},
		},
		{
			name:                "class without parameters means one HDD replica",
			wantPreFilterResult: sets.New("node-b"),
			pod:                 makePod("p").withPVC("data").Pod,
			objs: []runtime.Object{
				makePVC("data").withClass("minimal").PersistentVolumeClaim,
				makeLSN("node-a").pool(ssd, 100, 100).LocalStorageNode,
				makeLSN("node-b").pool(hdd, 100, 100).LocalStorageNode,
			},
			nodes:      []string{"node-a", "node-b"},
			wantFilter: map[string]*want{"node-a": wantCode(fwk.UnschedulableAndUnresolvable, "node has no pool LocalStorage_PoolHDD")},
			wantScores: map[string]int64{"node-b": 94},
		},
		// ---- Filter
		{
			name:                "new volume fits on one node, not on the other with a reservation in flight",
			wantPreFilterResult: sets.New("node-a"),
			pod:                 makePod("p").withPVC("data").Pod,
			objs: []runtime.Object{
				makePVC("data").PersistentVolumeClaim,
				makeLSN("node-a").pool(hdd, 100, 56).LocalStorageNode,
				makeLSN("node-b").pool(hdd, 100, 6).LocalStorageNode,
			},
			inFlight: []inFlight{{"node-b", otherVol("pvc-other", 2)}},
			nodes:    []string{"node-a", "node-b"},
			wantFilter: map[string]*want{
				"node-b": wantCode(fwk.UnschedulableAndUnresolvable, "pool LocalStorage_PoolHDD: need 6Gi, free 4Gi (2Gi reserved in flight)"),
			},
			wantScores: map[string]int64{"node-a": 50},
		},
		{
			name:                "nodes without a LocalStorageNode, not Ready, without the pool, or out of volume slots",
			wantPreFilterResult: sets.New("node-e"),
			pod:                 makePod("p").withPVC("fast").Pod,
			objs: []runtime.Object{
				makePVC("fast").withClass("ssd").PersistentVolumeClaim,
				makeLSN("node-b").pool(ssd, 100, 100).state(v1.StateNotReady).LocalStorageNode,
				makeLSN("node-c").pool(hdd, 100, 100).LocalStorageNode,
				makeLSN("node-d").pool(ssd, 100, 100).freeVolumes(ssd, 0).LocalStorageNode,
				makeLSN("node-e").pool(ssd, 100, 100).LocalStorageNode,
			},
			nodes: []string{"node-a", "node-b", "node-c", "node-d", "node-e"},
			wantFilter: map[string]*want{
				"node-a": wantCode(fwk.UnschedulableAndUnresolvable, "node has no LocalStorageNode"),
				"node-b": wantCode(fwk.UnschedulableAndUnresolvable, "LocalStorageNode is NotReady, not Ready"),
				"node-c": wantCode(fwk.UnschedulableAndUnresolvable, "node has no pool LocalStorage_PoolSSD"),
				"node-d": wantCode(fwk.UnschedulableAndUnresolvable, "pool LocalStorage_PoolSSD: need 1 volume(s), 0 free"),
			},
			wantScores: map[string]int64{"node-e": 94},
		},
		{
			name:                "two claims that fit one at a time but not together",
			wantPreFilterResult: sets.New("node-b"),
			pod:                 makePod("p").withPVC("data", "logs").Pod,
			objs: []runtime.Object{
				makePVC("data").PersistentVolumeClaim,
				makePVC("logs").PersistentVolumeClaim,
				makeLSN("node-a").pool(hdd, 100, 10).LocalStorageNode,
				makeLSN("node-b").pool(hdd, 100, 12).LocalStorageNode,
			},
			nodes:      []string{"node-a", "node-b"},
			wantFilter: map[string]*want{"node-a": wantCode(fwk.UnschedulableAndUnresolvable, "need 12Gi, free 10Gi")},
			wantScores: map[string]int64{"node-b": 0},
		},
		{
			// One fitting node cannot hold both replicas: PreFilter
			// rejects at once instead of every Filter.
			name: "HA claim where the only node that fits has no peer",
			pod:  makePod("p").withPVC("data").Pod,
			objs: []runtime.Object{
				makePVC("data").withClass("hdd-ha").PersistentVolumeClaim,
				makeLSN("node-a").pool(hdd, 100, 100).LocalStorageNode,
				makeLSN("node-b").pool(hdd, 100, 4).LocalStorageNode,
			},
			wantPreFilter: wantCode(fwk.UnschedulableAndUnresolvable, ReasonNoPeer, "need 6Gi in LocalStorage_PoolHDD"),
		},
		{
			name:                "HA claim with two nodes that fit",
			wantPreFilterResult: sets.New("node-a", "node-b"),
			pod:                 makePod("p").withPVC("data").Pod,
			objs:                append([]runtime.Object{makePVC("data").withClass("hdd-ha").PersistentVolumeClaim}, twoNodes...),
			nodes:               []string{"node-a", "node-b"},
			wantScores:          map[string]int64{"node-a": 94, "node-b": 94},
		},
		// ---- Score
		{
			name:                "spread prefers the emptier node",
			wantPreFilterResult: sets.New("node-a", "node-b"),
			pod:                 makePod("p").withPVC("data").Pod,
			objs:                scoreObjs(),
			nodes:               []string{"node-a", "node-b"},
			wantScores:          map[string]int64{"node-a": 50, "node-b": 25},
		},
		{
			name:                "binpack prefers the fuller node",
			wantPreFilterResult: sets.New("node-a", "node-b"),
			pod:                 makePod("p").withPVC("data").Pod,
			objs:                scoreObjs(),
			args:                withStrategy(config.ScoringStrategy{Type: config.Binpack}),
			nodes:               []string{"node-a", "node-b"},
			wantScores:          map[string]int64{"node-a": 50, "node-b": 75},
		},
		{
			name:                "shape follows its points",
			wantPreFilterResult: sets.New("node-a", "node-b"),
			pod:                 makePod("p").withPVC("data").Pod,
			objs:                scoreObjs(),
			args: withStrategy(config.ScoringStrategy{Type: config.Shape, Shape: []config.UtilizationShapePoint{
				{Utilization: 0, Score: 0}, {Utilization: 50, Score: 10}, {Utilization: 100, Score: 0},
			}}),
			nodes:      []string{"node-a", "node-b"},
			wantScores: map[string]int64{"node-a": 100, "node-b": 50},
		},
		{
			name:                "pools weigh by class weight times bytes: equal weights",
			wantPreFilterResult: sets.New("node-a", "node-b"),
			pod:                 makePod("p").withPVC("data", "fast").Pod,
			objs:                twoPoolObjs(),
			nodes:               []string{"node-a", "node-b"},
			wantScores:          map[string]int64{"node-a": 37, "node-b": 37},
		},
		{
			name:                "pools weigh by class weight times bytes: SSD counts three times",
			wantPreFilterResult: sets.New("node-a", "node-b"),
			pod:                 makePod("p").withPVC("data", "fast").Pod,
			objs:                twoPoolObjs(),
			args: func() *config.LocalStorageArgs {
				a := defaultArgs()
				a.PoolClassWeights["SSD"] = 3
				return a
			}(),
			nodes:      []string{"node-a", "node-b"},
			wantScores: map[string]int64{"node-a": 31, "node-b": 43},
		},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.knownBug != "" {
				t.Skip("known bug: " + tc.knownBug)
			}
			e := newTestEnv(t, tc.args, append(classes(), tc.objs...)...)
			for _, r := range tc.inFlight {
				if _, err := e.pl.Cache().Reserve(r.node, []placement.Volume{r.vol}); err != nil {
					t.Fatalf("setting up the reservation in flight: %v", err)
				}
			}
			ctx := context.Background()
			c := e.cycle(tc.pod)

			res, st := c.preFilter()
			checkStatus(t, "PreFilter", st, tc.wantPreFilter)
			var gotNodes sets.Set[string]
			if res != nil {
				gotNodes = res.NodeNames
			}
			if diff := cmp.Diff(tc.wantPreFilterResult, gotNodes); diff != "" {
				t.Errorf("PreFilterResult.NodeNames (-want +got):\n%s", diff)
			}
			if !st.IsSuccess() {
				if _, err := c.cs.Read(stateKey); err == nil {
					t.Error("PreFilter wrote a state for a pod it did not admit")
				}
				if len(tc.nodes) > 0 {
					t.Fatal("test case lists nodes for a pod PreFilter does not admit")
				}
				return
			}

			var passed []string
			for _, node := range tc.nodes {
				if res != nil && !res.NodeNames.Has(node) && tc.wantFilter[node] == nil {
					continue // the framework would not call Filter there
				}
				st := c.filter(node)
				checkStatus(t, "Filter("+node+")", st, tc.wantFilter[node])
				if st.IsSuccess() {
					passed = append(passed, node)
				}
			}

			st = e.pl.PreScore(ctx, c.cs, c.pod, nil)
			if tc.wantPreScoreSkip {
				checkStatus(t, "PreScore", st, wantCode(fwk.Skip))
				return
			}
			checkStatus(t, "PreScore", st, nil)
			scores := make(framework.NodeScoreList, 0, len(passed))
			for _, node := range passed {
				s, st := e.pl.Score(ctx, c.cs, c.pod, nodeInfo(node))
				checkStatus(t, "Score("+node+")", st, nil)
				if s < 0 || s > scoreScale {
					t.Errorf("Score(%s) = %d, outside 0..%d", node, s, scoreScale)
				}
				scores = append(scores, framework.NodeScore{Name: node, Score: s})
			}
			checkStatus(t, "NormalizeScore", e.pl.NormalizeScore(ctx, c.cs, c.pod, scores), nil)
			got := map[string]int64{}
			for _, s := range scores {
				got[s.Name] = s.Score
			}
			if tc.wantScores == nil {
				tc.wantScores = map[string]int64{}
			}
			if diff := cmp.Diff(tc.wantScores, got); diff != "" {
				t.Errorf("normalized scores (-want +got):\n%s", diff)
			}
		})
	}
}

// scoreObjs: a 16Gi claim; after placing it node-a's pool is half full,
// node-b's three quarters.
func scoreObjs() []runtime.Object {
	return []runtime.Object{
		makePVC("data").withSize("16Gi").PersistentVolumeClaim,
		makeLSN("node-a").pool(placement.PoolHDD, 64, 48).LocalStorageNode,
		makeLSN("node-b").pool(placement.PoolHDD, 64, 32).LocalStorageNode,
	}
}

// twoPoolObjs: 16Gi in HDD and 16Gi in SSD; after placement node-a's HDD is
// 1/2 and SSD 3/4 full, node-b's the other way round.
func twoPoolObjs() []runtime.Object {
	return []runtime.Object{
		makePVC("data").withSize("16Gi").PersistentVolumeClaim,
		makePVC("fast").withClass("ssd").withSize("16Gi").PersistentVolumeClaim,
		makeLSN("node-a").pool(placement.PoolHDD, 64, 48).pool(placement.PoolSSD, 64, 32).LocalStorageNode,
		makeLSN("node-b").pool(placement.PoolHDD, 64, 32).pool(placement.PoolSSD, 64, 48).LocalStorageNode,
	}
}

func withStrategy(s config.ScoringStrategy) *config.LocalStorageArgs {
	a := defaultArgs()
	a.ScoringStrategy = s
	return a
}

func TestNormalizeScore(t *testing.T) {
	e := newTestEnv(t, nil)
	scores := framework.NodeScoreList{{Name: "zero", Score: 0}, {Name: "one", Score: 1}, {Name: "half", Score: 5000}, {Name: "almost", Score: 9999}, {Name: "max", Score: 10000}}
	if st := e.pl.NormalizeScore(context.Background(), framework.NewCycleState(), makePod("p").Pod, scores); !st.IsSuccess() {
		t.Fatal(st)
	}
	want := framework.NodeScoreList{{Name: "zero", Score: 0}, {Name: "one", Score: 0}, {Name: "half", Score: 50}, {Name: "almost", Score: 99}, {Name: "max", Score: framework.MaxNodeScore}}
	if diff := cmp.Diff(want, scores); diff != "" {
		t.Errorf("NormalizeScore (-want +got):\n%s", diff)
	}
}

func TestPreScoreSkipsPodsWithoutState(t *testing.T) {
	e := newTestEnv(t, nil)
	st := e.pl.PreScore(context.Background(), framework.NewCycleState(), makePod("p").Pod, nil)
	checkStatus(t, "PreScore", st, wantCode(fwk.Skip))
}

func TestFilterWithoutPreFilterStateIsAnError(t *testing.T) {
	e := newTestEnv(t, nil)
	c := e.cycle(makePod("p").withPVC("data").Pod)
	checkStatus(t, "Filter", c.filter("node-a"), wantCode(fwk.Error, "reading"))
	_, st := e.pl.Score(context.Background(), c.cs, c.pod, nodeInfo("node-a"))
	checkStatus(t, "Score", st, wantCode(fwk.Error))
}

// TestInvalidClassEventOnTheClaim: a StorageClass mistake is reported where
// a user looks at the claim, naming the parameter and the fix; a good
// class records nothing.
func TestInvalidClassEventOnTheClaim(t *testing.T) {
	e := newTestEnv(t, nil, append(classes(), makePVC("bad").withClass("typo").PersistentVolumeClaim,
		makePVC("good").withClass("hdd").PersistentVolumeClaim)...)
	e.cycle(makePod("p").withPVC("bad").Pod).preFilter()
	select {
	case ev := <-e.events.Events:
		for _, want := range []string{"Warning", ReasonInvalidStorageClass, `unknown parameter "replicaNumbr": did you mean replicaNumber?`, "StorageClass typo is fixed"} {
			if !strings.Contains(ev, want) {
				t.Errorf("event %q does not contain %q", ev, want)
			}
		}
	default:
		t.Fatal("no event for a claim of a bad StorageClass")
	}
	e.cycle(makePod("q").withPVC("good").Pod).preFilter()
	select {
	case ev := <-e.events.Events:
		t.Errorf("event for a good claim: %q", ev)
	default:
	}
}
