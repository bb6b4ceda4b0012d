// Package svgchart holds the SVG writing primitives of the simulator's
// charts: the run's own chart (kwok/report) and the benchmark document's
// charts (kwok/benchdoc) draw through it, so that they share one width,
// one look, one escaping and one way of laying out axes and legends.
package svgchart

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Geometry and look of every chart. The width is fixed; a chart's height
// follows from what it draws.
const (
	Width     = 960
	Left      = 72 // the plot area starts here (y tick labels to the left)
	Right     = 24
	PlotW     = Width - Left - Right
	Font      = "DejaVu Sans, Helvetica, Arial, sans-serif"
	AxisColor = "#333333"
	GridColor = "#e6e6e6"
)

// Palette is Tableau 10, the colours of lines and series.
var Palette = []string{
	"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
	"#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
}

// Doc accumulates a chart's body; Document wraps it into a standalone SVG.
type Doc struct{ bytes.Buffer }

// Printf writes formatted markup; the caller escapes what needs it.
func (d *Doc) Printf(format string, args ...any) { fmt.Fprintf(d, format, args...) }

// Text writes a <text> at x, y; the formatted content is escaped, attrs
// (e.g. `class="tick" text-anchor="end"`, or "") are trusted.
func (d *Doc) Text(x, y float64, attrs, format string, args ...any) {
	if attrs != "" {
		attrs = " " + attrs
	}
	d.Printf(`<text x="%s" y="%s"%s>%s</text>`+"\n", Num(x), Num(y), attrs, Esc(fmt.Sprintf(format, args...)))
}

// Document returns the body wrapped into an SVG document Width wide and
// height+16 (rounded up) high, with a title and a white background.
func (d *Doc) Document(title string, height float64) []byte {
	h := Num(math.Ceil(height + 16))
	var out bytes.Buffer
	out.WriteString(xml.Header)
	fmt.Fprintf(&out, `<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="%d" height="%s" viewBox="0 0 %d %s" font-family="%s" font-size="12">`+"\n",
		Width, h, Width, h, Font)
	fmt.Fprintf(&out, "<title>%s</title>\n", Esc(title))
	fmt.Fprintf(&out, `<rect class="background" x="0" y="0" width="%d" height="%s" fill="#ffffff"/>`+"\n", Width, h)
	out.Write(d.Bytes())
	out.WriteString("</svg>\n")
	return out.Bytes()
}

// GridLine draws a horizontal grid line across the plot at y.
func (d *Doc) GridLine(y float64) {
	d.Printf(`<line class="grid" x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s"/>`+"\n", Num(Left), Num(y), Num(Left+PlotW), Num(y), GridColor)
}

// YTick writes a y tick label left of the plot at y.
func (d *Doc) YTick(y float64, label string) {
	d.Text(Left-6, y+4, `class="tick" text-anchor="end"`, "%s", label)
}

// YAxis draws a grid line and a label at every tick of a; py maps a value
// to its y.
func (d *Doc) YAxis(a Axis, py func(float64) float64) {
	for _, v := range a.Ticks {
		d.GridLine(py(v))
		d.YTick(py(v), a.Label(v))
	}
}

// XAxis draws a tick mark below bottom and a label at every tick of a; px
// maps a value to its x.
func (d *Doc) XAxis(a Axis, px func(float64) float64, bottom float64) {
	for _, v := range a.Ticks {
		x := px(v)
		d.Printf(`<line class="tick" x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s"/>`+"\n", Num(x), Num(bottom), Num(x), Num(bottom+4), AxisColor)
		d.Text(x, bottom+18, `class="tick" text-anchor="middle"`, "%s", a.Label(v))
	}
}

// Frame draws the left and bottom axis lines of a plot from top to bottom.
func (d *Doc) Frame(top, bottom float64) {
	d.Printf(`<path class="axis" d="M%s %sV%sH%s" fill="none" stroke="%s"/>`+"\n",
		Num(Left), Num(top), Num(bottom), Num(Left+PlotW), AxisColor)
}

// XTitle writes an axis title centred under the plot at y.
func (d *Doc) XTitle(y float64, format string, args ...any) {
	d.Text(Left+PlotW/2, y, `class="axis-title" text-anchor="middle"`, format, args...)
}

