package driver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/internal/placement"
	"hwameistor.io/local/internal/scparams"
)

// Keys external-provisioner adds to CreateVolume parameters with
// --extra-create-metadata.
const (
	ParamPVCName      = "csi.storage.k8s.io/pvc/name"
	ParamPVCNamespace = "csi.storage.k8s.io/pvc/namespace"
)

// Volume context keys returned by CreateVolume.
const (
	ContextPool   = "poolName"
	ContextFSType = "fsType"
)

// DefaultVolumeBytes is the size of a volume whose request gives none.
const DefaultVolumeBytes = int64(1) << 30

// Controller is the CSI controller service. It reads and writes custom
// resources only; node agents do the disk work.
type Controller struct {
	csi.UnimplementedControllerServer
	Client client.Client
	// PollInterval is how often it checks a volume's progress.
	PollInterval time.Duration
}

var _ csi.ControllerServer = &Controller{}

// ControllerGetCapabilities advertises what the controller implements.
func (c *Controller) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	var caps []*csi.ControllerServiceCapability
	for _, t := range []csi.ControllerServiceCapability_RPC_Type{
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		csi.ControllerServiceCapability_RPC_EXPAND_VOLUME,
		csi.ControllerServiceCapability_RPC_GET_CAPACITY,
		csi.ControllerServiceCapability_RPC_LIST_VOLUMES,
	} {
		caps = append(caps, &csi.ControllerServiceCapability{Type: &csi.ControllerServiceCapability_Rpc{Rpc: &csi.ControllerServiceCapability_RPC{Type: t}}})
	}
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: caps}, nil
}

// validateCapabilities accepts single-node access, mount (xfs/ext4) or block.
func validateCapabilities(caps []*csi.VolumeCapability) error {
	if len(caps) == 0 {
		return status.Error(codes.InvalidArgument, "volume_capabilities are required")
	}
	for _, c := range caps {
		switch c.GetAccessMode().GetMode() {
		case csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER,
			csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY,
			csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER,
			csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER:
		default:
			return status.Errorf(codes.InvalidArgument, "access mode %s is not supported: local volumes are single-node", c.GetAccessMode().GetMode())
		}
		if m := c.GetMount(); m != nil {
			if fs := m.GetFsType(); fs != "" && fs != "xfs" && fs != "ext4" {
				return status.Errorf(codes.InvalidArgument, "fs_type %q is not supported: use xfs or ext4", fs)
			}
		} else if c.GetBlock() == nil {
			return status.Error(codes.InvalidArgument, "volume capability needs an access type (mount or block)")
		}
	}
	return nil
}

func requestedBytes(r *csi.CapacityRange) (int64, error) {
	req, lim := r.GetRequiredBytes(), r.GetLimitBytes()
	if req < 0 || lim < 0 {
		return 0, status.Error(codes.InvalidArgument, "capacity_range must not be negative")
	}
	if lim > 0 && req > lim {
		return 0, status.Errorf(codes.InvalidArgument, "capacity_range: required_bytes %d exceeds limit_bytes %d", req, lim)
	}
	switch {
	case req > 0:
		return req, nil
	case lim > 0 && lim < DefaultVolumeBytes:
		return lim, nil
	}
	return DefaultVolumeBytes, nil
}

