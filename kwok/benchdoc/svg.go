package benchdoc

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"hwameistor.io/local/kwok/report"
	"hwameistor.io/local/kwok/svgchart"
)

// Chart geometry and look beyond svgchart's, which the run's own chart
// (kwok/report) shares, so the pictures of a page look alike.
const (
	svgProgressH = 260
	svgPoolH     = 150
	svgRefColor  = "#888888"
	// maxTimelinePoints keeps a chart small: long runs sample every
	// 0.5 s, thousands of points that a 864-pixel axis cannot show.
	maxTimelinePoints = 300
	poolClassPrefix   = "LocalStorage_Pool"
)

// sideColors tells the two schedulers apart in every chart; the light
// tints draw pods running under the pods bound line.
var (
	sideColors = map[string]string{nameHwameistor: svgchart.Palette[0], nameDefault: svgchart.Palette[1]}
	sideTints  = map[string]string{nameHwameistor: "#a0cbe8", nameDefault: "#ffbe7d"}
)

// side is one scheduler's report as the charts use it.
type side struct {
	name string
	r    *report.Report
}

// sides are the pair's present reports, hwameistor first.
func (p Pair) sides() []side {
	var out []side
	if p.HW.Report != nil {
		out = append(out, side{nameHwameistor, p.HW.Report})
	}
	if p.Def.Report != nil {
		out = append(out, side{nameDefault, p.Def.Report})
	}
	return out
}

// ProgressSVG draws pods bound and running over time for both runs on one
// chart: running as a wide light line under the bound line, so that it
// shows as a halo where the two coincide (kwok starts a bound pod at once)
// and apart where pods wait for their volumes. nil when neither report has
// a timeline.
func ProgressSVG(p Pair) []byte {
	type line struct {
		label, color string
		width        float64
		pts          []report.Point
		end          float64
	}
	var lines []line
	var legend []svgchart.LegendItem
	xHi, yHi, total := 1.0, 1, 0
	for _, s := range p.sides() {
		if s.r.Progress == nil {
			continue
		}
		bound, running := sortedPoints(s.r.Progress.Bound), sortedPoints(s.r.Progress.Running)
		end := math.Max(lastSeconds(bound), lastSeconds(running))
		lines = append(lines,
			line{s.name + " running", sideTints[s.name], 5, downsample(running, maxTimelinePoints), end},
			line{s.name + " bound", sideColors[s.name], 1.5, downsample(bound, maxTimelinePoints), end})
		legend = append(legend, svgchart.LegendItem{Label: s.name + " bound", Color: sideColors[s.name], Width: 2, Line: true},
			svgchart.LegendItem{Label: s.name + " running", Color: sideTints[s.name], Width: 5, Line: true})
		xHi = math.Max(xHi, end)
		yHi = max(yHi, maxCount(bound), maxCount(running), s.r.Pods.Total)
		total = max(total, s.r.Pods.Total)
	}
	if len(lines) == 0 {
		return nil
	}
	b := &svgchart.Doc{}
	b.Text(svgchart.Width/2, 28, `text-anchor="middle" font-size="16" font-weight="bold"`, "%s: pods bound and running over time", p.Scenario)
	top, bottom := 48.0, 48.0+svgProgressH
	xAx, yAx := svgchart.NiceAxis(0, xHi, 10, false), svgchart.NiceAxis(0, float64(yHi), 6, true)
	px := func(s float64) float64 { return svgchart.Left + s/xAx.Hi*svgchart.PlotW }
	py := func(n float64) float64 { return bottom - n/yAx.Hi*svgProgressH }
	b.YAxis(yAx, py)
	b.XAxis(xAx, px, bottom)
	b.Frame(top, bottom)
	b.XTitle(bottom+36, "seconds since the workloads started")
	if total > 0 {
		y := py(float64(total))
		b.Printf(`<line x1="%d" y1="%s" x2="%d" y2="%s" stroke="%s" stroke-dasharray="2 3"/>`+"\n", svgchart.Left, svgchart.Num(y), svgchart.Left+svgchart.PlotW, svgchart.Num(y), svgRefColor)
		b.Text(svgchart.Left+svgchart.PlotW-4, y-4, `text-anchor="end" fill="#666666"`, "%s pods", thousands(int64(total)))
	}
	// every running line first: no halo covers another run's bound line
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].width > lines[j].width })
	for _, l := range lines {
		if len(l.pts) > 0 {
			b.Polyline(svgchart.Line{Points: svgchart.StepPoints(l.pts, pointXY, l.end, px, py), Color: l.color, Width: l.width, Title: l.label})
		}
	}
	return b.Document(fmt.Sprintf("%s: pods over time", p.Scenario), b.Legend(legend, bottom+50))
}

