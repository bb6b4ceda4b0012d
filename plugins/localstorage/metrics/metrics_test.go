package metrics

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"hwameistor.io/local/internal/placement"
)

// TestReasonOf: every verdict of the ledger but Fits has its own label,
// which Filter and Reserve (the points that ask the ledger) count.
func TestReasonOf(t *testing.T) {
	seen := map[Reason]placement.Code{}
	for c := placement.Code(0); c < placement.NumCodes; c++ {
		r := ReasonOf(c)
		if c == placement.Fits {
			continue
		}
		if r == Other {
			t.Errorf("ReasonOf(%s) = other", c)
			continue
		}
		if prev, dup := seen[r]; dup {
			t.Errorf("ReasonOf(%s) = ReasonOf(%s) = %s", c, prev, r)
		}
		seen[r] = c
		for _, p := range []Point{Filter, Reserve} {
			if !slices.Contains(PointReasons[p], r) {
				t.Errorf("%s's series do not include %s (ReasonOf(%s))", p, r, c)
			}
		}
	}
	if got := ReasonOf(placement.NumCodes); got != Other {
		t.Errorf("ReasonOf(unknown code) = %s, want other", got)
	}
}

// TestReasonNames: the label values are distinct snake_case words, and
// every reason is created at some point.
func TestReasonNames(t *testing.T) {
	word := regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`)
	names := map[string]bool{}
	for r := Reason(0); r < NumReasons; r++ {
		name := r.String()
		if !word.MatchString(name) || names[name] {
			t.Errorf("reason %d: label %q is empty, not snake_case or a duplicate", r, name)
		}
		names[name] = true
		created := false
		for _, reasons := range PointReasons {
			created = created || slices.Contains(reasons, r)
		}
		if !created {
			t.Errorf("no extension point creates the series of %s", r)
		}
	}
}

// TestReasonsDocumented: docs/metrics.md lists every reason label with the
// extension points that count it, and no other.
func TestReasonsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(doc), "| reason | extension points | message |\n")
	if !ok {
		t.Fatal("docs/metrics.md has no table of the reason label")
	}
	table, _, _ = strings.Cut(table, "\n\n")
	// | `insufficient_capacity` | Filter, Reserve | `pool …` |
	row := regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\| ([A-Za-z, ]+) \\| ")
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(table, -1) {
		documented[m[1]] = m[2]
	}
	for r := Reason(0); r < NumReasons; r++ {
		var points []string
		for p, reasons := range PointReasons {
			if slices.Contains(reasons, r) {
				points = append(points, Point(p).String())
			}
		}
		want := strings.Join(points, ", ")
		if r == Other {
			want = "any"
		}
		got, ok := documented[r.String()]
		if !ok {
			t.Errorf("docs/metrics.md has no row for reason %s", r)
			continue
		}
		if got != want {
			t.Errorf("docs/metrics.md: reason %s counted at %q, want %q", r, got, want)
		}
		delete(documented, r.String())
	}
	for name := range documented {
		t.Errorf("docs/metrics.md documents a reason %q the plugin does not have", name)
	}
}