// CreateVolume creates the LocalVolume on the nodes the scheduler chose
// (persisted in the claim's LocalVolumeGroup; else the selected node) and
// returns when it is Ready. It is idempotent: a retry with the same name
// waits for the same volume. A node that cannot take the volume (the pool
// short in its report, or its agent's allocation refused) makes it clear
// the placement it was given, remove what it created, record the refusal
// in the claim's group entry and answer ResourceExhausted: external-
// provisioner then resets the claim's selected node and the scheduler
// places the pod afresh, away from the refusing node (refuse).
func (c *Controller) CreateVolume(ctx context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "name is required")
	}
	name := VolumeName(req.GetName())
	if err := validateCapabilities(req.GetVolumeCapabilities()); err != nil {
		return nil, err
	}
	if req.GetVolumeContentSource() != nil {
		return nil, status.Error(codes.InvalidArgument, "volume_content_source is not supported: no snapshots or clones")
	}
	params, err := scparams.Parse(req.GetParameters())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	size, err := requestedBytes(req.GetCapacityRange())
	if err != nil {
		return nil, err
	}
	pool := params.PoolClass.PoolName()

	lv := &v1.LocalVolume{}
	err = c.Client.Get(ctx, client.ObjectKey{Name: name}, lv)
	if err == nil && lv.DeletionTimestamp != nil {
		// A volume an earlier call refused (or a deleted one) is still
		// going: wait for it, then start afresh.
		if err := c.waitGone(ctx, lv); err != nil {
			return nil, status.Errorf(codes.Unavailable, "volume %s is still being deleted (%s); retry", name, lv.Status.Message)
		}
		err = apierrors.NewNotFound(v1.GroupVersion.WithResource("localvolumes").GroupResource(), name)
	}
	switch {
	case apierrors.IsNotFound(err):
		var refused *refusal
		lv, refused, err = c.newVolume(ctx, req, name, pool, size, params)
		if err != nil {
			return nil, err
		}
		if refused != nil {
			return nil, c.refuse(ctx, nil, refused)
		}
		if err := c.Client.Create(ctx, lv); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, status.Errorf(codes.Internal, "creating LocalVolume %s: %v", name, err)
		}
		klog.FromContext(ctx).Info("Created LocalVolume", "volume", name, "pool", pool, "bytes", size, "nodes", lv.Spec.Accessibility.Nodes)
	case err != nil:
		return nil, status.Errorf(codes.Unavailable, "reading LocalVolume %s: %v", name, err)
	default:
		if lv.Spec.PoolName != pool || lv.Spec.RequiredCapacityBytes < size || int(lv.Spec.ReplicaNumber) != params.Replicas {
			return nil, status.Errorf(codes.AlreadyExists, "volume %s exists with pool %s, %d bytes, %d replica(s)", name, lv.Spec.PoolName, lv.Spec.RequiredCapacityBytes, lv.Spec.ReplicaNumber)
		}
	}
	ready, err := c.waitReady(ctx, name)
	if err != nil {
		return nil, err
	}
	return &csi.CreateVolumeResponse{Volume: &csi.Volume{
		VolumeId:      name,
		CapacityBytes: max(ready.Status.AllocatedCapacityBytes, ready.Spec.RequiredCapacityBytes),
		VolumeContext: map[string]string{ContextPool: pool, ContextFSType: params.FSType},
	}}, nil
}

