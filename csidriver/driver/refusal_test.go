package driver

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/volume"
	"hwameistor.io/local/csidriver/agent"
	"hwameistor.io/local/csidriver/backend"
	"hwameistor.io/local/csidriver/backend/emulated"
	"hwameistor.io/local/internal/testenv"
)

// startAgent runs the volume controller and a node agent over emulated
// pools (capacity only) of the given sizes, without periodic reports: the
// tests write the nodes' reports themselves, so a report can claim more
// room than the pool has (a report that has not reached the apiserver yet).
func startAgent(t *testing.T, pools map[string]int64) map[string]backend.Backend {
	t.Helper()
	backends := map[string]backend.Backend{}
	for node, size := range pools {
		be, err := emulated.New(filepath.Join(t.TempDir(), node), []emulated.PoolConfig{{Class: v1.PoolClassHDD, CapacityBytes: size}}, emulated.WithoutLoop())
		if err != nil {
			t.Fatal(err)
		}
		backends[node] = be
	}
	rec := record.NewFakeRecorder(1000)
	env.StartManager(t, func(ctx context.Context, mgr ctrl.Manager) error {
		if err := (&volume.Reconciler{Client: mgr.GetClient(), Recorder: rec}).SetupWithManager(ctx, mgr); err != nil {
			return err
		}
		return (&agent.Agent{Client: mgr.GetClient(), Recorder: rec, Backends: backends, Zones: map[string]string{}}).SetupWithManager(mgr)
	})
	return backends
}

// reportPool writes node's LocalStorageNode with an HDD pool of total and
// free bytes, as its agent's last report that reached the apiserver.
func reportPool(t *testing.T, node string, total, free int64) {
	t.Helper()
	ctx := context.Background()
	lsn := &v1.LocalStorageNode{}
	err := env.Client.Get(ctx, client.ObjectKey{Name: node}, lsn)
	if apierrors.IsNotFound(err) {
		lsn = &v1.LocalStorageNode{ObjectMeta: metav1.ObjectMeta{Name: node}, Spec: v1.LocalStorageNodeSpec{Hostname: node}}
		err = env.Client.Create(ctx, lsn)
	}
	if err != nil {
		t.Fatal(err)
	}
	lsn.Status = v1.LocalStorageNodeStatus{State: v1.StateReady, Pools: map[string]v1.LocalPool{v1.PoolNameHDD: {
		Name: v1.PoolNameHDD, Class: v1.PoolClassHDD, Type: v1.PoolTypeRegular,
		TotalCapacityBytes: total, UsedCapacityBytes: total - free, FreeCapacityBytes: free, TotalVolumeCount: 1000, FreeVolumeCount: 1000}}}
	if err := env.Client.Status().Update(ctx, lsn); err != nil {
		t.Fatal(err)
	}
}

