package report

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"hwameistor.io/local/kwok/svgchart"
)

// Timeline is a count over time since the workloads started (e.g. pods bound).
type Timeline struct {
	Label  string  // legend, e.g. "hwameistor-scheduler bound"
	Points []Point // sorted by Seconds
}

// Point is one sample of a Timeline: Count holds from Seconds until the
// next point (and after the last one until the end of the data).
type Point struct {
	Seconds float64 `json:"s"`
	Count   int     `json:"n"`
}

// PoolUse is one pool of one node at the end of a run.
type PoolUse struct {
	Node       string `json:"node"`
	Pool       string `json:"pool"`
	UsedBytes  int64  `json:"usedBytes"`
	TotalBytes int64  `json:"totalBytes"`
}

// Chart is what the SVG shows.
type Chart struct {
	Title string
	// Timelines are step lines on the top panel "pods over time".
	Timelines []Timeline
	// Pools are the bottom panel: one bar per node/pool, utilisation
	// 0..100%; bars above 100% are drawn in a warning colour, clipped, and
	// marked with a triangle.
	Pools []PoolUse
}

// Chart geometry and look beyond svgchart's. The width is fixed; the
// height follows from the panels present, the legends and the per-bar
// labels.
const (
	chartTimelineH   = 260
	chartPoolH       = 220
	chartMaxBarLabel = 60 // above this many bars: no per-bar labels, a summary instead
	chartLabelRunes  = 40 // per-bar labels are cut to this many characters
	chartPoolTop     = 1.12
	chartPoolClip    = 1.04 // bars above 100% stop here, a marker sits on top
	chartWarn        = "#e15759"
	chartWarnMark    = "#8b1a1a"
	chartRefColor    = "#c0392b"
	chartPoolPrefix  = "LocalStorage_Pool"
)

// The timelines take the colours of svgchart.Palette; past ten timelines
// the colours repeat with a dash pattern so every line stays distinct.
var chartLineDashes = []string{"", "6 3", "2 3", "8 3 2 3"}

// chartClassColors are the known pool classes; other pools take
// chartOtherClassColors in the sorted order of their class names.
var chartClassColors = map[string]string{
	"HDD":  "#4e79a7",
	"SSD":  "#59a14f",
	"NVMe": "#b07aa1",
}

var chartOtherClassColors = []string{"#76b7b2", "#edc948", "#9c755f", "#f28e2b", "#bab0ac", "#ff9da7"}

// WriteSVG renders c as a standalone SVG document.
func WriteSVG(w io.Writer, c Chart) error {
	body := &svgchart.Doc{}
	y := 16.0
	if c.Title != "" {
		body.Text(svgchart.Width/2, 30, `class="title" text-anchor="middle" font-size="18" font-weight="bold"`, "%s", c.Title)
		y = 48
	}
	if len(c.Timelines) > 0 {
		y = chartTimelines(body, c.Timelines, y)
	}
	if len(c.Pools) > 0 {
		if len(c.Timelines) > 0 {
			y += 16
		}
		y = chartPools(body, c.Pools, y)
	}
	if len(c.Timelines) == 0 && len(c.Pools) == 0 {
		body.Text(svgchart.Width/2, y+24, `class="empty" text-anchor="middle" font-size="14" fill="#666666"`, "no data")
		y += 40
	}
	title := c.Title
	if title == "" {
		title = "hwameistor-sim chart"
	}
	_, err := w.Write(body.Document(title, y))
	return err
}