// VolumeName maps a CSI volume name to the LocalVolume (and logical volume)
// name, which is also the volume ID. external-provisioner's names
// ("pvc-<uid>") are kept as they are, so the scheduler's ledger and the
// LocalVolumeGroup know the volume before it exists; other names (upper case,
// too long for LVM) become "csi-" and a hash of the name, the same every time.
func VolumeName(csiName string) string {
	if len(csiName) <= 63 && dnsLabel.MatchString(csiName) {
		return csiName
	}
	sum := sha256.Sum256([]byte(csiName))
	return "csi-" + hex.EncodeToString(sum[:20])
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// placed is where the scheduler put a claim's volume.
type placed struct {
	ns, pvc string
	nodes   []string
	// group and entry are the claim's LocalVolumeGroup and its entry; ""
	// and nil when the placement is the selected node alone.
	group string
	entry *v1.VolumeInfo
}

// newVolume builds the LocalVolume, checking the placement and the pools.
// A node that cannot take it is answered by a refusal (nothing created).
func (c *Controller) newVolume(ctx context.Context, req *csi.CreateVolumeRequest, name, pool string, size int64, params scparams.Params) (*v1.LocalVolume, *refusal, error) {
	ns, pvc := req.GetParameters()[ParamPVCNamespace], req.GetParameters()[ParamPVCName]
	pl, err := c.placement(ctx, ns, pvc, req.GetAccessibilityRequirements())
	if err != nil {
		return nil, nil, err
	}
	if e := pl.entry; e != nil && len(e.Nodes) == 0 && len(e.Refusals) > 0 {
		// The placement was withdrawn after a refusal and the scheduler
		// has not placed the claim again: this call is from before (a
		// retry with the old selected node). Refused, so it is rescheduled.
		latest := e.Refusals[0]
		for _, r := range e.Refusals[1:] {
			if latest.Time.Before(&r.Time) {
				latest = r
			}
		}
		return nil, &refusal{placed: pl, volume: name, CapacityRefusal: latest}, nil
	}
	nodes := pl.nodes[:min(len(pl.nodes), params.Replicas)]
	for _, n := range nodes {
		ref, err := c.checkPool(ctx, n, pool, size, pl.entry)
		if err != nil {
			return nil, nil, err
		}
		if ref != nil {
			return nil, &refusal{placed: pl, volume: name, CapacityRefusal: *ref}, nil
		}
	}
	if len(nodes) < params.Replicas {
		return nil, nil, status.Errorf(codes.FailedPrecondition,
			"claim %s/%s wants %d replicas but its placement has %d node(s) %v: schedule its pod with hwameistor-scheduler", ns, pvc, params.Replicas, len(nodes), nodes)
	}
	lv := &v1.LocalVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, Finalizers: []string{v1.VolumeFinalizer}},
		Spec: v1.LocalVolumeSpec{
			PoolName: pool, RequiredCapacityBytes: size, ReplicaNumber: int64(params.Replicas), VolumeKind: v1.VolumeKindLVM,
			PersistentVolumeClaimNamespace: ns, PersistentVolumeClaimName: pvc, VolumeGroup: pl.group,
			Convertible: params.Convertible, Striped: params.Striped,
			Accessibility: v1.AccessibilityTopology{Nodes: nodes},
			Config:        &v1.VolumeConfig{Version: 1, VolumeName: name, RequiredCapacityBytes: size, Convertible: params.Convertible},
		},
	}
	for i, n := range nodes {
		lv.Spec.Config.Replicas = append(lv.Spec.Config.Replicas, v1.VolumeReplica{ID: int64(i + 1), Hostname: n, Primary: i == 0})
	}
	return lv, nil, nil
}

// placement returns the replica nodes the scheduler persisted for the claim
// in its LocalVolumeGroup, or else the selected node external-provisioner
// passes as the preferred topology. The claim's group entry comes with
// either (its recorded refusals count).
func (c *Controller) placement(ctx context.Context, ns, pvc string, topo *csi.TopologyRequirement) (placed, error) {
	pl := placed{ns: ns, pvc: pvc}
	if pvc != "" {
		groups := &v1.LocalVolumeGroupList{}
		if err := c.Client.List(ctx, groups); err != nil {
			return pl, status.Errorf(codes.Unavailable, "listing LocalVolumeGroups: %v", err)
		}
		for _, g := range groups.Items {
			if g.Spec.Namespace != ns {
				continue
			}
			for i, v := range g.Spec.Volumes {
				if v.PersistentVolumeClaimName == pvc {
					pl.group, pl.entry = g.Name, &g.Spec.Volumes[i]
				}
			}
			if pl.entry != nil && len(pl.entry.Nodes) > 0 {
				pl.nodes = pl.entry.Nodes
				return pl, nil
			}
		}
	}
	for _, t := range append(topo.GetPreferred(), topo.GetRequisite()...) {
		if n := t.GetSegments()[v1.TopologyKey]; n != "" {
			pl.nodes = []string{n}
			return pl, nil
		}
	}
	return pl, status.Errorf(codes.FailedPrecondition,
		"no placement for claim %s/%s: no LocalVolumeGroup entry and no selected node; schedule its pod with hwameistor-scheduler", ns, pvc)
}

