package driver

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/drbd"
	"hwameistor.io/local/csidriver/fence"
)

// Replicator makes this node's replica of an HA volume the one that serves
// it: Primary before the volume is staged (or, raw block, published), and
// Secondary once it is unstaged (unpublished), so the other replica can
// take over. Node.Replicas is nil on nodes that do not replicate.
type Replicator interface {
	// Promote returns the replicated device to use instead of the
	// replica's own, or "" when the volume is not replicated here.
	Promote(ctx context.Context, volumeID string) (string, error)
	// Demote gives up the Primary role (a no-op when not replicated).
	Demote(ctx context.Context, volumeID string) error
	// Device is the replicated device a staged volume uses here, without
	// changing its role, or "" when the volume is not replicated here.
	Device(ctx context.Context, volumeID string) (string, error)
}

// DRBDReplicas is the Replicator of a node whose agent replicates HA
// volumes with DRBD (csidriver/agent/replicate.go): the replica's
// status.drbd says whether it is replicated and its device.
type DRBDReplicas struct {
	Client client.Client
	// APIReader reads the volume uncached for the compare-and-swap of a
	// promotion without the peer (package fence); the Client when nil.
	APIReader client.Reader
	Node      string
	DRBD      *drbd.Manager
}

var _ Replicator = DRBDReplicas{}

// resource is the volume's DRBD resource on this node, nil when the
// volume is not replicated (not HA, or this replica is a migration's copy
// target). An HA volume whose resource is not up here yet is refused:
// staging its logical volume directly would bypass the replication (and
// DRBD's metadata would later overwrite the file system's end).
func (r DRBDReplicas) resource(ctx context.Context, volumeID string) (*drbd.Resource, *v1.LocalVolume, error) {
	res, lv, notUp, err := r.lookup(ctx, volumeID)
	if err == nil && notUp != "" {
		return nil, nil, status.Errorf(codes.Unavailable, "volume %s is replicated with DRBD and cannot be served from node %s: %s", volumeID, r.Node, notUp)
	}
	return res, lv, err
}

// lookup is resource's answer, with why an HA volume's resource cannot
// serve here (not up yet, or leaving) instead of an error; a leaving
// replica's resource is returned too, so that it can be demoted.
func (r DRBDReplicas) lookup(ctx context.Context, volumeID string) (*drbd.Resource, *v1.LocalVolume, string, error) {
	lv := &v1.LocalVolume{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: volumeID}, lv); err != nil {
		return nil, nil, "", status.Errorf(codes.Unavailable, "reading volume %s: %v", volumeID, err)
	}
	if !lv.Replicated() {
		return nil, lv, "", nil
	}
	rep := &v1.LocalVolumeReplica{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(volumeID, r.Node)}, rep); err != nil {
		return nil, nil, "", status.Errorf(codes.Unavailable, "reading the replica of %s: %v", volumeID, err)
	}
	if rep.Annotations[v1.SyncPendingAnnotation] != "" || rep.HoldsDataWithoutDRBD() {
		// A migration's copy target, or a replica written before DRBD
		// ran (the agent never puts metadata over its data): staged
		// from its logical volume, unreplicated.
		return nil, lv, "", nil
	}
	if d := rep.Status.DRBD; d == nil || d.Device == "" || lv.Spec.Config.ResourceID == 0 {
		if d != nil && d.Message != "" {
			return nil, lv, d.Message, nil
		}
		return nil, lv, "its node agent has not brought it up yet", nil
	}
	id := lv.Spec.Config.ResourceID
	res := &drbd.Resource{Name: volumeID, Minor: v1.DRBDMinor(id), Port: v1.DRBDPort(id)}
	if m := rep.Annotations[v1.DRBDLeaveAnnotation]; m != "" {
		// Not promoted again, but still demoted: it leaves once unused.
		return res, lv, fmt.Sprintf("its replica here is leaving the DRBD resource (migration %s moves it to another node)", m), nil
	}
	return res, lv, "", nil
}

