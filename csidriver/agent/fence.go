package agent

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/drbd"
	"hwameistor.io/local/csidriver/fence"
)

// apiReader reads what must not come from the cache (package fence's
// compare-and-swap).
func (a *Agent) apiReader() client.Reader {
	if a.APIReader != nil {
		return a.APIReader
	}
	return a.Client
}

// arbitrate settles, through the API (package fence), what DRBD 8.4
// cannot alone once the two replicas of a volume lost each other, and
// returns the replica's state after it and why it may not serve ("" when
// nothing stops it):
//   - a Primary whose I/O froze when it lost its peer (8.4's fencing; DRBD
//     9 freezes on lost quorum instead) records the peer outdated and
//     resumes. If the volume already records this replica (the peer was
//     promoted meanwhile), it lost and stays frozen until its node is
//     rebooted;
//   - a replica the volume records outdated never serves until DRBD has
//     resynced it from its peer, after which the record goes; one that a
//     split brain left StandAlone reconnects discarding what it wrote
//     apart, and the replica that won connects to it again (unless the
//     peer still reports itself Primary: a frozen loser, which refuses to
//     become a SyncTarget while Primary).
func (a *Agent) arbitrate(ctx context.Context, m *drbd.Manager, lv *v1.LocalVolume, rep *v1.LocalVolumeReplica, res *drbd.Resource, st drbd.Status) (drbd.Status, string, error) {
	self, peer := rep.Spec.NodeName, lv.DRBDPeer(rep.Spec.NodeName)
	if !st.Configured || peer == "" {
		return st, "", nil
	}
	outdated := lv.DRBDOutdated()
	if m.Version == drbd.V84 && st.Role == drbd.RolePrimary && st.Suspended && st.PeerDisk == drbd.DiskUnknown {
		won, err := fence.Outdate(ctx, a.apiReader(), a.Client, lv.Name, self, peer)
		if err != nil {
			return st, "", err
		}
		if !won {
			// The peer serves the volume now. Resuming would complete
			// the writes that were in flight when the link went down as
			// acknowledged (their local half succeeded) although the
			// peer never got them, and they would be lost on the rejoin:
			// it stays frozen, which only a reboot of the node ends.
			why := fmt.Sprintf("lost to its peer on %s (%s names this node), which serves the volume now: I/O stays frozen and no write here is acknowledged; reboot node %s to release the volume, and its replica rejoins and resyncs from %s",
				peer, v1.DRBDOutdatedAnnotation, self, peer)
			if d := rep.Status.DRBD; d == nil || d.Message != why {
				a.Recorder.Event(rep, corev1.EventTypeWarning, "LostToPeer", why)
			}
			return st, why, nil
		}
		if err := m.ResumeIO(ctx, res.Name); err != nil {
			return st, "", fmt.Errorf("resuming I/O of %s after recording its peer %s outdated: %w", res.Name, peer, err)
		}
		a.Recorder.Event(rep, corev1.EventTypeWarning, "PeerOutdated", fmt.Sprintf("lost its peer on %s: recorded it outdated on the volume and resumed I/O; the volume runs on this replica alone until %s is back and resynced", peer, peer))
		st, err = m.Status(ctx, res)
		return st, "", err
	}
	if outdated == peer && st.Connection == "StandAlone" {
		// A split brain the peer resolves by discarding its changes
		// (below, on its node): this side must connect too, unless the
		// peer is a frozen loser, still Primary, which refuses to
		// become a SyncTarget (it rejoins after its reboot).
		other := &v1.LocalVolumeReplica{}
		if err := a.Client.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(lv.Name, peer)}, other); client.IgnoreNotFound(err) != nil {
			return st, "", err
		}
		if d := other.Status.DRBD; d != nil && d.Role == string(drbd.RolePrimary) {
			return st, "", nil
		}
		if err := m.Connect(ctx, res.Name); err != nil {
			return st, "", fmt.Errorf("reconnecting %s to its outdated peer after a split brain: %w", res.Name, err)
		}
		st, err := m.Status(ctx, res)
		return st, "", err
	}
	if outdated != self {
		if outdated != "" && outdated != peer {
			// The record of a replica the volume no longer has (a
			// rebuild or a move replaced it).
			return st, "", fence.Clear(ctx, a.apiReader(), a.Client, lv.Name, outdated)
		}
		return st, "", nil
	}
	switch {
	case st.Connection == "Connected" && st.Disk == drbd.DiskUpToDate && st.PeerDisk == drbd.DiskUpToDate:
		if err := fence.Clear(ctx, a.apiReader(), a.Client, lv.Name, self); err != nil {
			return st, "", err
		}
		a.Recorder.Event(rep, corev1.EventTypeNormal, "Resynced", fmt.Sprintf("resynced from %s: no longer outdated", peer))
		return st, "", nil
	case st.Connection == "StandAlone" && st.Role != drbd.RolePrimary:
		// A split brain: this side wrote while apart (frozen writes
		// that were never acknowledged, or a forced promotion no pod
		// used); the peer's writes were.
		if err := m.DiscardMyData(ctx, res.Name); err != nil {
			return st, "", fmt.Errorf("reconnecting %s discarding this outdated replica's changes: %w", res.Name, err)
		}
		a.Recorder.Event(rep, corev1.EventTypeWarning, "SplitBrainResolved", fmt.Sprintf("reconnected to %s discarding what this outdated replica wrote while apart (never acknowledged); DRBD resyncs it from %s", peer, peer))
		st, err := m.Status(ctx, res)
		return st, fmt.Sprintf("outdated (%s): resyncing from %s after a split brain", v1.DRBDOutdatedAnnotation, peer), err
	}
	return st, fmt.Sprintf("outdated: its peer on %s recorded it (%s) while they were apart, so it may miss writes %s acknowledged; it serves again once DRBD has resynced it", peer, v1.DRBDOutdatedAnnotation, peer), nil
}
