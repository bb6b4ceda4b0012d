package benchdoc

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"testing"

	"hwameistor.io/local/kwok/report"
)

// chartPair is a scenario with long timelines and many pools of two
// classes, in an order that must not matter.
func chartPair(reversed bool) Pair {
	mk := func(scheduler string, scale int) *report.Report {
		r := synthetic(scheduler, 10, 1, 0, 10, 100)
		r.Progress = &report.Progress{}
		for i := range 5000 {
			r.Progress.Bound = append(r.Progress.Bound, report.Point{Seconds: float64(i) * 0.5, Count: i / scale})
			r.Progress.Running = append(r.Progress.Running, report.Point{Seconds: float64(i)*0.5 + 1, Count: i / scale})
		}
		for i := range 3000 {
			r.PoolUse = append(r.PoolUse,
				report.PoolUse{Node: fmt.Sprintf("n-%d", i), Pool: "LocalStorage_PoolHDD", UsedBytes: int64(i % 110), TotalBytes: 100},
				report.PoolUse{Node: fmt.Sprintf("n-%d", i), Pool: "LocalStorage_PoolSSD", UsedBytes: int64(i % 7), TotalBytes: 10})
		}
		if reversed {
			for i, j := 0, len(r.PoolUse)-1; i < j; i, j = i+1, j-1 {
				r.PoolUse[i], r.PoolUse[j] = r.PoolUse[j], r.PoolUse[i]
			}
		}
		return r
	}
	return Pair{Scenario: "scale-x", HW: Run{Report: mk(nameHwameistor, 1)}, Def: Run{Report: mk(nameDefault, 2)}}
}

func TestChartsAreDeterministic(t *testing.T) {
	charts := []struct {
		name    string
		draw    func(Pair) []byte
		maxSize int
	}{
		{"progress", ProgressSVG, 64 << 10},
		{"pools", PoolsSVG, 32 << 10},
	}
	for _, c := range charts {
		t.Run(c.name, func(t *testing.T) {
			first := c.draw(chartPair(false))
			for range 3 {
				if !bytes.Equal(first, c.draw(chartPair(false))) {
					t.Fatal("same input, different bytes")
				}
			}
			if !bytes.Equal(first, c.draw(chartPair(true))) {
				t.Error("the order of the pools changed the chart")
			}
			if len(first) > c.maxSize {
				t.Errorf("%d bytes, want at most %d", len(first), c.maxSize)
			}
			wellFormed(t, first)
		})
	}
}

func wellFormed(t *testing.T, svg []byte) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(svg))
	for {
		_, err := d.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v", err)
		}
	}
}

func TestChartsWithoutData(t *testing.T) {
	p := Pair{Scenario: "s", HW: Run{Report: synthetic(nameHwameistor, 1, 1, 0, 1, 1)}, Def: Run{Missing: "not run"}}
	if ProgressSVG(p) != nil || PoolsSVG(p) != nil {
		t.Error("charts drawn without timelines or pools")
	}
	p = chartPair(false)
	p.Def = Run{Missing: "not run"}
	svg := string(PoolsSVG(p))
	if !strings.Contains(svg, nameHwameistor) || strings.Contains(svg, nameDefault) {
		t.Error("a missing side should not be in the chart's legend")
	}
}

func TestDownsample(t *testing.T) {
	var pts []report.Point
	for i := range 1000 {
		pts = append(pts, report.Point{Seconds: float64(i), Count: i})
	}
	cases := []struct {
		name string
		in   []report.Point
		n    int
		max  int
	}{
		{"short stays", pts[:10], 300, 10},
		{"long is cut", pts, 300, 300},
		{"one instant", []report.Point{{Seconds: 1, Count: 1}, {Seconds: 1, Count: 2}, {Seconds: 1, Count: 3}}, 2, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := downsample(c.in, c.n)
			if len(got) > c.max {
				t.Errorf("%d points, want at most %d", len(got), c.max)
			}
			if got[0] != c.in[0] || got[len(got)-1] != c.in[len(c.in)-1] {
				t.Errorf("first/last %v %v, want %v %v", got[0], got[len(got)-1], c.in[0], c.in[len(c.in)-1])
			}
		})
	}
}

func TestBucketAndSpread(t *testing.T) {
	cases := []struct {
		u    float64
		want string
	}{
		{0, "empty"}, {0.05, "<10%"}, {0.1, "10–20"}, {0.3, "30–40"}, {0.7, "70–80"}, {0.39, "30–40"},
		{0.99999, "90–100"}, {1, "full"}, {1.01, ">100%"},
	}
	for _, c := range cases {
		if got := bucketLabels[bucket(c.u)]; got != c.want {
			t.Errorf("bucket(%v) = %s, want %s", c.u, got, c.want)
		}
	}
	got := spread([]float64{0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.2})
	if want := "11 pools, min 0% · p10 10% · median 50% · p90 90% · max 120%, 1 over 100%"; got != want {
		t.Errorf("spread = %q, want %q", got, want)
	}
}
