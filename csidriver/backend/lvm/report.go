package lvm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Fields each report asks for. Only LV fields, no segment fields: one segment
// field (e.g. stripes) makes lvs print one row per segment, so an extended LV
// would show up twice (testdata/lvs_hdd_segments.json).
const (
	vgFields = "vg_name,vg_size,vg_free,vg_extent_size,pv_count"
	pvFields = "pv_name,vg_name,pv_size,pv_free"
	lvFields = "lv_name,vg_name,lv_size,lv_tags,lv_path"
)

// reportArgs make every report machine-readable: JSON, sizes in bytes
// without a unit suffix.
var reportArgs = []string{"--reportformat", "json", "--units", "b", "--nosuffix"}

// fullreportArgs are the arguments of `lvm fullreport`: reportArgs and the
// fields of each of its sub-reports, vg, pv and lv as the single reports
// above, and pvseg and seg (one row per segment, not used) with one field
// each. It prints one element per VG ({"vg":[..],"pv":[..],"lv":[..],...},
// all read under that VG's lock), and one for the PVs in no VG.
func fullreportArgs() []string {
	return append(slices.Clone(reportArgs),
		"--configreport", "vg", "-o", vgFields,
		"--configreport", "pv", "-o", pvFields,
		"--configreport", "lv", "-o", lvFields,
		"--configreport", "pvseg", "-o", "pvseg_start",
		"--configreport", "seg", "-o", "seg_start")
}

// vg is one row of `vgs`.
type vg struct {
	Name       string `json:"vg_name"`
	Size       num    `json:"vg_size"`
	Free       num    `json:"vg_free"`
	ExtentSize num    `json:"vg_extent_size"`
	PVCount    num    `json:"pv_count"`
}

// pv is one row of `pvs`. VGName is empty for a PV in no VG.
type pv struct {
	Name   string `json:"pv_name"`
	VGName string `json:"vg_name"`
	Size   num    `json:"pv_size"`
	Free   num    `json:"pv_free"`
}

// lv is one row of `lvs`.
type lv struct {
	Name   string `json:"lv_name"`
	VGName string `json:"vg_name"`
	Size   num    `json:"lv_size"`
	Tags   tags   `json:"lv_tags"`
	Path   string `json:"lv_path"`
}

// report is lvm's JSON report: {"report":[{"vg":[...]}]}, one element per
// report; a command prints one report here.
type report struct {
	Report []struct {
		VG []vg `json:"vg"`
		PV []pv `json:"pv"`
		LV []lv `json:"lv"`
	} `json:"report"`
}

func decodeReport(out []byte) (report, error) {
	var r report
	// Unknown keys are ignored: with log/report_command_log set, lvm adds a
	// "log" array next to "report".
	if err := json.NewDecoder(bytes.NewReader(out)).Decode(&r); err != nil {
		return report{}, fmt.Errorf("decode lvm report: %w (output %q)", err, truncate(out))
	}
	return r, nil
}

func (r report) vgs() []vg {
	var out []vg
	for _, e := range r.Report {
		out = append(out, e.VG...)
	}
	return out
}

func (r report) pvs() []pv {
	var out []pv
	for _, e := range r.Report {
		out = append(out, e.PV...)
	}
	return out
}

// lvs returns the LVs, one row per LV even if the report has one per
// segment.
func (r report) lvs() []lv {
	var out []lv
	seen := map[string]bool{}
	for _, e := range r.Report {
		for _, l := range e.LV {
			key := l.VGName + "/" + l.Name
			if seen[key] {
				continue
			}
			seen[key] = true
			out = append(out, l)
		}
	}
	return out
}

// num decodes lvm's numbers: `--reportformat json` prints them as strings
// ("4194304"), json_std as numbers; an empty string is 0.
type num int64

func (n *num) UnmarshalJSON(b []byte) error {
	s := string(b)
	if unq, err := strconv.Unquote(s); err == nil {
		s = unq
	}
	s = strings.TrimSpace(s)
	if s == "" {
		*n = 0
		return nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("lvm number %s: %w", b, err)
	}
	*n = num(v)
	return nil
}

// tags decodes lvm's comma-separated tag list ("a,b"; tags cannot contain
// commas).
type tags []string

func (t *tags) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		// json_std prints a list.
		var list []string
		if err2 := json.Unmarshal(b, &list); err2 != nil {
			return fmt.Errorf("lvm tags %s: %w", b, err)
		}
		*t = list
		return nil
	}
	*t = nil
	for _, tag := range strings.Split(s, ",") {
		if tag != "" {
			*t = append(*t, tag)
		}
	}
	return nil
}

func truncate(b []byte) string {
	const max = 200
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}
