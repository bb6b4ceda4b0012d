package report

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
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

// Chart geometry and look. The width is fixed; the height follows from the
// panels present, the legends and the per-bar labels.
const (
	chartWidth       = 960
	chartLeft        = 72 // plot area starts here (y tick labels to the left)
	chartRight       = 24
	chartPlotW       = chartWidth - chartLeft - chartRight
	chartTimelineH   = 260
	chartPoolH       = 220
	chartMaxBarLabel = 60 // above this many bars: no per-bar labels, a summary instead
	chartLabelRunes  = 40 // per-bar labels are cut to this many characters
	chartPoolTop     = 1.12
	chartPoolClip    = 1.04 // bars above 100% stop here, a marker sits on top
	chartWarn        = "#e15759"
	chartWarnMark    = "#8b1a1a"
	chartRefColor    = "#c0392b"
	chartAxisColor   = "#333333"
	chartGridColor   = "#e6e6e6"
	chartFont        = "DejaVu Sans, Helvetica, Arial, sans-serif"
	chartPoolPrefix  = "LocalStorage_Pool"
)

// chartLinePalette colours the timelines (Tableau 10); past ten timelines
// the colours repeat with a dash pattern so every line stays distinct.
var chartLinePalette = []string{
	"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
	"#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
}

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
	var b chartBuf
	body := &chartBuf{}
	y := 16.0
	if c.Title != "" {
		body.textf(chartWidth/2, 30, `class="title" text-anchor="middle" font-size="18" font-weight="bold"`, "%s", c.Title)
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
		body.textf(chartWidth/2, y+24, `class="empty" text-anchor="middle" font-size="14" fill="#666666"`, "no data")
		y += 40
	}
	height := math.Ceil(y + 16)

	b.WriteString(xml.Header)
	b.printf(`<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="%d" height="%s" viewBox="0 0 %d %s" font-family="%s" font-size="12">`+"\n",
		chartWidth, chartNum(height), chartWidth, chartNum(height), chartFont)
	title := c.Title
	if title == "" {
		title = "hwameistor-sim chart"
	}
	b.printf("<title>%s</title>\n", chartEsc(title))
	b.printf(`<rect class="background" x="0" y="0" width="%d" height="%s" fill="#ffffff"/>`+"\n", chartWidth, chartNum(height))
	b.Write(body.Bytes())
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}

