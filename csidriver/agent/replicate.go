package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/backend"
	"hwameistor.io/local/csidriver/drbd"
)

// How often an HA replica's DRBD state is read again: soon while it is not
// connected and in sync with its peer, then now and then.
const (
	drbdSettling = 3 * time.Second
	drbdSteady   = 30 * time.Second
)

// replicate brings up the DRBD resource of an HA volume's replica on a node
// with DRBD (Agent.DRBD) and records its state in the replica's status: the
// resource file from the volume's two replica nodes (their storage IPs and
// backing devices), metadata on a new replica, up; once both new replicas
// are connected, the volume's first replica marks them identical (both
// logical volumes were zeroed on creation), so no initial sync runs. A
// replica a migration asks to leave (v1.DRBDLeaveAnnotation) takes the
// resource down; a move's new replica waits until the volume names its
// node, then joins and DRBD resyncs it in full from its UpToDate peer. A
// replica of a single-replica volume, a migration's copy target, or one on
// a node without DRBD is left alone. It returns when to look again.
func (a *Agent) replicate(ctx context.Context, rep *v1.LocalVolumeReplica, vol backend.Volume) (time.Duration, error) {
	m := a.DRBD[rep.Spec.NodeName]
	if m == nil || rep.Annotations[v1.SyncPendingAnnotation] != "" {
		return 0, nil
	}
	lv := &v1.LocalVolume{}
	if err := a.Client.Get(ctx, client.ObjectKey{Name: rep.Spec.VolumeName}, lv); err != nil {
		return 0, client.IgnoreNotFound(err)
	}
	if !lv.Replicated() {
		return 0, nil
	}
	cfg := lv.Spec.Config
	if rep.HoldsDataWithoutDRBD() {
		// Data from before DRBD (staged, or filled by a copy): internal
		// metadata would overwrite the end of it.
		return drbdSteady, a.setDRBDWaiting(ctx, rep, "not replicated: the replica holds data from before DRBD, whose internal metadata would overwrite its end (an existing volume needs external metadata, not supported yet)")
	}
	if cfg.ResourceID == 0 {
		return drbdSettling, a.setDRBDWaiting(ctx, rep, "waiting for the volume's DRBD resource id (the volume controller assigns it)")
	}
	res := &drbd.Resource{Name: lv.Name, Minor: v1.DRBDMinor(cfg.ResourceID), Port: v1.DRBDPort(cfg.ResourceID), MetaDisk: "internal"}
	if migration := rep.Annotations[v1.DRBDLeaveAnnotation]; migration != "" {
		return a.leave(ctx, m, rep, res, migration)
	}
	if !slices.Contains(lv.ReplicaNodes(), rep.Spec.NodeName) {
		return drbdSettling, a.setDRBDWaiting(ctx, rep, "waiting to join the volume's DRBD resource: the volume does not name this node yet (a migration switches it here)")
	}
	peerBytes := int64(0) // the peer's logical volume size
	for i, r := range cfg.Replicas {
		addr, disk, bytes, why, err := a.peer(ctx, lv.Name, r.Hostname, rep, vol)
		if err != nil {
			return 0, err
		}
		if why != "" {
			return drbdSettling, a.setDRBDWaiting(ctx, rep, why)
		}
		if r.Hostname != rep.Spec.NodeName {
			peerBytes = bytes
		}
		res.Peers = append(res.Peers, drbd.Peer{Node: r.Hostname, Address: addr, NodeID: i, Disk: disk})
	}
	sized := vol.SizeBytes // not recorded yet: taken as sized when last up
	if d := rep.Status.DRBD; d != nil && d.SizedBytes > 0 {
		sized = d.SizedBytes
	}
	a.noteMinor(rep, res.Minor)
	st, err := m.Status(ctx, res)
	if err != nil {
		return 0, err
	}
	replaced, err := m.Write(res)
	if err != nil {
		return 0, err
	}
	if replaced && st.Configured {
		// A peer changed (its address, its device): the running
		// resource follows its file. If that fails, the file is marked
		// stale, so the next pass writes it and adjusts again.
		if err := m.Adjust(ctx, res.Name); err != nil {
			return 0, errors.Join(err, m.MarkStale(res.Name))
		}
	}
	cameUp := !st.Configured
	if cameUp {
		if rep.Status.DRBD == nil || rep.Status.DRBD.Device == "" {
			// A new replica: its (zeroed) device gets metadata once. A
			// replica that was up before keeps its metadata and with it
			// what it knows of its peer.
			if err := m.CreateMD(ctx, res.Name); err != nil {
				return 0, err
			}
			sized = vol.SizeBytes
		}
		if err := m.Up(ctx, res.Name); err != nil {
			return 0, err
		}
		if st, err = m.Status(ctx, res); err != nil {
			return 0, err
		}
	}
	if st.Connection == "Connected" && st.Disk == drbd.DiskInconsistent && st.PeerDisk == drbd.DiskInconsistent &&
		cfg.Replicas[0].Hostname == rep.Spec.NodeName && rep.Annotations[v1.DRBDJoinAnnotation] == "" {
		// Two new replicas, both zeroed on creation: identical. (A
		// move's new replica is always resynced in full.)
		if err := m.SkipInitialSync(ctx, res.Name); err != nil {
			return 0, err
		}
		if st, err = m.Status(ctx, res); err != nil {
			return 0, err
		}
	}
	if st.Connection == "Connected" && st.Disk == drbd.DiskUpToDate && st.PeerDisk == drbd.DiskUpToDate &&
		vol.SizeBytes > sized && peerBytes >= vol.SizeBytes {
		// Both logical volumes grew (an expansion): the device follows.
		// Either side may run it; on the other it changes nothing.
		if err := m.Resize(ctx, res.Name); err != nil {
			return 0, fmt.Errorf("growing the DRBD device of %s to its logical volumes' %s: %w", res.Name, v1.FormatBytes(vol.SizeBytes), err)
		}
		sized = vol.SizeBytes
	}
	st, notServing, err := a.arbitrate(ctx, m, lv, rep, res, st)
	if err != nil {
		return 0, err
	}
	if err := a.setDRBD(ctx, rep, res, st, cameUp, sized, notServing); err != nil {
		return 0, err
	}
	if st.Connection == "Connected" && st.Disk == drbd.DiskUpToDate && st.PeerDisk == drbd.DiskUpToDate && sized >= vol.SizeBytes {
		return drbdSteady, nil
	}
	return drbdSettling, nil
}

