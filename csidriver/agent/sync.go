package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/backend"
	"hwameistor.io/local/csidriver/blockdev"
	"hwameistor.io/local/csidriver/replication"
)

// Replication is how the agent copies volumes between nodes for
// migrations: a target replica pulls its data from the source node's agent
// (replication.Pull), and every agent serves its own replicas to the others
// (Server), both over mutual TLS with the served nodes' certificates.
type Replication struct {
	// TLS holds the certificates of the served nodes, issued by the
	// controllers (replication.SecretLoader keeps it current).
	TLS *replication.Store
	// Endpoint is this agent's replication address (host:port), published
	// in each served node's LocalStorageNode spec.storageIP.
	Endpoint string
	// Timeouts bound each pull's connect, response and silences (zero
	// fields: replication's defaults), so a stalled source frees the copy
	// worker.
	Timeouts replication.Timeouts
	// MountInfo is the mount table the in-use check reads
	// (/proc/<pid>/mountinfo format); this process's when empty.
	MountInfo string
}

// SyncRetryAfter is how long a failed copy waits before the next attempt.
const SyncRetryAfter = 5 * time.Second

// needsSync says whether rep is a migration target still waiting for its copy.
func needsSync(rep *v1.LocalVolumeReplica) bool {
	return rep.Annotations[v1.SyncPendingAnnotation] != "" && rep.Annotations[v1.SyncSourceAnnotation] != "" && !rep.Status.Synced
}

// sync pulls the volume's data into rep from the source node's agent and
// marks the replica synced with the verified checksum. A failure is
// reported in the replica's status and retried; the copy starts over, so a
// restart of either agent mid-copy is harmless.
func (a *Agent) sync(ctx context.Context, be backend.Backend, rep *v1.LocalVolumeReplica, vol backend.Volume) (time.Duration, error) {
	source := rep.Annotations[v1.SyncSourceAnnotation]
	fail := func(format string, args ...any) (time.Duration, error) {
		msg := fmt.Sprintf("copy from %s: ", source) + fmt.Sprintf(format, args...)
		log.FromContext(ctx).Info("Copy failed; retrying", "replica", rep.Name, "reason", msg)
		a.Recorder.Event(rep, corev1.EventTypeWarning, "SyncFailed", msg)
		return SyncRetryAfter, a.patchSync(ctx, rep, func(st *v1.LocalVolumeReplicaStatus) { st.Message, st.SyncedBytes = msg, 0 })
	}
	if a.Replication == nil || a.Replication.TLS == nil {
		return fail("this node agent does not replicate (--replication-address unset)")
	}
	opener, ok := be.(backend.DataOpener)
	if !ok {
		return fail("the backend of %s cannot open volume data", rep.Spec.NodeName)
	}
	lsn := &v1.LocalStorageNode{}
	if err := a.Client.Get(ctx, client.ObjectKey{Name: source}, lsn); err != nil {
		return fail("reading LocalStorageNode %s: %v", source, err)
	}
	if lsn.Spec.StorageIP == "" {
		return fail("node %s publishes no replication address (spec.storageIP)", source)
	}
	dst, err := opener.OpenData(ctx, rep.Spec.PoolName, rep.Spec.VolumeName, true)
	if err != nil {
		return fail("opening the target volume: %v", err)
	}
	defer dst.Close()
	last := time.Now()
	progress := func(copied, total int64) {
		if time.Since(last) < time.Second {
			return
		}
		last = time.Now()
		_ = a.patchSync(ctx, rep, func(st *v1.LocalVolumeReplicaStatus) { st.SyncedBytes, st.Message = copied, "" })
	}
	puller := replication.Puller{TLS: a.Replication.TLS, Timeouts: a.Replication.Timeouts}
	sum, err := puller.Pull(ctx, lsn.Spec.StorageIP, source,
		rep.Spec.PoolName, rep.Spec.VolumeName, rep.Spec.NodeName, dst, progress)
	if err != nil {
		return fail("%v", err)
	}
	// Before the replica counts as synced: it holds the data of the
	// source's last use, and the scheduler compares these stamps.
	if err := a.inheritStaged(ctx, rep, source); err != nil {
		return fail("recording the source's last use on the copy: %v", err)
	}
	log.FromContext(ctx).Info("Copied and verified", "volume", rep.Spec.VolumeName, "from", source, "to", rep.Spec.NodeName, "checksum", sum)
	a.Recorder.Eventf(rep, corev1.EventTypeNormal, "Synced", "Copied %s from %s; checksum %s verified", v1.FormatBytes(vol.SizeBytes), source, sum)
	return 0, a.patchSync(ctx, rep, func(st *v1.LocalVolumeReplicaStatus) {
		st.Synced, st.Checksum, st.SyncedBytes, st.Message = true, sum, vol.SizeBytes, ""
	})
}

