package vm

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"hwameistor.io/local/internal/testenv"
)

// TestSweep: the records of a cluster whose owner is gone are cleaned up
// (its tap deleted, its folder removed) and a live owner's are left alone;
// a recorded PID that is not qemu any more is never killed.
func TestSweep(t *testing.T) {
	testenv.RequireRoot(t, "creates a tap device")
	testenv.RequireCommands(t, "ip")
	stateRoot = t.TempDir()
	t.Cleanup(func() { stateRoot = "/run/hwameistor-vm" })

	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	bystander := exec.Command("sleep", "60")
	if err := bystander.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = bystander.Process.Kill(); _ = bystander.Wait() }()

	tap := fmt.Sprintf("hwvmsw%dt1", os.Getpid()%1000)
	if err := ipCmd("tuntap", "add", "dev", tap, "mode", "tap"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if linkExists(tap) {
			_ = ipCmd("link", "del", tap)
		}
	})
	record := func(name string, owner int, lines map[string]string) string {
		dir := filepath.Join(stateRoot, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		lines["owner"] = strconv.Itoa(owner)
		for f, content := range lines {
			if err := os.WriteFile(filepath.Join(dir, f), []byte(content+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	dead := record("hwvmdead", gone.Process.Pid, map[string]string{"taps": tap, "pids": strconv.Itoa(bystander.Process.Pid)})
	live := record("hwvmlive", os.Getpid(), map[string]string{})

	Sweep()

	if linkExists(tap) {
		t.Errorf("tap %s of a dead owner is still there", tap)
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("the dead owner's record %s is still there: %v", dead, err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("the live owner's record was removed: %v", err)
	}
	if err := bystander.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("a recorded PID that is not qemu was killed: %v", err)
	}
}