// checkPool is the last line against overcommit: the scheduler's ledger is
// the authority, but a pool that cannot take the volume now
// (placement.FitsPool: short of bytes or volume slots, or under its size
// limit; a race outside the ledger), or a node that refused this claim's
// volume and has not reported its pool since, is answered with a refusal,
// so the pod is rescheduled.
func (c *Controller) checkPool(ctx context.Context, node, pool string, size int64, entry *v1.VolumeInfo) (*v1.CapacityRefusal, error) {
	lsn := &v1.LocalStorageNode{}
	if err := c.Client.Get(ctx, client.ObjectKey{Name: node}, lsn); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, status.Errorf(codes.FailedPrecondition, "node %s has no LocalStorageNode", node)
		}
		return nil, status.Errorf(codes.Unavailable, "reading LocalStorageNode %s: %v", node, err)
	}
	report := v1.PoolReportOf(lsn, pool)
	if entry != nil {
		for i := range entry.Refusals {
			if r := &entry.Refusals[i]; r.NodeName == node && r.PoolName == pool && r.Holds(report) && r.Covers(size) {
				return r, nil // refused before, same report: refuse again
			}
		}
	}
	// Whatever the verdict, the ledger placed the volume on a report that
	// is no longer the pool's (a race outside the ledger): a refusal moves
	// the pod, and the ledger keeps the node off until it reports again.
	if idx, ok := placement.PoolByName(pool); ok && placement.FitsPool(lsn, idx, size).Fits() {
		return nil, nil
	}
	return &v1.CapacityRefusal{NodeName: node, PoolName: pool, RequiredCapacityBytes: size, FreeCapacityBytes: lsn.Status.Pools[pool].FreeCapacityBytes,
		Report: report, By: v1.RefusedByCSIController, Time: metav1.Now()}, nil
}

// refusal is a node's capacity refusal of the volume being created, with
// the placement it was made against.
type refusal struct {
	placed
	volume string
	v1.CapacityRefusal
}

// refusalFromVolume builds the refusal a replica of lv (a volume never
// Ready) reports, if any.
func refusalFromVolume(lv *v1.LocalVolume, replicas []v1.LocalVolumeReplica) *refusal {
	for i := range replicas {
		r := replicas[i].Status.CapacityRefusal
		if r == nil || replicas[i].DeletionTimestamp != nil {
			continue
		}
		return &refusal{
			placed: placed{ns: lv.Spec.PersistentVolumeClaimNamespace, pvc: lv.Spec.PersistentVolumeClaimName,
				nodes: lv.ReplicaNodes(), group: lv.Spec.VolumeGroup},
			volume: lv.Name, CapacityRefusal: *r,
		}
	}
	return nil
}

// RefusalCleanupTimeout bounds how long a refusal waits for the volume it
// created to be gone before answering (the answer does not depend on it: a
// retry waits for a volume still being deleted).
const RefusalCleanupTimeout = 30 * time.Second

// refuse answers a capacity refusal: lv (the volume made for the claim, if
// any) is deleted, with its replicas; the claim's group entry loses the
// placement it gave (nodes, pool, size) and records the refusal, so the
// scheduler neither pins the claim to the node nor picks the node again
// until it reports the pool anew; and the answer is ResourceExhausted with
// the numbers, on which external-provisioner resets the claim's selected
// node and the scheduler places the pod again.
func (c *Controller) refuse(ctx context.Context, lv *v1.LocalVolume, r *refusal) error {
	logger := klog.FromContext(ctx)
	if lv != nil {
		uid := lv.UID
		if err := c.Client.Delete(ctx, lv, client.Preconditions{UID: &uid}); err != nil && !apierrors.IsNotFound(err) {
			return status.Errorf(codes.Unavailable, "%s; deleting the volume made for it: %v; retry", r.String(), err)
		}
	}
	cleared, err := c.withdrawPlacement(ctx, r)
	if err != nil {
		return status.Errorf(codes.Unavailable, "%s; clearing the placement of claim %s/%s: %v; retry", r.String(), r.ns, r.pvc, err)
	}
	if lv != nil {
		wctx, cancel := context.WithTimeout(ctx, RefusalCleanupTimeout)
		if err := c.waitGone(wctx, lv); err != nil {
			logger.Info("The refused volume is still being deleted; a retry waits for it", "volume", lv.Name)
		}
		cancel()
	}
	logger.Info("Capacity refusal", "volume", r.volume, "claim", r.ns+"/"+r.pvc, "node", r.NodeName, "pool", r.PoolName,
		"bytes", r.RequiredCapacityBytes, "free", r.FreeCapacityBytes, "by", r.By, "placementCleared", cleared)
	what := "the pod is scheduled again"
	if cleared {
		what = fmt.Sprintf("placement %v cleared, the pod is scheduled again away from %s until it reports its pools anew", r.nodes, r.NodeName)
	}
	return status.Errorf(codes.ResourceExhausted, "%s; %s", r.String(), what)
}

