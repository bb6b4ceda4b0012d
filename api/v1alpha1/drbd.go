package v1alpha1

// DRBD ports and minors of HA volumes (a compatibility contract with
// HwameiStor, whose HA volumes take ports from 43001). An HA volume's
// spec.config.resourceID, from 1 and unique in the cluster, gives its DRBD
// device minor and its TCP port on both of its nodes.
const (
	// DRBDBasePort is the port of resource id 1.
	DRBDBasePort = 43001
	// DRBDDefaultMaxResources is how many HA volumes a cluster holds by
	// default: every port from 43001 to 65535.
	DRBDDefaultMaxResources = 65535 - DRBDBasePort + 1
)

// DRBDMinor is the device minor of resource id: /dev/drbd<id>.
func DRBDMinor(resourceID int64) int { return int(resourceID) }

// DRBDPort is the TCP port of resource id.
func DRBDPort(resourceID int64) int { return DRBDBasePort + int(resourceID) - 1 }

// Replicated says whether lv is an HA volume with both replicas placed:
// on nodes whose agents run DRBD its replicas are kept in sync, and the
// node service stages it only from its DRBD device.
func (lv *LocalVolume) Replicated() bool {
	return lv.Spec.ReplicaNumber >= 2 && lv.Spec.Config != nil && len(lv.Spec.Config.Replicas) == 2
}

// HoldsDataWithoutDRBD says whether an HA volume's replica was written
// before DRBD ran on it (staged, or filled by a copy) and has no DRBD
// device: internal metadata would overwrite the end of its data, so the
// node agent never brings DRBD up on it and the CSI node service stages
// its logical volume directly, unreplicated, as before.
func (r *LocalVolumeReplica) HoldsDataWithoutDRBD() bool {
	return (r.Status.DRBD == nil || r.Status.DRBD.Device == "") && (r.Annotations[StagedAtAnnotation] != "" || r.Status.Checksum != "")
}

// UsableBytes is what the replica offers its volume: its logical volume's
// size, or for a replica in a DRBD resource the size its DRBD device was
// last grown to, when smaller (a growth is complete only once DRBD has
// been resized over it).
func (r *LocalVolumeReplica) UsableBytes() int64 {
	n := r.Status.AllocatedCapacityBytes
	if d := r.Status.DRBD; d != nil && d.Device != "" && d.LeftFor == "" && d.SizedBytes > 0 && d.SizedBytes < n {
		return d.SizedBytes
	}
	return n
}

// DRBDOutdatedAnnotation on an HA LocalVolume names the node whose replica
// missed writes while the two replicas were apart: its peer, cut off from
// it, recorded it here before it went on writing alone (a Primary that lost
// its peer) or before it was promoted alone (a failover). DRBD 8.4 has no
// quorum, so the API server is the tie-breaker: of two replicas that lost
// each other, only the first to record the other may write, and a replica
// named here is never promoted until DRBD has resynced it from its peer
// (its node agent then removes the annotation).
const DRBDOutdatedAnnotation = "hwameistor.io/drbd-outdated"

// DRBDOutdated is the node whose replica the volume records as outdated,
// "" when none.
func (lv *LocalVolume) DRBDOutdated() string { return lv.Annotations[DRBDOutdatedAnnotation] }

// DRBDPeer is the node of the replica that node's replica shares its DRBD
// resource with, "" when the volume names no other.
func (lv *LocalVolume) DRBDPeer(node string) string {
	if lv.Spec.Config == nil {
		return ""
	}
	for _, r := range lv.Spec.Config.Replicas {
		if r.Hostname != node {
			return r.Hostname
		}
	}
	return ""
}
