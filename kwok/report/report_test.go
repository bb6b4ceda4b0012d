package report

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteReadCompare(t *testing.T) {
	a := New("burst", "hwameistor-scheduler")
	a.Pods = Pods{Total: 10, Running: 9, Pending: 1, PendingReasons: map[string]int{"need 6Gi": 1}}
	a.Throughput.SchedulingPodsPerSec = 2
	b := New("burst", "default-scheduler")
	b.Pods = Pods{Total: 10, Running: 8, Pending: 2, PendingReasons: map[string]int{}}
	b.Throughput.SchedulingPodsPerSec = 5
	dir := t.TempDir()
	if err := a.Write(filepath.Join(dir, "a.json")); err != nil {
		t.Fatal(err)
	}
	got, err := Read(filepath.Join(dir, "a.json"))
	if err != nil || got.Pods.Running != 9 || got.Schema != "v1" {
		t.Fatalf("read %+v, %v", got, err)
	}
	var out strings.Builder
	Compare(&out, got, b)
	for _, want := range []string{"throughput.schedulingPodsPerSec", "2.50", "pods.running", "0.89", "overcommits", "pods.pendingReasons.need 6Gi"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("compare output lacks %q:\n%s", want, out.String())
		}
	}
	var sum strings.Builder
	a.Summary(&sum)
	if !strings.Contains(sum.String(), "9 running") {
		t.Errorf("summary:\n%s", sum.String())
	}
}
