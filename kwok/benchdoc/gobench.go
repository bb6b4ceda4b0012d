package benchdoc

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Bench is one benchmark of `go test -bench` output with every run of it
// (-count N prints N lines).
type Bench struct {
	Pkg  string // from the "pkg:" line before it
	Name string // without the -GOMAXPROCS suffix
	Runs []map[string]float64
}

// BenchOutput is a parsed `go test -bench` output.
type BenchOutput struct {
	CPU     string // from the "cpu:" line
	Benches []*Bench
	Failed  []string // FAIL and panic lines, to say why results are missing
}

var (
	// benchLine is a result: name, iterations, then value/unit pairs.
	benchLine = regexp.MustCompile(`^(Benchmark\S+)\s+(\d+)\s+(\S.*)$`)
	// benchNameOnly is a name printed before the benchmark wrote output of
	// its own; its result follows on a later line.
	benchNameOnly = regexp.MustCompile(`^(Benchmark\S+)\s*$`)
	// benchResultOnly is the result belonging to the last benchNameOnly.
	benchResultOnly = regexp.MustCompile(`^\s*(\d+)\s+([-+0-9.eE]+\s+\S+.*)$`)
	procsSuffix     = regexp.MustCompile(`-\d+$`)
)

// ParseBench reads `go test -bench` output, standard text format, from any
// number of packages.
func ParseBench(r io.Reader) (*BenchOutput, error) {
	out := &BenchOutput{}
	byKey := map[string]*Bench{}
	pkg, pending := "", ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		name, rest := "", ""
		switch {
		case strings.HasPrefix(line, "pkg: "):
			pkg = strings.TrimSpace(strings.TrimPrefix(line, "pkg: "))
		case strings.HasPrefix(line, "cpu: "):
			out.CPU = strings.TrimSpace(strings.TrimPrefix(line, "cpu: "))
		case strings.HasPrefix(line, "FAIL") || strings.HasPrefix(line, "panic:") || strings.HasPrefix(line, "--- FAIL"):
			out.Failed = append(out.Failed, line)
		}
		if m := benchLine.FindStringSubmatch(line); m != nil {
			name, rest = m[1], m[2]+" "+m[3]
		} else if m := benchNameOnly.FindStringSubmatch(line); m != nil {
			pending = m[1]
			continue
		} else if m := benchResultOnly.FindStringSubmatch(line); m != nil && pending != "" {
			name, rest = pending, m[1]+" "+m[2]
		} else {
			continue
		}
		pending = ""
		metrics, ok := parseMetrics(rest)
		if !ok {
			continue
		}
		name = procsSuffix.ReplaceAllString(name, "")
		key := pkg + "\x00" + name
		b := byKey[key]
		if b == nil {
			b = &Bench{Pkg: pkg, Name: name}
			byKey[key] = b
			out.Benches = append(out.Benches, b)
		}
		b.Runs = append(b.Runs, metrics)
	}
	return out, sc.Err()
}

// parseMetrics reads "N v1 unit1 v2 unit2 ..." into unit -> value, with
// the iterations under "iterations".
func parseMetrics(s string) (map[string]float64, bool) {
	f := strings.Fields(s)
	n, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return nil, false
	}
	m := map[string]float64{"iterations": float64(n)}
	for i := 1; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			break
		}
		m[f[i+1]] = v
	}
	return m, len(m) > 1
}

// values is one metric over every run that has it.
func (b *Bench) values(unit string) []float64 {
	var vs []float64
	for _, r := range b.Runs {
		if v, ok := r[unit]; ok {
			vs = append(vs, v)
		}
	}
	sort.Float64s(vs)
	return vs
}