// chartTimelines draws the "pods over time" panel from y down and returns
// the y below it.
func chartTimelines(b *chartBuf, tls []Timeline, y float64) float64 {
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
	xAx := NiceAxis(xLo, xHi, 10, false)
	yAx := NiceAxis(float64(yLo), float64(yHi), 6, true)

	b.textf(chartLeft, y+14, `class="panel-title" font-size="14" font-weight="bold"`, "pods over time")
	top := y + 26
	bottom := top + chartTimelineH
	px := func(s float64) float64 { return chartLeft + (s-xAx.Lo)/(xAx.Hi-xAx.Lo)*chartPlotW }
	py := func(n float64) float64 { return bottom - (n-yAx.Lo)/(yAx.Hi-yAx.Lo)*chartTimelineH }

	b.WriteString(`<g class="panel timelines">` + "\n")
	// grid and tick labels
	for _, v := range yAx.Ticks {
		yy := py(v)
		b.printf(`<line class="grid" x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s"/>`+"\n", chartNum(chartLeft), chartNum(yy), chartNum(chartLeft+chartPlotW), chartNum(yy), chartGridColor)
		b.textf(chartLeft-6, yy+4, `class="tick" text-anchor="end"`, "%s", yAx.Label(v))
	}
	for _, v := range xAx.Ticks {
		xx := px(v)
		b.printf(`<line class="tick" x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s"/>`+"\n", chartNum(xx), chartNum(bottom), chartNum(xx), chartNum(bottom+4), chartAxisColor)
		b.textf(xx, bottom+18, `class="tick" text-anchor="middle"`, "%s", xAx.Label(v))
	}
	chartAxes(b, top, bottom)
	b.textf(chartLeft+chartPlotW/2, bottom+36, `class="axis-title" text-anchor="middle"`, "seconds since the workloads started")
	b.printf(`<text class="axis-title" x="18" y="%s" text-anchor="middle" transform="rotate(-90 18 %s)">pods</text>`+"\n", chartNum((top+bottom)/2), chartNum((top+bottom)/2))

	// step lines: the count holds until the next point
	var legend []chartLegendItem
	for i, pts := range series {
		color := chartLinePalette[i%len(chartLinePalette)]
		dash := chartLineDashes[(i/len(chartLinePalette))%len(chartLineDashes)]
		var coords []string
		for j, p := range pts {
			if j > 0 {
				coords = append(coords, chartNum(px(p.Seconds))+","+chartNum(py(float64(pts[j-1].Count))))
			}
			coords = append(coords, chartNum(px(p.Seconds))+","+chartNum(py(float64(p.Count))))
		}
		if n := len(pts); n > 0 && pts[n-1].Seconds < dataEnd {
			coords = append(coords, chartNum(px(dataEnd))+","+chartNum(py(float64(pts[n-1].Count))))
		}
		dashAttr := ""
		if dash != "" {
			dashAttr = ` stroke-dasharray="` + dash + `"`
		}
		label := tls[i].Label
		if label == "" {
			label = fmt.Sprintf("series %d", i+1)
		}
		b.printf(`<polyline class="timeline" points="%s" fill="none" stroke="%s" stroke-width="2" stroke-linejoin="round"%s><title>%s</title></polyline>`+"\n",
			strings.Join(coords, " "), color, dashAttr, chartEsc(label))
		legend = append(legend, chartLegendItem{label: label, color: color, dash: dash, line: true})
	}
	b.WriteString("</g>\n")
	return chartLegend(b, legend, bottom+50)
}

// chartPoolBar is one bar of the pool panel.
type chartPoolBar struct {
	PoolUse
	class string
	util  float64 // used/total; +Inf for used bytes in a pool of no size
}

