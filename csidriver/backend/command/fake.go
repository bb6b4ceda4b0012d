package command

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
)

// Call is one expected command of a Fake and its recorded result.
type Call struct {
	// Argv is the exact program and arguments expected.
	Argv []string
	// Stdout and Stderr are the recorded outputs.
	Stdout string
	Stderr string
	// ExitCode other than zero makes Run fail with an *Error, like Exec.
	ExitCode int
}

// Fake is a Runner that replays Calls in order and checks that every command
// is exactly the expected one, so tests pin the argv of each command.
type Fake struct {
	mu       sync.Mutex
	calls    []Call
	next     int
	mismatch []string
}

var _ Runner = (*Fake)(nil)

// NewFake returns a Fake expecting calls in this order.
func NewFake(calls ...Call) *Fake { return &Fake{calls: calls} }

// Run implements Runner.
func (f *Fake) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	argv := append([]string{name}, args...)
	if f.next >= len(f.calls) {
		f.mismatch = append(f.mismatch, fmt.Sprintf("unexpected command %q", argv))
		return nil, &Error{Argv: argv, ExitCode: -1, Err: errors.New("fake: unexpected command")}
	}
	c := f.calls[f.next]
	f.next++
	if !reflect.DeepEqual(c.Argv, argv) {
		f.mismatch = append(f.mismatch, fmt.Sprintf("command %d:\n got  %q\n want %q", f.next, argv, c.Argv))
		return nil, &Error{Argv: argv, ExitCode: -1, Err: errors.New("fake: unexpected argv")}
	}
	if c.ExitCode != 0 {
		return []byte(c.Stdout), &Error{Argv: argv, ExitCode: c.ExitCode, Stderr: Trim(c.Stderr), Err: fmt.Errorf("exit status %d", c.ExitCode)}
	}
	return []byte(c.Stdout), nil
}

// Verify reports commands that differed from the expectation and expected
// commands that never ran.
func (f *Fake) Verify() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	problems := append([]string(nil), f.mismatch...)
	for _, c := range f.calls[f.next:] {
		problems = append(problems, fmt.Sprintf("expected command never ran: %q", c.Argv))
	}
	if len(problems) == 0 {
		return nil
	}
	return errors.New(strings.Join(problems, "\n"))
}
