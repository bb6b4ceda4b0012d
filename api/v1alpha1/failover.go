package v1alpha1

import (
	"fmt"
	"time"
)

// RebuildDefaultAfter is how long a node may be away before its HA
// replicas are rebuilt elsewhere (the controllers' --rebuild-after): long
// enough for a reboot, short enough that a volume does not run on one copy
// for hours.
const RebuildDefaultAfter = 10 * time.Minute

// Failover of HA volumes (controllers/failover): the pod of an HA volume
// whose node stopped, or that an operator asks to move, is deleted so that
// its controller recreates it and the scheduler places it on the node of a
// replica that holds every acknowledged write.
const (
	// FailoverLabel on a Node or a Pod set to FailoverStart asks for the
	// failover of the HA volumes used there (the node's pods, or the pod);
	// the failover controller sets it to FailoverCompleted when the pods run
	// elsewhere (on a pod, just before it is deleted: its replacement is a
	// new object).
	FailoverLabel     = "hwameistor.io/failover"
	FailoverStart     = "start"
	FailoverCompleted = "completed"

	// FailoverFromAnnotation on a LocalVolume names the node its pod is
	// being failed over from: the scheduler places the volume's pods
	// anywhere but there until one runs on another node, and the failover
	// controller then removes it. FailoverAtAnnotation is when the failover
	// began (RFC 3339).
	FailoverFromAnnotation = "hwameistor.io/failover-from"
	FailoverAtAnnotation   = "hwameistor.io/failover-at"
	// FailoverTriggerAnnotation says why: FailoverNodeDown (the mark goes
	// if the node comes back first), FailoverNodeLabel (it goes if the
	// node's label is removed first) or FailoverPodLabel.
	FailoverTriggerAnnotation = "hwameistor.io/failover-trigger"
	FailoverNodeDown          = "node-down"
	FailoverNodeLabel         = "node-label"
	FailoverPodLabel          = "pod-label"
)

// LocalStorageNode condition that says whether the node replicates HA
// volumes (its agent runs with DRBD). A node whose condition is False
// takes no new HA replica; a node without the condition (an agent that
// does not replicate at all) is placed as before, unreplicated.
const (
	ConditionDRBD     = "DRBD"
	ReasonDRBDLoaded  = "Loaded"
	ReasonDRBDMissing = "NotAvailable"
)

// DRBDManaged says whether every live replica of an HA volume reports a
// DRBD device: its replicas are then kept in sync by DRBD, and any
// replica that may serve holds every acknowledged write (otherwise only
// the replica staged last holds the data, see StagedAtAnnotation). A
// move's new replica that has not joined yet does not count.
func DRBDManaged(replicas []*LocalVolumeReplica) bool {
	n := 0
	for _, r := range replicas {
		if r.Spec.Delete || r.DeletionTimestamp != nil || r.DRBDJoining() {
			continue
		}
		if r.Status.DRBD == nil || r.Status.DRBD.Device == "" {
			return false
		}
		n++
	}
	return n >= 2
}

// DRBDNotServing says why a DRBD replica may not serve its volume's pod,
// "" when it may: its disk must be UpToDate (and, on DRBD 9, in quorum).
func (r *LocalVolumeReplica) DRBDNotServing() string {
	d := r.Status.DRBD
	switch {
	case r.Spec.Delete || r.DeletionTimestamp != nil:
		return "its replica is being deleted"
	case r.Status.State != StateReady:
		return fmt.Sprintf("its replica is %s", stateText(r.Status.State))
	case r.Annotations[DRBDLeaveAnnotation] != "":
		return fmt.Sprintf("its replica is leaving the DRBD resource (migration %s moves it to another node)", r.Annotations[DRBDLeaveAnnotation])
	case d == nil || d.Device == "":
		return "its replica is not replicated with DRBD yet"
	case d.LeftFor != "":
		return fmt.Sprintf("its replica left the DRBD resource (migration %s moves it to another node)", d.LeftFor)
	case d.MayServe:
		return ""
	case d.DiskState == "Inconsistent" && d.InSyncPercent != "":
		return fmt.Sprintf("its DRBD disk is Inconsistent (resync %s%% done)", d.InSyncPercent)
	case d.DiskState != "":
		return fmt.Sprintf("its DRBD disk is %s, not UpToDate", d.DiskState)
	}
	return "its DRBD state is unknown"
}

func stateText(s State) string {
	if s == "" {
		return "not created yet"
	}
	return string(s)
}