// chartPools draws the pool utilisation panel from y down and returns the
// y below it.
func chartPools(b *chartBuf, pools []PoolUse, y float64) float64 {
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
	summary := fmt.Sprintf("%d %s: min %s, median %s, max %s", len(bars), noun, chartPct(utils[0]), chartPct(median), chartPct(utils[len(utils)-1]))
	if over > 0 {
		summary += fmt.Sprintf(", %d over 100%%", over)
	}
	labelled := len(bars) <= chartMaxBarLabel

	b.textf(chartLeft, y+14, `class="panel-title" font-size="14" font-weight="bold"`, "pool utilisation (used / total) per node and pool")
	b.textf(chartLeft, y+32, `class="summary" fill="#333333"`, "%s", summary)
	top := y + 44
	bottom := top + chartPoolH
	py := func(u float64) float64 { return bottom - u/chartPoolTop*chartPoolH }

	b.WriteString(`<g class="panel pools">` + "\n")
	for _, u := range []float64{0, 0.5, 1} {
		yy := py(u)
		if u < 1 {
			b.printf(`<line class="grid" x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s"/>`+"\n", chartNum(chartLeft), chartNum(yy), chartNum(chartLeft+chartPlotW), chartNum(yy), chartGridColor)
		}
		b.textf(chartLeft-6, yy+4, `class="tick" text-anchor="end"`, "%s", chartPct(u))
	}
	b.printf(`<text class="axis-title" x="18" y="%s" text-anchor="middle" transform="rotate(-90 18 %s)">utilisation</text>`+"\n", chartNum((top+bottom)/2), chartNum((top+bottom)/2))

	slot := float64(chartPlotW) / float64(len(bars))
	barW, gap := slot, 0.0
	if slot >= 4 {
		gap = math.Min(slot*0.2, 12)
		barW = slot - gap
	}
	maxLabel := 0
	for i, br := range bars {
		x := chartLeft + float64(i)*slot + gap/2
		u := br.util
		class, fill := "bar", classColor[br.class]
		if u > 1 {
			class, fill, u = "bar over", chartWarn, chartPoolClip
		}
		h := u / chartPoolTop * chartPoolH
		b.printf(`<rect class="%s" x="%s" y="%s" width="%s" height="%s" fill="%s"><title>%s %s: %s of %s bytes (%s)</title></rect>`+"\n",
			class, chartNum(x), chartNum(bottom-h), chartNum(barW), chartNum(h), fill,
			chartEsc(br.Node), chartEsc(br.Pool), strconv.FormatInt(br.UsedBytes, 10), strconv.FormatInt(br.TotalBytes, 10), chartPct(br.util))
		if br.util > 1 {
			// the clip marker: a triangle on top of the clipped bar
			cx, mw := x+barW/2, math.Min(math.Max(barW, 6), 12)/2
			base := py(chartPoolClip)
			b.printf(`<polygon class="over-marker" points="%s,%s %s,%s %s,%s" fill="%s"/>`+"\n",
				chartNum(cx-mw), chartNum(base), chartNum(cx+mw), chartNum(base), chartNum(cx), chartNum(base-8), chartWarnMark)
		}
		if labelled {
			label := chartCut(br.Node+" "+br.class+" "+chartPct(br.util), chartLabelRunes)
			maxLabel = max(maxLabel, utf8.RuneCountInString(label))
			lx, ly := x+barW/2+3, bottom+10
			b.printf(`<text class="bar-label" x="%s" y="%s" text-anchor="end" font-size="10" transform="rotate(-60 %s %s)">%s</text>`+"\n",
				chartNum(lx), chartNum(ly), chartNum(lx), chartNum(ly), chartEsc(label))
		}
	}
	// the 100% reference line, over the bars
	b.printf(`<line class="reference" x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="1.5" stroke-dasharray="6 4"/>`+"\n",
		chartNum(chartLeft), chartNum(py(1)), chartNum(chartLeft+chartPlotW), chartNum(py(1)), chartRefColor)
	chartAxes(b, top, bottom)
	var below float64
	if labelled {
		// rotated -60 degrees, about 5.5px a character at 10px
		below = bottom + 16 + float64(maxLabel)*5.5*math.Sin(math.Pi/3)
	} else {
		b.textf(chartLeft+chartPlotW/2, bottom+18, `class="axis-title" text-anchor="middle"`, "%d pools, sorted by node then pool (labels omitted above %d bars)", len(bars), chartMaxBarLabel)
		below = bottom + 32
	}
	b.WriteString("</g>\n")

	var legend []chartLegendItem
	for _, cl := range chartSortedClasses(bars) {
		legend = append(legend, chartLegendItem{label: cl, color: classColor[cl]})
	}
	if over > 0 {
		legend = append(legend, chartLegendItem{label: "over 100% (clipped)", color: chartWarn})
	}
	legend = append(legend, chartLegendItem{label: "100%", color: chartRefColor, dash: "6 4", line: true})
	return chartLegend(b, legend, below)
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

// chartAxes draws the left and bottom axis lines of a plot.
func chartAxes(b *chartBuf, top, bottom float64) {
	b.printf(`<path class="axis" d="M%s %sV%sH%s" fill="none" stroke="%s"/>`+"\n",
		chartNum(chartLeft), chartNum(top), chartNum(bottom), chartNum(chartLeft+chartPlotW), chartAxisColor)
}

type chartLegendItem struct {
	label, color, dash string
	line               bool // a line swatch, else a square
}

// chartLegend lays items out left to right from y, wrapping at the plot
// width, and returns the y below the legend.
func chartLegend(b *chartBuf, items []chartLegendItem, y float64) float64 {
	if len(items) == 0 {
		return y
	}
	const rowH = 18
	b.WriteString(`<g class="legend">` + "\n")
	x, row := float64(chartLeft), 0
	for _, it := range items {
		label := chartCut(it.label, 80)
		w := 22 + float64(utf8.RuneCountInString(label))*7 + 18
		if x > chartLeft && x+w > chartLeft+chartPlotW {
			x, row = chartLeft, row+1
		}
		yy := y + float64(row*rowH)
		if it.line {
			dash := ""
			if it.dash != "" {
				dash = ` stroke-dasharray="` + it.dash + `"`
			}
			b.printf(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="2"%s/>`+"\n",
				chartNum(x), chartNum(yy+8), chartNum(x+16), chartNum(yy+8), it.color, dash)
		} else {
			b.printf(`<rect x="%s" y="%s" width="12" height="12" fill="%s"/>`+"\n", chartNum(x+2), chartNum(yy+2), it.color)
		}
		b.textf(x+22, yy+12, `class="legend-label"`, "%s", label)
		x += w
	}
	b.WriteString("</g>\n")
	return y + float64((row+1)*rowH)
}

// Axis is a linear chart axis with round ticks; the benchmark charts
// (kwok/benchdoc) use it too.
type Axis struct {
	Lo, Hi, Step float64
	Ticks        []float64
	decimals     int
}

// NiceAxis covers lo..hi with about n ticks of a round step (1, 2 or 5
// times a power of ten; at least 1 when integer). An empty range becomes
// lo..lo+1.
func NiceAxis(lo, hi float64, n int, integer bool) Axis {
	if hi <= lo {
		hi = lo + 1
	}
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * mag
	for _, m := range []float64{1, 2, 5} {
		if raw <= m*mag {
			step = m * mag
			break
		}
	}
	if integer && step < 1 {
		step = 1
	}
	a := Axis{Step: step, Lo: math.Floor(lo/step) * step, Hi: math.Ceil(hi/step) * step}
	if a.Hi <= a.Lo {
		a.Hi = a.Lo + step
	}
	if step < 1 {
		a.decimals = int(math.Ceil(-math.Log10(step) - 1e-9))
	}
	for i := 0; ; i++ {
		v := a.Lo + float64(i)*step
		if v > a.Hi+step/2 {
			break
		}
		a.Ticks = append(a.Ticks, v)
	}
	return a
}

// Label formats a tick value with the decimals the step needs.
func (a Axis) Label(v float64) string {
	s := strconv.FormatFloat(v, 'f', a.decimals, 64)
	if s == "-0" {
		s = "0"
	}
	return s
}

// chartPct formats a utilisation as a whole percentage.
func chartPct(u float64) string {
	if math.IsInf(u, 1) {
		return "inf%"
	}
	return strconv.FormatFloat(math.Round(u*100), 'f', 0, 64) + "%"
}

// chartNum formats a coordinate: two decimals at most, no trailing zeros.
func chartNum(v float64) string {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" || s == "" {
		s = "0"
	}
	return s
}

// chartEsc escapes s for XML text and attribute values.
func chartEsc(s string) string {
	var sb strings.Builder
	_ = xml.EscapeText(&sb, []byte(s))
	return sb.String()
}

// chartCut shortens s to n characters, ending in "..." when cut.
func chartCut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-3]) + "..."
}

type chartBuf struct{ bytes.Buffer }

func (b *chartBuf) printf(format string, args ...any) { fmt.Fprintf(b, format, args...) }

// textf writes a <text> element; the formatted content is escaped, attrs
// are trusted.
func (b *chartBuf) textf(x, y float64, attrs, format string, args ...any) {
	b.printf(`<text x="%s" y="%s" %s>%s</text>`+"\n", chartNum(x), chartNum(y), attrs, chartEsc(fmt.Sprintf(format, args...)))
}
