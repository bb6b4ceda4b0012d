package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LocalVolumeExpandSpec asks to grow a volume on every replica.
type LocalVolumeExpandSpec struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.volumeName is immutable"
	VolumeName string `json:"volumeName"`
	// RequiredCapacityBytes is the new size.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:XValidation:rule="self >= oldSelf",message="spec.requiredCapacityBytes cannot shrink"
	RequiredCapacityBytes int64 `json:"requiredCapacityBytes"`
	// +optional
	Abort bool `json:"abort,omitempty"`
}

// LocalVolumeExpandStatus reports progress.
type LocalVolumeExpandStatus struct {
	// +optional
	State State `json:"state,omitempty"`
	// +optional
	AllocatedCapacityBytes int64 `json:"allocatedCapacityBytes,omitempty"`
	// +optional
	Message string `json:"message,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=lvexpand
// +kubebuilder:printcolumn:name="Volume",type=string,JSONPath=`.spec.volumeName`
// +kubebuilder:printcolumn:name="Capacity",type=integer,format=int64,JSONPath=`.spec.requiredCapacityBytes`
// +kubebuilder:printcolumn:name="Allocated",type=integer,format=int64,JSONPath=`.status.allocatedCapacityBytes`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// LocalVolumeExpand grows a volume, checked against pool capacity.
type LocalVolumeExpand struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   LocalVolumeExpandSpec   `json:"spec,omitempty"`
	Status LocalVolumeExpandStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// LocalVolumeExpandList is a list of LocalVolumeExpand.
type LocalVolumeExpandList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []LocalVolumeExpand `json:"items"`
}

func init() {
	SchemeBuilder.Register(&LocalVolumeExpand{}, &LocalVolumeExpandList{})
}
