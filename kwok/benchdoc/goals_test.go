package benchdoc

import (
	"strings"
	"testing"
)

func TestEvaluateGoals(t *testing.T) {
	pair := func(name string, hw, def Run) Pair { return Pair{Scenario: name, HW: hw, Def: def} }
	run := func(scheduler string, rate float64, overcommits int, rssMiB int64, duration float64) Run {
		return Run{Report: synthetic(scheduler, 10, rate, overcommits, rssMiB, duration)}
	}
	missing := Run{Missing: "not run"}
	pairs := []Pair{
		// scale-1k: everything met, exactly at the bounds.
		pair("scale-1k", run(nameHwameistor, 2, 0, 120, 100), run(nameDefault, 2, 5, 100, 100)),
		pair("scale-1k-no-volumes", run(nameHwameistor, 97, 0, 100, 50), run(nameDefault, 100, 0, 100, 50)),
		// scale-5k: nothing met.
		pair("scale-5k", run(nameHwameistor, 1, 2, 121, 201), run(nameDefault, 2, 0, 100, 100)),
		pair("scale-5k-no-volumes", run(nameHwameistor, 96, 0, 100, 100), missing),
	}
	type key struct{ goal, scenario string }
	want := map[key]string{
		{"overcommits (hwameistor-scheduler)", "scale-1k"}:                     Met,
		{"scheduling pods/s, hwameistor / default", "scale-1k"}:                Met,
		{"end-to-end pods/s, hwameistor / default", "scale-1k"}:                Met,
		{"scheduling pods/s, hwameistor / default", "scale-1k-no-volumes"}:     Met,
		{"end-to-end pods/s, hwameistor / default", "scale-1k-no-volumes"}:     Met,
		{"scheduler peak RSS, hwameistor / default", "scale-1k"}:               Met,
		{"overcommits (hwameistor-scheduler)", "scale-5k"}:                     NotMet,
		{"scheduling pods/s, hwameistor / default", "scale-5k"}:                NotMet,
		{"end-to-end pods/s, hwameistor / default", "scale-5k"}:                NotMet,
		{"scheduling pods/s, hwameistor / default", "scale-5k-no-volumes"}:     NotMeasured,
		{"end-to-end pods/s, hwameistor / default", "scale-5k-no-volumes"}:     NotMeasured,
		{"scheduler peak RSS, hwameistor / default", "scale-5k"}:               NotMet,
		{"duration with volumes / without (hwameistor-scheduler)", "scale-5k"}: NotMet,
	}
	got := EvaluateGoals(pairs)
	if len(got) != len(want) {
		t.Errorf("%d goals, want %d", len(got), len(want))
	}
	for _, r := range got {
		w, ok := want[key{r.Goal, r.Scenario}]
		if !ok {
			t.Errorf("unexpected goal %q on %s", r.Goal, r.Scenario)
			continue
		}
		if r.Status != w {
			t.Errorf("%s on %s: %s (measured %s, target %s), want %s", r.Goal, r.Scenario, r.Status, r.Measured, r.Target, w)
		}
	}

	for _, r := range EvaluateGoals(nil) {
		if r.Status != NotMeasured || r.Measured != "-" {
			t.Errorf("%s on %s without reports: %s %q, want not measured", r.Goal, r.Scenario, r.Status, r.Measured)
		}
	}
}

func TestGoalDetails(t *testing.T) {
	pairs := []Pair{{Scenario: "scale-1k",
		HW:  Run{Report: synthetic(nameHwameistor, 10, 2.32, 0, 645, 856)},
		Def: Run{Report: synthetic(nameDefault, 10, 1.2, 38, 419, 864)}}}
	want := map[string]string{
		"overcommits (hwameistor-scheduler)":       "0 (default-scheduler: 38)",
		"scheduling pods/s, hwameistor / default":  "1.93 (2.32 / 1.2)",
		"scheduler peak RSS, hwameistor / default": "1.54 (645 / 419 MiB)",
	}
	for _, r := range EvaluateGoals(pairs) {
		if w, ok := want[r.Goal]; ok && r.Scenario == "scale-1k" && r.Measured != w {
			t.Errorf("%s: measured %q, want %q", r.Goal, r.Measured, w)
		}
	}
}

func TestRatioDetail(t *testing.T) {
	cases := []struct {
		a, b   float64
		detail string
		ok     bool
	}{
		{2, 1, "2.00 (2 / 1)", true},
		{1, 0, "inf (1 / 0)", true},
		{0, 0, "", false},
	}
	for _, c := range cases {
		_, d, ok := ratioDetail(c.a, c.b)
		if d != c.detail || ok != c.ok {
			t.Errorf("ratioDetail(%v, %v) = %q %v, want %q %v", c.a, c.b, d, ok, c.detail, c.ok)
		}
	}
}

// TestDurationGoalOfAnUnfinishedRun: a run cut short by a --timeout window
// has no time to all Running, so its short duration must not pass the goal.
func TestDurationGoalOfAnUnfinishedRun(t *testing.T) {
	partial := synthetic(nameHwameistor, 5, 1, 0, 100, 150)
	twin := synthetic(nameHwameistor, 10, 100, 0, 100, 100)
	pairs := []Pair{{Scenario: "scale-5k", HW: Run{Report: partial}}, {Scenario: "scale-5k-no-volumes", HW: Run{Report: twin}}}
	for _, r := range EvaluateGoals(pairs) {
		if r.Goal != "duration with volumes / without (hwameistor-scheduler)" {
			continue
		}
		if r.Status != NotMet || !strings.Contains(r.Measured, "5 of 10 pods Running") {
			t.Errorf("unfinished run: %s %q, want not met naming the pods Running", r.Status, r.Measured)
		}
		return
	}
	t.Fatal("no duration goal")
}
