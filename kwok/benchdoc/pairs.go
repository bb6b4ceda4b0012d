package benchdoc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"hwameistor.io/local/kwok/report"
)

// File suffixes of the two runs of a scenario (hack/bench.sh writes
// <scenario>-hwameistor.json and <scenario>-default.json).
const (
	SideHwameistor = "hwameistor"
	SideDefault    = "default"
)

// Scheduler names as the tables show them.
const (
	nameHwameistor = "hwameistor-scheduler"
	nameDefault    = "default-scheduler"
)

// Run is one side of a scenario: its report, or why there is none.
type Run struct {
	Report  *report.Report // nil when missing
	Missing string         // why Report is nil, e.g. "no report"
	Written time.Time      // the report file's modification time
}

// Pair is a scenario run with hwameistor-scheduler and with the stock
// default-scheduler, the two sides every table compares.
type Pair struct {
	Scenario string
	HW, Def  Run
}

// LoadPairs reads the reports in dir. With scenarios given, exactly those
// and their -no-volumes twins are returned (missing ones say so); without,
// every scenario with a report or a log in dir.
func LoadPairs(dir string, scenarios []string) ([]Pair, error) {
	names, err := scenarioNames(dir, scenarios)
	if err != nil {
		return nil, err
	}
	pairs := make([]Pair, 0, len(names))
	for _, s := range names {
		pairs = append(pairs, Pair{Scenario: s,
			HW:  loadRun(dir, s+"-"+SideHwameistor),
			Def: loadRun(dir, s+"-"+SideDefault)})
	}
	return pairs, nil
}

// scenarioNames lists the scenarios to show, in a stable order.
func scenarioNames(dir string, scenarios []string) ([]string, error) {
	if len(scenarios) > 0 {
		var out []string
		for _, s := range scenarios {
			out = append(out, s, s+"-no-volumes")
		}
		return out, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, e := range entries {
		for _, side := range []string{SideHwameistor, SideDefault} {
			for _, ext := range []string{".json", ".log"} {
				s, ok := strings.CutSuffix(e.Name(), "-"+side+ext)
				if ok && s != "" && !seen[s] {
					seen[s] = true
					out = append(out, s)
				}
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// loadRun reads dir/base.json; a failed run leaves only its log.
func loadRun(dir, base string) Run {
	path := filepath.Join(dir, base+".json")
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(dir, base+".log")); err == nil {
			return Run{Missing: fmt.Sprintf("the run failed (log: %s.log)", base)}
		}
		return Run{Missing: "not run"}
	}
	if err != nil {
		return Run{Missing: err.Error()}
	}
	r, err := report.Read(path)
	if err != nil {
		return Run{Missing: "unreadable report: " + err.Error()}
	}
	return Run{Report: r, Written: st.ModTime().UTC()}
}

// figures is report.Figures as a lookup that tolerates a missing report.
type figures map[string]float64

func figuresOf(r *report.Report) figures {
	if r == nil {
		return nil
	}
	_, f := r.Figures()
	return f
}

func (f figures) get(k string) (float64, bool) {
	v, ok := f[k]
	return v, ok
}
