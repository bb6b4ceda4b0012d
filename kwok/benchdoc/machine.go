package benchdoc

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Machine describes where the benchmarks ran: absolute figures only mean
// something next to it.
type Machine struct {
	Date      time.Time // when the section was generated
	CPUModel  string
	Cores     int
	MemBytes  int64
	GoVersion string
	Pins      string // the control-plane cache folder name, e.g. k8s-v1.34.10_etcd-v3.6.11_..._go1.26.8
}

// LocalMachine reads this machine's CPU and memory from the kernel; what
// it cannot read stays empty rather than failing the document.
func LocalMachine(now time.Time, pins string) Machine {
	m := Machine{Date: now.UTC(), GoVersion: runtime.Version(), Pins: pins, Cores: runtime.NumCPU()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		model, cores := parseCPUInfo(bufio.NewScanner(f))
		f.Close()
		m.CPUModel = model
		if cores > 0 {
			m.Cores = cores
		}
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		m.MemBytes = parseMemInfo(bufio.NewScanner(f))
		f.Close()
	}
	return m
}

// parseCPUInfo returns the first "model name" and the number of
// "processor" entries.
func parseCPUInfo(sc *bufio.Scanner) (model string, cores int) {
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(key) {
		case "processor":
			cores++
		case "model name":
			if model == "" {
				model = strings.TrimSpace(val)
			}
		}
	}
	return model, cores
}

// parseMemInfo returns MemTotal in bytes (the kernel gives kB).
func parseMemInfo(sc *bufio.Scanner) int64 {
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err == nil {
				return kb * 1024
			}
		}
	}
	return 0
}

// pinNames spells out the short keys of the cache folder name.
var pinNames = map[string]string{
	"k8s":  "Kubernetes",
	"etcd": "etcd",
	"kwok": "kwok",
	"prov": "csi-provisioner",
	"rsz":  "csi-resizer",
}

// FormatPins renders the cache folder name ("k8s-v1.34.10_etcd-v3.6.11_..._go1.26.8")
// as "Kubernetes v1.34.10, etcd v3.6.11, ..., go1.26.8"; a name of another
// shape is returned as it is.
func FormatPins(pins string) string {
	if pins == "" {
		return ""
	}
	var out []string
	for _, part := range strings.Split(pins, "_") {
		key, ver, ok := strings.Cut(part, "-")
		name, known := pinNames[key]
		switch {
		case ok && known && ver != "":
			out = append(out, name+" "+ver)
		case strings.HasPrefix(part, "go") && !ok:
			out = append(out, part)
		default:
			return pins
		}
	}
	return strings.Join(out, ", ")
}

// markdown renders the machine as a short list.
func (m Machine) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "- generated: %s UTC\n", m.Date.Format("2006-01-02 15:04"))
	cpu := m.CPUModel
	if cpu == "" {
		cpu = "unknown CPU"
	}
	fmt.Fprintf(&b, "- CPU: %s, %d cores\n", cpu, m.Cores)
	if m.MemBytes > 0 {
		fmt.Fprintf(&b, "- memory: %.1f GiB\n", float64(m.MemBytes)/(1<<30))
	}
	fmt.Fprintf(&b, "- Go: %s\n", m.GoVersion)
	if p := FormatPins(m.Pins); p != "" {
		fmt.Fprintf(&b, "- pins: %s\n", p)
	}
	return b.String()
}
