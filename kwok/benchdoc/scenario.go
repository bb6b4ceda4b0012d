package benchdoc

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"

	"hwameistor.io/local/kwok/report"
)

// Figures with a table of their own are left out of the general one.
var ownTablePrefixes = []string{"apiRequests.", "pods.pendingReasons.", "components."}

// schedulerComponent is the scheduler process in both runs: the baseline
// runs the default profile in the same binary, under the same name.
const schedulerComponent = "hwameistor-scheduler"

// Table sizes: enough to see where the time goes without burying the page.
const (
	topAPIRequests    = 15
	topPendingReasons = 8
	maxReasonRunes    = 200
)

// figureTable is every general figure of both reports side by side.
func figureTable(p Pair) string {
	hw, def := figuresOf(p.HW.Report), figuresOf(p.Def.Report)
	t := table{head: []string{"figure", nameHwameistor, nameDefault, "ratio (hwameistor/default)"}}
	for _, k := range unionKeys(hw, def) {
		if hasAnyPrefix(k, ownTablePrefixes) {
			continue
		}
		a, okA := hw.get(k)
		b, okB := def.get(k)
		t.add(k, optNum(a, okA), optNum(b, okB), ratio(a, okA, b, okB))
	}
	return t.String()
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// unionKeys is the sorted keys of both maps.
func unionKeys[V any](a, b map[string]V) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range []map[string]V{a, b} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}

// componentTable is CPU seconds and peak RSS per process, both runs.
func componentTable(p Pair) string {
	hw, def := components(p.HW.Report), components(p.Def.Report)
	t := table{head: []string{"component", "CPU-s hwameistor", "CPU-s default", "ratio", "peak RSS MiB hwameistor", "peak RSS MiB default", "ratio"}}
	for _, k := range unionKeys(hw, def) {
		a, okA := hw[k]
		b, okB := def[k]
		ra, rb := mib(float64(a.PeakRSSBytes)), mib(float64(b.PeakRSSBytes))
		t.add(k,
			optNum(round1(a.CPUSeconds), okA), optNum(round1(b.CPUSeconds), okB), ratio(a.CPUSeconds, okA, b.CPUSeconds, okB),
			optNum(ra, okA), optNum(rb, okB), ratio(ra, okA, rb, okB))
	}
	return t.String()
}

func components(r *report.Report) map[string]report.Component {
	if r == nil {
		return nil
	}
	return r.Components
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }

// apiTable is the most frequent apiserver requests of both runs (by their
// sum), with the total of all requests last.
func apiTable(p Pair) string {
	hw, def := apiRequests(p.HW.Report), apiRequests(p.Def.Report)
	if len(hw) == 0 && len(def) == 0 {
		return ""
	}
	keys := unionKeys(hw, def)
	sort.SliceStable(keys, func(i, j int) bool { return hw[keys[i]]+def[keys[i]] > hw[keys[j]]+def[keys[j]] })
	t := table{head: []string{"request", nameHwameistor, nameDefault, "ratio"}}
	var sumA, sumB float64
	for i, k := range keys {
		a, okA := hw[k]
		b, okB := def[k]
		sumA += float64(a)
		sumB += float64(b)
		if i < topAPIRequests {
			t.add(code(k), optNum(float64(a), okA || hw != nil), optNum(float64(b), okB || def != nil), ratio(float64(a), hw != nil, float64(b), def != nil))
		}
	}
	t.add(fmt.Sprintf("all %d kinds", len(keys)), optNum(sumA, hw != nil), optNum(sumB, def != nil), ratio(sumA, hw != nil, sumB, def != nil))
	return t.String()
}

// apiRequests is nil for a missing report or one written before reports
// counted requests, so such a side shows "-" rather than zeros.
func apiRequests(r *report.Report) map[string]int64 {
	if r == nil || len(r.APIRequests) == 0 {
		return nil
	}
	return r.APIRequests
}

// numberedName is a quoted name with a digit (a claim, pod or node name):
// reasons differing only in it are counted together.
var numberedName = regexp.MustCompile(`"[^"]*[0-9][^"]*"`)

// reasonCount is one line of the pending reasons.
type reasonCount struct {
	reason string
	count  int
}

