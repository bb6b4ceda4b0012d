package v1

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/runtime"
	schedconfigv1 "k8s.io/kube-scheduler/config/v1"
)

func TestSetDefaultsLocalStorageArgs(t *testing.T) {
	ttl := func(n int64) *int64 { return &n }
	equalWeights := map[string]int64{"HDD": 1, "SSD": 1, "NVMe": 1}
	tests := []struct {
		name string
		in   *LocalStorageArgs
		want *LocalStorageArgs
	}{
		{
			name: "empty args: spread, weights 1, TTL 300, no shape",
			in:   &LocalStorageArgs{},
			want: &LocalStorageArgs{
				ScoringStrategy:       &ScoringStrategy{Type: "spread"},
				PoolClassWeights:      equalWeights,
				ReservationTTLSeconds: ttl(300),
			},
		},
		{
			name: "empty strategy type becomes spread",
			in:   &LocalStorageArgs{ScoringStrategy: &ScoringStrategy{}},
			want: &LocalStorageArgs{ScoringStrategy: &ScoringStrategy{Type: "spread"}, PoolClassWeights: equalWeights, ReservationTTLSeconds: ttl(300)},
		},
		{
			name: "binpack gets no shape",
			in:   &LocalStorageArgs{ScoringStrategy: &ScoringStrategy{Type: "binpack"}},
			want: &LocalStorageArgs{ScoringStrategy: &ScoringStrategy{Type: "binpack"}, PoolClassWeights: equalWeights, ReservationTTLSeconds: ttl(300)},
		},
		{
			name: "shape without points gets the default shape",
			in:   &LocalStorageArgs{ScoringStrategy: &ScoringStrategy{Type: "shape"}},
			want: &LocalStorageArgs{
				ScoringStrategy:       &ScoringStrategy{Type: "shape", Shape: []UtilizationShapePoint{{Utilization: 0, Score: 10}, {Utilization: 100, Score: 0}}},
				PoolClassWeights:      equalWeights,
				ReservationTTLSeconds: ttl(300),
			},
		},
		{
			name: "user's shape, weights and TTL are kept",
			in: &LocalStorageArgs{
				ScoringStrategy:       &ScoringStrategy{Type: "shape", Shape: []UtilizationShapePoint{{Utilization: 50, Score: 10}}},
				PoolClassWeights:      map[string]int64{"NVMe": 3},
				ReservationTTLSeconds: ttl(60),
			},
			want: &LocalStorageArgs{
				ScoringStrategy:       &ScoringStrategy{Type: "shape", Shape: []UtilizationShapePoint{{Utilization: 50, Score: 10}}},
				PoolClassWeights:      map[string]int64{"HDD": 1, "SSD": 1, "NVMe": 3},
				ReservationTTLSeconds: ttl(60),
			},
		},
		{
			name: "an explicit zero weight or TTL is left for validation to reject",
			in:   &LocalStorageArgs{PoolClassWeights: map[string]int64{"HDD": 0}, ReservationTTLSeconds: ttl(0)},
			want: &LocalStorageArgs{
				ScoringStrategy:       &ScoringStrategy{Type: "spread"},
				PoolClassWeights:      map[string]int64{"HDD": 0, "SSD": 1, "NVMe": 1},
				ReservationTTLSeconds: ttl(0),
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.in.DeepCopy()
			SetDefaults_LocalStorageArgs(got)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("defaults (-want +got):\n%s", diff)
			}
			// Defaulting is idempotent.
			again := got.DeepCopy()
			SetDefaults_LocalStorageArgs(again)
			if diff := cmp.Diff(got, again); diff != "" {
				t.Errorf("defaulting twice changed the args (-once +twice):\n%s", diff)
			}
		})
	}
}

func TestDefaultShapeIsNotShared(t *testing.T) {
	a := &LocalStorageArgs{ScoringStrategy: &ScoringStrategy{Type: "shape"}}
	SetDefaults_LocalStorageArgs(a)
	a.ScoringStrategy.Shape[0].Score = 3
	if DefaultShape[0].Score != 10 {
		t.Errorf("changing defaulted args changed DefaultShape: %v", DefaultShape)
	}
}

// TestSchemeDefaults checks the registration: a scheme built from the
// scheduler's v1 builder knows the type and defaults it.
func TestSchemeDefaults(t *testing.T) {
	s := runtime.NewScheme()
	if err := schedconfigv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	gvks, _, err := s.ObjectKinds(&LocalStorageArgs{})
	if err != nil {
		t.Fatal(err)
	}
	if len(gvks) != 1 || gvks[0].GroupVersion() != SchemeGroupVersion || gvks[0].Kind != "LocalStorageArgs" {
		t.Errorf("registered as %v, want kubescheduler.config.k8s.io/v1 LocalStorageArgs", gvks)
	}
	a := &LocalStorageArgs{}
	s.Default(a)
	if a.ScoringStrategy == nil || a.ScoringStrategy.Type != DefaultScoringStrategyType || a.ReservationTTLSeconds == nil || *a.ReservationTTLSeconds != DefaultReservationTTLSeconds {
		t.Errorf("scheme defaulting gave %+v", a)
	}
}
