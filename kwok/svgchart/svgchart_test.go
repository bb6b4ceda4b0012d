package svgchart

import (
	"bytes"
	"encoding/xml"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestEsc(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"a<b", "a&lt;b"},
		{"a&b", "a&amp;b"},
		{`"q" 'a'`, "&#34;q&#34; &#39;a&#39;"},
		{"x>y", "x&gt;y"},
		{"", ""},
		{"über ·", "über ·"},
	} {
		if got := Esc(tc.in); got != tc.want {
			t.Errorf("Esc(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestNum(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want string
	}{{0, "0"}, {72, "72"}, {1.5, "1.5"}, {1.005, "1"}, {2.345, "2.35"}, {-0.001, "0"}, {-3.1, "-3.1"}, {100.10, "100.1"}} {
		if got := Num(tc.in); got != tc.want {
			t.Errorf("Num(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCutAndPercent(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{{"short", 10, "short"}, {"exactly10!", 10, "exactly10!"}, {"a longer label", 10, "a longe..."}, {"ääääää", 5, "ää..."}} {
		if got := Cut(tc.in, tc.n); got != tc.want {
			t.Errorf("Cut(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
	for _, tc := range []struct {
		in   float64
		want string
	}{{0, "0%"}, {0.5, "50%"}, {1.304, "130%"}, {0.996, "100%"}, {math.Inf(1), "inf%"}} {
		if got := Percent(tc.in); got != tc.want {
			t.Errorf("Percent(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestNiceAxis(t *testing.T) {
	for _, tc := range []struct {
		name      string
		lo, hi    float64
		n         int
		integer   bool
		wantTicks []float64
		wantLabel []string
	}{
		{"seconds", 0, 6.2, 10, false, []float64{0, 1, 2, 3, 4, 5, 6, 7}, []string{"0", "1", "2", "3", "4", "5", "6", "7"}},
		{"pods", 0, 9, 6, true, []float64{0, 2, 4, 6, 8, 10}, nil},
		{"round up", 0, 401, 10, false, []float64{0, 50, 100, 150, 200, 250, 300, 350, 400, 450}, nil},
		{"fractions", 0, 0.3, 6, false, []float64{0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3}, []string{"0.00", "0.05", "0.10", "0.15", "0.20", "0.25", "0.30"}},
		{"integer keeps step 1", 0, 2, 10, true, []float64{0, 1, 2}, []string{"0", "1", "2"}},
		{"empty range", 3, 3, 5, true, []float64{3, 4}, nil},
		{"negative", -10, 10, 4, false, []float64{-10, -5, 0, 5, 10}, []string{"-10", "-5", "0", "5", "10"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := NiceAxis(tc.lo, tc.hi, tc.n, tc.integer)
			if len(a.Ticks) != len(tc.wantTicks) {
				t.Fatalf("ticks %v, want %v", a.Ticks, tc.wantTicks)
			}
			for i, v := range a.Ticks {
				if math.Abs(v-tc.wantTicks[i]) > 1e-9 {
					t.Fatalf("ticks %v, want %v", a.Ticks, tc.wantTicks)
				}
			}
			if a.Lo > tc.lo || a.Hi < tc.hi || a.Lo != a.Ticks[0] || a.Hi != a.Ticks[len(a.Ticks)-1] {
				t.Errorf("axis %v..%v does not cover %v..%v with its ticks", a.Lo, a.Hi, tc.lo, tc.hi)
			}
			if tc.wantLabel != nil {
				var got []string
				for _, v := range a.Ticks {
					got = append(got, a.Label(v))
				}
				if !reflect.DeepEqual(got, tc.wantLabel) {
					t.Errorf("labels %q, want %q", got, tc.wantLabel)
				}
			}
		})
	}
}

func TestStepPoints(t *testing.T) {
	type pt struct{ x, y float64 }
	xy := func(p pt) (float64, float64) { return p.x, p.y }
	id := func(v float64) float64 { return v }
	for _, tc := range []struct {
		name string
		pts  []pt
		end  float64
		want string
	}{
		{"none", nil, 5, ""},
		{"one, held to the end", []pt{{1, 2}}, 5, "1,2 5,2"},
		{"steps", []pt{{0, 0}, {1, 3}, {2, 4}}, 2, "0,0 1,0 1,3 2,3 2,4"},
		{"end before the last point", []pt{{0, 1}, {3, 2}}, 1, "0,1 3,1 3,2"},
	} {
		if got := StepPoints(tc.pts, xy, tc.end, id, id); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// node is a parsed XML element.
type node struct {
	XMLName  xml.Name
	Text     string `xml:",chardata"`
	Children []node `xml:",any"`
}

// elements parses doc as XML (failing when it is not well-formed or its
// root is not an SVG <svg>) and counts its elements by name; texts are the
// contents of its <text> elements.
func elements(t *testing.T, doc []byte) (counts map[string]int, texts []string) {
	t.Helper()
	var root node
	if err := xml.Unmarshal(doc, &root); err != nil {
		t.Fatalf("not well-formed XML: %v\n%s", err, doc)
	}
	if root.XMLName != (xml.Name{Space: "http://www.w3.org/2000/svg", Local: "svg"}) {
		t.Errorf("root %v, want svg in the SVG namespace", root.XMLName)
	}
	counts = map[string]int{}
	var walk func(n node)
	walk = func(n node) {
		counts[n.XMLName.Local]++
		if n.XMLName.Local == "text" {
			texts = append(texts, n.Text)
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(root)
	return counts, texts
}

func TestSmallChart(t *testing.T) {
	for _, tc := range []struct {
		name      string
		draw      func(d *Doc) float64
		want      map[string]int
		wantTexts []string
	}{{
		name: "empty",
		draw: func(d *Doc) float64 { return 20 },
		want: map[string]int{"svg": 1, "title": 1, "rect": 1},
	}, {
		name: "line chart",
		draw: func(d *Doc) float64 {
			x, y := NiceAxis(0, 4, 4, false), NiceAxis(0, 3, 3, true) // 5 and 4 ticks
			px := func(v float64) float64 { return Left + v/x.Hi*PlotW }
			py := func(v float64) float64 { return 200 - v/y.Hi*150 }
			d.Text(Width/2, 20, `class="title"`, "a <chart> & more")
			d.YAxis(y, py)
			d.XAxis(x, px, 200)
			d.Frame(50, 200)
			d.XTitle(236, "seconds")
			d.YTitle(50, 200, "pods")
			d.Polyline(Line{Class: "timeline", Points: StepPoints([]float64{0, 1, 3}, func(v float64) (float64, float64) { return v, v }, 4, px, py), Color: Palette[0], Title: "s<1>"})
			return d.Legend([]LegendItem{{Label: "s<1>", Color: Palette[0], Line: true, Dash: "6 3"}, {Label: "class", Color: Palette[1]}}, 250)
		},
		// rect: background + the square swatch; line: 4 grid + 5 ticks + 1 swatch
		want:      map[string]int{"svg": 1, "title": 2, "rect": 2, "line": 10, "text": 1 + 4 + 5 + 2 + 2, "path": 1, "polyline": 1, "g": 1},
		wantTexts: []string{"a <chart> & more", "seconds", "pods", "s<1>", "class", "0", "4"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			d := &Doc{}
			doc := d.Document("t & <t>", tc.draw(d))
			counts, texts := elements(t, doc)
			if !reflect.DeepEqual(counts, tc.want) {
				t.Errorf("elements %v, want %v", counts, tc.want)
			}
			joined := strings.Join(texts, "\n")
			for _, w := range tc.wantTexts {
				if !strings.Contains(joined, w) {
					t.Errorf("no text %q in %q", w, texts)
				}
			}
			if !bytes.Contains(doc, []byte(`width="960"`)) || !bytes.HasPrefix(doc, []byte(xml.Header)) {
				t.Errorf("document head: %.200s", doc)
			}
		})
	}
}

func TestLegendWraps(t *testing.T) {
	d := &Doc{}
	items := make([]LegendItem, 12)
	for i := range items {
		items[i] = LegendItem{Label: strings.Repeat("x", 20), Color: Palette[i%len(Palette)]}
	}
	if got := d.Legend(nil, 10); got != 10 || d.Len() != 0 {
		t.Errorf("empty legend: y %v, %d bytes", got, d.Len())
	}
	// each item is 22+140+18 = 180 wide: four to a 864-wide row, three rows
	if got := d.Legend(items, 10); got != 10+3*18 {
		t.Errorf("y below the legend %v, want %v", got, 10+3*18)
	}
}
