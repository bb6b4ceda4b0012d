package v1

import (
	"k8s.io/apimachinery/pkg/conversion"
	"k8s.io/apimachinery/pkg/runtime"

	"hwameistor.io/local/plugins/localstorage/apis/config"
)

// registerConversions adds the two conversion functions between this version
// and the internal type. They are written by hand: the types are small and
// differ only in pointers.
func registerConversions(s *runtime.Scheme) error {
	if err := s.AddConversionFunc((*LocalStorageArgs)(nil), (*config.LocalStorageArgs)(nil), func(a, b interface{}, _ conversion.Scope) error {
		return ConvertToInternal(a.(*LocalStorageArgs), b.(*config.LocalStorageArgs))
	}); err != nil {
		return err
	}
	return s.AddConversionFunc((*config.LocalStorageArgs)(nil), (*LocalStorageArgs)(nil), func(a, b interface{}, _ conversion.Scope) error {
		ConvertFromInternal(a.(*config.LocalStorageArgs), b.(*LocalStorageArgs))
		return nil
	})
}

// ConvertToInternal converts defaulted versioned args to the internal type.
func ConvertToInternal(in *LocalStorageArgs, out *config.LocalStorageArgs) error {
	out.PoolClassWeights = make(map[string]int64, len(in.PoolClassWeights))
	for k, v := range in.PoolClassWeights {
		out.PoolClassWeights[k] = v
	}
	if in.ReservationTTLSeconds != nil {
		out.ReservationTTLSeconds = *in.ReservationTTLSeconds
	}
	out.ScoringStrategy = config.ScoringStrategy{}
	if in.ScoringStrategy != nil {
		out.ScoringStrategy.Type = config.ScoringStrategyType(in.ScoringStrategy.Type)
		for _, p := range in.ScoringStrategy.Shape {
			out.ScoringStrategy.Shape = append(out.ScoringStrategy.Shape, config.UtilizationShapePoint{Utilization: p.Utilization, Score: p.Score})
		}
	}
	return nil
}

// ConvertFromInternal converts internal args to this version.
func ConvertFromInternal(in *config.LocalStorageArgs, out *LocalStorageArgs) {
	out.PoolClassWeights = make(map[string]int64, len(in.PoolClassWeights))
	for k, v := range in.PoolClassWeights {
		out.PoolClassWeights[k] = v
	}
	ttl := in.ReservationTTLSeconds
	out.ReservationTTLSeconds = &ttl
	out.ScoringStrategy = &ScoringStrategy{Type: string(in.ScoringStrategy.Type)}
	for _, p := range in.ScoringStrategy.Shape {
		out.ScoringStrategy.Shape = append(out.ScoringStrategy.Shape, UtilizationShapePoint{Utilization: p.Utilization, Score: p.Score})
	}
}