// Promote makes the replica Primary when it may serve (UpToDate; quorum on
// DRBD 9): a replica that misses acknowledged writes, or a volume the other
// node is using, is refused with the reason. Without its peer (a
// failover, a partition) it first records the peer outdated on the volume
// (package fence): if the peer recorded this replica first, it is refused;
// if it wins, DRBD 8.4's fencing needs --force, which is safe here (the
// disk is UpToDate and the peer can no longer serve).
func (r DRBDReplicas) Promote(ctx context.Context, volumeID string) (string, error) {
	res, lv, err := r.resource(ctx, volumeID)
	if err != nil || res == nil {
		return "", err
	}
	st, err := r.DRBD.Status(ctx, res)
	if err != nil {
		return "", status.Errorf(codes.Unavailable, "reading the DRBD state of %s: %v", volumeID, err)
	}
	switch {
	case !st.Configured:
		return "", status.Errorf(codes.Unavailable, "volume %s: its DRBD resource is not up on node %s yet (the node agent brings it up)", volumeID, r.Node)
	case !st.MayServe():
		return "", status.Errorf(codes.Unavailable, "volume %s: the replica on node %s cannot serve: its disk is %s (%s%% in sync, connection %s); it waits until it holds every acknowledged write",
			volumeID, r.Node, st.Disk, fmt.Sprint(st.InSyncPercent), st.Connection)
	case st.PeerRole == drbd.RolePrimary:
		return "", status.Errorf(codes.FailedPrecondition, "volume %s is in use on its other node (Primary there): unstage it there first", volumeID)
	}
	if st.Role == drbd.RolePrimary {
		return res.Device(), nil
	}
	force := false
	if peer := lv.DRBDPeer(r.Node); st.PeerDisk == drbd.DiskUnknown && peer != "" {
		won, err := fence.Outdate(ctx, r.apiReader(), r.Client, volumeID, r.Node, peer)
		if err != nil {
			return "", status.Errorf(codes.Unavailable, "volume %s: promoting the replica on node %s without its peer: %v", volumeID, r.Node, err)
		}
		if !won {
			return "", status.Errorf(codes.FailedPrecondition, "volume %s: the replica on node %s is recorded outdated (%s): its peer on %s took writes it lacks while they were apart; it serves again once DRBD has resynced it",
				volumeID, r.Node, v1.DRBDOutdatedAnnotation, peer)
		}
		force = r.DRBD.Version == drbd.V84
	}
	if err := r.DRBD.Primary(ctx, volumeID, force); err != nil {
		return "", status.Errorf(codes.Unavailable, "promoting the replica of %s on node %s: %v", volumeID, r.Node, err)
	}
	return res.Device(), nil
}

func (r DRBDReplicas) apiReader() client.Reader {
	if r.APIReader != nil {
		return r.APIReader
	}
	return r.Client
}

// Device is the volume's DRBD device here (what its file system was
// staged from), "" when it is not replicated here.
func (r DRBDReplicas) Device(ctx context.Context, volumeID string) (string, error) {
	res, _, notUp, err := r.lookup(ctx, volumeID)
	switch {
	case err != nil:
		return "", err
	case res == nil && notUp != "":
		// Replicated, but its device is not known: never the logical
		// volume under DRBD.
		return "", status.Errorf(codes.Unavailable, "volume %s is replicated with DRBD and its device on node %s is not known: %s", volumeID, r.Node, notUp)
	case res == nil:
		return "", nil
	}
	return res.Device(), nil
}

// Demote makes the replica Secondary again.
func (r DRBDReplicas) Demote(ctx context.Context, volumeID string) error {
	res, _, _, err := r.lookup(ctx, volumeID) // not up: nothing to demote
	if err != nil || res == nil {
		return err
	}
	st, err := r.DRBD.Status(ctx, res)
	if err != nil {
		return status.Errorf(codes.Unavailable, "reading the DRBD state of %s: %v", volumeID, err)
	}
	if !st.Configured || st.Role != drbd.RolePrimary {
		return nil
	}
	if err := r.DRBD.Secondary(ctx, volumeID); err != nil {
		return status.Errorf(codes.Unavailable, "demoting the replica of %s on node %s: %v", volumeID, r.Node, err)
	}
	return nil
}
