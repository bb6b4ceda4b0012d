package v1alpha1

// Online moves of DRBD-replicated HA volumes (controllers/migrate): the
// replica on the source node leaves the DRBD resource, the volume switches
// to a new replica on the target, and DRBD resyncs it from the replica that
// stays while the pod keeps running there. No copy stream is involved.
const (
	// DRBDJoinAnnotation on a LocalVolumeReplica names the migration that
	// created it to replace the source's replica: its node agent allocates
	// it and brings it into the DRBD resource once the volume names it.
	// Until it has a DRBD device it does not count as a replica of the
	// resource (DRBDManaged).
	DRBDJoinAnnotation = "hwameistor.io/drbd-join"
	// DRBDLeaveAnnotation on a LocalVolumeReplica names the migration
	// that asks it to leave the DRBD resource: its node agent takes the
	// resource down (refused by the kernel while the device is in use, so
	// a Primary with a mounted file system never leaves) and reports
	// status.drbd.leftFor; its logical volume stays until the migration
	// deletes the replica. Removing the annotation brings it back up (a
	// rollback), with its metadata, so DRBD resyncs only what changed.
	DRBDLeaveAnnotation = "hwameistor.io/drbd-leave"
)

// DRBDLeft says whether the replica's node agent has taken its DRBD
// resource down for the migration named migration.
func (r *LocalVolumeReplica) DRBDLeft(migration string) bool {
	d := r.Status.DRBD
	return migration != "" && d != nil && d.LeftFor == migration && r.Annotations[DRBDLeaveAnnotation] == migration
}

// DRBDJoining says whether the replica is a move's new replica that has
// not joined its volume's DRBD resource yet.
func (r *LocalVolumeReplica) DRBDJoining() bool {
	return r.Annotations[DRBDJoinAnnotation] != "" && (r.Status.DRBD == nil || r.Status.DRBD.Device == "")
}
