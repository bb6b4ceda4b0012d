package testenv

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

func TestDecide(t *testing.T) {
	tests := []struct {
		ci   string
		have bool
		want Decision
	}{
		{ci: "", have: true, want: Run},
		{ci: "true", have: true, want: Run},
		{ci: "", have: false, want: Skip},
		{ci: "false", have: false, want: Skip},
		{ci: "true", have: false, want: Fail},
	}
	for _, tc := range tests {
		if got := Decide(tc.ci, tc.have); got != tc.want {
			t.Errorf("Decide(%q, %v) = %v, want %v", tc.ci, tc.have, got, tc.want)
		}
	}
}

// fakeTB records what Require does to a test.
type fakeTB struct {
	testing.TB
	skipped, failed string
}

func (f *fakeTB) Helper()                           {}
func (f *fakeTB) Skip(args ...any)                  { f.skipped = fmt.Sprint(args...) }
func (f *fakeTB) Fatalf(format string, args ...any) { f.failed = fmt.Sprintf(format, args...) }

func TestRequire(t *testing.T) {
	tests := []struct {
		name, ci, missing    string
		wantSkip, wantFailed bool
	}{
		{name: "met", ci: "true"},
		{name: "missing on a developer's machine", missing: "needs root: x", wantSkip: true},
		{name: "missing on CI", ci: "true", missing: "needs root: x", wantFailed: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			f := &fakeTB{}
			Require(f, tc.missing)
			if (f.skipped != "") != tc.wantSkip || (f.failed != "") != tc.wantFailed {
				t.Fatalf("skipped %q, failed %q; want skip %v, fail %v", f.skipped, f.failed, tc.wantSkip, tc.wantFailed)
			}
			if msg := f.skipped + f.failed; tc.missing != "" && !strings.Contains(msg, tc.missing) {
				t.Errorf("%q does not say what is missing", msg)
			}
		})
	}
}

func TestRequireOrExit(t *testing.T) {
	tests := []struct {
		name, ci, missing string
		wantExit          bool
		wantCode          int
		wantOut           string
	}{
		{name: "met", ci: "true"},
		{name: "skip", missing: "needs root: y", wantExit: true, wantOut: "--- SKIP: TestMain/pkg (0.00s)\n    needs root: y\n"},
		{name: "fail", ci: "true", missing: "needs root: y", wantExit: true, wantCode: 1,
			wantOut: "--- FAIL: TestMain/pkg (0.00s)\n    needs root: y; CI=true, so this fails instead of skipping\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			exit, code := requireOrExit(&out, tc.ci, "pkg", tc.missing)
			if exit != tc.wantExit || code != tc.wantCode || out.String() != tc.wantOut {
				t.Errorf("exit %v, code %d, output %q; want %v, %d, %q", exit, code, out.String(), tc.wantExit, tc.wantCode, tc.wantOut)
			}
		})
	}
}

func TestMissingCommands(t *testing.T) {
	if got := MissingCommands("go"); got != "" {
		t.Errorf("MissingCommands(go) = %q, want empty: go runs this test", got)
	}
	t.Setenv("PATH", t.TempDir())
	got := MissingCommands("losetup", "mkfs.xfs", "xfs_growfs", "hwameistor-no-such-program")
	for _, want := range []string{
		"needs losetup, mkfs.xfs, xfs_growfs, hwameistor-no-such-program in PATH",
		"apt-get install -y <the package with hwameistor-no-such-program> util-linux xfsprogs (",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("MissingCommands = %q, want it to contain %q", got, want)
		}
	}
}
