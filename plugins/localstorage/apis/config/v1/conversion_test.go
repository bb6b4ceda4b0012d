package v1

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/runtime"
	schedconfigv1 "k8s.io/kube-scheduler/config/v1"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"

	"hwameistor.io/local/plugins/localstorage/apis/config"
)

func newScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := schedconfig.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := schedconfigv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConversionRoundTrip(t *testing.T) {
	ttl := int64(120)
	tests := []struct {
		name         string
		versioned    *LocalStorageArgs
		wantInternal *config.LocalStorageArgs
	}{
		{
			name:      "defaults",
			versioned: &LocalStorageArgs{},
			wantInternal: &config.LocalStorageArgs{
				ScoringStrategy:       config.ScoringStrategy{Type: config.Spread},
				PoolClassWeights:      map[string]int64{"HDD": 1, "SSD": 1, "NVMe": 1},
				ReservationTTLSeconds: 300,
			},
		},
		{
			name: "shape with weights and TTL",
			versioned: &LocalStorageArgs{
				ScoringStrategy:       &ScoringStrategy{Type: "shape", Shape: []UtilizationShapePoint{{Utilization: 0, Score: 0}, {Utilization: 70, Score: 10}, {Utilization: 100, Score: 2}}},
				PoolClassWeights:      map[string]int64{"HDD": 1, "SSD": 2, "NVMe": 4},
				ReservationTTLSeconds: &ttl,
			},
			wantInternal: &config.LocalStorageArgs{
				ScoringStrategy: config.ScoringStrategy{Type: config.Shape, Shape: []config.UtilizationShapePoint{
					{Utilization: 0, Score: 0}, {Utilization: 70, Score: 10}, {Utilization: 100, Score: 2},
				}},
				PoolClassWeights:      map[string]int64{"HDD": 1, "SSD": 2, "NVMe": 4},
				ReservationTTLSeconds: 120,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newScheme(t)
			in := tc.versioned.DeepCopy()
			s.Default(in)
			internal := &config.LocalStorageArgs{}
			if err := s.Convert(in, internal, nil); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantInternal, internal); diff != "" {
				t.Errorf("to internal (-want +got):\n%s", diff)
			}
			back := &LocalStorageArgs{}
			if err := s.Convert(internal, back, nil); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(in, back); diff != "" {
				t.Errorf("round trip (-defaulted +back):\n%s", diff)
			}
			// The copies share no memory with their source.
			internal.PoolClassWeights["HDD"] = 99
			if len(internal.ScoringStrategy.Shape) > 0 {
				internal.ScoringStrategy.Shape[0].Score = 9
			}
			if in.PoolClassWeights["HDD"] == 99 || back.PoolClassWeights["HDD"] == 99 {
				t.Error("converted weights alias the source map")
			}
			if len(back.ScoringStrategy.Shape) > 0 && back.ScoringStrategy.Shape[0].Score == 9 {
				t.Error("converted shape aliases the source slice")
			}
		})
	}
}

func TestConvertToInternalWithoutDefaults(t *testing.T) {
	// Conversion must not panic on args defaulting never saw; validation
	// then reports the empty type and TTL.
	out := &config.LocalStorageArgs{}
	if err := ConvertToInternal(&LocalStorageArgs{}, out); err != nil {
		t.Fatal(err)
	}
	want := &config.LocalStorageArgs{PoolClassWeights: map[string]int64{}}
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
