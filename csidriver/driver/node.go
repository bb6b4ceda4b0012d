package driver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
	mountutils "k8s.io/mount-utils"
	utilexec "k8s.io/utils/exec"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// DeviceResolver finds the block device of a volume's replica on this node
// (the node agent reports it in the LocalVolumeReplica's status.devPath)
// and records that the replica is in use.
type DeviceResolver interface {
	DevicePath(ctx context.Context, volumeID string) (string, error)
	// MarkStaged records that the replica on this node is about to be used
	// (v1.StagedAtAnnotation).
	MarkStaged(ctx context.Context, volumeID string) error
}

// Node is the CSI node service of one node.
type Node struct {
	csi.UnimplementedNodeServer
	NodeID  string
	Devices DeviceResolver
	// Replicas promotes and demotes HA volumes' replicas (DRBD); nil on
	// nodes that do not replicate.
	Replicas Replicator
	Mounter  *mountutils.SafeFormatAndMount
	// locks serialises operations on one volume (kubelet may retry while a
	// slow mkfs is still running).
	locks sync.Map
}

var _ csi.NodeServer = &Node{}

// NewNode returns a node service that mounts with the host's mount and
// formats with mkfs.
func NewNode(nodeID string, devices DeviceResolver) *Node {
	exec := utilexec.New()
	return &Node{NodeID: nodeID, Devices: devices, Mounter: mountutils.NewSafeFormatAndMount(mountutils.New(""), exec)}
}

func (n *Node) lock(volumeID string) func() {
	m, _ := n.locks.LoadOrStore(volumeID, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// NodeGetInfo returns the node's ID and its topology segment.
func (n *Node) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{NodeId: n.NodeID, AccessibleTopology: &csi.Topology{Segments: map[string]string{v1.TopologyKey: n.NodeID}}}, nil
}

// NodeGetCapabilities advertises staging, stats and expansion.
func (n *Node) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	var caps []*csi.NodeServiceCapability
	for _, t := range []csi.NodeServiceCapability_RPC_Type{
		csi.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME,
		csi.NodeServiceCapability_RPC_GET_VOLUME_STATS,
		csi.NodeServiceCapability_RPC_EXPAND_VOLUME,
	} {
		caps = append(caps, &csi.NodeServiceCapability{Type: &csi.NodeServiceCapability_Rpc{Rpc: &csi.NodeServiceCapability_RPC{Type: t}}})
	}
	return &csi.NodeGetCapabilitiesResponse{Capabilities: caps}, nil
}

func fsTypeOf(capability *csi.VolumeCapability, volCtx map[string]string) string {
	if fs := capability.GetMount().GetFsType(); fs != "" {
		return fs
	}
	if fs := volCtx[ContextFSType]; fs != "" {
		return fs
	}
	return "xfs"
}

// NodeStageVolume formats the replica's device (only if it has no
// filesystem) and mounts it at the staging path. Block volumes need no
// staging.
func (n *Node) NodeStageVolume(ctx context.Context, req *csi.NodeStageVolumeRequest) (*csi.NodeStageVolumeResponse, error) {
	id, staging := req.GetVolumeId(), req.GetStagingTargetPath()
	if id == "" || staging == "" || req.GetVolumeCapability() == nil {
		return nil, status.Error(codes.InvalidArgument, "volume_id, staging_target_path and volume_capability are required")
	}
	if err := validateCapabilities([]*csi.VolumeCapability{req.GetVolumeCapability()}); err != nil {
		return nil, err
	}
	if req.GetVolumeCapability().GetBlock() != nil {
		return &csi.NodeStageVolumeResponse{}, nil
	}
	defer n.lock(id)()
	dev, err := n.device(ctx, id)
	if err != nil {
		return nil, err
	}
	// Recorded first: once mounted, this replica holds the current data.
	if err := n.Devices.MarkStaged(ctx, id); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(staging, 0o750); err != nil {
		return nil, status.Errorf(codes.Internal, "creating %s: %v", staging, err)
	}
	notMnt, err := n.Mounter.IsLikelyNotMountPoint(staging)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "checking %s: %v", staging, err)
	}
	if !notMnt {
		return &csi.NodeStageVolumeResponse{}, nil
	}
	fs := fsTypeOf(req.GetVolumeCapability(), req.GetVolumeContext())
	opts := req.GetVolumeCapability().GetMount().GetMountFlags()
	if fs == "xfs" {
		// Copies of a volume (migration) share the filesystem UUID.
		opts = append(opts, "nouuid")
	}
	if err := n.Mounter.FormatAndMount(dev, staging, fs, opts); err != nil {
		return nil, status.Errorf(codes.Internal, "formatting %s as %s and mounting it at %s: %v", dev, fs, staging, err)
	}
	klog.FromContext(ctx).Info("Staged volume", "volume", id, "device", dev, "fsType", fs, "path", staging)
	return &csi.NodeStageVolumeResponse{}, nil
}

