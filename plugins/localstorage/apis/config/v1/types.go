// Package v1 holds the versioned arguments of the LocalStorage plugin, as
// written in a KubeSchedulerConfiguration (kubescheduler.config.k8s.io/v1):
//
//	pluginConfig:
//	- name: LocalStorage
//	  args:
//	    scoringStrategy: {type: binpack}
//	    poolClassWeights: {NVMe: 3}
//
// +kubebuilder:object:generate=true
package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	schedconfigv1 "k8s.io/kube-scheduler/config/v1"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
)

// UtilizationShapePoint is one point of the shape scoring function.
type UtilizationShapePoint struct {
	// Utilization of the pool after placement, in percent (0..100).
	Utilization int32 `json:"utilization"`
	// Score for that utilisation (0..10).
	Score int32 `json:"score"`
}

// ScoringStrategy is the scoring configuration.
type ScoringStrategy struct {
	// Type is spread (default), binpack or shape.
	Type string `json:"type,omitempty"`
	// Shape points, by increasing utilization; used by type shape.
	Shape []UtilizationShapePoint `json:"shape,omitempty"`
}

// +kubebuilder:object:root=true

// LocalStorageArgs are the arguments of the LocalStorage plugin.
type LocalStorageArgs struct {
	metav1.TypeMeta `json:",inline"`

	// ScoringStrategy defaults to {type: spread}.
	ScoringStrategy *ScoringStrategy `json:"scoringStrategy,omitempty"`
	// PoolClassWeights default to 1 for HDD, SSD and NVMe.
	PoolClassWeights map[string]int64 `json:"poolClassWeights,omitempty"`
	// ReservationTTLSeconds defaults to 300.
	ReservationTTLSeconds *int64 `json:"reservationTTLSeconds,omitempty"`
}

// SchemeGroupVersion is kubescheduler.config.k8s.io/v1.
var SchemeGroupVersion = schema.GroupVersion{Group: schedconfig.GroupName, Version: "v1"}

func init() {
	schedconfigv1.SchemeBuilder.Register(func(s *runtime.Scheme) error {
		s.AddKnownTypes(SchemeGroupVersion, &LocalStorageArgs{})
		s.AddTypeDefaultingFunc(&LocalStorageArgs{}, func(o interface{}) { SetDefaults_LocalStorageArgs(o.(*LocalStorageArgs)) })
		return registerConversions(s)
	})
}
