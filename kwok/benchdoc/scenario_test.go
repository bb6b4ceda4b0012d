package benchdoc

import (
	"strings"
	"testing"

	"hwameistor.io/local/kwok/report"
)

// synthetic is a small report: pods placed, throughput, one scheduler
// process, some requests and pending reasons.
func synthetic(scheduler string, running int, rate float64, overcommits int, rssMiB int64, duration float64) *report.Report {
	r := report.New("s", scheduler)
	r.Nodes = 4
	r.Pods = report.Pods{Total: 10, Running: running, Pending: 10 - running, PendingReasons: map[string]int{}}
	r.Overcommits = overcommits
	r.Throughput = report.Throughput{SchedulingPodsPerSec: rate, EndToEndPodsPerSec: rate}
	r.DurationSeconds = duration
	r.Components[schedulerComponent] = report.Component{CPUSeconds: 5, PeakRSSBytes: rssMiB << 20}
	r.Components["etcd"] = report.Component{CPUSeconds: 2.5, PeakRSSBytes: 64 << 20}
	return r
}

// rows returns the table's rows keyed by their first cell.
func rows(t *testing.T, md string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, line := range strings.Split(md, "\n") {
		if !strings.HasPrefix(line, "| ") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		out[cells[0]] = cells[1:]
	}
	return out
}

func TestFigureTable(t *testing.T) {
	hw := synthetic(nameHwameistor, 10, 4, 0, 100, 20)
	hw.APIRequests = map[string]int64{"POST events": 3}
	hw.Pods.PendingReasons = map[string]int{"x": 1}
	def := synthetic(nameDefault, 5, 2, 3, 50, 40)
	cases := []struct {
		name    string
		pair    Pair
		want    map[string][]string
		notWant []string
	}{
		{name: "both sides", pair: Pair{Scenario: "s", HW: Run{Report: hw}, Def: Run{Report: def}},
			want: map[string][]string{
				"throughput.schedulingPodsPerSec": {"4", "2", "2.00"},
				"overcommits":                     {"0", "3", "0.00"},
				"pods.running":                    {"10", "5", "2.00"},
				"migrations.completed":            {"0", "0", "="},
				"durationSeconds":                 {"20", "40", "0.50"},
			},
			notWant: []string{"apiRequests.", "pods.pendingReasons.", "components."}},
		{name: "default side missing", pair: Pair{Scenario: "s", HW: Run{Report: hw}, Def: Run{Missing: "not run"}},
			want: map[string][]string{
				"throughput.schedulingPodsPerSec": {"4", "-", "-"},
				"overcommits":                     {"0", "-", "-"},
			}},
		{name: "hwameistor side missing", pair: Pair{Scenario: "s", HW: Run{Missing: "not run"}, Def: Run{Report: def}},
			want: map[string][]string{"overcommits": {"-", "3", "-"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			md := figureTable(c.pair)
			got := rows(t, md)
			for k, want := range c.want {
				if strings.Join(got[k], " | ") != strings.Join(want, " | ") {
					t.Errorf("row %s = %q, want %q", k, got[k], want)
				}
			}
			for _, bad := range c.notWant {
				if strings.Contains(md, bad) {
					t.Errorf("table has %q figures, which have tables of their own", bad)
				}
			}
		})
	}
}

func TestComponentAndDerivedTables(t *testing.T) {
	hw := synthetic(nameHwameistor, 10, 4, 0, 120, 20)
	hw.Progress = &report.Progress{Running: []report.Point{{Seconds: 1, Count: 4}, {Seconds: 7.25, Count: 10}}}
	def := synthetic(nameDefault, 5, 2, 3, 100, 40)
	p := Pair{Scenario: "s", HW: Run{Report: hw}, Def: Run{Report: def}}
	comp := rows(t, componentTable(p))
	if got, want := strings.Join(comp[schedulerComponent], " | "), "5 | 5 | 1.00 | 120 | 100 | 1.20"; got != want {
		t.Errorf("scheduler row = %q, want %q", got, want)
	}
	der := rows(t, derivedTable(p))
	for k, want := range map[string]string{
		"scheduler CPU-s per 1,000 pods Running": "500 | 1,000 | 0.50",
		"seconds to all pods Running":            "7.3 | - | -",
		"apiserver requests per pod":             "- | - | -",
	} {
		if got := strings.Join(der[k], " | "); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

func TestAPITable(t *testing.T) {
	hw := synthetic(nameHwameistor, 10, 4, 0, 100, 20)
	def := synthetic(nameDefault, 5, 2, 3, 50, 40)
	hw.APIRequests = map[string]int64{"POST events": 30, "GET pods": 5}
	def.APIRequests = map[string]int64{"POST events": 10, "PATCH pods/status": 8}
	for i := range 20 {
		def.APIRequests[strings.Repeat("x", i+1)] = 1
	}
	got := apiTable(Pair{HW: Run{Report: hw}, Def: Run{Report: def}})
	r := rows(t, got)
	if strings.Join(r["`POST events`"], " | ") != "30 | 10 | 3.00" {
		t.Errorf("POST events row = %q", r["`POST events`"])
	}
	if strings.Join(r["`PATCH pods/status`"], " | ") != "0 | 8 | 0.00" {
		t.Errorf("PATCH pods/status row = %q", r["`PATCH pods/status`"])
	}
	if strings.Join(r["all 23 kinds"], " | ") != "35 | 38 | 0.92" {
		t.Errorf("total row = %q", r["all 23 kinds"])
	}
	if n := strings.Count(got, "\n| `"); n != topAPIRequests {
		t.Errorf("%d request rows, want %d", n, topAPIRequests)
	}
	if apiTable(Pair{HW: Run{Report: synthetic(nameHwameistor, 1, 1, 0, 1, 1)}}) != "" {
		t.Error("reports without requests should give no table")
	}
}

func TestPendingReasons(t *testing.T) {
	r := synthetic(nameDefault, 5, 2, 0, 50, 40)
	r.Pods.PendingReasons = map[string]int{
		`provisioning failed for PVC "vol0-db-1"`: 1,
		`provisioning failed for PVC "vol0-db-2"`: 2,
		`running PreBind plugin "VolumeBinding"`:  1,
		strings.Repeat("long ", 100):              1,
	}
	got := pendingReasons(nameDefault, Run{Report: r})
	for _, want := range []string{
		"- default-scheduler: 5 Pending\n",
		"  - 3 x `provisioning failed for PVC \"*\"`\n",
		"  - 1 x `running PreBind plugin \"VolumeBinding\"`\n",
		"...`\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	if got := pendingReasons(nameHwameistor, Run{Missing: "not run"}); got != "- hwameistor-scheduler: not run\n" {
		t.Errorf("missing side: %q", got)
	}
}

func TestPendingReasonsAreCut(t *testing.T) {
	r := synthetic(nameDefault, 0, 1, 0, 1, 1)
	for i := range topPendingReasons + 3 {
		r.Pods.PendingReasons[strings.Repeat("r", i+1)] = 1
	}
	got := pendingReasons(nameDefault, Run{Report: r})
	if n := strings.Count(got, " x `"); n != topPendingReasons {
		t.Errorf("%d reasons listed, want %d:\n%s", n, topPendingReasons, got)
	}
	if !strings.Contains(got, "  - ... 3 more reasons (3 pods)\n") {
		t.Errorf("no summary of the rest:\n%s", got)
	}
}
