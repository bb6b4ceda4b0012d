// Package command runs the external programs of the node backends (lvm,
// losetup) behind one small seam, Runner, so that tests replay recorded
// outputs (Fake) instead of needing lvm2, device-mapper or root.
package command

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Runner executes a program and returns its standard output.
type Runner interface {
	// Run executes name with args. A failure (exit status, timeout,
	// missing program) is an *Error carrying the trimmed stderr; stdout is
	// returned even then, because lvm prints a (partial) JSON report
	// before failing.
	Run(ctx context.Context, name string, args ...string) (stdout []byte, err error)
}

// DefaultTimeout bounds one command. lvm commands wait for locks held by
// other lvm commands; a hung device must not hang a CSI call forever.
const DefaultTimeout = 2 * time.Minute

// Exec is the real Runner: os/exec with a timeout and stderr captured into
// the error.
type Exec struct {
	// Timeout per command; DefaultTimeout when zero.
	Timeout time.Duration
	// Env is added to the process environment (e.g. LC_ALL=C, so that
	// messages the backends match on are not translated).
	Env []string
}

var _ Runner = Exec{}

// Run implements Runner.
func (e Exec) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	timeout := e.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	// The caller's deadline may come first: the error names the one that
	// ended the command.
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl).Round(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	cmd := exec.CommandContext(ctx, name, args...)
	// A killed program's children may hold the pipes open; do not wait
	// for them forever.
	cmd.WaitDelay = 5 * time.Second
	if len(e.Env) > 0 {
		cmd.Env = append(os.Environ(), e.Env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	cerr := &Error{Argv: append([]string{name}, args...), ExitCode: -1, Stderr: Trim(stderr.String()), Err: err}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		cerr.ExitCode = exitErr.ExitCode()
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		cerr.Err = fmt.Errorf("timed out after %s: %w", timeout, err)
	} else if ctx.Err() != nil {
		cerr.Err = fmt.Errorf("%w: %w", ctx.Err(), err)
	}
	return stdout.Bytes(), cerr
}

// Error is a failed command: what ran, how it ended and what it said.
type Error struct {
	Argv []string
	// ExitCode is the exit status, or -1 when the program did not exit
	// (not found, killed by the timeout).
	ExitCode int
	// Stderr is the program's standard error, trimmed to one line per
	// message joined with "; ".
	Stderr string
	Err    error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s: %v", strings.Join(e.Argv, " "), e.Err)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Trim turns multi-line stderr into one line ("a; b"), so it reads well in
// an Event or a gRPC status message.
func Trim(stderr string) string {
	var lines []string
	for _, l := range strings.Split(stderr, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "; ")
}