// YTitle writes an axis title rotated along the left edge, centred
// between top and bottom.
func (d *Doc) YTitle(top, bottom float64, title string) {
	mid := Num((top + bottom) / 2)
	d.Printf(`<text class="axis-title" x="18" y="%s" text-anchor="middle" transform="rotate(-90 18 %s)">%s</text>`+"\n", mid, mid, Esc(title))
}

// Line is a polyline.
type Line struct {
	Class  string  // "" for none
	Points string  // "x,y x,y ...", e.g. from StepPoints
	Color  string  // stroke
	Width  float64 // stroke width; 0 is 2
	Dash   string  // stroke-dasharray; "" for solid
	Title  string  // tooltip
}

// Polyline draws l.
func (d *Doc) Polyline(l Line) {
	class := ""
	if l.Class != "" {
		class = ` class="` + l.Class + `"`
	}
	d.Printf(`<polyline%s points="%s" fill="none" stroke="%s" stroke-width="%s" stroke-linejoin="round"%s><title>%s</title></polyline>`+"\n",
		class, l.Points, l.Color, Num(width(l.Width)), dashAttr(l.Dash), Esc(l.Title))
}

// StepPoints is the points of a step line through pts (sorted by x): each
// y holds until the next point's x, and the last one until end (when end
// lies beyond it). xy gives a point's x and y in data units; px and py map
// them to the chart.
func StepPoints[P any](pts []P, xy func(P) (x, y float64), end float64, px, py func(float64) float64) string {
	var coords []string
	prevY := 0.0
	for i, p := range pts {
		x, y := xy(p)
		if i > 0 {
			coords = append(coords, Num(px(x))+","+Num(py(prevY)))
		}
		coords = append(coords, Num(px(x))+","+Num(py(y)))
		prevY = y
	}
	if n := len(pts); n > 0 {
		if x, y := xy(pts[n-1]); x < end {
			coords = append(coords, Num(px(end))+","+Num(py(y)))
		}
	}
	return strings.Join(coords, " ")
}

// LegendItem is one entry of a legend.
type LegendItem struct {
	Label, Color string
	Line         bool    // a line swatch, else a square
	Width        float64 // of a line swatch; 0 is 2
	Dash         string  // of a line swatch; "" for solid
}

// legendLabelRunes cuts long legend labels.
const legendLabelRunes = 80

// Legend lays items out left to right from y, wrapping at the plot width,
// and returns the y below it (y itself when there are no items).
func (d *Doc) Legend(items []LegendItem, y float64) float64 {
	if len(items) == 0 {
		return y
	}
	const rowH = 18
	d.WriteString(`<g class="legend">` + "\n")
	x, row := float64(Left), 0
	for _, it := range items {
		label := Cut(it.Label, legendLabelRunes)
		w := 22 + float64(utf8.RuneCountInString(label))*7 + 18
		if x > Left && x+w > Left+PlotW {
			x, row = Left, row+1
		}
		yy := y + float64(row*rowH)
		if it.Line {
			d.Printf(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="%s"%s/>`+"\n",
				Num(x), Num(yy+8), Num(x+16), Num(yy+8), it.Color, Num(width(it.Width)), dashAttr(it.Dash))
		} else {
			d.Printf(`<rect x="%s" y="%s" width="12" height="12" fill="%s"/>`+"\n", Num(x+2), Num(yy+2), it.Color)
		}
		d.Text(x+22, yy+12, `class="legend-label"`, "%s", label)
		x += w
	}
	d.WriteString("</g>\n")
	return y + float64((row+1)*rowH)
}

func width(w float64) float64 {
	if w == 0 {
		return 2
	}
	return w
}

func dashAttr(dash string) string {
	if dash == "" {
		return ""
	}
	return ` stroke-dasharray="` + dash + `"`
}

// Axis is a linear chart axis with round ticks.
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

// Num formats a coordinate: two decimals at most, no trailing zeros, so
// the same input always gives the same bytes.
func Num(v float64) string {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" || s == "" {
		return "0"
	}
	return s
}

// Esc escapes s for XML text and attribute values.
func Esc(s string) string {
	var sb strings.Builder
	_ = xml.EscapeText(&sb, []byte(s))
	return sb.String()
}

// Cut shortens s to n characters, ending in "..." when cut.
func Cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-3]) + "..."
}

// Percent formats a ratio as a whole percentage; +Inf is "inf%".
func Percent(u float64) string {
	if math.IsInf(u, 1) {
		return "inf%"
	}
	return strconv.FormatFloat(math.Round(u*100), 'f', 0, 64) + "%"
}
