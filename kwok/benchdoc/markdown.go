package benchdoc

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// table builds a Markdown table; cells are escaped so that a figure name
// or a pending reason cannot break the row.
type table struct {
	head []string
	rows [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) String() string {
	if len(t.rows) == 0 {
		return ""
	}
	var b strings.Builder
	row := func(cells []string) {
		b.WriteString("|")
		for _, c := range cells {
			b.WriteString(" " + cell(c) + " |")
		}
		b.WriteString("\n")
	}
	row(t.head)
	b.WriteString("|" + strings.Repeat("---|", len(t.head)) + "\n")
	for _, r := range t.rows {
		row(r)
	}
	return b.String()
}

// cell keeps a table cell on one line and its pipes literal.
func cell(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	return strings.ReplaceAll(s, "|", `\|`)
}

// code renders s as an inline code span (backticks inside become quotes:
// reasons never need them).
func code(s string) string {
	return "`" + strings.ReplaceAll(s, "`", "'") + "`"
}

// num formats a figure: whole numbers with thousands separators, others
// with at most three decimals.
func num(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return thousands(int64(v))
	}
	s := strconv.FormatFloat(v, 'f', 3, 64)
	return strings.TrimRight(strings.TrimRight(s, "0"), ".")
}

// thousands formats n as 1,234,567.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// optNum is num for a value that may be missing ("-").
func optNum(v float64, ok bool) string {
	if !ok {
		return "-"
	}
	return num(v)
}

// ratio formats a/b: "-" when either side is missing, "=" when both are 0,
// "inf" when only b is.
func ratio(a float64, okA bool, b float64, okB bool) string {
	switch {
	case !okA || !okB:
		return "-"
	case b != 0:
		return fmt.Sprintf("%.2f", a/b)
	case a == 0:
		return "="
	default:
		return "inf"
	}
}

// mib formats bytes as MiB with one decimal.
func mib(b float64) float64 { return math.Round(b/(1<<20)*10) / 10 }