// withdrawPlacement clears the nodes, pool and size of the claim's group
// entry when they are still the placement the refusal was made against, and
// records the refusal there. It reports whether it cleared the placement.
func (c *Controller) withdrawPlacement(ctx context.Context, r *refusal) (bool, error) {
	if r.pvc == "" {
		return false, nil
	}
	cleared := false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cleared = false
		g, idx, err := c.groupEntry(ctx, r)
		if err != nil || g == nil {
			return err
		}
		e := &g.Spec.Volumes[idx]
		changed := false
		// Only a placement that still sends the claim to the refusing node
		// is withdrawn: one the scheduler already made anew stays.
		if slices.Contains(e.Nodes, r.NodeName) {
			e.Nodes, e.PoolName, e.RequiredCapacityBytes = nil, "", 0
			cleared, changed = true, true
		}
		if !slices.ContainsFunc(e.Refusals, func(x v1.CapacityRefusal) bool { return equality.Semantic.DeepEqual(x, r.CapacityRefusal) }) {
			e.Refusals = v1.SetRefusal(e.Refusals, r.CapacityRefusal)
			changed = true
		}
		if !changed {
			return nil
		}
		return c.Client.Update(ctx, g)
	})
	return cleared, err
}

// groupEntry finds the claim's LocalVolumeGroup (the one named, else any
// of the namespace) and its entry for the volume; nil when there is none.
func (c *Controller) groupEntry(ctx context.Context, r *refusal) (*v1.LocalVolumeGroup, int, error) {
	find := func(g *v1.LocalVolumeGroup) int {
		for i, e := range g.Spec.Volumes {
			if e.PersistentVolumeClaimName == r.pvc && (e.LocalVolumeName == "" || e.LocalVolumeName == r.volume) {
				return i
			}
		}
		return -1
	}
	if r.group != "" {
		g := &v1.LocalVolumeGroup{}
		err := c.Client.Get(ctx, client.ObjectKey{Name: r.group}, g)
		if apierrors.IsNotFound(err) {
			return nil, 0, nil
		}
		if err != nil {
			return nil, 0, err
		}
		if i := find(g); i >= 0 {
			return g, i, nil
		}
		return nil, 0, nil
	}
	groups := &v1.LocalVolumeGroupList{}
	if err := c.Client.List(ctx, groups); err != nil {
		return nil, 0, err
	}
	for i := range groups.Items {
		if g := &groups.Items[i]; g.Spec.Namespace == r.ns {
			if j := find(g); j >= 0 {
				return g, j, nil
			}
		}
	}
	return nil, 0, nil
}

func (c *Controller) interval() time.Duration {
	if c.PollInterval == 0 {
		return 200 * time.Millisecond
	}
	return c.PollInterval
}

// waitReady polls the volume until it is Ready or ctx ends (the sidecar
// retries with the same name, which resumes waiting). A replica its node
// agent refused for capacity ends the wait with the refusal (refuse).
func (c *Controller) waitReady(ctx context.Context, name string) (*v1.LocalVolume, error) {
	lv := &v1.LocalVolume{}
	var refused *refusal
	err := wait.PollUntilContextCancel(ctx, c.interval(), true, func(ctx context.Context) (bool, error) {
		if err := c.Client.Get(ctx, client.ObjectKey{Name: name}, lv); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		if lv.Status.State == v1.StateReady {
			return true, nil
		}
		if lv.Status.State != "" && lv.Status.State != v1.StateCreating {
			return false, nil // it was Ready once: it holds data, never refused away
		}
		replicas, err := c.replicasOf(ctx, lv)
		if err != nil {
			return false, nil
		}
		refused = refusalFromVolume(lv, replicas)
		return refused != nil, nil
	})
	if refused != nil {
		return nil, c.refuse(ctx, lv, refused)
	}
	if err != nil {
		return nil, status.Errorf(codes.DeadlineExceeded, "volume %s is not Ready yet (state %q: %s); retry", name, lv.Status.State, lv.Status.Message)
	}
	return lv, nil
}

