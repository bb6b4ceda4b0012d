package report

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math/rand"
	"strconv"
	"strings"
	"testing"
)

// chartElem is a parsed SVG element.
type chartElem struct {
	name     string
	attrs    map[string]string
	text     string // character data of this element and its descendants
	children []*chartElem
}

func (e *chartElem) hasClass(c string) bool {
	for _, f := range strings.Fields(e.attrs["class"]) {
		if f == c {
			return true
		}
	}
	return false
}

// all returns the elements under e (e included) named name with class
// class ("" for any).
func (e *chartElem) all(name, class string) []*chartElem {
	var out []*chartElem
	var walk func(*chartElem)
	walk = func(x *chartElem) {
		if x.name == name && (class == "" || x.hasClass(class)) {
			out = append(out, x)
		}
		for _, c := range x.children {
			walk(c)
		}
	}
	walk(e)
	return out
}

// parseSVG checks that doc is one well-formed XML document and returns its
// root element.
func chartParseSVG(t *testing.T, doc []byte) *chartElem {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(doc))
	d.Strict = true
	var root *chartElem
	var stack []*chartElem
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, doc)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			e := &chartElem{name: tk.Name.Local, attrs: map[string]string{}}
			for _, a := range tk.Attr {
				e.attrs[a.Name.Local] = a.Value
			}
			if len(stack) == 0 {
				if root != nil {
					t.Fatalf("second root element <%s>", e.name)
				}
				root = e
			} else {
				p := stack[len(stack)-1]
				p.children = append(p.children, e)
			}
			stack = append(stack, e)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			for _, e := range stack {
				e.text += string(tk)
			}
		}
	}
	if root == nil {
		t.Fatal("no root element")
	}
	if root.name != "svg" || root.attrs["width"] != "960" {
		t.Fatalf("root <%s width=%q>, want <svg width=960>", root.name, root.attrs["width"])
	}
	return root
}

func chartRender(t *testing.T, c Chart) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WriteSVG(&b, c); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// texts returns the content of every <text> element.
func chartTexts(root *chartElem) []string {
	var out []string
	for _, e := range root.all("text", "") {
		out = append(out, e.text)
	}
	return out
}