// NodeUnstageVolume unmounts the staging path.
func (n *Node) NodeUnstageVolume(ctx context.Context, req *csi.NodeUnstageVolumeRequest) (*csi.NodeUnstageVolumeResponse, error) {
	if req.GetVolumeId() == "" || req.GetStagingTargetPath() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id and staging_target_path are required")
	}
	defer n.lock(req.GetVolumeId())()
	if err := mountutils.CleanupMountPoint(req.GetStagingTargetPath(), n.Mounter, true); err != nil {
		return nil, status.Errorf(codes.Internal, "unmounting %s: %v", req.GetStagingTargetPath(), err)
	}
	if err := n.demote(ctx, req.GetVolumeId()); err != nil {
		return nil, err
	}
	return &csi.NodeUnstageVolumeResponse{}, nil
}

// NodePublishVolume bind-mounts the staged filesystem (or the raw device,
// for block volumes) at the target path. A filesystem volume whose staging
// path has nothing mounted is refused (FailedPrecondition).
func (n *Node) NodePublishVolume(ctx context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	id, target := req.GetVolumeId(), req.GetTargetPath()
	if id == "" || target == "" || req.GetVolumeCapability() == nil {
		return nil, status.Error(codes.InvalidArgument, "volume_id, target_path and volume_capability are required")
	}
	if err := validateCapabilities([]*csi.VolumeCapability{req.GetVolumeCapability()}); err != nil {
		return nil, err
	}
	defer n.lock(id)()
	opts := []string{"bind"}
	if req.GetReadonly() {
		opts = append(opts, "ro")
	}
	var source string
	if req.GetVolumeCapability().GetBlock() != nil {
		dev, err := n.device(ctx, id)
		if err != nil {
			return nil, err
		}
		// A raw block volume is not staged: it is in use from here.
		if err := n.Devices.MarkStaged(ctx, id); err != nil {
			return nil, err
		}
		source = dev
		if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
			return nil, status.Errorf(codes.Internal, "creating %s: %v", filepath.Dir(target), err)
		}
		f, err := os.OpenFile(target, os.O_CREATE, 0o640)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "creating %s: %v", target, err)
		}
		_ = f.Close()
	} else {
		if req.GetStagingTargetPath() == "" {
			return nil, status.Error(codes.FailedPrecondition, "staging_target_path is required: the volume must be staged first")
		}
		source = req.GetStagingTargetPath()
		// A bind mount of an unmounted staging directory would give the
		// pod an empty directory on the node's disk, and its data would
		// never reach the volume.
		staged, err := n.Mounter.IsMountPoint(source)
		switch {
		case errors.Is(err, fs.ErrNotExist) || err == nil && !staged:
			return nil, status.Errorf(codes.FailedPrecondition, "volume %s is not staged: nothing is mounted at its staging_target_path %s (NodeStageVolume must succeed first)", id, source)
		case err != nil:
			return nil, status.Errorf(codes.Internal, "checking the staging path %s: %v", source, err)
		}
		if err := os.MkdirAll(target, 0o750); err != nil {
			return nil, status.Errorf(codes.Internal, "creating %s: %v", target, err)
		}
		opts = append(opts, req.GetVolumeCapability().GetMount().GetMountFlags()...)
	}
	notMnt, err := n.Mounter.IsLikelyNotMountPoint(target)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "checking %s: %v", target, err)
	}
	if !notMnt {
		return &csi.NodePublishVolumeResponse{}, nil
	}
	if err := n.Mounter.Mount(source, target, "", opts); err != nil {
		return nil, status.Errorf(codes.Internal, "bind-mounting %s at %s: %v", source, target, err)
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

// NodeUnpublishVolume unmounts the target path and removes it.
func (n *Node) NodeUnpublishVolume(ctx context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	if req.GetVolumeId() == "" || req.GetTargetPath() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id and target_path are required")
	}
	defer n.lock(req.GetVolumeId())()
	target := req.GetTargetPath()
	block := false
	if st, err := os.Stat(target); err == nil && !st.IsDir() {
		block = true // a raw block volume's target is a file
	}
	if err := mountutils.CleanupMountPoint(target, n.Mounter, true); err != nil {
		return nil, status.Errorf(codes.Internal, "unmounting %s: %v", target, err)
	}
	if block {
		// Not staged: unpublishing ends its use on this node.
		if err := n.demote(ctx, req.GetVolumeId()); err != nil {
			return nil, err
		}
	}
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

// device is the block device to stage or publish: the replicated device
// of an HA volume, promoted first (Replicas), else the replica's own.
func (n *Node) device(ctx context.Context, id string) (string, error) {
	dev, err := n.Devices.DevicePath(ctx, id)
	if err != nil || n.Replicas == nil {
		return dev, err
	}
	replicated, err := n.Replicas.Promote(ctx, id)
	if err != nil || replicated == "" {
		return dev, err
	}
	return replicated, nil
}

// demote gives up the Primary role of an HA volume's replica once this
// node no longer uses it.
func (n *Node) demote(ctx context.Context, id string) error {
	if n.Replicas == nil {
		return nil
	}
	return n.Replicas.Demote(ctx, id)
}

// NodeGetVolumeStats reports bytes and inodes of a mounted volume, or the
// size of a block volume.
func (n *Node) NodeGetVolumeStats(ctx context.Context, req *csi.NodeGetVolumeStatsRequest) (*csi.NodeGetVolumeStatsResponse, error) {
	path := req.GetVolumePath()
	if req.GetVolumeId() == "" || path == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id and volume_path are required")
	}
	info, err := os.Stat(path)
	if os.IsNotExist(err) {
		return nil, status.Errorf(codes.NotFound, "volume path %s does not exist", path)
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "stat %s: %v", path, err)
	}
	if !info.IsDir() {
		size, err := blockSize(path)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "size of %s: %v", path, err)
		}
		return &csi.NodeGetVolumeStatsResponse{Usage: []*csi.VolumeUsage{{Unit: csi.VolumeUsage_BYTES, Total: size}}}, nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return nil, status.Errorf(codes.Internal, "statfs %s: %v", path, err)
	}
	bs := int64(st.Bsize)
	return &csi.NodeGetVolumeStatsResponse{Usage: []*csi.VolumeUsage{
		{Unit: csi.VolumeUsage_BYTES, Total: int64(st.Blocks) * bs, Available: int64(st.Bavail) * bs, Used: int64(st.Blocks-st.Bfree) * bs},
		{Unit: csi.VolumeUsage_INODES, Total: int64(st.Files), Available: int64(st.Ffree), Used: int64(st.Files - st.Ffree)},
	}}, nil
}

