package benchdoc

import (
	"strings"
	"testing"
)

const sampleBench = `goos: linux
goarch: amd64
pkg: hwameistor.io/local/plugins/localstorage
cpu: AMD EPYC
BenchmarkFilter/LocalStorage/nodes=1000-2         	14203456	        80.12 ns/op	       0 B/op	       0 allocs/op
BenchmarkFilter/LocalStorage/nodes=1000-2         	14203456	        94.50 ns/op	       0 B/op	       0 allocs/op
BenchmarkFilter/LocalStorage/nodes=1000-2         	14203456	        90.00 ns/op	       0 B/op	       0 allocs/op
BenchmarkFilter/NodeResourcesFit/nodes=1000-2     	 3203456	       300.0 ns/op	     256 B/op	       1 allocs/op
BenchmarkFilter/NodeResourcesFit/nodes=1000-2     	 3203456	       360.0 ns/op	     256 B/op	       1 allocs/op
BenchmarkFilter/NodeResourcesFit/nodes=1000-2     	 3203456	       270.0 ns/op	     256 B/op	       1 allocs/op
BenchmarkFilter/LocalStorage/nodes=5000-2
some log line the benchmark printed
  	14203456	       120.0 ns/op	       0 B/op	       0 allocs/op
ok  	hwameistor.io/local/plugins/localstorage	12.3s
pkg: hwameistor.io/local/internal/placement
BenchmarkPickPeer/nodes=5000-2   	    1000	   1070000 ns/op	    4096 B/op	       3 allocs/op
BenchmarkPickPeer/nodes=5000-2   	    1000	   1150000 ns/op	    4100 B/op	       3 allocs/op
--- FAIL: BenchmarkBroken
FAIL	hwameistor.io/local/internal/placement	3.1s
`

const samplePerf = `I1126 00:00:51 some harness log
BenchmarkPerfScheduling/LocalStorageWaitForFirstConsumer/500Nodes_1000Pods-2         	       1	         0 ns/op	        92.30 SchedulingThroughput/Average	        90.00 SchedulingThroughput/Perc50	       130.0 SchedulingThroughput/Perc90	       135.0 SchedulingThroughput/Perc95	       140.0 SchedulingThroughput/Perc99	        24.00 runtime_seconds
BenchmarkPerfScheduling/DefaultSchedulerWaitForFirstConsumer/500Nodes_1000Pods-2     	       1	         0 ns/op	       107.1 SchedulingThroughput/Average	       100.0 SchedulingThroughput/Perc50	       150.0 SchedulingThroughput/Perc90	       155.0 SchedulingThroughput/Perc95	       160.0 SchedulingThroughput/Perc99	        20.00 runtime_seconds
BenchmarkPerfScheduling/SchedulingBasic/500Nodes_1000Pods-2                          	       1	         0 ns/op	       219.2 SchedulingThroughput/Average	       200.0 SchedulingThroughput/Perc50	       300.0 SchedulingThroughput/Perc90	       310.0 SchedulingThroughput/Perc95	       320.0 SchedulingThroughput/Perc99	        10.00 runtime_seconds
PASS
`

func TestParseBench(t *testing.T) {
	o, err := ParseBench(strings.NewReader(sampleBench))
	if err != nil {
		t.Fatal(err)
	}
	if o.CPU != "AMD EPYC" {
		t.Errorf("cpu %q", o.CPU)
	}
	cases := []struct {
		name, pkg string
		runs      int
		nsRange   string
	}{
		{"BenchmarkFilter/LocalStorage/nodes=1000", "hwameistor.io/local/plugins/localstorage", 3, "80.1–94.5 ns"},
		{"BenchmarkFilter/NodeResourcesFit/nodes=1000", "hwameistor.io/local/plugins/localstorage", 3, "270–360 ns"},
		{"BenchmarkFilter/LocalStorage/nodes=5000", "hwameistor.io/local/plugins/localstorage", 1, "120 ns"},
		{"BenchmarkPickPeer/nodes=5000", "hwameistor.io/local/internal/placement", 2, "1.07–1.15 ms"},
	}
	if len(o.Benches) != len(cases) {
		t.Fatalf("%d benchmarks, want %d: %+v", len(o.Benches), len(cases), o.Benches)
	}
	for i, c := range cases {
		b := o.Benches[i]
		if b.Name != c.name || b.Pkg != c.pkg || len(b.Runs) != c.runs {
			t.Errorf("benchmark %d = %s (%s) with %d runs, want %s (%s) with %d", i, b.Name, b.Pkg, len(b.Runs), c.name, c.pkg, c.runs)
		}
		if got := durationRange(b.values("ns/op")); got != c.nsRange {
			t.Errorf("%s ns/op %q, want %q", c.name, got, c.nsRange)
		}
	}
	if len(o.Failed) != 2 {
		t.Errorf("failed lines %q, want the --- FAIL and FAIL lines", o.Failed)
	}

	table := benchTable(o)
	for _, want := range []string{
		"| Filter/NodeResourcesFit/nodes=1000 | 3 | 270–360 ns | 256 | 1 |",
		"| PickPeer/nodes=5000 | 2 | 1.07–1.15 ms | 4,096–4,100 | 3 |",
		"`hwameistor.io/local/internal/placement`:",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("bench table lacks %q:\n%s", want, table)
		}
	}
	ratio := filterRatioTable(o)
	if want := "| 1000 | 90.0 ns | 300 ns | 0.30 | 0.22–0.35 |"; !strings.Contains(ratio, want) {
		t.Errorf("filter ratio lacks %q:\n%s", want, ratio)
	}
}

func TestPerfTable(t *testing.T) {
	o, err := ParseBench(strings.NewReader(samplePerf))
	if err != nil {
		t.Fatal(err)
	}
	got := perfTable(o)
	for _, want := range []string{
		"| LocalStorageWaitForFirstConsumer | 500Nodes_1000Pods | 92.3 | 90 | 130 | 135 | 140 |",
		"| SchedulingBasic | 500Nodes_1000Pods | 219.2 |",
		"(500Nodes_1000Pods): **0.86**",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("perf table lacks %q:\n%s", want, got)
		}
	}
	if benchTable(o) != "" {
		t.Error("scheduler_perf results belong in their own table")
	}

	raw, _ := ParseBench(strings.NewReader("BenchmarkPerfScheduling/X/small-2 \t 1 \t 0 ns/op \t 5.0 other_metric\n"))
	if perfTable(raw) != "" {
		t.Error("no SchedulingThroughput: no table")
	}
	if lines := perfRawLines(raw); len(lines) != 1 || !strings.Contains(lines[0], "5 other_metric") {
		t.Errorf("raw lines %q", lines)
	}
}
