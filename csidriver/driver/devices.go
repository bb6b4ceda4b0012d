package driver

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// ReplicaDevices resolves a volume to the device of its replica on one node
// from the LocalVolumeReplica the node agent reports.
type ReplicaDevices struct {
	Client client.Reader
	Node   string
}

var _ DeviceResolver = ReplicaDevices{}

// DevicePath returns status.devPath of the volume's Ready replica on the node.
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
	return rep.Status.DevicePath, nil
}