// median of a metric over the runs; ok false when no run has it.
func (b *Bench) median(unit string) (float64, bool) {
	vs := b.values(unit)
	if len(vs) == 0 {
		return 0, false
	}
	if len(vs)%2 == 1 {
		return vs[len(vs)/2], true
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2, true
}

// benchTable is one row per benchmark (excluding scheduler_perf, which has
// its own table), grouped by package.
func benchTable(o *BenchOutput) string {
	var b strings.Builder
	pkg := "\x00"
	var t *table
	flush := func() {
		if t != nil {
			b.WriteString(t.String() + "\n")
		}
	}
	for _, bench := range o.Benches {
		if isPerf(bench) {
			continue
		}
		if bench.Pkg != pkg {
			flush()
			pkg = bench.Pkg
			if pkg != "" {
				fmt.Fprintf(&b, "%s:\n\n", code(pkg))
			}
			t = &table{head: []string{"benchmark", "runs", "ns/op (min–max)", "B/op", "allocs/op"}}
		}
		t.add(strings.TrimPrefix(bench.Name, "Benchmark"), strconv.Itoa(len(bench.Runs)),
			durationRange(bench.values("ns/op")), plainRange(bench.values("B/op")), plainRange(bench.values("allocs/op")))
	}
	flush()
	return b.String()
}

// durationRange formats min–max nanoseconds in the unit of the larger.
func durationRange(vs []float64) string {
	if len(vs) == 0 {
		return "-"
	}
	lo, hi := vs[0], vs[len(vs)-1]
	unit, div := "ns", 1.0
	switch {
	case hi >= 1e9:
		unit, div = "s", 1e9
	case hi >= 1e6:
		unit, div = "ms", 1e6
	case hi >= 1e3:
		unit, div = "µs", 1e3
	}
	f := func(v float64) string { return strconv.FormatFloat(v/div, 'f', sigDecimals(hi/div), 64) }
	if f(lo) == f(hi) {
		return f(hi) + " " + unit
	}
	return f(lo) + "–" + f(hi) + " " + unit
}

// sigDecimals keeps about three significant digits.
func sigDecimals(v float64) int {
	switch {
	case v >= 100:
		return 0
	case v >= 10:
		return 1
	default:
		return 2
	}
}

// plainRange formats min–max, or one value when every run agrees.
func plainRange(vs []float64) string {
	if len(vs) == 0 {
		return "-"
	}
	if vs[0] == vs[len(vs)-1] {
		return num(vs[0])
	}
	return num(vs[0]) + "–" + num(vs[len(vs)-1])
}

// filterRatioTable compares our Filter with the in-tree NodeResourcesFit
// Filter on the same nodes (plugins/localstorage BenchmarkFilter), per
// node count: the ratio of medians and its extremes over the runs.
func filterRatioTable(o *BenchOutput) string {
	const ours, theirs = "BenchmarkFilter/LocalStorage/", "BenchmarkFilter/NodeResourcesFit/"
	byName := map[string]*Bench{}
	for _, b := range o.Benches {
		byName[b.Name] = b
	}
	t := table{head: []string{"nodes", "LocalStorage Filter", "NodeResourcesFit Filter", "ratio of medians", "ratio range"}}
	for _, b := range o.Benches {
		size, ok := strings.CutPrefix(b.Name, ours)
		other := byName[theirs+size]
		if !ok || other == nil {
			continue
		}
		a, okA := b.median("ns/op")
		c, okC := other.median("ns/op")
		if !okA || !okC || c == 0 {
			continue
		}
		va, vc := b.values("ns/op"), other.values("ns/op")
		t.add(strings.TrimPrefix(size, "nodes="), durationRange([]float64{a}), durationRange([]float64{c}),
			fmt.Sprintf("%.2f", a/c), fmt.Sprintf("%.2f–%.2f", va[0]/vc[len(vc)-1], va[len(va)-1]/vc[0]))
	}
	return t.String()
}

// perfPrefix names the scheduler_perf results: BenchmarkPerfScheduling/<case>/<size>.
const perfPrefix = "BenchmarkPerfScheduling/"

func isPerf(b *Bench) bool { return strings.HasPrefix(b.Name, perfPrefix) }

// perfQuantiles are the SchedulingThroughput metrics the harness reports.
var perfQuantiles = []string{"Average", "Perc50", "Perc90", "Perc95", "Perc99"}

// perfTable is pods/s per scheduler_perf case and size, then the ratio of
// our profile to the stock one for pods with claims.
func perfTable(o *BenchOutput) string {
	t := table{head: []string{"case", "size", "pods/s average", "p50", "p90", "p95", "p99"}}
	avg := map[string]map[string]float64{} // size -> case -> average pods/s
	var sizes []string
	for _, b := range o.Benches {
		parts := strings.SplitN(strings.TrimPrefix(b.Name, perfPrefix), "/", 2)
		if !isPerf(b) || len(parts) != 2 {
			continue
		}
		tc, size := parts[0], parts[1]
		row := []string{tc, size}
		for _, q := range perfQuantiles {
			v, ok := b.median("SchedulingThroughput/" + q)
			row = append(row, optNum(math.Round(v*10)/10, ok))
		}
		v, ok := b.median("SchedulingThroughput/Average")
		if !ok {
			continue
		}
		t.add(row...)
		if avg[size] == nil {
			avg[size] = map[string]float64{}
			sizes = append(sizes, size)
		}
		avg[size][tc] = v
	}
	s := t.String()
	for _, size := range sizes {
		ours, okO := avg[size]["LocalStorageWaitForFirstConsumer"]
		stock, okS := avg[size]["DefaultSchedulerWaitForFirstConsumer"]
		if okO && okS && stock != 0 {
			s += fmt.Sprintf("\nRatio hwameistor / stock profile for pods with claims (%s): **%.2f** (goal: >= 1.0).\n", size, ours/stock)
		}
	}
	return s
}

// perfRawLines are the scheduler_perf result lines as printed, for when
// they carry no throughput the table understands.
func perfRawLines(o *BenchOutput) []string {
	var out []string
	for _, b := range o.Benches {
		if !isPerf(b) {
			continue
		}
		for _, r := range b.Runs {
			keys := make([]string, 0, len(r))
			for k := range r {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			var f []string
			for _, k := range keys {
				f = append(f, num(r[k])+" "+k)
			}
			out = append(out, cut(b.Name+" "+strings.Join(f, " "), 400))
		}
	}
	return out
}