// replicasOf reads the replicas of lv's replica nodes (their names are
// stable; a missing one is skipped).
func (c *Controller) replicasOf(ctx context.Context, lv *v1.LocalVolume) ([]v1.LocalVolumeReplica, error) {
	var out []v1.LocalVolumeReplica
	for _, n := range lv.ReplicaNodes() {
		rep := v1.LocalVolumeReplica{}
		err := c.Client.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(lv.Name, n)}, &rep)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, rep)
	}
	return out, nil
}

// waitGone waits until lv (that UID) no longer exists, or ctx ends.
func (c *Controller) waitGone(ctx context.Context, lv *v1.LocalVolume) error {
	uid := lv.UID
	return wait.PollUntilContextCancel(ctx, c.interval(), true, func(ctx context.Context) (bool, error) {
		cur := &v1.LocalVolume{}
		err := c.Client.Get(ctx, client.ObjectKeyFromObject(lv), cur)
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		if err != nil {
			return false, nil
		}
		if cur.UID != uid {
			return true, nil
		}
		lv.Status = cur.Status
		return false, nil
	})
}

// DeleteVolume deletes the LocalVolume and returns once it is gone: the
// volume controller removes the replicas, and with them the data, first, so
// a deleted PV means freed space. Deleting a missing volume succeeds.
func (c *Controller) DeleteVolume(ctx context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	name := req.GetVolumeId()
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	}
	lv := &v1.LocalVolume{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := c.Client.Delete(ctx, lv); err != nil {
		if apierrors.IsNotFound(err) {
			return &csi.DeleteVolumeResponse{}, nil
		}
		return nil, status.Errorf(codes.Unavailable, "deleting LocalVolume %s: %v", name, err)
	}
	err := wait.PollUntilContextCancel(ctx, c.interval(), true, func(ctx context.Context) (bool, error) {
		err := c.Client.Get(ctx, client.ObjectKey{Name: name}, lv)
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
	if err != nil {
		return nil, status.Errorf(codes.DeadlineExceeded, "volume %s is still being deleted (%s); retry", name, lv.Status.Message)
	}
	return &csi.DeleteVolumeResponse{}, nil
}

// ControllerExpandVolume grows the volume on every replica after checking
// each replica's pool, and returns when the replicas report the new size.
func (c *Controller) ControllerExpandVolume(ctx context.Context, req *csi.ControllerExpandVolumeRequest) (*csi.ControllerExpandVolumeResponse, error) {
	name := req.GetVolumeId()
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	}
	size, err := requestedBytes(req.GetCapacityRange())
	if err != nil {
		return nil, err
	}
	lv := &v1.LocalVolume{}
	if err := c.Client.Get(ctx, client.ObjectKey{Name: name}, lv); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, status.Errorf(codes.NotFound, "volume %s not found", name)
		}
		return nil, status.Errorf(codes.Unavailable, "reading LocalVolume %s: %v", name, err)
	}
	nodeExpansion := req.GetVolumeCapability().GetBlock() == nil
	if size > lv.Spec.RequiredCapacityBytes {
		if err := c.expand(ctx, lv, size); err != nil {
			return nil, err
		}
	}
	err = wait.PollUntilContextCancel(ctx, c.interval(), true, func(ctx context.Context) (bool, error) {
		if err := c.Client.Get(ctx, client.ObjectKey{Name: name}, lv); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		return lv.Status.State == v1.StateReady && lv.Status.AllocatedCapacityBytes >= size, nil
	})
	if err != nil {
		return nil, status.Errorf(codes.DeadlineExceeded, "volume %s has %d of %d bytes allocated; retry", name, lv.Status.AllocatedCapacityBytes, size)
	}
	return &csi.ControllerExpandVolumeResponse{CapacityBytes: lv.Status.AllocatedCapacityBytes, NodeExpansionRequired: nodeExpansion}, nil
}

