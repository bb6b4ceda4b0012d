package benchdoc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestGenerate(t *testing.T) {
	p := chartPair(false)
	p.Scenario = "scale-1k"
	in := Inputs{
		Machine:   Machine{Date: time.Date(2026, 11, 26, 4, 5, 0, 0, time.UTC), CPUModel: "AMD EPYC", Cores: 2, GoVersion: "go1.26.8"},
		Pairs:     []Pair{p, {Scenario: "scale-1k-no-volumes", HW: Run{Missing: "not run"}, Def: Run{Missing: "not run"}}},
		ChartLink: "bench",
	}
	sec := Generate(in)
	for _, want := range []string{
		"- generated: 2026-11-26 04:05 UTC\n",
		"![scale-1k: pods bound and running over time](bench/scale-1k-progress.svg)",
		"![scale-1k: pool utilisation per pool class](bench/scale-1k-pools.svg)",
		"### Simulator: scale-1k-no-volumes\n\nScenario `kwok/scenarios/scale-1k-no-volumes.yaml`.\n\nNo report. hwameistor-scheduler: not run",
		"| scheduling pods/s, hwameistor / default | scale-1k-no-volumes | - | >= 0.97 | not measured |",
		"Not run (no results in go-bench.txt)",
		"Not run (BENCH_PERF=0",
	} {
		if !strings.Contains(sec.Markdown, want) {
			t.Errorf("section lacks %q", want)
		}
	}
	if !strings.HasSuffix(sec.Markdown, "\n\n") {
		t.Error("the section should end in a blank line before the end marker")
	}
	if len(sec.Charts) != 2 || sec.Charts["scale-1k-progress.svg"] == nil || sec.Charts["scale-1k-pools.svg"] == nil {
		t.Errorf("charts %v", len(sec.Charts))
	}
}

func TestWriteNeedsMarkers(t *testing.T) {
	dir := t.TempDir()
	doc := filepath.Join(dir, "benchmarks.md")
	if err := os.WriteFile(doc, []byte("# Benchmarks\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Write(Options{Dir: dir, Doc: doc})
	if err == nil || !strings.Contains(err.Error(), BeginMarker) {
		t.Fatalf("err = %v, want one naming %q", err, BeginMarker)
	}
	if _, err := os.Stat(filepath.Join(dir, "bench")); err == nil {
		t.Error("charts written although the document has no markers")
	}
}
