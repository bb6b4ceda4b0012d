// Package report is the simulator's report, format v1 (kwok/README.md):
// the JSON written by `hwameistor-sim run`, its human summary, and the side
// by side comparison of two reports (`hwameistor-sim compare`).
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
)

// Schema is the report format version.
const Schema = "v1"

// Report is the outcome of one scenario run. Field names are a contract.
type Report struct {
	Schema      string     `json:"schema"`
	Scenario    string     `json:"scenario"`
	Scheduler   string     `json:"scheduler"`
	Nodes       int        `json:"nodes"`
	Pods        Pods       `json:"pods"`
	Volumes     Volumes    `json:"volumes"`
	Overcommits int        `json:"overcommits"`
	Throughput  Throughput `json:"throughput"`
	Pools       Pools      `json:"pools"`
	Migrations  Migrations `json:"migrations"`
	// Failover is measured when the scenario fails nodes.
	Failover   *Failover            `json:"failover,omitempty"`
	Components map[string]Component `json:"components"`
	// APIRequests counts the apiserver's requests from the start of the
	// workloads to the end by "verb resource[/subresource]".
	APIRequests     map[string]int64 `json:"apiRequests,omitempty"`
	DurationSeconds float64          `json:"durationSeconds"`

	// Progress and PoolUse are the chart's data (not figures: Compare
	// skips them).
	Progress *Progress `json:"progress,omitempty"`
	PoolUse  []PoolUse `json:"poolUse,omitempty"`
}

// Progress is how many pods were bound and running over time, in seconds
// since the workloads started.
type Progress struct {
	Bound   []Point `json:"bound"`
	Running []Point `json:"running"`
}

type Pods struct {
	Total          int            `json:"total"`
	Running        int            `json:"running"`
	Pending        int            `json:"pending"`
	PendingReasons map[string]int `json:"pendingReasons"`
}

type Volumes struct {
	Requested   int `json:"requested"`
	Provisioned int `json:"provisioned"`
	Failed      int `json:"failed"`
}

type Throughput struct {
	SchedulingPodsPerSec float64 `json:"schedulingPodsPerSec"`
	EndToEndPodsPerSec   float64 `json:"endToEndPodsPerSec"`
}

type Pools struct {
	UtilizationMin float64 `json:"utilizationMin"`
	UtilizationMax float64 `json:"utilizationMax"`
	Overfull       int     `json:"overfull"`
}

type Migrations struct {
	Started       int   `json:"started"`
	Completed     int   `json:"completed"`
	Failed        int   `json:"failed"`
	Aborted       int   `json:"aborted"`
	BytesVerified int64 `json:"bytesVerified"`
	VolumesLost   int   `json:"volumesLost"`
	// DurationSeconds runs from the first migration created to the last
	// one finished.
	DurationSeconds float64 `json:"durationSeconds"`
}

// Failover is how the pods of HA volumes on failed nodes came back.
type Failover struct {
	// Pods counts the pods of HA volumes that ran on a failed node and run
	// again on another node; Stranded those that do not.
	Pods     int `json:"pods"`
	Stranded int `json:"stranded"`
	// SecondsMedian and SecondsMax run from the failed node's Lease expiry
	// to the pod Running elsewhere.
	SecondsMedian float64 `json:"secondsMedian"`
	SecondsMax    float64 `json:"secondsMax"`
}

type Component struct {
	CPUSeconds   float64 `json:"cpuSeconds"`
	PeakRSSBytes int64   `json:"peakRSSBytes"`
}

// New returns an empty v1 report.
func New(scenario, scheduler string) *Report {
	return &Report{Schema: Schema, Scenario: scenario, Scheduler: scheduler,
		Pods: Pods{PendingReasons: map[string]int{}}, Components: map[string]Component{}}
}

