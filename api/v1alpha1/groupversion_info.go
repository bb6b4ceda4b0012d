// Package v1alpha1 holds the hwameistor.io/v1alpha1 API: the custom resources
// through which the scheduler, the CSI driver, the controllers and the node
// agent exchange pool capacity, volume placement and migration state.
//
// Field names follow HwameiStor's documented API so tools written for
// HwameiStor keep working (see docs/api.md and the project's COMPAT notes).
//
// +kubebuilder:object:generate=true
// +groupName=hwameistor.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "hwameistor.io", Version: "v1alpha1"}

	// SchemeBuilder registers the kinds of this package with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the kinds of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// Resource turns an unqualified resource name into a GroupResource.
func Resource(resource string) schema.GroupResource {
	return GroupVersion.WithResource(resource).GroupResource()
}