// inheritStaged gives rep the v1.StagedAtAnnotation of the volume's
// replica on source (none when it was never staged).
func (a *Agent) inheritStaged(ctx context.Context, rep *v1.LocalVolumeReplica, source string) error {
	src := &v1.LocalVolumeReplica{}
	if err := a.Client.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(rep.Spec.VolumeName, source)}, src); err != nil {
		return err
	}
	stamp, ok := src.Annotations[v1.StagedAtAnnotation]
	if !ok || rep.Annotations[v1.StagedAtAnnotation] == stamp {
		return nil
	}
	patch := client.MergeFrom(rep.DeepCopy())
	if rep.Annotations == nil {
		rep.Annotations = map[string]string{}
	}
	rep.Annotations[v1.StagedAtAnnotation] = stamp
	return a.Client.Patch(ctx, rep, patch)
}

// patchSync patches the replica's status.
func (a *Agent) patchSync(ctx context.Context, rep *v1.LocalVolumeReplica, change func(*v1.LocalVolumeReplicaStatus)) error {
	patch := client.MergeFrom(rep.DeepCopy())
	change(&rep.Status)
	return a.Client.Status().Patch(ctx, rep, patch)
}

// ReplicationServer serves the replicas of the agent's nodes to other
// agents, each only to the live target of its copy (authorizeCopy). The
// source is the node the target replica names in its sync-source
// annotation.
func (a *Agent) ReplicationServer() *replication.Server {
	return &replication.Server{
		Authorize: a.authorizeCopy,
		Open: func(ctx context.Context, pool, volume, target string) (*os.File, int64, error) {
			tgt := &v1.LocalVolumeReplica{}
			if err := a.Client.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(volume, target)}, tgt); err != nil {
				return nil, 0, fmt.Errorf("no replica of %s on %s asks for a copy: %w", volume, target, err)
			}
			source := tgt.Annotations[v1.SyncSourceAnnotation]
			be := a.Backends[source]
			if be == nil {
				return nil, 0, fmt.Errorf("%w: the copy's source %q is not served here", backend.ErrNotFound, source)
			}
			opener, ok := be.(backend.DataOpener)
			if !ok {
				return nil, 0, errors.New("the backend cannot open volume data")
			}
			vol, err := be.GetVolume(ctx, pool, volume)
			if err != nil {
				return nil, 0, err
			}
			f, err := opener.OpenData(ctx, pool, volume, false)
			return f, vol.SizeBytes, err
		},
		Busy: a.inUse,
		Log:  log.FromContext(context.Background()).WithName("replication"),
	}
}

// inUse refuses to stream a volume that is in use on this host, since its
// data may change under the copy: a filesystem on it mounted, its device
// node bind-mounted (a raw block publish), or a device stacked on it. The
// devices are compared by number (blockdev.Uses), never by path: the mount
// table names an LV /dev/mapper/VG-LV (or dm-N), not /dev/VG/LV, and a raw
// block publish's source is devtmpfs. A backend that can name the volume's
// devices (backend.BlockDevicer: lvm's /dev/VG/LV, emulated's attached loop
// devices) is asked; for another, the replica's status.devicePath is
// checked. The source's exclusive open (OpenData) then keeps it unmounted
// during the copy.
func (a *Agent) inUse(volume string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reps := &v1.LocalVolumeReplicaList{}
	if err := a.Client.List(ctx, reps); err != nil {
		return err
	}
	var devices []string
	for _, r := range reps.Items {
		be := a.Backends[r.Spec.NodeName]
		if r.Spec.VolumeName != volume || be == nil {
			continue
		}
		bd, ok := be.(backend.BlockDevicer)
		if !ok {
			if r.Status.DevicePath != "" {
				devices = append(devices, r.Status.DevicePath)
			}
			continue
		}
		devs, err := bd.BlockDevices(ctx, r.Spec.PoolName, volume)
		if err != nil && !errors.Is(err, backend.ErrNotFound) && !errors.Is(err, backend.ErrPoolNotFound) {
			return fmt.Errorf("finding the block devices of volume %s: %w", volume, err)
		}
		devices = append(devices, devs...)
	}
	if len(devices) == 0 {
		return nil
	}
	uses, err := blockdev.Checker{MountInfo: a.Replication.MountInfo}.Uses(devices...)
	if err != nil {
		return fmt.Errorf("checking whether volume %s is in use: %w", volume, err)
	}
	if len(uses) > 0 {
		return fmt.Errorf("volume %s is in use on this node: %s: the pod using it must stop before it is copied", volume, blockdev.Describe(uses))
	}
	return nil
}