// chartTimelines draws the "pods over time" panel from y down and returns
// the y below it.
func chartTimelines(b *svgchart.Doc, tls []Timeline, y float64) float64 {
	// Keep the finite points of each timeline, sorted by time (stable, so
	// equal times keep the caller's order).
	series := make([][]Point, len(tls))
	xLo, xHi := 0.0, math.Inf(-1)
	yLo, yHi := 0, 0
	for i, tl := range tls {
		for _, p := range tl.Points {
			if math.IsNaN(p.Seconds) || math.IsInf(p.Seconds, 0) {
				continue
			}
			series[i] = append(series[i], p)
			xLo = math.Min(xLo, p.Seconds)
			xHi = math.Max(xHi, p.Seconds)
			yLo = min(yLo, p.Count)
			yHi = max(yHi, p.Count)
		}
		sort.SliceStable(series[i], func(a, c int) bool { return series[i][a].Seconds < series[i][c].Seconds })
	}
	dataEnd := xHi // the last value of every line holds until here
	if math.IsInf(xHi, -1) || xHi <= xLo {
		xHi = xLo + 1
	}
	if yHi <= yLo {
		yHi = yLo + 1
	}
	xAx := svgchart.NiceAxis(xLo, xHi, 10, false)
	yAx := svgchart.NiceAxis(float64(yLo), float64(yHi), 6, true)

	b.Text(svgchart.Left, y+14, `class="panel-title" font-size="14" font-weight="bold"`, "pods over time")
	top := y + 26
	bottom := top + chartTimelineH
	px := func(s float64) float64 { return svgchart.Left + (s-xAx.Lo)/(xAx.Hi-xAx.Lo)*svgchart.PlotW }
	py := func(n float64) float64 { return bottom - (n-yAx.Lo)/(yAx.Hi-yAx.Lo)*chartTimelineH }

	b.WriteString(`<g class="panel timelines">` + "\n")
	b.YAxis(yAx, py)
	b.XAxis(xAx, px, bottom)
	b.Frame(top, bottom)
	b.XTitle(bottom+36, "seconds since the workloads started")
	b.YTitle(top, bottom, "pods")

	// step lines: the count holds until the next point
	var legend []svgchart.LegendItem
	for i, pts := range series {
		color := svgchart.Palette[i%len(svgchart.Palette)]
		dash := chartLineDashes[(i/len(svgchart.Palette))%len(chartLineDashes)]
		label := tls[i].Label
		if label == "" {
			label = fmt.Sprintf("series %d", i+1)
		}
		b.Polyline(svgchart.Line{Class: "timeline", Points: svgchart.StepPoints(pts, pointXY, dataEnd, px, py),
			Color: color, Dash: dash, Title: label})
		legend = append(legend, svgchart.LegendItem{Label: label, Color: color, Dash: dash, Line: true})
	}
	b.WriteString("</g>\n")
	return b.Legend(legend, bottom+50)
}

// pointXY is a point in the units of svgchart.StepPoints.
func pointXY(p Point) (float64, float64) { return p.Seconds, float64(p.Count) }

// chartPoolBar is one bar of the pool panel.
type chartPoolBar struct {
	PoolUse
	class string
	util  float64 // used/total; +Inf for used bytes in a pool of no size
}