func chartAnyContains(ss []string, sub string) bool {
	for _, s := range ss {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

const chartGi = int64(1) << 30

func chartManyPools(n int) []PoolUse {
	pools := make([]PoolUse, n)
	for i := range pools {
		pool := "LocalStorage_PoolHDD"
		if i%2 == 1 {
			pool = "LocalStorage_PoolSSD"
		}
		// utilisation 12%..98%, rising with i
		pools[i] = PoolUse{Node: fmt.Sprintf("node-%04d", i/2), Pool: pool,
			UsedBytes: int64(12+86*i/(n-1)) * chartGi, TotalBytes: 100 * chartGi}
	}
	return pools
}

func TestWriteSVG(t *testing.T) {
	two := []Timeline{
		{Label: "hwameistor-scheduler bound", Points: []Point{{0, 0}, {1.5, 3}, {4, 9}}},
		{Label: "default-scheduler bound", Points: []Point{{0, 0}, {2, 6}, {3, 6}, {6.2, 6}}},
	}
	pools := []PoolUse{
		{Node: "hdd-1", Pool: "LocalStorage_PoolHDD", UsedBytes: 18 * chartGi, TotalBytes: 20 * chartGi},
		{Node: "hdd-0", Pool: "LocalStorage_PoolSSD", UsedBytes: 1 * chartGi, TotalBytes: 10 * chartGi},
		{Node: "hdd-0", Pool: "LocalStorage_PoolHDD", UsedBytes: 26 * chartGi, TotalBytes: 20 * chartGi}, // over-full
	}
	cases := []struct {
		name  string
		chart Chart
		check func(t *testing.T, root *chartElem)
	}{{
		name:  "both panels",
		chart: Chart{Title: "burst-near-full", Timelines: two, Pools: pools},
		check: func(t *testing.T, root *chartElem) {
			if n := len(root.all("polyline", "timeline")); n != 2 {
				t.Errorf("%d timeline polylines, want 2", n)
			}
			bars := root.all("rect", "bar")
			if len(bars) != 3 {
				t.Fatalf("%d bars, want 3", len(bars))
			}
			// sorted by node then pool: hdd-0 HDD (over), hdd-0 SSD, hdd-1 HDD
			over := root.all("rect", "over")
			if len(over) != 1 || over[0] != bars[0] || !strings.Contains(over[0].text, "hdd-0 LocalStorage_PoolHDD") || !strings.Contains(over[0].text, "130%") {
				t.Errorf("over-full bars %v, want the first bar (hdd-0 HDD, 130%%)", over)
			}
			if len(root.all("polygon", "over-marker")) != 1 {
				t.Error("no clip marker on the over-full bar")
			}
			if bars[1].hasClass("over") || bars[1].attrs["fill"] != chartClassColors["SSD"] || bars[2].attrs["fill"] != chartClassColors["HDD"] {
				t.Errorf("bar fills %q %q, want the SSD and HDD class colours", bars[1].attrs["fill"], bars[2].attrs["fill"])
			}
			if len(root.all("line", "reference")) != 1 {
				t.Error("no 100% reference line")
			}
			tx := chartTexts(root)
			for _, want := range []string{"burst-near-full", "pods over time", "pool utilisation", "0%", "50%", "100%",
				"seconds since the workloads started", "hwameistor-scheduler bound", "default-scheduler bound", "HDD", "SSD",
				"3 pools: min 10%, median 90%, max 130%, 1 over 100%", "hdd-0 SSD 10%"} {
				if !chartAnyContains(tx, want) {
					t.Errorf("no text %q in %q", want, tx)
				}
			}
			if n := len(root.all("text", "bar-label")); n != 3 {
				t.Errorf("%d bar labels, want 3", n)
			}
		},
	}, {
		name:  "step lines",
		chart: Chart{Timelines: two},
		check: func(t *testing.T, root *chartElem) {
			lines := root.all("polyline", "timeline")
			if len(lines) != 2 {
				t.Fatalf("%d polylines, want 2", len(lines))
			}
			if lines[0].attrs["stroke"] == lines[1].attrs["stroke"] {
				t.Errorf("both timelines are %s", lines[0].attrs["stroke"])
			}
			for _, l := range lines {
				pts := strings.Fields(l.attrs["points"])
				// every segment is horizontal or vertical: the count holds
				for i := 1; i < len(pts); i++ {
					a, b := strings.Split(pts[i-1], ","), strings.Split(pts[i], ",")
					if a[0] != b[0] && a[1] != b[1] {
						t.Errorf("diagonal segment %s -> %s in %s", pts[i-1], pts[i], l.attrs["points"])
					}
				}
			}
			// 3 points: 3 + 2 risers + the hold to the end of the data (6.2s)
			if n := len(strings.Fields(lines[0].attrs["points"])); n != 6 {
				t.Errorf("first line has %d vertices, want 6: %s", n, lines[0].attrs["points"])
			}
			if len(root.all("rect", "bar")) != 0 || chartAnyContains(chartTexts(root), "pool utilisation") {
				t.Error("pool panel drawn without pools")
			}
		},
	}, {
		name: "escaping",
		chart: Chart{Title: `<x> & "y"`,
			Timelines: []Timeline{{Label: "a<b&c bound", Points: []Point{{0, 1}}}},
			Pools:     []PoolUse{{Node: "a<b&c", Pool: "LocalStorage_Pool<&>", UsedBytes: 1, TotalBytes: 2}}},
		check: func(t *testing.T, root *chartElem) {
			tx := chartTexts(root)
			for _, want := range []string{`<x> & "y"`, "a<b&c bound", "a<b&c <&> 50%", "<&>"} {
				if !chartAnyContains(tx, want) {
					t.Errorf("no text %q in %q", want, tx)
				}
			}
		},
	}, {
		name:  "empty chart",
		chart: Chart{},
		check: func(t *testing.T, root *chartElem) {
			if len(root.all("polyline", "")) != 0 || len(root.all("rect", "bar")) != 0 || !chartAnyContains(chartTexts(root), "no data") {
				t.Errorf("empty chart: %q", chartTexts(root))
			}
		},
	}, {
		name:  "pools only",
		chart: Chart{Pools: pools[:1]},
		check: func(t *testing.T, root *chartElem) {
			if len(root.all("polyline", "")) != 0 || chartAnyContains(chartTexts(root), "pods over time") {
				t.Error("timeline panel drawn without timelines")
			}
			if n := len(root.all("rect", "bar")); n != 1 {
				t.Errorf("%d bars, want 1", n)
			}
		},
	}, {
		name:  "2000 pools",
		chart: Chart{Title: "1000 nodes", Pools: chartManyPools(2000)},
		check: func(t *testing.T, root *chartElem) {
			bars := root.all("rect", "bar")
			if len(bars) != 2000 {
				t.Fatalf("%d bars, want 2000", len(bars))
			}
			for _, b := range bars[:3] {
				if w, err := strconv.ParseFloat(b.attrs["width"], 64); err != nil || w <= 0 || w > 1 {
					t.Errorf("bar width %q, want a thin positive width", b.attrs["width"])
				}
			}
			if n := len(root.all("text", "bar-label")); n != 0 {
				t.Errorf("%d per-bar labels, want none", n)
			}
			if !chartAnyContains(chartTexts(root), "2000 pools: min 12%, median 55%, max 98%") {
				t.Errorf("no summary in %q", chartTexts(root))
			}
		},
	}, {
		name:  "60 pools keep their labels",
		chart: Chart{Pools: chartManyPools(60)},
		check: func(t *testing.T, root *chartElem) {
			if n := len(root.all("text", "bar-label")); n != 60 {
				t.Errorf("%d per-bar labels, want 60", n)
			}
		},
	}, {
		name:  "timeline without points",
		chart: Chart{Timelines: []Timeline{{Label: "nothing bound"}, {Label: "b", Points: []Point{{2, 1}, {1, 0}}}}},
		check: func(t *testing.T, root *chartElem) {
			lines := root.all("polyline", "timeline")
			if len(lines) != 2 || lines[0].attrs["points"] != "" {
				t.Fatalf("polylines %v", lines)
			}
			if !chartAnyContains(chartTexts(root), "nothing bound") {
				t.Error("legend lacks the empty timeline")
			}
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, chartParseSVG(t, chartRender(t, tc.chart)))
		})
	}
}

func TestWriteSVGDeterministic(t *testing.T) {
	pools := chartManyPools(200)
	pools = append(pools, PoolUse{Node: "x", Pool: "LocalStorage_PoolNVMe", UsedBytes: 5, TotalBytes: 4}, PoolUse{Node: "x", Pool: "Other", UsedBytes: 1, TotalBytes: 4})
	c := Chart{Title: "det", Pools: pools, Timelines: []Timeline{{Label: "a", Points: []Point{{0, 0}, {3.25, 7}}}, {Label: "b", Points: []Point{{1, 2}}}}}
	first := chartRender(t, c)
	if again := chartRender(t, c); !bytes.Equal(first, again) {
		t.Fatal("two renders differ")
	}
	// the caller's pool order does not matter: bars are sorted
	shuffled := append([]PoolUse(nil), pools...)
	rand.New(rand.NewSource(1)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	c.Pools = shuffled
	if again := chartRender(t, c); !bytes.Equal(first, again) {
		t.Fatal("render depends on the order of the pools")
	}
}

type chartFailWriter struct{}

func (chartFailWriter) Write([]byte) (int, error) { return 0, io.ErrShortWrite }

func TestWriteSVGWriteError(t *testing.T) {
	if err := WriteSVG(chartFailWriter{}, Chart{}); err == nil {
		t.Fatal("no error from a failing writer")
	}
}
