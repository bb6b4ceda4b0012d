package benchdoc

import (
	"bufio"
	"strings"
	"testing"
)

func TestFormatPins(t *testing.T) {
	cases := []struct{ in, want string }{
		{"k8s-v1.34.10_etcd-v3.6.11_kwok-v0.8.0_prov-v5.3.0_rsz-v1.14.0_go1.26.8",
			"Kubernetes v1.34.10, etcd v3.6.11, kwok v0.8.0, csi-provisioner v5.3.0, csi-resizer v1.14.0, go1.26.8"},
		{"", ""},
		{"something-else", "something-else"},
	}
	for _, c := range cases {
		if got := FormatPins(c.in); got != c.want {
			t.Errorf("FormatPins(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestParseProc(t *testing.T) {
	cpuinfo := "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t: a b\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n"
	model, cores := parseCPUInfo(bufio.NewScanner(strings.NewReader(cpuinfo)))
	if model != "AMD EPYC 7B13" || cores != 2 {
		t.Errorf("cpuinfo: %q, %d cores", model, cores)
	}
	mem := parseMemInfo(bufio.NewScanner(strings.NewReader("MemFree: 5 kB\nMemTotal:       24684092 kB\n")))
	if mem != 24684092*1024 {
		t.Errorf("meminfo: %d", mem)
	}
}