// Write stores r as indented JSON.
func (r *Report) Write(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Read loads a report and checks its schema.
func Read(path string) (*Report, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r := &Report{}
	if err := json.Unmarshal(raw, r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Schema != Schema {
		return nil, fmt.Errorf("%s: schema %q, want %q", path, r.Schema, Schema)
	}
	return r, nil
}

// Chart is the report's chart: pods bound and running over time, and the
// pools' utilisation at the end.
func (r *Report) Chart() Chart {
	c := Chart{Title: fmt.Sprintf("%s — %s, %d nodes", r.Scenario, r.Scheduler, r.Nodes), Pools: r.PoolUse}
	if r.Progress != nil {
		c.Timelines = []Timeline{{Label: "pods bound", Points: r.Progress.Bound}, {Label: "pods running", Points: r.Progress.Running}}
	}
	return c
}

// WriteChart writes the report's chart as SVG to path.
func (r *Report) WriteChart(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := WriteSVG(f, r.Chart()); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Summary prints the human summary.
func (r *Report) Summary(w io.Writer) {
	fmt.Fprintf(w, "scenario %s, scheduler %s, %d nodes, %.1fs\n", r.Scenario, r.Scheduler, r.Nodes, r.DurationSeconds)
	fmt.Fprintf(w, "  pods        %d total, %d running, %d pending\n", r.Pods.Total, r.Pods.Running, r.Pods.Pending)
	reasons := make([]string, 0, len(r.Pods.PendingReasons))
	for k := range r.Pods.PendingReasons {
		reasons = append(reasons, k)
	}
	sort.Strings(reasons)
	for _, k := range reasons {
		fmt.Fprintf(w, "    %3d x %s\n", r.Pods.PendingReasons[k], k)
	}
	fmt.Fprintf(w, "  volumes     %d requested, %d provisioned, %d failed\n", r.Volumes.Requested, r.Volumes.Provisioned, r.Volumes.Failed)
	fmt.Fprintf(w, "  overcommits %d\n", r.Overcommits)
	fmt.Fprintf(w, "  throughput  %.2f pods/s scheduled, %.2f pods/s running (end to end)\n", r.Throughput.SchedulingPodsPerSec, r.Throughput.EndToEndPodsPerSec)
	fmt.Fprintf(w, "  pools       utilisation %.0f%%..%.0f%%, %d overfull\n", 100*r.Pools.UtilizationMin, 100*r.Pools.UtilizationMax, r.Pools.Overfull)
	m := r.Migrations
	fmt.Fprintf(w, "  migrations  %d started, %d completed, %d failed, %d aborted in %.1fs; %s verified, %d volumes lost\n",
		m.Started, m.Completed, m.Failed, m.Aborted, m.DurationSeconds, formatBytes(m.BytesVerified), m.VolumesLost)
	if f := r.Failover; f != nil {
		fmt.Fprintf(w, "  failover    %d pods running elsewhere, %d stranded; %.1fs median, %.1fs max from the node's Lease expiry\n",
			f.Pods, f.Stranded, f.SecondsMedian, f.SecondsMax)
	}
	if len(r.Components) > 0 {
		names := make([]string, 0, len(r.Components))
		for k := range r.Components {
			names = append(names, k)
		}
		sort.Strings(names)
		fmt.Fprintf(w, "  %-26s %10s %10s\n", "component", "CPU s", "peak RSS")
		for _, k := range names {
			c := r.Components[k]
			fmt.Fprintf(w, "  %-26s %10.1f %10s\n", k, c.CPUSeconds, formatBytes(c.PeakRSSBytes))
		}
	}
	if len(r.APIRequests) > 0 {
		keys := make([]string, 0, len(r.APIRequests))
		var total int64
		for k, n := range r.APIRequests {
			keys = append(keys, k)
			total += n
		}
		sort.Slice(keys, func(i, j int) bool { return r.APIRequests[keys[i]] > r.APIRequests[keys[j]] })
		fmt.Fprintf(w, "  apiserver   %d requests (%.0f/s); most:\n", total, float64(total)/max(r.DurationSeconds, 1))
		for _, k := range keys[:min(len(keys), 12)] {
			fmt.Fprintf(w, "    %8d %s\n", r.APIRequests[k], k)
		}
	}
}

// formatBytes prints a byte count in binary units.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Figures flattens every numeric figure of r by its JSON path, in a stable
// order (pendingReasons are counted per reason).
func (r *Report) Figures() ([]string, map[string]float64) {
	raw, _ := json.Marshal(r)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	out := map[string]float64{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch x := v.(type) {
		case float64:
			out[prefix] = x
		case map[string]any:
			for k, c := range x {
				p := k
				if prefix != "" {
					p = prefix + "." + k
				}
				walk(p, c)
			}
		}
	}
	walk("", m)
	keys := make([]string, 0, len(out))
	for k := range out {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys, out
}

// Compare prints every numeric figure of a and b side by side with b/a.
func Compare(w io.Writer, a, b *Report) {
	ka, fa := a.Figures()
	kb, fb := b.Figures()
	seen := map[string]bool{}
	var keys []string
	for _, k := range append(ka, kb...) {
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	const maxKey = 72
	width := len("figure")
	for _, k := range keys {
		width = max(width, min(len(k), maxKey))
	}
	fmt.Fprintf(w, "A: %s (%s)\nB: %s (%s)\n", a.Scenario, a.Scheduler, b.Scenario, b.Scheduler)
	fmt.Fprintf(w, "%-*s  %12s  %12s  %8s\n", width, "figure", "A", "B", "B/A")
	fmt.Fprintf(w, "%s\n", strings.Repeat("-", width+2+12+2+12+2+8))
	for _, k := range keys {
		va, okA := fa[k]
		vb, okB := fb[k]
		ratio := "-"
		switch {
		case okA && okB && va != 0:
			ratio = fmt.Sprintf("%.2f", vb/va)
		case okA && okB && va == 0 && vb == 0:
			ratio = "="
		case okA && okB:
			ratio = "inf"
		}
		fmt.Fprintf(w, "%-*s  %12s  %12s  %8s\n", width, trunc(k, maxKey), num(va, okA), num(vb, okB), ratio)
	}
}

func num(v float64, ok bool) string {
	if !ok {
		return "-"
	}
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%.3f", v)
}

func trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
