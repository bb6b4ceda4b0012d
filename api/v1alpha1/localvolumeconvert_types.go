package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LocalVolumeConvertSpec asks to turn a convertible single-replica volume
// into an HA volume.
type LocalVolumeConvertSpec struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.volumeName is immutable"
	VolumeName string `json:"volumeName"`
	// ReplicaNumber is the wanted count; only 2 is supported.
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=2
	ReplicaNumber int64 `json:"replicaNumber"`
	// +optional
	Abort bool `json:"abort,omitempty"`
}

// LocalVolumeConvertStatus reports progress.
type LocalVolumeConvertStatus struct {
	// +optional
	State State `json:"state,omitempty"`
	// +optional
	Message string `json:"message,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=lvconvert
// +kubebuilder:printcolumn:name="Volume",type=string,JSONPath=`.spec.volumeName`
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.spec.replicaNumber`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// LocalVolumeConvert converts a volume to HA by adding a second replica.
type LocalVolumeConvert struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   LocalVolumeConvertSpec   `json:"spec,omitempty"`
	Status LocalVolumeConvertStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// LocalVolumeConvertList is a list of LocalVolumeConvert.
type LocalVolumeConvertList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []LocalVolumeConvert `json:"items"`
}

func init() {
	SchemeBuilder.Register(&LocalVolumeConvert{}, &LocalVolumeConvertList{})
}