// chartPools draws the pool utilisation panel from y down and returns the
// y below it.
func chartPools(b *svgchart.Doc, pools []PoolUse, y float64) float64 {
	bars := make([]chartPoolBar, len(pools))
	for i, p := range pools {
		bars[i] = chartPoolBar{PoolUse: p, class: chartPoolClass(p.Pool), util: chartUtil(p)}
	}
	sort.SliceStable(bars, func(i, j int) bool {
		if bars[i].Node != bars[j].Node {
			return bars[i].Node < bars[j].Node
		}
		return bars[i].Pool < bars[j].Pool
	})
	classColor := chartClassColorsFor(bars)

	utils := make([]float64, len(bars))
	over := 0
	for i, br := range bars {
		utils[i] = br.util
		if br.util > 1 {
			over++
		}
	}
	sort.Float64s(utils)
	median := utils[len(utils)/2]
	if len(utils)%2 == 0 {
		median = (utils[len(utils)/2-1] + utils[len(utils)/2]) / 2
	}
	noun := "pools"
	if len(bars) == 1 {
		noun = "pool"
	}
	summary := fmt.Sprintf("%d %s: min %s, median %s, max %s", len(bars), noun, svgchart.Percent(utils[0]), svgchart.Percent(median), svgchart.Percent(utils[len(utils)-1]))
	if over > 0 {
		summary += fmt.Sprintf(", %d over 100%%", over)
	}
	labelled := len(bars) <= chartMaxBarLabel

	b.Text(svgchart.Left, y+14, `class="panel-title" font-size="14" font-weight="bold"`, "pool utilisation (used / total) per node and pool")
	b.Text(svgchart.Left, y+32, `class="summary" fill="#333333"`, "%s", summary)
	top := y + 44
	bottom := top + chartPoolH
	py := func(u float64) float64 { return bottom - u/chartPoolTop*chartPoolH }

	b.WriteString(`<g class="panel pools">` + "\n")
	for _, u := range []float64{0, 0.5, 1} {
		yy := py(u)
		if u < 1 { // 100% is the reference line, drawn over the bars
			b.GridLine(yy)
		}
		b.YTick(yy, svgchart.Percent(u))
	}
	b.YTitle(top, bottom, "utilisation")

	slot := float64(svgchart.PlotW) / float64(len(bars))
	barW, gap := slot, 0.0
	if slot >= 4 {
		gap = math.Min(slot*0.2, 12)
		barW = slot - gap
	}
	maxLabel := 0
	for i, br := range bars {
		x := svgchart.Left + float64(i)*slot + gap/2
		u := br.util
		class, fill := "bar", classColor[br.class]
		if u > 1 {
			class, fill, u = "bar over", chartWarn, chartPoolClip
		}
		h := u / chartPoolTop * chartPoolH
		b.Printf(`<rect class="%s" x="%s" y="%s" width="%s" height="%s" fill="%s"><title>%s %s: %s of %s bytes (%s)</title></rect>`+"\n",
			class, svgchart.Num(x), svgchart.Num(bottom-h), svgchart.Num(barW), svgchart.Num(h), fill,
			svgchart.Esc(br.Node), svgchart.Esc(br.Pool), strconv.FormatInt(br.UsedBytes, 10), strconv.FormatInt(br.TotalBytes, 10), svgchart.Percent(br.util))
		if br.util > 1 {
			// the clip marker: a triangle on top of the clipped bar
			cx, mw := x+barW/2, math.Min(math.Max(barW, 6), 12)/2
			base := py(chartPoolClip)
			b.Printf(`<polygon class="over-marker" points="%s,%s %s,%s %s,%s" fill="%s"/>`+"\n",
				svgchart.Num(cx-mw), svgchart.Num(base), svgchart.Num(cx+mw), svgchart.Num(base), svgchart.Num(cx), svgchart.Num(base-8), chartWarnMark)
		}
		if labelled {
			label := svgchart.Cut(br.Node+" "+br.class+" "+svgchart.Percent(br.util), chartLabelRunes)
			maxLabel = max(maxLabel, utf8.RuneCountInString(label))
			lx, ly := x+barW/2+3, bottom+10
			b.Printf(`<text class="bar-label" x="%s" y="%s" text-anchor="end" font-size="10" transform="rotate(-60 %s %s)">%s</text>`+"\n",
				svgchart.Num(lx), svgchart.Num(ly), svgchart.Num(lx), svgchart.Num(ly), svgchart.Esc(label))
		}
	}
	// the 100% reference line, over the bars
	b.Printf(`<line class="reference" x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="1.5" stroke-dasharray="6 4"/>`+"\n",
		svgchart.Num(svgchart.Left), svgchart.Num(py(1)), svgchart.Num(svgchart.Left+svgchart.PlotW), svgchart.Num(py(1)), chartRefColor)
	b.Frame(top, bottom)
	var below float64
	if labelled {
		// rotated -60 degrees, about 5.5px a character at 10px
		below = bottom + 16 + float64(maxLabel)*5.5*math.Sin(math.Pi/3)
	} else {
		b.XTitle(bottom+18, "%d pools, sorted by node then pool (labels omitted above %d bars)", len(bars), chartMaxBarLabel)
		below = bottom + 32
	}
	b.WriteString("</g>\n")

	var legend []svgchart.LegendItem
	for _, cl := range chartSortedClasses(bars) {
		legend = append(legend, svgchart.LegendItem{Label: cl, Color: classColor[cl]})
	}
	if over > 0 {
		legend = append(legend, svgchart.LegendItem{Label: "over 100% (clipped)", Color: chartWarn})
	}
	legend = append(legend, svgchart.LegendItem{Label: "100%", Color: chartRefColor, Dash: "6 4", Line: true})
	return b.Legend(legend, below)
}

// chartUtil is used/total; a pool of no size is 0 when empty, +Inf when not.
func chartUtil(p PoolUse) float64 {
	if p.TotalBytes <= 0 {
		if p.UsedBytes > 0 {
			return math.Inf(1)
		}
		return 0
	}
	return float64(p.UsedBytes) / float64(p.TotalBytes)
}

// chartPoolClass is the class of a pool name: LocalStorage_PoolHDD -> HDD.
func chartPoolClass(pool string) string {
	if c := strings.TrimPrefix(pool, chartPoolPrefix); c != "" {
		return c
	}
	return pool
}

func chartSortedClasses(bars []chartPoolBar) []string {
	seen := map[string]bool{}
	var out []string
	for _, br := range bars {
		if !seen[br.class] {
			seen[br.class] = true
			out = append(out, br.class)
		}
	}
	sort.Strings(out)
	return out
}

// chartClassColorsFor gives every class of bars a colour: the known ones
// fixed, the others from chartOtherClassColors in sorted order.
func chartClassColorsFor(bars []chartPoolBar) map[string]string {
	out := map[string]string{}
	next := 0
	for _, cl := range chartSortedClasses(bars) {
		if c, ok := chartClassColors[cl]; ok {
			out[cl] = c
			continue
		}
		out[cl] = chartOtherClassColors[next%len(chartOtherClassColors)]
		next++
	}
	return out
}
