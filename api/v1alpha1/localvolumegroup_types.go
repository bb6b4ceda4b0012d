package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LocalVolumeGroupSpec is a set of volumes that must live on the same nodes,
// because one pod uses them all.
type LocalVolumeGroupSpec struct {
	// Namespace of the claims and pods.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.namespace is immutable"
	Namespace string `json:"namespace"`
	// Volumes are the group's claims and, once provisioned, their LocalVolumes.
	// +kubebuilder:validation:MinItems=1
	Volumes []VolumeInfo `json:"volumes"`
	// Accessibility is the node set every volume of the group lives on.
	// +optional
	Accessibility AccessibilityTopology `json:"accessibility,omitempty"`
	// Pods using the group.
	// +optional
	Pods []string `json:"pods,omitempty"`
}

// VolumeInfo pairs a claim with its LocalVolume and, once the scheduler has
// placed it, where its replicas go. The scheduler persists its decision here
// (not on the claim, which the in-tree VolumeBinding updates concurrently);
// CreateVolume reads it.
type VolumeInfo struct {
	// +kubebuilder:validation:MinLength=1
	PersistentVolumeClaimName string `json:"pvc"`
	// LocalVolumeName is the LocalVolume's (and PV's) name.
	// +optional
	LocalVolumeName string `json:"localvolume,omitempty"`
	// Nodes are the replica nodes chosen by the scheduler, the pod's node
	// first.
	// +optional
	// +kubebuilder:validation:MaxItems=2
	Nodes []string `json:"nodes,omitempty"`
	// PoolName is the pool the replicas are allocated from.
	// +optional
	// +kubebuilder:validation:Enum=LocalStorage_PoolHDD;LocalStorage_PoolSSD;LocalStorage_PoolNVMe
	PoolName string `json:"poolName,omitempty"`
	// RequiredCapacityBytes is the size the scheduler reserved.
	// +optional
	// +kubebuilder:validation:Minimum=0
	RequiredCapacityBytes int64 `json:"requiredCapacityBytes,omitempty"`
	// Refusals are the nodes that refused the claim's volume for capacity
	// (one per node, the latest). CreateVolume records a refusal here when
	// it clears the placement (nodes, poolName, requiredCapacityBytes) it
	// was given; the scheduler keeps the volume off a refusing node while
	// that node reports the pool unchanged. Dropped once the claim is
	// bound.
	// +optional
	// +listType=map
	// +listMapKey=nodeName
	// +kubebuilder:validation:MaxItems=32
	Refusals []CapacityRefusal `json:"refusals,omitempty"`
}

// LocalVolumeGroupStatus is the group's state.
type LocalVolumeGroupStatus struct {
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
// +kubebuilder:resource:scope=Cluster,shortName={lvgr,lvg}
// +kubebuilder:printcolumn:name="Namespace",type=string,JSONPath=`.spec.namespace`
// +kubebuilder:printcolumn:name="Nodes",type=string,JSONPath=`.spec.accessibility.nodes`
// +kubebuilder:printcolumn:name="Pods",type=string,JSONPath=`.spec.pods`,priority=1
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// LocalVolumeGroup keeps the volumes of one pod together through scheduling
// and migration.
type LocalVolumeGroup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   LocalVolumeGroupSpec   `json:"spec,omitempty"`
	Status LocalVolumeGroupStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// LocalVolumeGroupList is a list of LocalVolumeGroup.
type LocalVolumeGroupList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []LocalVolumeGroup `json:"items"`
}

func init() {
	SchemeBuilder.Register(&LocalVolumeGroup{}, &LocalVolumeGroupList{})
}
