package driver

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	"hwameistor.io/local/controllers/expand"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

const gi = int64(1) << 30

func createLSN(t *testing.T, name string, free int64) {
	t.Helper()
	ctx := context.Background()
	lsn := &v1.LocalStorageNode{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.LocalStorageNodeSpec{Hostname: name}}
	if err := env.Client.Create(ctx, lsn); err != nil {
		t.Fatal(err)
	}
	lsn.Status = v1.LocalStorageNodeStatus{State: v1.StateReady, Pools: map[string]v1.LocalPool{v1.PoolNameHDD: {
		Name: v1.PoolNameHDD, Class: v1.PoolClassHDD, Type: v1.PoolTypeRegular,
		TotalCapacityBytes: 20 * gi, UsedCapacityBytes: 20*gi - free, FreeCapacityBytes: free, TotalVolumeCount: 1000, FreeVolumeCount: 1000}}}
	if err := env.Client.Status().Update(ctx, lsn); err != nil {
		t.Fatal(err)
	}
}

// readyWhenCreated plays the volume controller and node agent for these
// controller-service tests: every new LocalVolume turns Ready with its size,
// and a deleted one loses its finalizer.
func readyWhenCreated(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		for ctx.Err() == nil {
			list := &v1.LocalVolumeList{}
			if err := env.Client.List(ctx, list); err == nil {
				for i := range list.Items {
					lv := &list.Items[i]
					if lv.DeletionTimestamp != nil {
						lv.Finalizers = nil
						_ = env.Client.Update(ctx, lv)
						continue
					}
					if lv.Status.State != v1.StateReady || lv.Status.AllocatedCapacityBytes < lv.Spec.RequiredCapacityBytes {
						lv.Status.State = v1.StateReady
						lv.Status.AllocatedCapacityBytes = lv.Spec.RequiredCapacityBytes
						_ = env.Client.Status().Update(ctx, lv)
					}
					// The replicas too, as the volume controller and agents make them.
					for _, n := range lv.Spec.Accessibility.Nodes {
						rep := &v1.LocalVolumeReplica{ObjectMeta: metav1.ObjectMeta{Name: v1.ReplicaName(lv.Name, n)},
							Spec: v1.LocalVolumeReplicaSpec{VolumeName: lv.Name, NodeName: n, PoolName: lv.Spec.PoolName, RequiredCapacityBytes: lv.Spec.RequiredCapacityBytes}}
						if err := env.Client.Get(ctx, client.ObjectKeyFromObject(rep), rep); apierrors.IsNotFound(err) {
							_ = env.Client.Create(ctx, rep)
						}
						if rep.Status.AllocatedCapacityBytes < lv.Spec.RequiredCapacityBytes {
							rep.Status = v1.LocalVolumeReplicaStatus{State: v1.StateReady, Synced: true, AllocatedCapacityBytes: lv.Spec.RequiredCapacityBytes}
							_ = env.Client.Status().Update(ctx, rep)
						}
					}
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
}

func mountCap() []*csi.VolumeCapability {
	return []*csi.VolumeCapability{{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: "xfs"}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}}
}

func createReq(name, ns, pvc string, bytes int64, params map[string]string, preferred string) *csi.CreateVolumeRequest {
	p := map[string]string{ParamPVCNamespace: ns, ParamPVCName: pvc, "poolClass": "HDD"}
	for k, v := range params {
		p[k] = v
	}
	req := &csi.CreateVolumeRequest{Name: name, Parameters: p, VolumeCapabilities: mountCap(),
		CapacityRange: &csi.CapacityRange{RequiredBytes: bytes}}
	if preferred != "" {
		req.AccessibilityRequirements = &csi.TopologyRequirement{Preferred: []*csi.Topology{{Segments: map[string]string{v1.TopologyKey: preferred}}}}
	}
	return req
}

func withTimeout() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_ = cancel
	return ctx
}

func TestCreateVolume(t *testing.T) {
	readyWhenCreated(t)
	createLSN(t, "cv-a", 10*gi)
	createLSN(t, "cv-b", 10*gi)
	createLSN(t, "cv-full", gi)
	group := &v1.LocalVolumeGroup{ObjectMeta: metav1.ObjectMeta{Name: "lvg-cv"}, Spec: v1.LocalVolumeGroupSpec{Namespace: "ns",
		Volumes: []v1.VolumeInfo{{PersistentVolumeClaimName: "ha", LocalVolumeName: "pvc-ha", Nodes: []string{"cv-b", "cv-a"}, PoolName: v1.PoolNameHDD, RequiredCapacityBytes: 2 * gi}}}}
	if err := env.Client.Create(context.Background(), group); err != nil {
		t.Fatal(err)
	}
	c := &Controller{Client: env.Client, PollInterval: 20 * time.Millisecond}

	cases := []struct {
		name      string
		req       *csi.CreateVolumeRequest
		wantCode  codes.Code
		wantMsg   string
		wantNodes []string
	}{
		{"placement from the group", createReq("pvc-ha", "ns", "ha", 2*gi, map[string]string{"replicaNumber": "2"}, "cv-a"), codes.OK, "", []string{"cv-b", "cv-a"}},
		{"selected node without a group", createReq("pvc-sel", "ns", "sel", gi, nil, "cv-a"), codes.OK, "", []string{"cv-a"}},
		{"no placement at all", createReq("pvc-none", "ns", "none", gi, nil, ""), codes.FailedPrecondition, "no placement for claim ns/none", nil},
		{"HA without a second node", createReq("pvc-ha1", "ns", "ha1", gi, map[string]string{"replicaNumber": "2"}, "cv-a"), codes.FailedPrecondition, "wants 2 replicas", nil},
		{"pool short", createReq("pvc-full", "ns", "full", 2*gi, nil, "cv-full"), codes.ResourceExhausted, "node cv-full refused 2Gi in LocalStorage_PoolHDD: 1Gi free in the node's report", nil},
		{"no such node", createReq("pvc-ghost", "ns", "ghost", gi, nil, "ghost"), codes.FailedPrecondition, "node ghost has no LocalStorageNode", nil},
		{"bad parameter", createReq("pvc-bad", "ns", "bad", gi, map[string]string{"poolClass": "TAPE"}, "cv-a"), codes.InvalidArgument, "parameter poolClass", nil},
		{"no name", &csi.CreateVolumeRequest{VolumeCapabilities: mountCap()}, codes.InvalidArgument, "name is required", nil},
		{"multi-node access", func() *csi.CreateVolumeRequest {
			r := createReq("pvc-rwx", "ns", "rwx", gi, nil, "cv-a")
			r.VolumeCapabilities[0].AccessMode.Mode = csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER
			return r
		}(), codes.InvalidArgument, "single-node", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.CreateVolume(withTimeout(), tc.req)
			if status.Code(err) != tc.wantCode {
				t.Fatalf("code %v (%v), want %v", status.Code(err), err, tc.wantCode)
			}
			if err != nil {
				if !strings.Contains(err.Error(), tc.wantMsg) {
					t.Errorf("error %q lacks %q", err, tc.wantMsg)
				}
				// A refused request leaves nothing half-created.
				if tc.req.Name != "" {
					err := env.Client.Get(context.Background(), client.ObjectKey{Name: VolumeName(tc.req.Name)}, &v1.LocalVolume{})
					if !apierrors.IsNotFound(err) {
						t.Errorf("a LocalVolume exists after the refused request (%v)", err)
					}
				}
				return
			}
			if resp.Volume.VolumeId != tc.req.Name || resp.Volume.CapacityBytes < tc.req.CapacityRange.RequiredBytes {
				t.Errorf("response %+v", resp.Volume)
			}
			if len(resp.Volume.AccessibleTopology) != 0 {
				t.Errorf("CreateVolume returned topology %v: PVs must stay movable", resp.Volume.AccessibleTopology)
			}
			lv := &v1.LocalVolume{}
			if err := env.Client.Get(context.Background(), client.ObjectKey{Name: tc.req.Name}, lv); err != nil {
				t.Fatal(err)
			}
			var nodes []string
			for _, r := range lv.Spec.Config.Replicas {
				nodes = append(nodes, r.Hostname)
			}
			if fmt.Sprint(nodes) != fmt.Sprint(tc.wantNodes) || lv.Spec.PersistentVolumeClaimName != tc.req.Parameters[ParamPVCName] {
				t.Errorf("LocalVolume replicas %v (want %v), spec %+v", nodes, tc.wantNodes, lv.Spec)
			}
		})
	}

	// Idempotency: the same request again succeeds; a different size does not.
	if _, err := c.CreateVolume(withTimeout(), createReq("pvc-sel", "ns", "sel", gi, nil, "cv-a")); err != nil {
		t.Errorf("repeated CreateVolume: %v", err)
	}
	if _, err := c.CreateVolume(withTimeout(), createReq("pvc-sel", "ns", "sel", 3*gi, nil, "cv-a")); status.Code(err) != codes.AlreadyExists {
		t.Errorf("CreateVolume with another size: %v, want AlreadyExists", err)
	}
}

