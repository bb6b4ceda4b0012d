// Package config holds the internal type of the LocalStorage plugin's
// arguments. Users write the versioned type (package v1) in their
// KubeSchedulerConfiguration; the scheduler defaults it, converts it to this
// type and the plugin validates it in New.
//
// +kubebuilder:object:generate=true
package config

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
)

// ScoringStrategyType selects how free pool space turns into a node score.
type ScoringStrategyType string

const (
	// Spread prefers the node with the most free space after placement.
	Spread ScoringStrategyType = "spread"
	// Binpack prefers the node with the least free space after placement.
	Binpack ScoringStrategyType = "binpack"
	// Shape maps pool utilisation after placement through a broken-linear
	// function, as the in-tree VolumeBinding plugin does.
	Shape ScoringStrategyType = "shape"
)

// UtilizationShapePoint is one point of the Shape function: utilisation in
// percent (0..100) and the score (0..10) it earns.
type UtilizationShapePoint struct {
	Utilization int32
	Score       int32
}

// ScoringStrategy is the scoring configuration.
type ScoringStrategy struct {
	Type ScoringStrategyType
	// Shape is used when Type is shape; points sorted by Utilization.
	Shape []UtilizationShapePoint
}

// +kubebuilder:object:root=true

// LocalStorageArgs are the arguments of the LocalStorage plugin.
type LocalStorageArgs struct {
	metav1.TypeMeta

	// ScoringStrategy turns pool utilisation into a score.
	ScoringStrategy ScoringStrategy
	// PoolClassWeights weighs each pool class (HDD, SSD, NVMe) when a pod
	// uses several pools: a pool's utilisation counts in proportion to its
	// weight times the bytes requested from it.
	PoolClassWeights map[string]int64
	// ReservationTTLSeconds bounds how long an in-flight reservation that was
	// never persisted (Reserve without PreBind) holds capacity.
	ReservationTTLSeconds int64
}

// SchemeGroupVersion is the internal version of the scheduler's config group.
var SchemeGroupVersion = schema.GroupVersion{Group: schedconfig.GroupName, Version: runtime.APIVersionInternal}

func init() {
	// Registered into the scheduler's own builder, so every scheme the
	// scheduler builds from it (including its plugin-args conversion scheme)
	// knows the type.
	schedconfig.SchemeBuilder.Register(func(s *runtime.Scheme) error {
		s.AddKnownTypes(SchemeGroupVersion, &LocalStorageArgs{})
		return nil
	})
}