// sortedPoints orders a timeline by time (stable: equal times keep their
// order) and drops points that cannot be drawn.
func sortedPoints(pts []report.Point) []report.Point {
	out := make([]report.Point, 0, len(pts))
	for _, p := range pts {
		if !math.IsNaN(p.Seconds) && !math.IsInf(p.Seconds, 0) {
			out = append(out, p)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Seconds < out[j].Seconds })
	return out
}

func lastSeconds(pts []report.Point) float64 {
	if len(pts) == 0 {
		return 0
	}
	return pts[len(pts)-1].Seconds
}

func maxCount(pts []report.Point) int {
	m := 0
	for _, p := range pts {
		m = max(m, p.Count)
	}
	return m
}

// downsample keeps at most n points of a sorted step timeline: the last
// point of each of n-1 equal time slices, and the first point. A step moves
// by less than one slice, under a pixel at the chart's width.
func downsample(pts []report.Point, n int) []report.Point {
	if len(pts) <= n || n < 2 {
		return pts
	}
	lo, hi := pts[0].Seconds, pts[len(pts)-1].Seconds
	width := (hi - lo) / float64(n-1)
	if width <= 0 {
		return []report.Point{pts[0], pts[len(pts)-1]}
	}
	out := []report.Point{pts[0]}
	lastSlice := -1
	for _, p := range pts[1:] {
		slice := min(int((p.Seconds-lo)/width), n-2)
		if slice == lastSlice {
			out[len(out)-1] = p
			continue
		}
		out = append(out, p)
		lastSlice = slice
	}
	return out
}

// pointXY is a timeline point in the units of svgchart.StepPoints.
func pointXY(p report.Point) (float64, float64) { return p.Seconds, float64(p.Count) }

// Utilisation buckets of the pool chart: empty and exactly full pools
// apart (they show how far placement spread and how tightly it packed),
// tenths in between (each from its lower bound), then over-full.
var bucketLabels = []string{"empty", "<10%", "10–20", "20–30", "30–40", "40–50", "50–60", "60–70", "70–80", "80–90", "90–100", "full", ">100%"}

// bucket is the index in bucketLabels of a utilisation (used/total).
func bucket(u float64) int {
	switch {
	case u <= 0:
		return 0
	case u == 1:
		return len(bucketLabels) - 2
	case u > 1:
		return len(bucketLabels) - 1
	}
	// [0.3, 0.4) is "30–40"; the epsilon keeps 0.3 there despite rounding.
	return min(int(math.Floor(u*10+1e-9)), 9) + 1
}

// utilisation is used/total per pool class of one report.
func utilisation(r *report.Report) map[string][]float64 {
	out := map[string][]float64{}
	for _, p := range r.PoolUse {
		u := math.Inf(1)
		switch {
		case p.TotalBytes > 0:
			u = float64(p.UsedBytes) / float64(p.TotalBytes)
		case p.UsedBytes == 0:
			u = 0
		}
		class := strings.TrimPrefix(p.Pool, poolClassPrefix)
		if class == "" {
			class = p.Pool
		}
		out[class] = append(out[class], u)
	}
	for _, us := range out {
		sort.Float64s(us)
	}
	return out
}

