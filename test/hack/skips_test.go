// Package hack tests the logic of the hack/ scripts that decide whether
// `make test` passes.
package hack

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"hwameistor.io/local/internal/testenv"
)

// checkSkips runs hack/skips.sh's check_skips on a log and an allow list,
// and returns its output and whether it passed.
func checkSkips(t *testing.T, log, allow string) (string, bool) {
	t.Helper()
	testenv.RequireCommands(t, "bash", "sed", "sort", "uniq", "grep")
	dir := t.TempDir()
	logFile, allowFile := filepath.Join(dir, "test.log"), filepath.Join(dir, "allow")
	if err := os.WriteFile(logFile, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(allowFile, []byte(allow), 0o600); err != nil {
		t.Fatal(err)
	}
	return runCheckSkips(t, logFile, allowFile)
}

func runCheckSkips(t *testing.T, logFile, allowFile string) (string, bool) {
	t.Helper()
	script := filepath.Join(testenv.RootDir(), "hack", "skips.sh")
	out, err := exec.Command("bash", "-c", `set -euo pipefail; source "$1"; check_skips "$2" "$3"`,
		"bash", script, logFile, allowFile).CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return string(out), err == nil
}

// sampleLog is `go test -v` output of both passes of hack/test.sh.
const sampleLog = `=== RUN   TestA
--- PASS: TestA (0.00s)
=== RUN   TestOpenData
=== RUN   TestOpenData/device_node_missing
    opendata_test.go:84: this machine has a /dev/LocalStorage_PoolHDD/pvc-aaa
    --- SKIP: TestOpenData/device_node_missing (0.00s)
--- PASS: TestOpenData (0.00s)
=== RUN   TestRealLoop
    real_test.go:55: needs root: attaches loop devices (CI runs as root)
--- SKIP: TestRealLoop (0.00s)
ok  	hwameistor.io/local/csidriver/backend/lvm	0.1s
--- SKIP: TestMain/e2e (0.00s)
    needs root: it mounts loop devices (CI runs as root)
ok  	hwameistor.io/local/test/e2e	0.01s
    --- SKIP: TestOpenData/device_node_missing (0.00s)
--- SKIP: TestRealLoop (0.00s)
ok  	hwameistor.io/local/csidriver/backend/lvm	1.1s
`

func TestCheckSkips(t *testing.T) {
	tests := []struct {
		name, log, allow string
		wantPass         bool
		wantOut          []string // lines the report contains
	}{
		{name: "no skips", log: "--- PASS: TestA (0.00s)\nok  \tx\t0.1s\n", allow: "", wantPass: true,
			wantOut: []string{"skipped tests: 0"}},
		{name: "every skip listed", log: sampleLog, wantPass: true,
			allow: "# reviewed\n\nTestOpenData/device_node_missing # machine-specific\nTestRealLoop # r\nTestMain/e2e # r\n",
			wantOut: []string{
				"skipped tests: 5",
				"SKIP TestMain/e2e (x1): allowed",
				"SKIP TestOpenData/device_node_missing (x2): allowed",
				"SKIP TestRealLoop (x2): allowed",
			}},
		{name: "an unlisted skip fails and is named", log: sampleLog,
			allow: "TestOpenData/device_node_missing # machine-specific\nTestMain/e2e # r\n",
			wantOut: []string{
				"skipped tests: 5",
				"SKIP TestOpenData/device_node_missing (x2): allowed",
				"SKIP TestRealLoop (x2): NOT ALLOWED",
			}},
		{name: "an unlisted TestMain fails", log: sampleLog,
			allow:   "TestOpenData/device_node_missing # machine-specific\nTestRealLoop # r\n",
			wantOut: []string{"SKIP TestMain/e2e (x1): NOT ALLOWED"}},
		{name: "glob patterns", log: sampleLog, wantPass: true,
			allow: "TestOpenData/* # machine-specific\nTestReal* # r\nTestMain/e2? # r\n"},
		{name: "a prefix is not a match", log: sampleLog,
			allow:   "TestOpenData # machine-specific\nTestReal # r\nTestMain # r\n",
			wantOut: []string{"SKIP TestOpenData/device_node_missing (x2): NOT ALLOWED"}},
		{name: "an entry without a reason fails", log: "", allow: "TestRealLoop\n",
			wantOut: []string{`want "<test name> # <reason>"`}},
		{name: "an entry with an empty reason fails", log: "", allow: "TestRealLoop #  \n",
			wantOut: []string{`want "<test name> # <reason>"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, pass := checkSkips(t, tc.log, tc.allow)
			if pass != tc.wantPass {
				t.Errorf("passed %v, want %v; output:\n%s", pass, tc.wantPass, out)
			}
			for _, want := range tc.wantOut {
				if !strings.Contains(out, want) {
					t.Errorf("output does not contain %q:\n%s", want, out)
				}
			}
		})
	}
}

// TestAllowListIsWellFormed checks the repository's reviewed allow list:
// every entry has a reason.
func TestAllowListIsWellFormed(t *testing.T) {
	testenv.RequireCommands(t, "bash")
	empty := filepath.Join(t.TempDir(), "empty.log")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, pass := runCheckSkips(t, empty, filepath.Join(testenv.RootDir(), "hack", "test-skips.allow")); !pass {
		t.Errorf("hack/test-skips.allow:\n%s", out)
	}
}