// leave takes the replica's resource down for a migration, unless the
// volume is in use here (Primary): the kernel would refuse anyway, and the
// pod must move first (a drain evicts it; it restarts on the replica that
// stays). The logical volume and the metadata stay: without the
// annotation the resource comes up again and resyncs what changed.
func (a *Agent) leave(ctx context.Context, m *drbd.Manager, rep *v1.LocalVolumeReplica, res *drbd.Resource, migration string) (time.Duration, error) {
	st, err := m.Status(ctx, res)
	if err != nil {
		return 0, err
	}
	if st.Configured {
		switch {
		case st.Role == drbd.RolePrimary:
			return drbdSettling, a.setDRBDWaiting(ctx, rep, fmt.Sprintf("migration %s asks this replica to leave the DRBD resource, but the volume is in use here (Primary): it leaves once the pod stops using it on this node", migration))
		case st.Connection != "Connected" || st.PeerDisk != drbd.DiskUpToDate:
			// Only a connected, UpToDate peer surely holds every write
			// this replica has (a Primary cut off from its peer wrote
			// alone; a resync from here may be under way).
			return drbdSettling, a.setDRBDWaiting(ctx, rep, fmt.Sprintf("migration %s asks this replica to leave the DRBD resource; it waits until its peer is connected and UpToDate (connection %s, peer disk %s)", migration, st.Connection, st.PeerDisk))
		}
		if err := m.Down(ctx, res.Name); err != nil {
			return drbdSettling, a.setDRBDWaiting(ctx, rep, fmt.Sprintf("leaving the DRBD resource for migration %s: %v", migration, err))
		}
	}
	// Without its file nothing brings it up or down again (deleting the
	// replica, a restarted agent); a rollback writes it anew.
	if err := m.Remove(res.Name); err != nil {
		return 0, err
	}
	// The device stays recorded only if it was ever up: a rollback must
	// not create metadata over a replica that has some.
	d := &v1.ReplicaDRBDStatus{LeftFor: migration,
		Message: fmt.Sprintf("left the DRBD resource for migration %s: down here, the logical volume kept until the migration ends", migration)}
	if old := rep.Status.DRBD; old != nil {
		d.Device, d.Port, d.SizedBytes = old.Device, old.Port, old.SizedBytes
	}
	if st.Configured {
		d.Device, d.Port = res.Device(), res.Port
	}
	return drbdSteady, a.writeDRBD(ctx, rep, d)
}