// ExpandTimeout bounds how long ControllerExpandVolume waits for the
// LocalVolumeExpand controller's verdict; the resizer retries after it.
const ExpandTimeout = 2 * time.Minute

// ExpandName names the LocalVolumeExpand that grows volume to bytes, so a
// retried ControllerExpandVolume finds the one it made.
func ExpandName(volume string, bytes int64) string { return fmt.Sprintf("%s-%x", volume, bytes) }

// expand asks the LocalVolumeExpand controller to grow the volume and waits
// for its verdict: it checks every replica's pool through the scheduler's
// ledger (reservations in flight included) before the volume changes. A
// refusal is ResourceExhausted with the controller's message (the
// external-resizer puts it in an Event on the claim); the refused request
// is deleted so a retry is checked afresh.
func (c *Controller) expand(ctx context.Context, lv *v1.LocalVolume, size int64) error {
	req := &v1.LocalVolumeExpand{
		ObjectMeta: metav1.ObjectMeta{Name: ExpandName(lv.Name, size)},
		Spec:       v1.LocalVolumeExpandSpec{VolumeName: lv.Name, RequiredCapacityBytes: size},
	}
	if err := c.request(ctx, req); err != nil {
		return status.Errorf(codes.Unavailable, "requesting the expansion of %s: %v; retry", lv.Name, err)
	}
	// Bounded even when the caller's context is not: without the
	// controllers nothing would ever answer.
	ctx, cancel := context.WithTimeout(ctx, ExpandTimeout)
	defer cancel()
	err := wait.PollUntilContextCancel(ctx, c.interval(), true, func(ctx context.Context) (bool, error) {
		if err := c.Client.Get(ctx, client.ObjectKey{Name: req.Name}, req); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		switch req.Status.State {
		case v1.OperationStateCompleted, v1.OperationStateFailed, v1.OperationStateAborted:
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		return status.Errorf(codes.DeadlineExceeded, "expansion %s of %s is %q after %s: %s (is hwameistor-controllers running?); retry", req.Name, lv.Name, req.Status.State, ExpandTimeout, req.Status.Message)
	}
	if req.Status.State != v1.OperationStateCompleted {
		// Should this delete fail (or the process stop first), the next
		// call's request() replaces the refused request anyway.
		if err := c.Client.Delete(ctx, req); err != nil && !apierrors.IsNotFound(err) {
			log.FromContext(ctx).Error(err, "Cannot delete a refused expansion; the next retry replaces it", "expansion", req.Name)
		}
		return status.Errorf(codes.ResourceExhausted, "cannot expand %s to %d bytes: %s", lv.Name, size, req.Status.Message)
	}
	return nil
}

// request creates the LocalVolumeExpand req, or keeps the one an earlier
// call made unless that one was refused: a refusal is for the pools as
// they were then, and a retry must be checked afresh.
func (c *Controller) request(ctx context.Context, req *v1.LocalVolumeExpand) error {
	err := c.Client.Create(ctx, req)
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	old := &v1.LocalVolumeExpand{}
	if err := c.Client.Get(ctx, client.ObjectKeyFromObject(req), old); apierrors.IsNotFound(err) {
		return c.Client.Create(ctx, req) // gone in between
	} else if err != nil {
		return err
	}
	if s := old.Status.State; s != v1.OperationStateFailed && s != v1.OperationStateAborted {
		return nil // still going, or completed: wait for it
	}
	if err := c.Client.Delete(ctx, old, client.Preconditions{UID: &old.UID}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("replacing the refused %s: %w", old.Name, err)
	}
	return c.Client.Create(ctx, req)
}

// ValidateVolumeCapabilities confirms capabilities of an existing volume.
func (c *Controller) ValidateVolumeCapabilities(ctx context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	}
	if err := validateCapabilities(req.GetVolumeCapabilities()); err != nil {
		if status.Code(err) == codes.InvalidArgument && len(req.GetVolumeCapabilities()) > 0 {
			return &csi.ValidateVolumeCapabilitiesResponse{Message: status.Convert(err).Message()}, nil
		}
		return nil, err
	}
	if err := c.Client.Get(ctx, client.ObjectKey{Name: req.GetVolumeId()}, &v1.LocalVolume{}); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, status.Errorf(codes.NotFound, "volume %s not found", req.GetVolumeId())
		}
		return nil, status.Errorf(codes.Unavailable, "reading LocalVolume: %v", err)
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext: req.GetVolumeContext(), VolumeCapabilities: req.GetVolumeCapabilities(), Parameters: req.GetParameters(),
	}}, nil
}

