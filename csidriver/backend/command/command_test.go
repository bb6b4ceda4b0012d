package command

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"hwameistor.io/local/internal/testenv"
)

func TestExec(t *testing.T) {
	testenv.RequireCommands(t, "sh")
	tests := []struct {
		name       string
		runner     Exec
		script     string
		wantOut    string
		wantCode   int
		wantStderr string
		wantErr    bool
	}{
		{name: "success", script: "echo out; echo warn >&2", wantOut: "out\n"},
		{name: "failure keeps stdout and stderr", script: "echo '{}'; printf '  a\\n\\n  b  \\n' >&2; exit 5",
			wantOut: "{}\n", wantCode: 5, wantStderr: "a; b", wantErr: true},
		{name: "env", runner: Exec{Env: []string{"HW_TEST_VAR=x"}}, script: "echo $HW_TEST_VAR", wantOut: "x\n"},
		{name: "timeout", runner: Exec{Timeout: 50 * time.Millisecond}, script: "exec sleep 10", wantCode: -1, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := tc.runner.Run(context.Background(), "sh", "-c", tc.script)
			if string(out) != tc.wantOut {
				t.Errorf("stdout = %q, want %q", out, tc.wantOut)
			}
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil {
				return
			}
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("err %T is not *Error", err)
			}
			if cerr.ExitCode != tc.wantCode || cerr.Stderr != tc.wantStderr {
				t.Errorf("ExitCode, Stderr = %d, %q; want %d, %q", cerr.ExitCode, cerr.Stderr, tc.wantCode, tc.wantStderr)
			}
			if tc.runner.Timeout > 0 && !strings.Contains(err.Error(), "timed out after 50ms") {
				t.Errorf("error %q does not say it timed out", err)
			}
			if !strings.HasPrefix(err.Error(), "sh -c ") {
				t.Errorf("error %q does not name the command", err)
			}
		})
	}
}

func TestExecMissingProgram(t *testing.T) {
	_, err := Exec{}.Run(context.Background(), "hwameistor-no-such-program")
	if !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("err = %v, want exec.ErrNotFound", err)
	}
}

func TestFake(t *testing.T) {
	f := NewFake(
		Call{Argv: []string{"lvm", "vgs"}, Stdout: "{}"},
		Call{Argv: []string{"lvm", "lvremove", "-y", "vg/x"}, Stderr: "  Failed\n", ExitCode: 5},
		Call{Argv: []string{"never"}},
	)
	ctx := context.Background()
	if out, err := f.Run(ctx, "lvm", "vgs"); err != nil || string(out) != "{}" {
		t.Errorf("first call = %q, %v", out, err)
	}
	_, err := f.Run(ctx, "lvm", "lvremove", "-y", "vg/x")
	var cerr *Error
	if !errors.As(err, &cerr) || cerr.ExitCode != 5 || cerr.Stderr != "Failed" {
		t.Errorf("second call err = %v", err)
	}
	if err := f.Verify(); err == nil || !strings.Contains(err.Error(), "never ran") {
		t.Errorf("Verify() = %v, want a complaint about the call that never ran", err)
	}
	if _, err := f.Run(ctx, "other"); err == nil {
		t.Error("a wrong argv must fail")
	}
	if _, err := f.Run(ctx, "extra"); err == nil {
		t.Error("an unexpected extra command must fail")
	}
	if err := f.Verify(); err == nil || !strings.Contains(err.Error(), "unexpected command") {
		t.Errorf("Verify() = %v, want a complaint about the extra command", err)
	}
}

// TestExecCallerDeadline: when the caller's deadline ends the command
// first, the error says so, not the runner's own (longer) timeout.
func TestExecCallerDeadline(t *testing.T) {
	testenv.RequireCommands(t, "sh")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := Exec{}.Run(ctx, "sh", "-c", "exec sleep 5")
	if err == nil || !strings.Contains(err.Error(), "timed out after") || strings.Contains(err.Error(), DefaultTimeout.String()) {
		t.Errorf("error %v: want the caller's deadline (about 200ms)", err)
	}
}
