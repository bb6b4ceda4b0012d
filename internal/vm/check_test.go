package vm

import (
	"strings"
	"testing"
)

// TestCheckHostNamesMissingQEMU: without qemu the error names the Debian
// package to install.
func TestCheckHostNamesMissingQEMU(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	err := CheckHost()
	if err == nil || !strings.Contains(err.Error(), "qemu-system-x86") || !strings.Contains(err.Error(), QEMU) {
		t.Errorf("CheckHost without qemu on PATH: %v", err)
	}
}