func TestDeleteExpandListCapacity(t *testing.T) {
	readyWhenCreated(t)
	// Expansions go through the LocalVolumeExpand controller (its capacity
	// check is the ledger's).
	stop := env.StartManager(t, func(_ context.Context, mgr ctrl.Manager) error {
		return (&expand.Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorderFor("test"), RetryInterval: 100 * time.Millisecond}).SetupWithManager(mgr)
	})
	defer stop()
	createLSN(t, "dx-a", 4*gi)
	c := &Controller{Client: env.Client, PollInterval: 20 * time.Millisecond}
	ctx := withTimeout()
	for i := 0; i < 3; i++ {
		if _, err := c.CreateVolume(ctx, createReq(fmt.Sprintf("pvc-dx-%d", i), "ns", fmt.Sprintf("dx-%d", i), gi, nil, "dx-a")); err != nil {
			t.Fatal(err)
		}
	}

	// A refusal left behind by an earlier call (the CSI controller stopped
	// before deleting it) does not answer this one: it is checked afresh.
	stale := &v1.LocalVolumeExpand{ObjectMeta: metav1.ObjectMeta{Name: ExpandName("pvc-dx-0", 2*gi)},
		Spec: v1.LocalVolumeExpandSpec{VolumeName: "pvc-dx-0", RequiredCapacityBytes: 2 * gi}}
	if err := env.Client.Create(ctx, stale); err != nil {
		t.Fatal(err)
	}
	stale.Status.State, stale.Status.Message = v1.OperationStateFailed, "stale refusal"
	if err := env.Client.Status().Update(ctx, stale); err != nil {
		t.Fatal(err)
	}
	resp, err := c.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: "pvc-dx-0", CapacityRange: &csi.CapacityRange{RequiredBytes: 2 * gi},
		VolumeCapability: mountCap()[0]})
	if err != nil || resp.CapacityBytes != 2*gi || !resp.NodeExpansionRequired {
		t.Errorf("expand: %+v, %v", resp, err)
	}
	_, err = c.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: "pvc-dx-1", CapacityRange: &csi.CapacityRange{RequiredBytes: 10 * gi}})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "LocalStorage_PoolHDD") {
		t.Errorf("expand beyond the pool: %v, want ResourceExhausted naming the pool", err)
	}
	lv := &v1.LocalVolume{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: "pvc-dx-1"}, lv); err != nil || lv.Spec.RequiredCapacityBytes != gi {
		t.Errorf("a refused expansion changed the volume: %+v, %v", lv.Spec, err)
	}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: ExpandName("pvc-dx-1", 10*gi)}, &v1.LocalVolumeExpand{}); !apierrors.IsNotFound(err) {
		t.Errorf("the refused LocalVolumeExpand is kept (%v): a retry would never be checked again", err)
	}
	if _, err := c.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: "missing", CapacityRange: &csi.CapacityRange{RequiredBytes: gi}}); status.Code(err) != codes.NotFound {
		t.Errorf("expand missing: %v, want NotFound", err)
	}

	page1, err := c.ListVolumes(ctx, &csi.ListVolumesRequest{MaxEntries: 2})
	if err != nil || len(page1.Entries) != 2 || page1.NextToken == "" {
		t.Fatalf("page 1: %+v, %v", page1, err)
	}
	page2, err := c.ListVolumes(ctx, &csi.ListVolumesRequest{StartingToken: page1.NextToken})
	if err != nil || len(page2.Entries) == 0 {
		t.Fatalf("page 2: %+v, %v", page2, err)
	}
	if _, err := c.ListVolumes(ctx, &csi.ListVolumesRequest{StartingToken: "x"}); status.Code(err) != codes.Aborted {
		t.Errorf("bad token: %v, want Aborted", err)
	}

	capResp, err := c.GetCapacity(ctx, &csi.GetCapacityRequest{Parameters: map[string]string{"poolClass": "HDD"},
		AccessibleTopology: &csi.Topology{Segments: map[string]string{v1.TopologyKey: "dx-a"}}})
	if err != nil || capResp.AvailableCapacity != 4*gi || capResp.MaximumVolumeSize.GetValue() != 4*gi {
		t.Errorf("GetCapacity(dx-a) = %+v, %v", capResp, err)
	}
	if capResp, err := c.GetCapacity(ctx, &csi.GetCapacityRequest{Parameters: map[string]string{"poolClass": "NVMe"}}); err != nil || capResp.AvailableCapacity != 0 {
		t.Errorf("GetCapacity(NVMe) = %+v, %v", capResp, err)
	}

	for i := 0; i < 2; i++ { // twice: idempotent
		if _, err := c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: "pvc-dx-2"}); err != nil {
			t.Fatalf("delete %d: %v", i, err)
		}
	}
}
