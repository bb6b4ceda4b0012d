package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LocalVolumeMigrateSpec asks to move a volume (or its whole group) off a node.
// +kubebuilder:validation:XValidation:rule="!has(self.sourceNodesNames)",message="spec.sourceNodesNames is not supported: use spec.sourceNode"
// +kubebuilder:validation:XValidation:rule="!has(self.targetNodesNames)",message="spec.targetNodesNames is not supported: use spec.targetNodesSuggested"
// +kubebuilder:validation:XValidation:rule="!has(self.targetNodesSuggested) || !(self.sourceNode in self.targetNodesSuggested)",message="spec.targetNodesSuggested must not contain spec.sourceNode"
type LocalVolumeMigrateSpec struct {
	// SourceNode holds the replica to move away.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.sourceNode is immutable"
	SourceNode string `json:"sourceNode"`
	// TargetNodesSuggested narrows the choice of target; empty lets the
	// controller pick with the scheduler's placement rules.
	// +optional
	TargetNodesSuggested []string `json:"targetNodesSuggested,omitempty"`
	// VolumeName is the LocalVolume to move.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.volumeName is immutable"
	VolumeName string `json:"volumeName"`
	// MigrateAllVols moves every volume of the volume's group with it.
	// +optional
	MigrateAllVols bool `json:"migrateAllVols,omitempty"`
	// Abort stops the migration and rolls it back, unless the source replica
	// is already being pruned.
	// +optional
	Abort bool `json:"abort,omitempty"`

	// SourceNodesNames is an older documented spelling; it is rejected with a
	// message naming spec.sourceNode.
	// +optional
	SourceNodesNames []string `json:"sourceNodesNames,omitempty"`
	// TargetNodesNames is an older documented spelling; it is rejected with a
	// message naming spec.targetNodesSuggested.
	// +optional
	TargetNodesNames []string `json:"targetNodesNames,omitempty"`
}

// LocalVolumeMigrateStatus reports progress.
type LocalVolumeMigrateStatus struct {
	// State is Submitted, AddReplica, SyncReplica, PruneReplica, Completed,
	// Failed, Aborting or Aborted.
	// +optional
	State State `json:"state,omitempty"`
	// TargetNode is the node chosen to receive the replica.
	// +optional
	TargetNode string `json:"targetNode,omitempty"`
	// Message explains the state.
	// +optional
	Message string `json:"message,omitempty"`
	// ReplicaNumber is the volume's replica count when the migration started.
	// +optional
	ReplicaNumber int64 `json:"replicaNumber,omitempty"`
	// Volumes moved by this migration (the whole group when migrateAllVols).
	// +optional
	Volumes []string `json:"volumes,omitempty"`
	// BytesCopied and TotalBytes measure the data copy.
	// +optional
	BytesCopied int64 `json:"bytesCopied,omitempty"`
	// +optional
	TotalBytes int64 `json:"totalBytes,omitempty"`
	// Progress is BytesCopied/TotalBytes as a percentage string, e.g. "40%".
	// +optional
	Progress string `json:"progress,omitempty"`
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName={lvmigrate,lvmmigrate}
// +kubebuilder:printcolumn:name="Volume",type=string,JSONPath=`.spec.volumeName`
// +kubebuilder:printcolumn:name="Source",type=string,JSONPath=`.spec.sourceNode`
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.status.targetNode`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="Progress",type=string,JSONPath=`.status.progress`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// LocalVolumeMigrate moves a volume's replica from one node to another,
// copying and verifying its data.
type LocalVolumeMigrate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   LocalVolumeMigrateSpec   `json:"spec,omitempty"`
	Status LocalVolumeMigrateStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// LocalVolumeMigrateList is a list of LocalVolumeMigrate.
type LocalVolumeMigrateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []LocalVolumeMigrate `json:"items"`
}

func init() {
	SchemeBuilder.Register(&LocalVolumeMigrate{}, &LocalVolumeMigrateList{})
}
