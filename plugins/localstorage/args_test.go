package localstorage

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"

	"hwameistor.io/local/internal/placement"
	"hwameistor.io/local/plugins/localstorage/apis/config"
)

func TestGetArgs(t *testing.T) {
	valid := defaultArgs()
	tests := []struct {
		name    string
		obj     runtime.Object
		wantErr []string // substrings; none means success
	}{
		{name: "valid args", obj: valid},
		{name: "no args", obj: nil, wantErr: []string{"LocalStorage: no args"}},
		{name: "args of another plugin", obj: &schedconfig.VolumeBindingArgs{}, wantErr: []string{"want args of type LocalStorageArgs", "*config.VolumeBindingArgs"}},
		{name: "unknown scoring strategy", obj: withStrategy(config.ScoringStrategy{Type: "wrong"}), wantErr: []string{"LocalStorage: invalid args", "args.scoringStrategy.type", `"wrong"`}},
		{name: "TTL zero", obj: func() *config.LocalStorageArgs { a := defaultArgs(); a.ReservationTTLSeconds = 0; return a }(), wantErr: []string{"args.reservationTTLSeconds"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args, err := getArgs(tc.obj)
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if args != tc.obj {
					t.Errorf("getArgs returned %v, want the object itself", args)
				}
				return
			}
			if err == nil {
				t.Fatalf("getArgs succeeded, want an error with %q", tc.wantErr)
			}
			for _, s := range tc.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			// New validates before it touches the handle or the API server.
			if _, err := New(context.Background(), tc.obj, nil); err == nil || !strings.Contains(err.Error(), tc.wantErr[0]) {
				t.Errorf("New: %v, want an error with %q", err, tc.wantErr[0])
			}
		})
	}
}

func TestNewPluginRejectsAnUnknownStrategy(t *testing.T) {
	// Validation stops this earlier; newPlugin must not build a plugin
	// without a scorer if it is ever bypassed.
	_, err := newPlugin(withStrategy(config.ScoringStrategy{Type: "wrong"}), &fakeHandle{}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), `unknown scoring strategy "wrong"`) {
		t.Errorf("newPlugin: %v", err)
	}
}

func TestPoolWeightsDefaultToOne(t *testing.T) {
	args := defaultArgs()
	args.PoolClassWeights = map[string]int64{"NVMe": 5}
	e := newTestEnv(t, args)
	want := [placement.NumPools]int64{placement.PoolHDD: 1, placement.PoolSSD: 1, placement.PoolNVMe: 5}
	if e.pl.weights != want {
		t.Errorf("weights %v, want %v", e.pl.weights, want)
	}
}

func TestScorers(t *testing.T) {
	shape := config.ScoringStrategy{Type: config.Shape, Shape: []config.UtilizationShapePoint{{Utilization: 20, Score: 10}, {Utilization: 80, Score: 0}}}
	tests := []struct {
		strategy config.ScoringStrategy
		u        float64
		want     int64
	}{
		{config.ScoringStrategy{Type: config.Spread}, 0, scoreScale},
		{config.ScoringStrategy{Type: config.Spread}, 0.25, 7500},
		{config.ScoringStrategy{Type: config.Spread}, 1, 0},
		{config.ScoringStrategy{Type: config.Binpack}, 0, 0},
		{config.ScoringStrategy{Type: config.Binpack}, 0.25, 2500},
		{config.ScoringStrategy{Type: config.Binpack}, 1, scoreScale},
		{shape, 0, scoreScale},       // flat before the first point
		{shape, 0.5, scoreScale / 2}, // halfway down the slope
		{shape, 0.9, 0},              // flat after the last point
	}
	for _, tc := range tests {
		f, err := newScorer(tc.strategy)
		if err != nil {
			t.Fatal(err)
		}
		if got := f(tc.u); got != tc.want {
			t.Errorf("%s scorer(%v) = %d, want %d", tc.strategy.Type, tc.u, got, tc.want)
		}
	}
}

// TestScoresRoundToNearest: 44% free after placement must score 44, not 43.
func TestScoresRoundToNearest(t *testing.T) {
	for _, tc := range []struct {
		strategy config.ScoringStrategyType
		u        float64
		want     int64
	}{
		{config.Spread, 0.56, 4400},
		{config.Binpack, 0.29, 2900},
	} {
		f, err := newScorer(config.ScoringStrategy{Type: tc.strategy})
		if err != nil {
			t.Fatal(err)
		}
		if got := f(tc.u); got != tc.want {
			t.Errorf("%s scorer(%v) = %d, want %d", tc.strategy, tc.u, got, tc.want)
		}
	}
}
