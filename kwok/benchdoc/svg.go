package benchdoc

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"hwameistor.io/local/kwok/report"
)

// Chart geometry and look: the same width and palette as the run's own
// chart (kwok/report), so the pictures of a page look alike.
const (
	svgWidth     = 960
	svgLeft      = 72
	svgRight     = 24
	svgPlotW     = svgWidth - svgLeft - svgRight
	svgProgressH = 260
	svgPoolH     = 150
	svgFont      = "DejaVu Sans, Helvetica, Arial, sans-serif"
	svgAxisColor = "#333333"
	svgGridColor = "#e6e6e6"
	svgRefColor  = "#888888"
	// maxTimelinePoints keeps a chart small: long runs sample every
	// 0.5 s, thousands of points that a 864-pixel axis cannot show.
	maxTimelinePoints = 300
	poolClassPrefix   = "LocalStorage_Pool"
)

// sideColors tells the two schedulers apart in every chart; the light
// tints draw pods running under the pods bound line.
var (
	sideColors = map[string]string{nameHwameistor: "#4e79a7", nameDefault: "#f28e2b"}
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
	var legend []legendItem
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
		legend = append(legend, legendItem{s.name + " bound", sideColors[s.name], 2, true},
			legendItem{s.name + " running", sideTints[s.name], 5, true})
		xHi = math.Max(xHi, end)
		yHi = max(yHi, maxCount(bound), maxCount(running), s.r.Pods.Total)
		total = max(total, s.r.Pods.Total)
	}
	if len(lines) == 0 {
		return nil
	}
	b := &svgBuf{}
	b.textf(svgWidth/2, 28, `text-anchor="middle" font-size="16" font-weight="bold"`, "%s: pods bound and running over time", p.Scenario)
	top, bottom := 48.0, 48.0+svgProgressH
	xAx, yAx := report.NiceAxis(0, xHi, 10, false), report.NiceAxis(0, float64(yHi), 6, true)
	px := func(s float64) float64 { return svgLeft + s/xAx.Hi*svgPlotW }
	py := func(n float64) float64 { return bottom - n/yAx.Hi*svgProgressH }
	b.grid(yAx, py)
	for _, v := range xAx.Ticks {
		b.printf(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s"/>`+"\n", f2(px(v)), f2(bottom), f2(px(v)), f2(bottom+4), svgAxisColor)
		b.textf(px(v), bottom+18, `text-anchor="middle"`, "%s", xAx.Label(v))
	}
	b.axes(top, bottom)
	b.textf(svgLeft+svgPlotW/2, bottom+36, `text-anchor="middle"`, "seconds since the workloads started")
	if total > 0 {
		y := py(float64(total))
		b.printf(`<line x1="%d" y1="%s" x2="%d" y2="%s" stroke="%s" stroke-dasharray="2 3"/>`+"\n", svgLeft, f2(y), svgLeft+svgPlotW, f2(y), svgRefColor)
		b.textf(svgLeft+svgPlotW-4, y-4, `text-anchor="end" fill="#666666"`, "%s pods", thousands(int64(total)))
	}
	// every running line first: no halo covers another run's bound line
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].width > lines[j].width })
	for _, l := range lines {
		b.stepLine(l.pts, l.end, px, py, l.color, l.width, l.label)
	}
	return b.document(fmt.Sprintf("%s: pods over time", p.Scenario), b.legend(legend, bottom+50))
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

// stepLine draws a timeline whose count holds until the next point, and
// after the last point until end.
func (b *svgBuf) stepLine(pts []report.Point, end float64, px, py func(float64) float64, color string, width float64, title string) {
	if len(pts) == 0 {
		return
	}
	var coords []string
	for i, p := range pts {
		if i > 0 {
			coords = append(coords, f2(px(p.Seconds))+","+f2(py(float64(pts[i-1].Count))))
		}
		coords = append(coords, f2(px(p.Seconds))+","+f2(py(float64(p.Count))))
	}
	if last := pts[len(pts)-1]; last.Seconds < end {
		coords = append(coords, f2(px(end))+","+f2(py(float64(last.Count))))
	}
	b.printf(`<polyline points="%s" fill="none" stroke="%s" stroke-width="%s" stroke-linejoin="round"><title>%s</title></polyline>`+"\n",
		strings.Join(coords, " "), color, f2(width), esc(title))
}

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

	b := &svgBuf{}
	b.textf(svgWidth/2, 28, `text-anchor="middle" font-size="16" font-weight="bold"`, "%s: pool utilisation at the end, per pool class", p.Scenario)
	var legend []legendItem
	for _, s := range sides {
		legend = append(legend, legendItem{label: s.name, color: sideColors[s.name]})
	}
	y := b.legend(legend, 40)
	for _, class := range classes {
		per := make([][]float64, len(sides))
		for i := range sides {
			per[i] = utils[i][class]
		}
		y = b.poolPanel(class, sides, per, y+12)
	}
	return b.document(fmt.Sprintf("%s: pool utilisation", p.Scenario), y)
}