// ListVolumes pages through LocalVolumes by name.
func (c *Controller) ListVolumes(ctx context.Context, req *csi.ListVolumesRequest) (*csi.ListVolumesResponse, error) {
	list := &v1.LocalVolumeList{}
	if err := c.Client.List(ctx, list); err != nil {
		return nil, status.Errorf(codes.Unavailable, "listing LocalVolumes: %v", err)
	}
	// Volumes being deleted are gone for the CO.
	live := list.Items[:0]
	for _, lv := range list.Items {
		if lv.DeletionTimestamp == nil {
			live = append(live, lv)
		}
	}
	list.Items = live
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	start := 0
	if tok := req.GetStartingToken(); tok != "" {
		n, err := strconv.Atoi(tok)
		if err != nil || n < 0 || n > len(list.Items) {
			return nil, status.Errorf(codes.Aborted, "starting_token %q is not valid", tok)
		}
		start = n
	}
	end := len(list.Items)
	if m := int(req.GetMaxEntries()); m > 0 && start+m < end {
		end = start + m
	}
	resp := &csi.ListVolumesResponse{}
	for _, lv := range list.Items[start:end] {
		resp.Entries = append(resp.Entries, &csi.ListVolumesResponse_Entry{Volume: &csi.Volume{
			VolumeId: lv.Name, CapacityBytes: lv.Spec.RequiredCapacityBytes,
			VolumeContext: map[string]string{ContextPool: lv.Spec.PoolName},
		}})
	}
	if end < len(list.Items) {
		resp.NextToken = strconv.Itoa(end)
	}
	return resp, nil
}

// GetCapacity reports the free bytes of a pool class on the node named by
// the topology segment, or summed over every Ready node without one. The
// largest volume that fits is the largest single pool's free space.
func (c *Controller) GetCapacity(ctx context.Context, req *csi.GetCapacityRequest) (*csi.GetCapacityResponse, error) {
	params, err := scparams.Parse(req.GetParameters())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	pool := params.PoolClass.PoolName()
	var nodes []v1.LocalStorageNode
	if n := req.GetAccessibleTopology().GetSegments()[v1.TopologyKey]; n != "" {
		lsn := &v1.LocalStorageNode{}
		if err := c.Client.Get(ctx, client.ObjectKey{Name: n}, lsn); err != nil {
			if apierrors.IsNotFound(err) {
				return &csi.GetCapacityResponse{}, nil
			}
			return nil, status.Errorf(codes.Unavailable, "reading LocalStorageNode %s: %v", n, err)
		}
		nodes = append(nodes, *lsn)
	} else {
		list := &v1.LocalStorageNodeList{}
		if err := c.Client.List(ctx, list); err != nil {
			return nil, status.Errorf(codes.Unavailable, "listing LocalStorageNodes: %v", err)
		}
		nodes = list.Items
	}
	var total, largest int64
	for _, n := range nodes {
		p, ok := n.Status.Pools[pool]
		if !ok || n.Status.State != v1.StateReady {
			continue
		}
		total += p.FreeCapacityBytes
		largest = max(largest, p.FreeCapacityBytes)
	}
	return &csi.GetCapacityResponse{AvailableCapacity: total, MaximumVolumeSize: wrapInt64(largest)}, nil
}