// TestCreateVolumeRefusedByNodeAgent: the node's report says there is room,
// the node agent's allocation finds the pool short. CreateVolume answers
// ResourceExhausted with the numbers at once (it was DeadlineExceeded when
// the caller's deadline ended, the sidecar retrying the same node for
// ever), removes what it created (the LocalVolume, its replicas and the
// data a peer had already allocated), clears the placement in the claim's
// group entry and records the refusal there. A retry before the
// rescheduling is refused again without creating anything; a placement on
// another node then succeeds.
func TestCreateVolumeRefusedByNodeAgent(t *testing.T) {
	backends := startAgent(t, map[string]int64{"rf-short": 4 * gi, "rf-roomy": 20 * gi, "rf-spare": 20 * gi})
	reportPool(t, "rf-short", 40*gi, 40*gi) // the pool has 4Gi: the report is stale
	reportPool(t, "rf-roomy", 20*gi, 20*gi)
	reportPool(t, "rf-spare", 20*gi, 20*gi)
	c := &Controller{Client: env.Client, PollInterval: 20 * time.Millisecond}
	tests := []struct {
		name, claim string
		params      map[string]string
		nodes       []string // the placement the scheduler persisted
	}{
		{"one replica", "one", nil, []string{"rf-short"}},
		{"HA, the peer refuses", "ha", map[string]string{"replicaNumber": "2"}, []string{"rf-roomy", "rf-short"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			reportPool(t, "rf-short", 40*gi, 40*gi)
			vol := "pvc-rf-" + tc.claim
			group := &v1.LocalVolumeGroup{ObjectMeta: metav1.ObjectMeta{Name: "lvg-rf-" + tc.claim}, Spec: v1.LocalVolumeGroupSpec{Namespace: "rf",
				Volumes: []v1.VolumeInfo{{PersistentVolumeClaimName: tc.claim, LocalVolumeName: vol, Nodes: tc.nodes, PoolName: v1.PoolNameHDD, RequiredCapacityBytes: 10 * gi}}}}
			if err := env.Client.Create(ctx, group); err != nil {
				t.Fatal(err)
			}
			cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			start := time.Now()
			_, err := c.CreateVolume(cctx, createReq(vol, "rf", tc.claim, 10*gi, tc.params, tc.nodes[0]))
			if status.Code(err) != codes.ResourceExhausted {
				t.Fatalf("CreateVolume: %v, want ResourceExhausted (before the fix: DeadlineExceeded after the caller's deadline)", err)
			}
			for _, want := range []string{"node rf-short refused 10Gi in LocalStorage_PoolHDD: 4Gi free at allocation, the node reports 40Gi free",
				"cleared, the pod is scheduled again away from rf-short"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if d := time.Since(start); d > 15*time.Second {
				t.Errorf("the refusal took %v", d)
			}

			// Nothing half-created: no volume, no replica, no data.
			if err := env.Client.Get(ctx, client.ObjectKey{Name: vol}, &v1.LocalVolume{}); !apierrors.IsNotFound(err) {
				t.Errorf("LocalVolume %s still exists (%v)", vol, err)
			}
			for _, n := range tc.nodes {
				if err := env.Client.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(vol, n)}, &v1.LocalVolumeReplica{}); !apierrors.IsNotFound(err) {
					t.Errorf("replica on %s still exists (%v)", n, err)
				}
				if _, err := backends[n].GetVolume(ctx, v1.PoolNameHDD, vol); !errors.Is(err, backend.ErrNotFound) {
					t.Errorf("the data of %s on %s was left behind (%v)", vol, n, err)
				}
			}

			// The placement is withdrawn and the refusal recorded.
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(group), group); err != nil {
				t.Fatal(err)
			}
			e := group.Spec.Volumes[0]
			if len(e.Nodes) != 0 || e.PoolName != "" || e.RequiredCapacityBytes != 0 {
				t.Errorf("the group entry still places the claim: %+v", e)
			}
			if len(e.Refusals) != 1 {
				t.Fatalf("refusals %+v, want one", e.Refusals)
			}
			r := e.Refusals[0]
			if r.NodeName != "rf-short" || r.By != v1.RefusedByNodeAgent || r.RequiredCapacityBytes != 10*gi || r.FreeCapacityBytes != 4*gi ||
				r.Report.FreeCapacityBytes != 40*gi || r.Report.TotalCapacityBytes != 40*gi {
				t.Errorf("refusal %+v", r)
			}

			// external-provisioner may call again before the claim is
			// rescheduled: refused, nothing created.
			reportPool(t, "rf-short", 40*gi, 40*gi)
			if _, err := c.CreateVolume(cctx, createReq(vol, "rf", tc.claim, 10*gi, tc.params, tc.nodes[0])); status.Code(err) != codes.ResourceExhausted {
				t.Errorf("retry on the refusing node: %v, want ResourceExhausted", err)
			}
			if err := env.Client.Get(ctx, client.ObjectKey{Name: vol}, &v1.LocalVolume{}); !apierrors.IsNotFound(err) {
				t.Errorf("the retry created LocalVolume %s (%v)", vol, err)
			}

			// The scheduler places the claim anew, away from rf-short.
			nodes := []string{"rf-roomy"}
			if len(tc.nodes) == 2 {
				nodes = []string{"rf-roomy", "rf-spare"}
			}
			group.Spec.Volumes[0].Nodes, group.Spec.Volumes[0].PoolName, group.Spec.Volumes[0].RequiredCapacityBytes = nodes, v1.PoolNameHDD, 10*gi
			if err := env.Client.Update(ctx, group); err != nil {
				t.Fatal(err)
			}
			resp, err := c.CreateVolume(cctx, createReq(vol, "rf", tc.claim, 10*gi, tc.params, nodes[0]))
			if err != nil {
				t.Fatalf("CreateVolume on %v: %v", nodes, err)
			}
			lv := &v1.LocalVolume{}
			if err := env.Client.Get(ctx, client.ObjectKey{Name: resp.Volume.VolumeId}, lv); err != nil || strings.Join(lv.ReplicaNodes(), ",") != strings.Join(nodes, ",") {
				t.Errorf("volume on %v (%v), want %v", lv.ReplicaNodes(), err, nodes)
			}
			if _, err := c.DeleteVolume(cctx, &csi.DeleteVolumeRequest{VolumeId: vol}); err != nil {
				t.Fatal(err)
			}
			// After a refusal the agent reports what its pool really has.
			testenv.Eventually(t, "rf-short's pool reported as it is", func() bool {
				lsn := &v1.LocalStorageNode{}
				return env.Client.Get(ctx, client.ObjectKey{Name: "rf-short"}, lsn) == nil && lsn.Status.Pools[v1.PoolNameHDD].TotalCapacityBytes == 4*gi
			})
		})
	}
}

