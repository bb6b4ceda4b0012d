package benchdoc

import (
	"fmt"
	"math"
	"strings"

	"hwameistor.io/local/kwok/report"
)

// Goal outcomes.
const (
	Met         = "met"
	NotMet      = "not met"
	NotMeasured = "not measured"
)

// GoalResult is one row of the goals table.
type GoalResult struct {
	Goal, Scenario, Measured, Target, Status string
}

// goal is one of the scale issue's goals: measure returns the value and a
// short explanation, ok false when a report it needs is missing.
type goal struct {
	name, scenario, target string
	measure                func(pairs map[string]Pair) (v float64, detail string, ok bool)
	met                    func(v float64) bool
}

// scaleScenarios are the scenarios the goals are stated for.
var scaleScenarios = []string{"scale-1k", "scale-5k"}

// goals lists the scale issue's goals in the order the table shows them.
func goals() []goal {
	var gs []goal
	for _, s := range scaleScenarios {
		twin := s + "-no-volumes"
		gs = append(gs,
			goal{"overcommits (hwameistor-scheduler)", s, "0", overcommits(s), func(v float64) bool { return v == 0 }},
			goal{"scheduling pods/s, hwameistor / default", s, ">= 1.00", throughputRatio(s, schedulingRate), atLeast(1)},
			goal{"end-to-end pods/s, hwameistor / default", s, ">= 1.00", throughputRatio(s, endToEndRate), atLeast(1)},
			goal{"scheduling pods/s, hwameistor / default", twin, ">= 0.97", throughputRatio(twin, schedulingRate), atLeast(0.97)},
			goal{"end-to-end pods/s, hwameistor / default", twin, ">= 0.97", throughputRatio(twin, endToEndRate), atLeast(0.97)},
			goal{"scheduler peak RSS, hwameistor / default", s, "<= 1.20", rssRatio(s), atMost(1.2)},
		)
	}
	gs = append(gs, goal{"duration with volumes / without (hwameistor-scheduler)", "scale-5k", "<= 2.00", durationRatio("scale-5k"), atMost(2)})
	return gs
}

func atLeast(x float64) func(float64) bool { return func(v float64) bool { return v >= x } }
func atMost(x float64) func(float64) bool  { return func(v float64) bool { return v <= x } }

// EvaluateGoals measures every goal against the pairs found.
func EvaluateGoals(pairs []Pair) []GoalResult {
	byName := map[string]Pair{}
	for _, p := range pairs {
		byName[p.Scenario] = p
	}
	var out []GoalResult
	for _, g := range goals() {
		r := GoalResult{Goal: g.name, Scenario: g.scenario, Target: g.target, Status: NotMeasured, Measured: "-"}
		if v, detail, ok := g.measure(byName); ok {
			r.Measured, r.Status = detail, NotMet
			if g.met(v) {
				r.Status = Met
			}
		}
		out = append(out, r)
	}
	return out
}

// goalTable renders the results.
func goalTable(rs []GoalResult) string {
	t := table{head: []string{"goal", "scenario", "measured", "target", "result"}}
	for _, r := range rs {
		status := r.Status
		switch status {
		case Met:
			status = "**met**"
		case NotMet:
			status = "**not met**"
		}
		t.add(r.Goal, r.Scenario, r.Measured, r.Target, status)
	}
	return t.String()
}

// overcommits is the hwameistor run's count, with the baseline's beside it.
func overcommits(s string) func(map[string]Pair) (float64, string, bool) {
	return func(pairs map[string]Pair) (float64, string, bool) {
		p := pairs[s]
		if p.HW.Report == nil {
			return 0, "", false
		}
		v := float64(p.HW.Report.Overcommits)
		base := "not measured"
		if p.Def.Report != nil {
			base = thousands(int64(p.Def.Report.Overcommits))
		}
		return v, fmt.Sprintf("%s (default-scheduler: %s)", num(v), base), true
	}
}

func schedulingRate(r *report.Report) float64 { return r.Throughput.SchedulingPodsPerSec }
func endToEndRate(r *report.Report) float64   { return r.Throughput.EndToEndPodsPerSec }

// throughputRatio compares a throughput of both runs of s.
func throughputRatio(s string, rate func(*report.Report) float64) func(map[string]Pair) (float64, string, bool) {
	return func(pairs map[string]Pair) (float64, string, bool) {
		p := pairs[s]
		if p.HW.Report == nil || p.Def.Report == nil {
			return 0, "", false
		}
		return ratioDetail(rate(p.HW.Report), rate(p.Def.Report))
	}
}

// rssRatio compares the scheduler process's peak RSS of both runs of s.
func rssRatio(s string) func(map[string]Pair) (float64, string, bool) {
	return func(pairs map[string]Pair) (float64, string, bool) {
		p := pairs[s]
		if p.HW.Report == nil || p.Def.Report == nil {
			return 0, "", false
		}
		a, okA := schedulerRSSMiB(p.HW.Report)
		b, okB := schedulerRSSMiB(p.Def.Report)
		if !okA || !okB {
			return 0, "", false
		}
		v, detail, ok := ratioDetail(a, b)
		return v, strings.Replace(detail, ")", " MiB)", 1), ok
	}
}

// durationRatio compares the hwameistor run of s with that of its twin
// without volumes: what volumes add to the time to settle.
func durationRatio(s string) func(map[string]Pair) (float64, string, bool) {
	return func(pairs map[string]Pair) (float64, string, bool) {
		with, without := pairs[s].HW.Report, pairs[s+"-no-volumes"].HW.Report
		if with == nil || without == nil {
			return 0, "", false
		}
		if with.Pods.Running < with.Pods.Total {
			// A run that ended before every pod ran (a --timeout window)
			// has no time to all Running: its duration would flatter it.
			return math.Inf(1), fmt.Sprintf("%d of %d pods Running when the run ended at %s s (without volumes: all in %s s)",
				with.Pods.Running, with.Pods.Total, num(round2(with.DurationSeconds)), num(round2(without.DurationSeconds))), true
		}
		v, detail, ok := ratioDetail(with.DurationSeconds, without.DurationSeconds)
		return v, strings.Replace(detail, ")", " s)", 1), ok
	}
}

// ratioDetail is a/b with both shown, e.g. "1.93 (2.32 / 1.2)"; 0/0 (a
// figure neither run recorded) cannot be judged.
func ratioDetail(a, b float64) (float64, string, bool) {
	switch {
	case a == 0 && b == 0:
		return 0, "", false
	case b == 0:
		return math.Inf(1), fmt.Sprintf("inf (%s / 0)", num(round2(a))), true
	}
	v := a / b
	return v, fmt.Sprintf("%.2f (%s / %s)", v, num(round2(a)), num(round2(b))), true
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }
