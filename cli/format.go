package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// none fills an empty cell, as kubectl does.
const none = "<none>"

// orNone is s, or <none> when s is empty.
func orNone(s string) string {
	if s == "" {
		return none
	}
	return s
}

// humanBytes prints a size with binary suffixes and at most one decimal
// (10Gi, 1.5Gi, 512Mi): pools are rarely whole multiples of a unit, and a
// resource.Quantity would print them in raw bytes.
func humanBytes(b int64) string {
	const unit = 1024
	if b < 0 {
		return "-" + humanBytes(-b)
	}
	if b < unit {
		return strconv.FormatInt(b, 10)
	}
	suffixes := []string{"Ki", "Mi", "Gi", "Ti", "Pi", "Ei"}
	v, i := float64(b)/unit, 0
	for v >= unit && i < len(suffixes)-1 {
		v /= unit
		i++
	}
	s := strconv.FormatFloat(v, 'f', 1, 64)
	if s == "1024.0" && i < len(suffixes)-1 { // 1023.95Mi rounds up to the next unit
		s, i = "1.0", i+1
	}
	return strings.TrimSuffix(s, ".0") + suffixes[i]
}

// percent is part of whole as a whole percentage, "0%" for an empty whole.
func percent(part, whole int64) string {
	if whole <= 0 {
		return "0%"
	}
	return fmt.Sprintf("%d%%", part*100/whole)
}

// age is how long ago t was, the way kubectl prints AGE.
func age(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

// stateOf is an operation's state; an empty one is Submitted, as the
// controllers read it.
func stateOf(s v1.State) v1.State {
	if s == "" {
		return v1.OperationStateSubmitted
	}
	return s
}

// migrationSummary is "NAME (STATE[, PROGRESS])" for a cell.
func migrationSummary(m *v1.LocalVolumeMigrate) string {
	s := string(stateOf(m.Status.State))
	if m.Status.Progress != "" && !m.Status.State.Finished() {
		s += ", " + m.Status.Progress
	}
	return fmt.Sprintf("%s (%s)", m.Name, s)
}