// PoolsSVG draws, per pool class, how the pools' end-of-run utilisation
// is distributed under each scheduler: a histogram (readable with
// thousands of pools, unlike one bar per pool) and min/p10/median/p90/max.
// nil when neither report lists its pools.
func PoolsSVG(p Pair) []byte {
	sides := p.sides()
	utils := make([]map[string][]float64, len(sides))
	classSet := map[string]bool{}
	for i, s := range sides {
		utils[i] = utilisation(s.r)
		for c := range utils[i] {
			classSet[c] = true
		}
	}
	if len(classSet) == 0 {
		return nil
	}
	classes := make([]string, 0, len(classSet))
	for c := range classSet {
		classes = append(classes, c)
	}
	sort.Strings(classes)

	b := &svgchart.Doc{}
	b.Text(svgchart.Width/2, 28, `text-anchor="middle" font-size="16" font-weight="bold"`, "%s: pool utilisation at the end, per pool class", p.Scenario)
	var legend []svgchart.LegendItem
	for _, s := range sides {
		legend = append(legend, svgchart.LegendItem{Label: s.name, Color: sideColors[s.name]})
	}
	y := b.Legend(legend, 40)
	for _, class := range classes {
		per := make([][]float64, len(sides))
		for i := range sides {
			per[i] = utils[i][class]
		}
		y = poolPanel(b, class, sides, per, y+12)
	}
	return b.Document(fmt.Sprintf("%s: pool utilisation", p.Scenario), y)
}

// poolPanel draws one class's histogram from y down and returns the y
// below it.
func poolPanel(b *svgchart.Doc, class string, sides []side, utils [][]float64, y float64) float64 {
	counts := make([][]int, len(sides))
	yHi := 1
	for i, us := range utils {
		counts[i] = make([]int, len(bucketLabels))
		for _, u := range us {
			counts[i][bucket(u)]++
		}
		for _, n := range counts[i] {
			yHi = max(yHi, n)
		}
	}
	b.Text(svgchart.Left, y+14, `font-size="14" font-weight="bold"`, "%s pools: number of pools by utilisation (used / total)", class)
	y += 20
	for i, s := range sides {
		b.Text(svgchart.Left, y+14, `fill="#333333"`, "%s: %s", s.name, spread(utils[i]))
		y += 16
	}
	top, bottom := y+16, y+16+svgPoolH
	// headroom for the count above the highest bar
	yAx := svgchart.NiceAxis(0, float64(yHi)*1.12, 4, true)
	py := func(n float64) float64 { return bottom - n/yAx.Hi*svgPoolH }
	b.YAxis(yAx, py)
	slot := float64(svgchart.PlotW) / float64(len(bucketLabels))
	barW := math.Min(28, (slot-12)/float64(max(len(sides), 1)))
	for k, label := range bucketLabels {
		x0 := svgchart.Left + float64(k)*slot + (slot-barW*float64(len(sides)))/2
		for i, s := range sides {
			n := counts[i][k]
			x := x0 + float64(i)*barW
			if n > 0 {
				b.Printf(`<rect x="%s" y="%s" width="%s" height="%s" fill="%s"><title>%s %s: %d pools</title></rect>`+"\n",
					svgchart.Num(x), svgchart.Num(py(float64(n))), svgchart.Num(barW-2), svgchart.Num(bottom-py(float64(n))), sideColors[s.name], svgchart.Esc(s.name), svgchart.Esc(label), n)
				b.Text(x+(barW-2)/2, py(float64(n))-3, `text-anchor="middle" font-size="9" fill="#333333"`, "%d", n)
			}
		}
		b.Text(svgchart.Left+float64(k)*slot+slot/2, bottom+16, `text-anchor="middle"`, "%s", label)
	}
	b.Frame(top, bottom)
	return bottom + 24
}

// spread summarises utilisations: count, min, p10, median, p90, max.
func spread(sorted []float64) string {
	if len(sorted) == 0 {
		return "no pools of this class"
	}
	q := func(p float64) string { return svgchart.Percent(quantile(sorted, p)) }
	over := len(sorted) - sort.Search(len(sorted), func(i int) bool { return sorted[i] > 1 })
	s := fmt.Sprintf("%s pools, min %s · p10 %s · median %s · p90 %s · max %s", thousands(int64(len(sorted))), q(0), q(0.1), q(0.5), q(0.9), q(1))
	if over > 0 {
		s += fmt.Sprintf(", %d over 100%%", over)
	}
	return s
}

// quantile is the nearest-rank quantile of sorted values.
func quantile(sorted []float64, p float64) float64 {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
