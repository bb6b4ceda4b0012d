package validation

import (
	"strings"
	"testing"

	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"hwameistor.io/local/plugins/localstorage/apis/config"
)

func validArgs() *config.LocalStorageArgs {
	return &config.LocalStorageArgs{
		ScoringStrategy:       config.ScoringStrategy{Type: config.Spread},
		PoolClassWeights:      map[string]int64{"HDD": 1, "SSD": 1, "NVMe": 1},
		ReservationTTLSeconds: 300,
	}
}

func TestValidateLocalStorageArgs(t *testing.T) {
	shape := func(points ...config.UtilizationShapePoint) config.ScoringStrategy {
		return config.ScoringStrategy{Type: config.Shape, Shape: points}
	}
	pt := func(u, s int32) config.UtilizationShapePoint {
		return config.UtilizationShapePoint{Utilization: u, Score: s}
	}
	tests := []struct {
		name   string
		modify func(a *config.LocalStorageArgs)
		// wantErrs are "field: substring" of each expected error, in order.
		wantErrs []string
	}{
		{name: "defaults", modify: func(*config.LocalStorageArgs) {}},
		{name: "binpack", modify: func(a *config.LocalStorageArgs) { a.ScoringStrategy.Type = config.Binpack }},
		{name: "shape", modify: func(a *config.LocalStorageArgs) { a.ScoringStrategy = shape(pt(0, 0), pt(50, 10), pt(100, 0)) }},
		{name: "weights at the limits", modify: func(a *config.LocalStorageArgs) { a.PoolClassWeights = map[string]int64{"HDD": 1, "NVMe": 100} }},
		{name: "no weights", modify: func(a *config.LocalStorageArgs) { a.PoolClassWeights = nil }},
		{
			name:     "unknown type",
			modify:   func(a *config.LocalStorageArgs) { a.ScoringStrategy.Type = "wrong" },
			wantErrs: []string{`args.scoringStrategy.type: Unsupported value: "wrong": supported values: "spread", "binpack", "shape"`},
		},
		{
			name:     "empty type",
			modify:   func(a *config.LocalStorageArgs) { a.ScoringStrategy.Type = "" },
			wantErrs: []string{`args.scoringStrategy.type: Unsupported value: ""`},
		},
		{
			name:     "shape points with a type that does not use them",
			modify:   func(a *config.LocalStorageArgs) { a.ScoringStrategy.Shape = []config.UtilizationShapePoint{pt(0, 10)} },
			wantErrs: []string{"args.scoringStrategy.shape: Invalid value: 1: only used with type shape"},
		},
		{
			name:     "shape without points",
			modify:   func(a *config.LocalStorageArgs) { a.ScoringStrategy = shape() },
			wantErrs: []string{"args.scoringStrategy.shape: Required value"},
		},
		{
			name:     "shape with decreasing utilization",
			modify:   func(a *config.LocalStorageArgs) { a.ScoringStrategy = shape(pt(50, 10), pt(20, 0)) },
			wantErrs: []string{"args.scoringStrategy.shape[1].utilization: Invalid value: 20: must be greater than the previous point's"},
		},
		{
			name:     "shape with a repeated utilization",
			modify:   func(a *config.LocalStorageArgs) { a.ScoringStrategy = shape(pt(50, 10), pt(50, 0)) },
			wantErrs: []string{"args.scoringStrategy.shape[1].utilization: Invalid value: 50"},
		},
		{
			name:     "shape score 11",
			modify:   func(a *config.LocalStorageArgs) { a.ScoringStrategy = shape(pt(0, 11)) },
			wantErrs: []string{"args.scoringStrategy.shape[0].score: Invalid value: 11: must be between 0 and 10"},
		},
		{
			name:   "shape utilization and score out of range",
			modify: func(a *config.LocalStorageArgs) { a.ScoringStrategy = shape(pt(-1, 5), pt(101, -1)) },
			wantErrs: []string{
				"args.scoringStrategy.shape[0].utilization: Invalid value: -1: must be between 0 and 100",
				"args.scoringStrategy.shape[1].utilization: Invalid value: 101",
				"args.scoringStrategy.shape[1].score: Invalid value: -1",
			},
		},
		{
			name:     "weight 0",
			modify:   func(a *config.LocalStorageArgs) { a.PoolClassWeights["SSD"] = 0 },
			wantErrs: []string{"args.poolClassWeights[SSD]: Invalid value: 0: must be between 1 and 100"},
		},
		{
			name:     "weight 101",
			modify:   func(a *config.LocalStorageArgs) { a.PoolClassWeights["HDD"] = 101 },
			wantErrs: []string{"args.poolClassWeights[HDD]: Invalid value: 101"},
		},
		{
			name:     "unknown class",
			modify:   func(a *config.LocalStorageArgs) { a.PoolClassWeights["TAPE"] = 1 },
			wantErrs: []string{`args.poolClassWeights[TAPE]: Unsupported value: "TAPE": supported values: "HDD", "SSD", "NVMe"`},
		},
		{
			name:     "class names are case sensitive",
			modify:   func(a *config.LocalStorageArgs) { a.PoolClassWeights = map[string]int64{"nvme": 2} },
			wantErrs: []string{`args.poolClassWeights[nvme]: Unsupported value: "nvme"`},
		},
		{
			name:     "TTL 0",
			modify:   func(a *config.LocalStorageArgs) { a.ReservationTTLSeconds = 0 },
			wantErrs: []string{"args.reservationTTLSeconds: Invalid value: 0: must be at least 1"},
		},
		{
			name: "every problem at once",
			modify: func(a *config.LocalStorageArgs) {
				a.ScoringStrategy.Type = "wrong"
				a.PoolClassWeights = map[string]int64{"HDD": 0}
				a.ReservationTTLSeconds = -5
			},
			wantErrs: []string{"args.scoringStrategy.type", "args.poolClassWeights[HDD]", "args.reservationTTLSeconds: Invalid value: -5"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := validArgs()
			tc.modify(args)
			err := ValidateLocalStorageArgs(field.NewPath("args"), args)
			if len(tc.wantErrs) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.wantErrs)
			}
			agg, ok := err.(utilerrors.Aggregate)
			if !ok {
				t.Fatalf("error %T is not an aggregate", err)
			}
			if len(agg.Errors()) != len(tc.wantErrs) {
				t.Errorf("%d errors, want %d: %v", len(agg.Errors()), len(tc.wantErrs), err)
			}
			for i, want := range tc.wantErrs {
				if i < len(agg.Errors()) && !strings.Contains(agg.Errors()[i].Error(), want) {
					t.Errorf("error %d is %q, want it to contain %q", i, agg.Errors()[i], want)
				}
			}
		})
	}
}

func TestValidationUsesTheGivenPath(t *testing.T) {
	args := validArgs()
	args.ReservationTTLSeconds = 0
	err := ValidateLocalStorageArgs(field.NewPath("profiles").Index(0).Child("pluginConfig").Index(2).Child("args"), args)
	if err == nil || !strings.Contains(err.Error(), "profiles[0].pluginConfig[2].args.reservationTTLSeconds") {
		t.Errorf("error %v does not name the full path", err)
	}
}
