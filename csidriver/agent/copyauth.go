package agent

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/replication"
)

// authorizeCopy is the replication server's per-migration check: node
// client (the node of the verified client certificate) may read volume
// only while its replica of the volume is the target of a live copy from a
// node this agent serves, as the migration or conversion marked it: the
// sync-pending and sync-source annotations set (the operation removes them
// when it ends), not being deleted. A replica already synced still counts
// while the operation runs: the target's agent may repeat a copy its cache
// has not seen completed, and refusing it would only put a false failure
// on a verified replica. A valid certificate alone is not enough, so a node can never
// read a volume no migration is moving to it. A refusal Is
// replication.ErrForbidden and says why; the pulling agent records it in
// its replica's status, which the migration shows.
func (a *Agent) authorizeCopy(ctx context.Context, pool, volume, node string) error {
	refuse := func(why string, args ...any) error {
		return fmt.Errorf("%w: node %s is not the target of a live copy of %s: %s", replication.ErrForbidden, node, volume, fmt.Sprintf(why, args...))
	}
	tgt := &v1.LocalVolumeReplica{}
	if err := a.Client.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(volume, node)}, tgt); err != nil {
		if apierrors.IsNotFound(err) {
			return refuse("it has no replica of the volume")
		}
		return fmt.Errorf("reading the replica of %s on %s: %w", volume, node, err)
	}
	source := tgt.Annotations[v1.SyncSourceAnnotation]
	switch {
	case tgt.Spec.NodeName != node || tgt.Spec.VolumeName != volume:
		return refuse("replica %s belongs to %s on %s", tgt.Name, tgt.Spec.VolumeName, tgt.Spec.NodeName)
	case tgt.Annotations[v1.SyncPendingAnnotation] == "" || source == "":
		return refuse("its replica waits for no copy (no %s annotation)", v1.SyncPendingAnnotation)
	case tgt.DeletionTimestamp != nil:
		return refuse("its replica is being deleted")
	case a.Backends[source] == nil:
		return refuse("the copy's source %s is not served by this agent", source)
	case tgt.Spec.PoolName != "" && tgt.Spec.PoolName != pool:
		return refuse("the copy is for pool %s, not %s", tgt.Spec.PoolName, pool)
	}
	return nil
}
