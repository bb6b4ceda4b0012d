package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LocalVolumeSpec is what the volume must be; the scheduler's placement is in
// Accessibility and Config.Replicas.
type LocalVolumeSpec struct {
	// PoolName is the pool every replica lives in.
	// +kubebuilder:validation:Enum=LocalStorage_PoolHDD;LocalStorage_PoolSSD;LocalStorage_PoolNVMe
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.poolName is immutable: the data lives in that pool"
	PoolName string `json:"poolName"`

	// RequiredCapacityBytes is the size of the volume. It may grow (expansion)
	// but never shrink.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:XValidation:rule="self >= oldSelf",message="spec.requiredCapacityBytes cannot shrink: volumes are only expanded"
	RequiredCapacityBytes int64 `json:"requiredCapacityBytes"`

	// ReplicaNumber is 1, or 2 for HA volumes.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=2
	ReplicaNumber int64 `json:"replicaNumber"`

	// VolumeKind is LVM.
	// +kubebuilder:validation:Enum=LVM
	// +kubebuilder:default=LVM
	// +optional
	VolumeKind string `json:"volumeKind,omitempty"`

	// PersistentVolumeClaimNamespace and Name identify the claim.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.pvcNamespace is immutable"
	// +optional
	PersistentVolumeClaimNamespace string `json:"pvcNamespace,omitempty"`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.pvcName is immutable"
	// +optional
	PersistentVolumeClaimName string `json:"pvcName,omitempty"`

	// VolumeGroup is the LocalVolumeGroup the volume belongs to (HwameiStor
	// spells the JSON name in lower case).
	// +optional
	VolumeGroup string `json:"volumegroup,omitempty"`

	// Convertible volumes may later be converted to HA.
	// +optional
	Convertible bool `json:"convertible,omitempty"`
	// Striped volumes stripe across the pool's disks.
	// +optional
	Striped bool `json:"striped,omitempty"`

	// Accessibility is where the volume may be used from.
	// +optional
	Accessibility AccessibilityTopology `json:"accessibility,omitempty"`

	// Config is the replica configuration the controllers act on.
	// +optional
	Config *VolumeConfig `json:"config,omitempty"`

	// Delete asks the controllers to delete the volume.
	// +optional
	Delete bool `json:"delete,omitempty"`
}

// AccessibilityTopology lists the nodes (and optionally zones) a volume can be
// used from.
type AccessibilityTopology struct {
	// +optional
	Nodes []string `json:"nodes,omitempty"`
	// +optional
	Zones []string `json:"zones,omitempty"`
	// +optional
	Regions []string `json:"regions,omitempty"`
}

// VolumeConfig is the replica configuration of a volume.
type VolumeConfig struct {
	// Version increases on every change of Replicas.
	// +optional
	Version int64 `json:"version,omitempty"`
	// +optional
	VolumeName string `json:"volumeName,omitempty"`
	// +kubebuilder:validation:Minimum=1
	// +optional
	RequiredCapacityBytes int64 `json:"requiredCapacityBytes,omitempty"`
	// +optional
	Convertible bool `json:"convertible,omitempty"`
	// +optional
	ResourceID int64 `json:"resourceID,omitempty"`
	// +optional
	ReadyToInitialize bool `json:"readyToInitialize,omitempty"`
	// +optional
	Initialized bool `json:"initialized,omitempty"`
	// Replicas may briefly hold one more than ReplicaNumber while a
	// migration adds the new replica before pruning the old one.
	// +optional
	// +kubebuilder:validation:MaxItems=3
	Replicas []VolumeReplica `json:"replicas,omitempty"`
}

// VolumeReplica places one replica on a node.
type VolumeReplica struct {
	// +optional
	ID int64 `json:"id,omitempty"`
	// Hostname is the node holding the replica.
	// +kubebuilder:validation:MinLength=1
	Hostname string `json:"hostname"`
	// +optional
	IP string `json:"ip,omitempty"`
	// +optional
	Primary bool `json:"primary,omitempty"`
}

// LocalVolumeStatus is what the volume is.
type LocalVolumeStatus struct {
	// State is Creating, Ready, NotReady, ToBeDeleted or Deleted.
	// +optional
	State State `json:"state,omitempty"`
	// PublishedNodeName is where the volume is mounted now.
	// +optional
	PublishedNodeName string `json:"publishedNode,omitempty"`
	// +optional
	AllocatedCapacityBytes int64 `json:"allocatedCapacityBytes,omitempty"`
	// +optional
	UsedCapacityBytes int64 `json:"usedCapacityBytes,omitempty"`
	// Replicas are the names of the LocalVolumeReplicas.
	// +optional
	Replicas []string `json:"replicas,omitempty"`
	// +optional
	PublishedFSType string `json:"fsType,omitempty"`
	// +optional
	PublishedRawBlock bool `json:"rawblock,omitempty"`
	// Message explains the state, especially a failure.
	// +optional
	Message string `json:"message,omitempty"`
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=lv
// +kubebuilder:printcolumn:name="Pool",type=string,JSONPath=`.spec.poolName`
// +kubebuilder:printcolumn:name="Kind",type=string,JSONPath=`.spec.volumeKind`
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.spec.replicaNumber`
// +kubebuilder:printcolumn:name="Capacity",type=integer,format=int64,JSONPath=`.spec.requiredCapacityBytes`
// +kubebuilder:printcolumn:name="Accessibility",type=string,JSONPath=`.spec.accessibility.nodes`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="Resource",type=integer,JSONPath=`.spec.config.resourceID`,priority=1
// +kubebuilder:printcolumn:name="Published",type=string,JSONPath=`.status.publishedNode`
// +kubebuilder:printcolumn:name="PVC",type=string,JSONPath=`.spec.pvcName`
// +kubebuilder:printcolumn:name="Namespace",type=string,JSONPath=`.spec.pvcNamespace`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// LocalVolume is a local volume with one or two replicas. Its name is the
// PV's name and the CSI volume handle.
type LocalVolume struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   LocalVolumeSpec   `json:"spec,omitempty"`
	Status LocalVolumeStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// LocalVolumeList is a list of LocalVolume.
type LocalVolumeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []LocalVolume `json:"items"`
}

func init() {
	SchemeBuilder.Register(&LocalVolume{}, &LocalVolumeList{})
}
