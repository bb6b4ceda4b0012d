package localstorage

import (
	"context"
	"fmt"
	"math"

	corev1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/helper"

	"hwameistor.io/local/plugins/localstorage/apis/config"
)

// scoreScale is the raw score resolution: Score returns 0..scoreScale and
// NormalizeScore brings it to 0..MaxNodeScore.
const scoreScale = 100 * framework.MaxNodeScore

// scorer maps the utilisation (0..1) of the pod's pools after placement to a
// raw score in 0..scoreScale.
type scorer func(utilization float64) int64

func newScorer(s config.ScoringStrategy) (scorer, error) {
	switch s.Type {
	case config.Spread, "":
		return func(u float64) int64 { return int64(math.Round((1 - u) * float64(scoreScale))) }, nil
	case config.Binpack:
		return func(u float64) int64 { return int64(math.Round(u * float64(scoreScale))) }, nil
	case config.Shape:
		shape := make(helper.FunctionShape, 0, len(s.Shape))
		for _, p := range s.Shape {
			// Points are percent -> 0..10; the helper works in the same
			// units as its output, so scale scores to 0..scoreScale.
			shape = append(shape, helper.FunctionShapePoint{Utilization: int64(p.Utilization), Score: int64(p.Score) * scoreScale / 10})
		}
		f := helper.BuildBrokenLinearFunction(shape)
		return func(u float64) int64 { return f(int64(u * 100)) }, nil
	}
	return nil, fmt.Errorf("%s: unknown scoring strategy %q", Name, s.Type)
}

// PreScore skips scoring for pods whose volumes all exist already: their
// nodes are fixed and capacity does not change.
func (pl *LocalStorage) PreScore(_ context.Context, cs fwk.CycleState, _ *corev1.Pod, _ []fwk.NodeInfo) *fwk.Status {
	s, err := optionalState(cs)
	if err != nil {
		return fwk.AsStatus(err)
	}
	if s == nil || len(s.vols) == 0 {
		return fwk.NewStatus(fwk.Skip)
	}
	return nil
}

// Score rates a node by the utilisation of the pod's pools after placing its
// new volumes there, through the configured strategy.
func (pl *LocalStorage) Score(_ context.Context, cs fwk.CycleState, _ *corev1.Pod, ni fwk.NodeInfo) (int64, *fwk.Status) {
	s, err := getState(cs)
	if err != nil {
		return 0, fwk.AsStatus(err)
	}
	u, ok := pl.cache.Utilization(ni.Node().Name, s.vols, &pl.weights)
	if !ok {
		return 0, nil
	}
	return pl.score(u), nil
}

// ScoreExtensions returns the plugin itself for NormalizeScore.
func (pl *LocalStorage) ScoreExtensions() framework.ScoreExtensions { return pl }

// NormalizeScore maps raw scores (0..scoreScale) linearly onto
// 0..MaxNodeScore. It does not stretch them to the best node (as
// DefaultNormalizeScore would): a 1% difference in free space must stay a
// small difference next to the other plugins' scores.
func (pl *LocalStorage) NormalizeScore(_ context.Context, _ fwk.CycleState, _ *corev1.Pod, scores framework.NodeScoreList) *fwk.Status {
	for i := range scores {
		scores[i].Score = scores[i].Score * framework.MaxNodeScore / scoreScale
	}
	return nil
}