// groupReasons merges reasons that differ only in numbered names, most
// frequent first.
func groupReasons(reasons map[string]int) []reasonCount {
	merged := map[string]int{}
	for r, n := range reasons {
		merged[numberedName.ReplaceAllString(r, `"*"`)] += n
	}
	out := make([]reasonCount, 0, len(merged))
	for r, n := range merged {
		out = append(out, reasonCount{r, n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].count != out[j].count {
			return out[i].count > out[j].count
		}
		return out[i].reason < out[j].reason
	})
	return out
}

// pendingReasons lists why pods stayed Pending, for one side.
func pendingReasons(name string, run Run) string {
	r := run.Report
	if r == nil {
		return fmt.Sprintf("- %s: %s\n", name, run.Missing)
	}
	if r.Pods.Pending == 0 && len(r.Pods.PendingReasons) == 0 {
		return fmt.Sprintf("- %s: no pod Pending\n", name)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "- %s: %s Pending\n", name, thousands(int64(r.Pods.Pending)))
	groups := groupReasons(r.Pods.PendingReasons)
	for i, g := range groups {
		if i == topPendingReasons {
			rest := 0
			for _, g := range groups[i:] {
				rest += g.count
			}
			fmt.Fprintf(&b, "  - ... %d more reasons (%s pods)\n", len(groups)-i, thousands(int64(rest)))
			break
		}
		fmt.Fprintf(&b, "  - %s x %s\n", thousands(int64(g.count)), code(cut(g.reason, maxReasonRunes)))
	}
	return b.String()
}

// cut shortens s to n runes, ending in "..." when cut.
func cut(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-3]) + "..."
}

// derivedTable holds the figures the goals are phrased in.
func derivedTable(p Pair) string {
	t := table{head: []string{"derived figure", nameHwameistor, nameDefault, "ratio (hwameistor/default)"}}
	rows := []struct {
		name string
		f    func(*report.Report) (float64, bool)
	}{
		{"pods Running", func(r *report.Report) (float64, bool) { return float64(r.Pods.Running), true }},
		{"scheduler CPU-s per 1,000 pods Running", schedulerCPUPer1000},
		{"scheduler peak RSS MiB", schedulerRSSMiB},
		{"seconds to all pods Running", secondsToAllRunning},
		{"seconds to settle (durationSeconds)", func(r *report.Report) (float64, bool) { return r.DurationSeconds, true }},
		{"apiserver requests per pod", apiRequestsPerPod},
	}
	for _, row := range rows {
		a, okA := measure(p.HW.Report, row.f)
		b, okB := measure(p.Def.Report, row.f)
		t.add(row.name, optNum(a, okA), optNum(b, okB), ratio(a, okA, b, okB))
	}
	return t.String()
}

// measure applies f to a report that may be missing.
func measure(r *report.Report, f func(*report.Report) (float64, bool)) (float64, bool) {
	if r == nil {
		return 0, false
	}
	return f(r)
}

// schedulerCPUPer1000 normalises the scheduler's CPU by the pods it got
// Running, so runs that placed different numbers of pods compare.
func schedulerCPUPer1000(r *report.Report) (float64, bool) {
	c, ok := r.Components[schedulerComponent]
	if !ok || r.Pods.Running == 0 {
		return 0, false
	}
	return round1(c.CPUSeconds / float64(r.Pods.Running) * 1000), true
}

func schedulerRSSMiB(r *report.Report) (float64, bool) {
	c, ok := r.Components[schedulerComponent]
	if !ok {
		return 0, false
	}
	return mib(float64(c.PeakRSSBytes)), true
}

// secondsToAllRunning is when the running timeline first reached every
// pod; unknown when some never ran or the report has no timeline.
func secondsToAllRunning(r *report.Report) (float64, bool) {
	if r.Progress == nil || r.Pods.Total == 0 || r.Pods.Running < r.Pods.Total {
		return 0, false
	}
	for _, pt := range r.Progress.Running {
		if pt.Count >= r.Pods.Total {
			return round1(pt.Seconds), true
		}
	}
	return 0, false
}

func apiRequestsPerPod(r *report.Report) (float64, bool) {
	if len(r.APIRequests) == 0 || r.Pods.Total == 0 {
		return 0, false
	}
	var sum int64
	for _, n := range r.APIRequests {
		sum += n
	}
	return round1(float64(sum) / float64(r.Pods.Total)), true
}