// TestCreateVolumeRefusalCases: the driver's own last check, a refusal on
// record, and the placements a refusal leaves alone.
func TestCreateVolumeRefusalCases(t *testing.T) {
	readyWhenCreated(t)
	ctx := context.Background()
	reportPool(t, "rc-short", 20*gi, 1*gi)
	reportPool(t, "rc-stale", 40*gi, 40*gi)
	reportPool(t, "rc-ok", 20*gi, 20*gi)
	recorded := v1.CapacityRefusal{NodeName: "rc-stale", PoolName: v1.PoolNameHDD, RequiredCapacityBytes: 10 * gi, FreeCapacityBytes: 4 * gi,
		Report: v1.PoolReport{TotalCapacityBytes: 40 * gi, FreeCapacityBytes: 40 * gi, FreeVolumeCount: 1000}, By: v1.RefusedByNodeAgent,
		Time: metav1.NewTime(time.Now().Truncate(time.Second))}
	c := &Controller{Client: env.Client, PollInterval: 20 * time.Millisecond}
	tests := []struct {
		name      string
		entry     v1.VolumeInfo // "" nodes: no placement in the group
		selected  string
		bytes     int64
		wantCode  codes.Code
		wantMsg   string
		wantNodes []string // the entry's nodes afterwards
		wantRefs  int
	}{
		{"the report is short", v1.VolumeInfo{Nodes: []string{"rc-short"}}, "rc-short", 2 * gi, codes.ResourceExhausted,
			"node rc-short refused 2Gi in LocalStorage_PoolHDD: 1Gi free in the node's report; placement [rc-short] cleared", nil, 1},
		{"a refusal on record, same report", v1.VolumeInfo{Nodes: []string{"rc-stale"}, Refusals: []v1.CapacityRefusal{recorded}}, "rc-stale", 10 * gi,
			codes.ResourceExhausted, "node rc-stale refused 10Gi in LocalStorage_PoolHDD: 4Gi free at allocation, the node reports 40Gi free", nil, 1},
		{"a refusal on record, smaller volume", v1.VolumeInfo{Nodes: []string{"rc-stale"}, Refusals: []v1.CapacityRefusal{recorded}}, "rc-stale", 2 * gi,
			codes.OK, "", []string{"rc-stale"}, 1},
		{"a refusal of another node", v1.VolumeInfo{Nodes: []string{"rc-ok"}, Refusals: []v1.CapacityRefusal{recorded}}, "rc-ok", 10 * gi,
			codes.OK, "", []string{"rc-ok"}, 1},
		{"no placement in the group: the selected node is refused", v1.VolumeInfo{Refusals: []v1.CapacityRefusal{recorded}}, "rc-stale", 10 * gi,
			codes.ResourceExhausted, "the pod is scheduled again", nil, 1},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			claim := "c" + string(rune('a'+i))
			vol := "pvc-rc-" + claim
			e := tc.entry
			e.PersistentVolumeClaimName, e.LocalVolumeName = claim, vol
			if len(e.Nodes) > 0 {
				e.PoolName, e.RequiredCapacityBytes = v1.PoolNameHDD, tc.bytes
			}
			group := &v1.LocalVolumeGroup{ObjectMeta: metav1.ObjectMeta{Name: "lvg-rc-" + claim}, Spec: v1.LocalVolumeGroupSpec{Namespace: "rc", Volumes: []v1.VolumeInfo{e}}}
			if err := env.Client.Create(ctx, group); err != nil {
				t.Fatal(err)
			}
			_, err := c.CreateVolume(withTimeout(), createReq(vol, "rc", claim, tc.bytes, nil, tc.selected))
			if status.Code(err) != tc.wantCode || (err != nil && !strings.Contains(err.Error(), tc.wantMsg)) {
				t.Fatalf("CreateVolume: %v, want %v with %q", err, tc.wantCode, tc.wantMsg)
			}
			if err != nil {
				if err := env.Client.Get(ctx, client.ObjectKey{Name: vol}, &v1.LocalVolume{}); !apierrors.IsNotFound(err) {
					t.Errorf("a LocalVolume exists after the refusal (%v)", err)
				}
			}
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(group), group); err != nil {
				t.Fatal(err)
			}
			got := group.Spec.Volumes[0]
			if strings.Join(got.Nodes, ",") != strings.Join(tc.wantNodes, ",") || len(got.Refusals) != tc.wantRefs {
				t.Errorf("entry afterwards: nodes %v, %d refusal(s); want %v, %d", got.Nodes, len(got.Refusals), tc.wantNodes, tc.wantRefs)
			}
		})
	}
}
