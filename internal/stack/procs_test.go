package stack

import (
	"os"
	"os/exec"
	"testing"
)

func TestProcUsageOfThisProcess(t *testing.T) {
	// Burn a little CPU so utime is not zero.
	x := 0
	for i := 0; i < 50_000_000; i++ {
		x += i
	}
	_ = x
	u, ok := procUsage(os.Getpid())
	if !ok {
		t.Fatal("no usage for this process")
	}
	if u.PeakRSSBytes < 1<<20 {
		t.Errorf("peak RSS %d bytes, want at least 1MiB for a Go test binary", u.PeakRSSBytes)
	}
	if u.CPUSeconds <= 0 {
		t.Errorf("CPU %v s, want > 0 after a busy loop", u.CPUSeconds)
	}
	if _, ok := procUsage(-1); ok {
		t.Error("usage of pid -1")
	}
}

func TestExitedUsage(t *testing.T) {
	cmd := exec.Command("sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	u := exited(&proc{cmd: cmd})
	if u.PeakRSSBytes <= 0 || u.CPUSeconds <= 0 {
		t.Errorf("usage of an exited shell loop: %+v, want CPU and RSS > 0", u)
	}
	if (exited(&proc{}) != Usage{}) {
		t.Error("usage of a process never started")
	}
}

func TestUsageAdd(t *testing.T) {
	got := Usage{CPUSeconds: 1, PeakRSSBytes: 10}.add(Usage{CPUSeconds: 2, PeakRSSBytes: 5})
	if got != (Usage{CPUSeconds: 3, PeakRSSBytes: 10}) {
		t.Errorf("add = %+v: CPU adds up, the peak is the larger one", got)
	}
}
