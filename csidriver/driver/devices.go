package driver

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// ReplicaDevices resolves a volume to the device of its replica on one node
// from the LocalVolumeReplica the node agent reports, and records on that
// replica when it is staged.
type ReplicaDevices struct {
	Client client.Client
	Node   string
	// Now is the clock of the staging stamps; time.Now when nil.
	Now func() time.Time
}

var _ DeviceResolver = ReplicaDevices{}

// DevicePath returns status.devPath of the volume's Ready replica on the node:
// NotFound without a replica there, Unavailable while it is not Ready or is
// still waiting for its copy (a migration target), so nothing stages,
// publishes or expands it before it holds the volume's data.
func (r ReplicaDevices) DevicePath(ctx context.Context, volumeID string) (string, error) {
	rep := &v1.LocalVolumeReplica{}
	err := r.Client.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(volumeID, r.Node)}, rep)
	if apierrors.IsNotFound(err) {
		return "", status.Errorf(codes.NotFound, "volume %s has no replica on node %s", volumeID, r.Node)
	}
	if err != nil {
		return "", status.Errorf(codes.Unavailable, "reading the replica of %s: %v", volumeID, err)
	}
	if rep.Status.State != v1.StateReady || rep.Status.DevicePath == "" {
		return "", status.Errorf(codes.Unavailable, "replica %s of volume %s on node %s is not ready (state %q)", rep.Name, volumeID, r.Node, rep.Status.State)
	}
	if syncPending(rep) {
		return "", status.Errorf(codes.Unavailable,
			"replica %s of volume %s on node %s is waiting for its copy from node %s (%s %s): it holds no data yet and cannot be used until the copy is verified (status.synced)",
			rep.Name, volumeID, r.Node, rep.Annotations[v1.SyncSourceAnnotation], v1.SyncPendingAnnotation, rep.Annotations[v1.SyncPendingAnnotation])
	}
	return rep.Status.DevicePath, nil
}

// syncPending says whether rep is a migration or conversion target still
// waiting for its copy; the node agent's needsSync (agent/sync.go) is the
// same test. Staging or publishing it would expose an empty or half-written
// volume, and its writes would be overwritten by the copy.
func syncPending(rep *v1.LocalVolumeReplica) bool {
	return rep.Annotations[v1.SyncPendingAnnotation] != "" && rep.Annotations[v1.SyncSourceAnnotation] != "" && !rep.Status.Synced
}

// MarkStaged stamps the volume's replica on the node with the time (the
// v1.StagedAtAnnotation), before anything can be written to it: the
// replicas of a volume are not kept in sync, and the scheduler places the
// volume's pods only where it was staged last.
func (r ReplicaDevices) MarkStaged(ctx context.Context, volumeID string) error {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	rep := &v1.LocalVolumeReplica{ObjectMeta: metav1.ObjectMeta{Name: v1.ReplicaName(volumeID, r.Node)}}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, v1.StagedAtAnnotation, now().UTC().Format(time.RFC3339Nano))
	if err := r.Client.Patch(ctx, rep, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		return status.Errorf(codes.Unavailable, "recording that the replica of %s on node %s is in use: %v", volumeID, r.Node, err)
	}
	return nil
}
