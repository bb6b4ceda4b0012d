package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LocalVolumeReplicaSpec places one copy of a volume on one node.
type LocalVolumeReplicaSpec struct {
	// VolumeName is the LocalVolume this replica belongs to.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.volumeName is immutable"
	VolumeName string `json:"volumeName"`
	// NodeName is the node holding the replica.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.nodeName is immutable: create a new replica to move data"
	NodeName string `json:"nodeName"`
	// PoolName is the pool on that node.
	// +kubebuilder:validation:Enum=LocalStorage_PoolHDD;LocalStorage_PoolSSD;LocalStorage_PoolNVMe
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.poolName is immutable"
	PoolName string `json:"poolName"`
	// RequiredCapacityBytes is the size to allocate; it grows with expansion.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:XValidation:rule="self >= oldSelf",message="spec.requiredCapacityBytes cannot shrink"
	RequiredCapacityBytes int64 `json:"requiredCapacityBytes"`
	// VolumeKind is LVM.
	// +kubebuilder:validation:Enum=LVM
	// +kubebuilder:default=LVM
	// +optional
	VolumeKind string `json:"volumeKind,omitempty"`
	// +optional
	Striped bool `json:"striped,omitempty"`
	// Delete asks the node agent to remove the replica's data.
	// +optional
	Delete bool `json:"delete,omitempty"`
}

// LocalVolumeReplicaStatus is reported by the node agent of spec.nodeName.
type LocalVolumeReplicaStatus struct {
	// +optional
	State State `json:"state,omitempty"`
	// StoragePath is the logical volume path (or emulated backing file).
	// +optional
	StoragePath string `json:"storagePath,omitempty"`
	// DevicePath is the block device the node service formats and mounts.
	// +optional
	DevicePath string `json:"devPath,omitempty"`
	// +optional
	AllocatedCapacityBytes int64 `json:"allocatedCapacityBytes,omitempty"`
	// Synced is true when the replica holds the volume's current data.
	// +optional
	Synced bool `json:"synced,omitempty"`
	// InUse is true while the replica is mounted.
	// +optional
	InUse bool `json:"inuse,omitempty"`
	// Checksum of the replica's data, set after a verified copy.
	// +optional
	Checksum string `json:"checksum,omitempty"`
	// SyncedBytes is how much of the volume a copy into this replica has
	// received so far (a migration's progress).
	// +optional
	SyncedBytes int64 `json:"syncedBytes,omitempty"`
	// +optional
	Message string `json:"message,omitempty"`
	// CapacityRefusal is set while the node agent cannot allocate the new
	// replica because its pool is short (condition Allocated False with
	// reason InsufficientCapacity): the numbers, for CreateVolume to answer
	// ResourceExhausted and move the pod.
	// +optional
	CapacityRefusal *CapacityRefusal `json:"capacityRefusal,omitempty"`
	// DRBD is the replication state of an HA volume's replica, as its node
	// agent reads it from the kernel.
	// +optional
	DRBD *ReplicaDRBDStatus `json:"drbd,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ReplicaDRBDStatus is an HA replica's DRBD state.
type ReplicaDRBDStatus struct {
	// Device is the replicated block device (/dev/drbdN) the volume is
	// staged from.
	// +optional
	Device string `json:"device,omitempty"`
	// Port is the resource's TCP port on this node.
	// +optional
	Port int `json:"port,omitempty"`
	// Role is Primary (the replica the pod uses), Secondary or Unknown.
	// +optional
	Role string `json:"role,omitempty"`
	// DiskState is UpToDate (every acknowledged write), Inconsistent (a
	// resync into it is incomplete), Outdated, Consistent, Diskless...
	// +optional
	DiskState string `json:"diskState,omitempty"`
	// Connection is the link to the peer: Connected, SyncSource,
	// SyncTarget, WFConnection/Connecting, StandAlone...
	// +optional
	Connection string `json:"connection,omitempty"`
	// PeerDiskState is the other replica's disk as this one sees it.
	// +optional
	PeerDiskState string `json:"peerDiskState,omitempty"`
	// InSyncPercent is how much of the device matches the peer (a
	// resync's progress), as text, e.g. "100" or "45.2".
	// +optional
	InSyncPercent string `json:"inSyncPercent,omitempty"`
	// OutOfSyncBytes is what a resync has left to copy.
	// +optional
	OutOfSyncBytes int64 `json:"outOfSyncBytes,omitempty"`
	// MayServe says whether the pod may use this replica: its disk is
	// UpToDate (and, on DRBD 9, it has quorum).
	// +optional
	MayServe bool `json:"mayServe,omitempty"`
	// Message says what the replica waits for before it can replicate.
	// +optional
	Message string `json:"message,omitempty"`
	// SizedBytes is the logical volume size the DRBD device was last
	// sized to (created, or grown with drbdadm resize): while it is
	// below status.allocatedCapacityBytes, the volume's growth has not
	// reached its replicated device yet. 0 when not known.
	// +optional
	SizedBytes int64 `json:"sizedBytes,omitempty"`
	// LeftFor names the migration this replica left the DRBD resource
	// for (hwameistor.io/drbd-leave): the resource is down on this node
	// and the logical volume kept until the migration deletes it.
	// +optional
	LeftFor string `json:"leftFor,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName={lvr,lvrr}
// +kubebuilder:printcolumn:name="Volume",type=string,JSONPath=`.spec.volumeName`
// +kubebuilder:printcolumn:name="Kind",type=string,JSONPath=`.spec.volumeKind`
// +kubebuilder:printcolumn:name="Capacity",type=integer,format=int64,JSONPath=`.spec.requiredCapacityBytes`
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.spec.nodeName`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="Synced",type=boolean,JSONPath=`.status.synced`
// +kubebuilder:printcolumn:name="Device",type=string,JSONPath=`.status.devPath`
// +kubebuilder:printcolumn:name="Role",type=string,JSONPath=`.status.drbd.role`,priority=1
// +kubebuilder:printcolumn:name="Disk",type=string,JSONPath=`.status.drbd.diskState`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// LocalVolumeReplica is one copy of a LocalVolume on one node.
type LocalVolumeReplica struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   LocalVolumeReplicaSpec   `json:"spec,omitempty"`
	Status LocalVolumeReplicaStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// LocalVolumeReplicaList is a list of LocalVolumeReplica.
type LocalVolumeReplicaList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []LocalVolumeReplica `json:"items"`
}

func init() {
	SchemeBuilder.Register(&LocalVolumeReplica{}, &LocalVolumeReplicaList{})
}
