// Package driver implements the CSI services of lvm.hwameistor.io. The
// controller service executes the placement the scheduler persisted (it never
// picks nodes) by creating LocalVolumes; the node service formats, mounts and
// expands the block devices the node agent attaches.
package driver

import (
	"context"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/protobuf/types/known/wrapperspb"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// Version is reported by GetPluginInfo.
var Version = "v0.1.0"

// Identity is the CSI identity service.
type Identity struct {
	csi.UnimplementedIdentityServer
	// Ready reports whether the driver can serve requests (caches synced).
	Ready func() bool
}

var _ csi.IdentityServer = &Identity{}

// GetPluginInfo returns the driver's name and version.
func (i *Identity) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: v1.DriverName, VendorVersion: Version}, nil
}

// GetPluginCapabilities advertises the controller service, online
// expansion and topology. Topology only carries the node name, so
// external-provisioner can pass the selected node and publish per-node
// capacity; CreateVolume returns no accessible topology, so PVs stay
// movable and the scheduler enforces locality.
func (i *Identity) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	return &csi.GetPluginCapabilitiesResponse{Capabilities: []*csi.PluginCapability{
		{Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{Type: csi.PluginCapability_Service_CONTROLLER_SERVICE}}},
		{Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{Type: csi.PluginCapability_Service_VOLUME_ACCESSIBILITY_CONSTRAINTS}}},
		{Type: &csi.PluginCapability_VolumeExpansion_{VolumeExpansion: &csi.PluginCapability_VolumeExpansion{Type: csi.PluginCapability_VolumeExpansion_ONLINE}}},
	}}, nil
}

// Probe reports readiness.
func (i *Identity) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	ready := i.Ready == nil || i.Ready()
	return &csi.ProbeResponse{Ready: wrapperspb.Bool(ready)}, nil
}

func wrapInt64(v int64) *wrapperspb.Int64Value { return wrapperspb.Int64(v) }