// peer is the DRBD address (the node's storage IP), backing device and
// its size of the volume's replica on node, or why they are not known yet.
func (a *Agent) peer(ctx context.Context, volume, node string, self *v1.LocalVolumeReplica, vol backend.Volume) (addr, disk string, bytes int64, why string, err error) {
	lsn := &v1.LocalStorageNode{}
	if err := a.Client.Get(ctx, client.ObjectKey{Name: node}, lsn); err != nil {
		if apierrors.IsNotFound(err) {
			return "", "", 0, fmt.Sprintf("waiting for node %s's LocalStorageNode (is its node agent running?)", node), nil
		}
		return "", "", 0, "", err
	}
	host := lsn.Spec.StorageIP
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if net.ParseIP(host) == nil {
		return "", "", 0, fmt.Sprintf("waiting for node %s's storage IP (its agent's --replication-advertise)", node), nil
	}
	if node == self.Spec.NodeName {
		return host, vol.DevicePath, vol.SizeBytes, "", nil
	}
	rep := &v1.LocalVolumeReplica{}
	if err := a.Client.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(volume, node)}, rep); err != nil {
		if client.IgnoreNotFound(err) == nil {
			return "", "", 0, fmt.Sprintf("waiting for the replica on %s", node), nil
		}
		return "", "", 0, "", err
	}
	if rep.Status.DevicePath == "" {
		return "", "", 0, fmt.Sprintf("waiting for the replica on %s to be allocated", node), nil
	}
	return host, rep.Status.DevicePath, rep.Status.AllocatedCapacityBytes, "", nil
}

// setDRBD records st. A replica that may serve must hold every
// acknowledged write, which DRBD 8.4 cannot tell alone: a disk that comes
// up without its peer reads UpToDate even when the peer took writes while
// it was down (a node back from a reboot, a move rolled back). So it may
// serve only once connected to its peer, or while it stays up after it
// was allowed to (a standby whose Primary just stopped). cameUp says the
// resource was brought up by this pass; sized is the logical volume size
// the device was last sized to; notServing, when set, says why it may not
// serve whatever the kernel reads (arbitrate).
func (a *Agent) setDRBD(ctx context.Context, rep *v1.LocalVolumeReplica, res *drbd.Resource, st drbd.Status, cameUp bool, sized int64, notServing string) error {
	d := &v1.ReplicaDRBDStatus{Device: res.Device(), Port: res.Port, SizedBytes: sized}
	if st.Configured {
		d.Role, d.DiskState, d.Connection, d.PeerDiskState = string(st.Role), string(st.Disk), st.Connection, string(st.PeerDisk)
		d.InSyncPercent = strconv.FormatFloat(st.InSyncPercent, 'f', -1, 64)
		d.OutOfSyncBytes, d.MayServe = st.OutOfSyncKiB<<10, st.MayServe()
		prev := rep.Status.DRBD
		continued := !cameUp && prev != nil && prev.MayServe && prev.Connection != ""
		if d.MayServe && st.Connection != "Connected" && !continued {
			d.MayServe = false
			d.Message = "up without its peer: it may miss writes the peer took while it was down, so it serves only once connected to its peer"
		}
		if notServing != "" {
			d.MayServe, d.Message = false, notServing
		}
	}
	return a.writeDRBD(ctx, rep, d)
}

// setDRBDWaiting says in the replica's DRBD state what it waits for.
func (a *Agent) setDRBDWaiting(ctx context.Context, rep *v1.LocalVolumeReplica, why string) error {
	d := &v1.ReplicaDRBDStatus{}
	if rep.Status.DRBD != nil {
		d = rep.Status.DRBD.DeepCopy()
	}
	d.Message = why
	return a.writeDRBD(ctx, rep, d)
}

// writeDRBD writes the replica's DRBD state when it changed.
func (a *Agent) writeDRBD(ctx context.Context, rep *v1.LocalVolumeReplica, d *v1.ReplicaDRBDStatus) error {
	if equality.Semantic.DeepEqual(d, rep.Status.DRBD) {
		return nil
	}
	rep.Status.DRBD = d
	return a.Client.Status().Update(ctx, rep)
}

// unreplicate takes the replica's DRBD resource down and removes its file
// (before its logical volume goes).
func (a *Agent) unreplicate(ctx context.Context, rep *v1.LocalVolumeReplica) error {
	m := a.DRBD[rep.Spec.NodeName]
	if m == nil {
		return nil
	}
	a.forgetMinors(rep)
	if _, err := os.Stat(m.File(rep.Spec.VolumeName)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := m.Down(ctx, rep.Spec.VolumeName); err != nil {
		return err
	}
	return m.Remove(rep.Spec.VolumeName)
}