// poolPanel draws one class's histogram from y down and returns the y
// below it.
func (b *svgBuf) poolPanel(class string, sides []side, utils [][]float64, y float64) float64 {
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
	b.textf(svgLeft, y+14, `font-size="14" font-weight="bold"`, "%s pools: number of pools by utilisation (used / total)", class)
	y += 20
	for i, s := range sides {
		b.textf(svgLeft, y+14, `fill="#333333"`, "%s: %s", s.name, spread(utils[i]))
		y += 16
	}
	top, bottom := y+16, y+16+svgPoolH
	// headroom for the count above the highest bar
	yAx := report.NiceAxis(0, float64(yHi)*1.12, 4, true)
	py := func(n float64) float64 { return bottom - n/yAx.Hi*svgPoolH }
	b.grid(yAx, py)
	slot := float64(svgPlotW) / float64(len(bucketLabels))
	barW := math.Min(28, (slot-12)/float64(max(len(sides), 1)))
	for k, label := range bucketLabels {
		x0 := svgLeft + float64(k)*slot + (slot-barW*float64(len(sides)))/2
		for i, s := range sides {
			n := counts[i][k]
			x := x0 + float64(i)*barW
			if n > 0 {
				b.printf(`<rect x="%s" y="%s" width="%s" height="%s" fill="%s"><title>%s %s: %d pools</title></rect>`+"\n",
					f2(x), f2(py(float64(n))), f2(barW-2), f2(bottom-py(float64(n))), sideColors[s.name], esc(s.name), esc(label), n)
				b.textf(x+(barW-2)/2, py(float64(n))-3, `text-anchor="middle" font-size="9" fill="#333333"`, "%d", n)
			}
		}
		b.textf(svgLeft+float64(k)*slot+slot/2, bottom+16, `text-anchor="middle"`, "%s", label)
	}
	b.axes(top, bottom)
	return bottom + 24
}

// spread summarises utilisations: count, min, p10, median, p90, max.
func spread(sorted []float64) string {
	if len(sorted) == 0 {
		return "no pools of this class"
	}
	q := func(p float64) string { return pct(quantile(sorted, p)) }
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

func pct(u float64) string {
	if math.IsInf(u, 1) {
		return "inf%"
	}
	return strconv.FormatFloat(math.Round(u*100), 'f', 0, 64) + "%"
}

// svgBuf accumulates a chart's body; document wraps it.
type svgBuf struct{ bytes.Buffer }

func (b *svgBuf) printf(format string, args ...any) { fmt.Fprintf(b, format, args...) }

// textf writes a <text>; the content is escaped, attrs are trusted.
func (b *svgBuf) textf(x, y float64, attrs, format string, args ...any) {
	b.printf(`<text x="%s" y="%s" %s>%s</text>`+"\n", f2(x), f2(y), attrs, esc(fmt.Sprintf(format, args...)))
}

// grid draws the horizontal grid lines and their labels of a y axis.
func (b *svgBuf) grid(a report.Axis, py func(float64) float64) {
	for _, v := range a.Ticks {
		y := py(v)
		b.printf(`<line x1="%d" y1="%s" x2="%d" y2="%s" stroke="%s"/>`+"\n", svgLeft, f2(y), svgLeft+svgPlotW, f2(y), svgGridColor)
		b.textf(svgLeft-6, y+4, `text-anchor="end"`, "%s", a.Label(v))
	}
}

// axes draws the left and bottom axis lines of a plot.
func (b *svgBuf) axes(top, bottom float64) {
	b.printf(`<path d="M%d %sV%sH%d" fill="none" stroke="%s"/>`+"\n", svgLeft, f2(top), f2(bottom), svgLeft+svgPlotW, svgAxisColor)
}

type legendItem struct {
	label, color string
	width        float64 // of a line swatch
	line         bool    // a line swatch, else a square
}

// legend lays items out left to right from y, wrapping at the plot width,
// and returns the y below it.
func (b *svgBuf) legend(items []legendItem, y float64) float64 {
	const rowH = 18
	x, row := float64(svgLeft), 0
	for _, it := range items {
		w := 22 + float64(utf8.RuneCountInString(it.label))*7 + 18
		if x > svgLeft && x+w > svgLeft+svgPlotW {
			x, row = svgLeft, row+1
		}
		yy := y + float64(row*rowH)
		if it.line {
			b.printf(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="%s"/>`+"\n", f2(x), f2(yy+8), f2(x+16), f2(yy+8), it.color, f2(it.width))
		} else {
			b.printf(`<rect x="%s" y="%s" width="12" height="12" fill="%s"/>`+"\n", f2(x+2), f2(yy+2), it.color)
		}
		b.textf(x+22, yy+12, "", "%s", it.label)
		x += w
	}
	return y + float64((row+1)*rowH)
}

// document wraps the body into a standalone SVG of the given height.
func (b *svgBuf) document(title string, height float64) []byte {
	h := f2(math.Ceil(height + 16))
	var out bytes.Buffer
	out.WriteString(xml.Header)
	fmt.Fprintf(&out, `<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="%d" height="%s" viewBox="0 0 %d %s" font-family="%s" font-size="12">`+"\n",
		svgWidth, h, svgWidth, h, svgFont)
	fmt.Fprintf(&out, "<title>%s</title>\n", esc(title))
	fmt.Fprintf(&out, `<rect x="0" y="0" width="%d" height="%s" fill="#ffffff"/>`+"\n", svgWidth, h)
	out.Write(b.Bytes())
	out.WriteString("</svg>\n")
	return out.Bytes()
}

// f2 formats a coordinate: two decimals at most, no trailing zeros, so
// the same input always gives the same bytes.
func f2(v float64) string {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" || s == "" {
		return "0"
	}
	return s
}

// esc escapes s for XML text and attributes.
func esc(s string) string {
	var sb strings.Builder
	_ = xml.EscapeText(&sb, []byte(s))
	return sb.String()
}
