package volume

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/internal/volumes"
)

// ensureResourceID gives an HA volume (replicaNumber 2) its DRBD resource
// id once: the device minor and port on both of its nodes
// (v1alpha1.DRBDMinor, DRBDPort). Ids are unique in the cluster, so two
// volumes never collide on a node whatever their placement, and recorded
// in spec.config.resourceID, so a restart keeps them. The lowest free id is
// taken under a lock from the ids in use, read uncached at the first
// allocation and kept since (every allocation goes through here), and read
// again when none is left (deleted volumes free theirs): two volumes
// reconciled at once never take the same one, and a burst of HA volumes
// costs one list. It reports whether the volume has an id (false, with a
// Warning Event, when every id of the range is taken).
func (r *Reconciler) ensureResourceID(ctx context.Context, lv *v1.LocalVolume) (bool, error) {
	if lv.Spec.ReplicaNumber < 2 || lv.Spec.Config == nil || lv.Spec.Config.ResourceID > 0 {
		return true, nil
	}
	r.idMu.Lock()
	defer r.idMu.Unlock()
	limit := int64(r.MaxResourceIDs)
	if limit <= 0 {
		limit = v1.DRBDDefaultMaxResources
	}
	id := int64(0)
	if r.usedIDs != nil {
		id = lowestFree(r.usedIDs, limit)
	}
	if id == 0 {
		if err := r.listUsedIDs(ctx); err != nil {
			return false, err
		}
		id = lowestFree(r.usedIDs, limit)
	}
	if id == 0 {
		r.Recorder.Eventf(lv, corev1.EventTypeWarning, "NoResourceID",
			"Every DRBD resource id is taken (%d HA volumes, ports %d to %d): delete HA volumes or raise the controllers' --drbd-max-resources",
			limit, v1.DRBDPort(1), v1.DRBDPort(limit))
		return false, nil
	}
	err := volumes.Edit(ctx, r.Client, lv.Name, false, func(lv *v1.LocalVolume) {
		if lv.Spec.Config != nil && lv.Spec.Config.ResourceID == 0 {
			lv.Spec.Config.ResourceID = id
		}
	})
	if err != nil {
		return false, fmt.Errorf("recording resource id %d: %w", id, err)
	}
	r.usedIDs[id] = true
	r.Recorder.Eventf(lv, corev1.EventTypeNormal, "ResourceIDAssigned", "DRBD resource id %d: /dev/drbd%d, port %d", id, v1.DRBDMinor(id), v1.DRBDPort(id))
	return true, nil
}

// listUsedIDs reads the resource ids of every volume, uncached.
func (r *Reconciler) listUsedIDs(ctx context.Context) error {
	all := &v1.LocalVolumeList{}
	if err := r.reader().List(ctx, all); err != nil {
		return err
	}
	r.usedIDs = make(map[int64]bool, len(all.Items))
	for i := range all.Items {
		if c := all.Items[i].Spec.Config; c != nil && c.ResourceID > 0 {
			r.usedIDs[c.ResourceID] = true
		}
	}
	return nil
}

// lowestFree is the lowest id in 1..limit not in used, 0 when none.
func lowestFree(used map[int64]bool, limit int64) int64 {
	for id := int64(1); id <= limit; id++ {
		if !used[id] {
			return id
		}
	}
	return 0
}

// reader is APIReader, or Client for a Reconciler used without
// SetupWithManager.
func (r *Reconciler) reader() client.Reader {
	if r.APIReader != nil {
		return r.APIReader
	}
	return r.Client
}
