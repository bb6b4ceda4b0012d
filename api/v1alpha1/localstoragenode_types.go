package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LocalStorageNodeSpec names the node and where replica traffic goes.
type LocalStorageNodeSpec struct {
	// Hostname is the Kubernetes node name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.hostname is immutable"
	Hostname string `json:"hostname"`

	// StorageIP is the address node agents use to copy volume data to this node.
	// +optional
	StorageIP string `json:"storageIP,omitempty"`

	// Topo is the node's place in the cluster. The JSON name keeps
	// HwameiStor's spelling ("topogoly") for compatibility.
	// +optional
	Topo Topology `json:"topogoly,omitempty"`
}

// Topology is a node's region and zone.
type Topology struct {
	// +optional
	Region string `json:"region,omitempty"`
	// +optional
	Zone string `json:"zone,omitempty"`
}

// LocalStorageNodeStatus reports the node's pools as the node agent sees them.
type LocalStorageNodeStatus struct {
	// State is Ready when the node agent serves the node and it takes volumes.
	// +optional
	State State `json:"state,omitempty"`

	// Pools is keyed by pool name (LocalStorage_PoolHDD, _PoolSSD, _PoolNVMe).
	// +optional
	// +kubebuilder:validation:XValidation:rule="self.all(k, k in ['LocalStorage_PoolHDD', 'LocalStorage_PoolSSD', 'LocalStorage_PoolNVMe'])",message="status.pools keys must be LocalStorage_PoolHDD, LocalStorage_PoolSSD or LocalStorage_PoolNVMe"
	Pools map[string]LocalPool `json:"pools,omitempty"`

	// PoolClasses summarises the classes of Pools, e.g. "HDD,NVMe", for
	// `kubectl get lsn`.
	// +optional
	PoolClasses string `json:"poolClasses,omitempty"`
	// TotalCapacityBytes and FreeCapacityBytes sum every pool, for
	// `kubectl get lsn`.
	// +optional
	TotalCapacityBytes int64 `json:"totalCapacityBytes,omitempty"`
	// +optional
	FreeCapacityBytes int64 `json:"freeCapacityBytes,omitempty"`

	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// LocalPool is one pool (a volume group) of a node. Free = total - used.
// +kubebuilder:validation:XValidation:rule="self.usedCapacityBytes <= self.totalCapacityBytes",message="usedCapacityBytes must not exceed totalCapacityBytes"
type LocalPool struct {
	// Name equals the pool's key in status.pools.
	Name string `json:"name"`
	// Class is the media of the pool.
	Class PoolClass `json:"class"`
	// Type is REGULAR (thick logical volumes).
	// +kubebuilder:validation:Enum=REGULAR
	// +kubebuilder:default=REGULAR
	Type string `json:"type"`

	// +kubebuilder:validation:Minimum=0
	TotalCapacityBytes int64 `json:"totalCapacityBytes"`
	// +kubebuilder:validation:Minimum=0
	UsedCapacityBytes int64 `json:"usedCapacityBytes"`
	// +kubebuilder:validation:Minimum=0
	FreeCapacityBytes int64 `json:"freeCapacityBytes"`
	// VolumeCapacityBytesLimit is the largest volume the pool can hold.
	// +kubebuilder:validation:Minimum=0
	// +optional
	VolumeCapacityBytesLimit int64 `json:"volumeCapacityBytesLimit,omitempty"`

	// +kubebuilder:validation:Minimum=0
	TotalVolumeCount int64 `json:"totalVolumeCount"`
	// +kubebuilder:validation:Minimum=0
	UsedVolumeCount int64 `json:"usedVolumeCount"`
	// +kubebuilder:validation:Minimum=0
	FreeVolumeCount int64 `json:"freeVolumeCount"`

	// ExtentSizeBytes is the allocation unit; volumes are rounded up to it.
	// +optional
	ExtentSizeBytes int64 `json:"extentSizeBytes,omitempty"`

	// Disks back the pool.
	// +optional
	Disks []LocalDevice `json:"disks,omitempty"`
	// Volumes lists the LocalVolume names with a replica in this pool.
	// +optional
	Volumes []string `json:"volumes,omitempty"`

	// ThinPool is set for thin pools only.
	// +optional
	ThinPool *ThinPoolInfo `json:"thinPool,omitempty"`
}

// LocalDevice is a disk (or, emulated, a backing file) of a pool.
type LocalDevice struct {
	DevPath string `json:"devPath"`
	// +kubebuilder:validation:Minimum=0
	CapacityBytes int64 `json:"capacityBytes"`
	// +optional
	Type string `json:"type,omitempty"`
	// +optional
	State string `json:"state,omitempty"`
}

// ThinPoolInfo describes a thin pool. OverProvisionRatio is a decimal string.
type ThinPoolInfo struct {
	// +optional
	Size int64 `json:"size,omitempty"`
	// +optional
	OverProvisionRatio string `json:"overProvisionRatio,omitempty"`
	// +optional
	TotalProvisionedSize int64 `json:"totalProvisionedSize,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=lsn
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.spec.hostname`
// +kubebuilder:printcolumn:name="IP",type=string,JSONPath=`.spec.storageIP`
// +kubebuilder:printcolumn:name="Zone",type=string,JSONPath=`.spec.topogoly.zone`
// +kubebuilder:printcolumn:name="Pools",type=string,JSONPath=`.status.poolClasses`
// +kubebuilder:printcolumn:name="Free",type=integer,format=int64,JSONPath=`.status.freeCapacityBytes`
// +kubebuilder:printcolumn:name="Total",type=integer,format=int64,JSONPath=`.status.totalCapacityBytes`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// LocalStorageNode is one node's local storage: its pools, their capacity and
// the volumes they hold. Its name is the Node's name.
type LocalStorageNode struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   LocalStorageNodeSpec   `json:"spec,omitempty"`
	Status LocalStorageNodeStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// LocalStorageNodeList is a list of LocalStorageNode.
type LocalStorageNodeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []LocalStorageNode `json:"items"`
}

func init() {
	SchemeBuilder.Register(&LocalStorageNode{}, &LocalStorageNodeList{})
}