// blockSize is the size of a block device (or of a file standing in for one).
func blockSize(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	size, err := f.Seek(0, 2)
	if err != nil {
		return 0, fmt.Errorf("seek: %w", err)
	}
	return size, nil
}

// NodeExpandVolume grows the filesystem to the (already grown) device.
func (n *Node) NodeExpandVolume(ctx context.Context, req *csi.NodeExpandVolumeRequest) (*csi.NodeExpandVolumeResponse, error) {
	id, path := req.GetVolumeId(), req.GetVolumePath()
	if id == "" || path == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id and volume_path are required")
	}
	if _, err := os.Stat(path); os.IsNotExist(err) {
		return nil, status.Errorf(codes.NotFound, "volume path %s does not exist", path)
	}
	dev, err := n.Devices.DevicePath(ctx, id)
	if err != nil {
		return nil, err
	}
	if n.Replicas != nil {
		// An HA volume's file system lives on its replicated device,
		// which DRBD grew over the logical volumes.
		replicated, err := n.Replicas.Device(ctx, id)
		if err != nil {
			return nil, err
		}
		if replicated != "" {
			dev = replicated
		}
	}
	if req.GetVolumeCapability().GetBlock() == nil {
		defer n.lock(id)()
		if _, err := mountutils.NewResizeFs(n.Mounter.Exec).Resize(dev, path); err != nil {
			return nil, status.Errorf(codes.Internal, "growing the filesystem of %s at %s: %v", dev, path, err)
		}
	}
	size, err := blockSize(dev)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "size of %s: %v", dev, err)
	}
	return &csi.NodeExpandVolumeResponse{CapacityBytes: size}, nil
}
