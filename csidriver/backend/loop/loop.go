// Package loop attaches files as loop block devices with losetup, so that
// emulated volumes can be formatted, mounted and grown for real.
package loop

import (
	"context"
	"fmt"
	"strings"

	"hwameistor.io/local/csidriver/backend/command"
)

// Losetup drives util-linux losetup. Backing files must be given as
// absolute, symlink-free paths: the kernel records the canonical path and
// `losetup -j` compares against it.
type Losetup struct {
	Runner command.Runner
	// Binary is the losetup program; "losetup" (from PATH) when empty.
	Binary string
}

// New returns a Losetup running the real program.
func New() *Losetup {
	return &Losetup{Runner: command.Exec{Env: []string{"LC_ALL=C"}}}
}

func (l *Losetup) bin() string {
	if l.Binary != "" {
		return l.Binary
	}
	return "losetup"
}

// Find returns the loop devices that have file as their backing file
// (`losetup -j`), so attachment state survives restarts of our process.
func (l *Losetup) Find(ctx context.Context, file string) ([]string, error) {
	out, err := l.Runner.Run(ctx, l.bin(), "--noheadings", "--output", "NAME", "--associated", file)
	if err != nil {
		return nil, fmt.Errorf("find loop devices of %s: %w", file, err)
	}
	var devs []string
	for _, line := range strings.Split(string(out), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			devs = append(devs, line)
		}
	}
	return devs, nil
}

// Attach attaches file to the first free loop device and returns its path.
func (l *Losetup) Attach(ctx context.Context, file string) (string, error) {
	out, err := l.Runner.Run(ctx, l.bin(), "--find", "--show", file)
	if err != nil {
		return "", fmt.Errorf("attach %s: %w", file, err)
	}
	dev := strings.TrimSpace(string(out))
	if !strings.HasPrefix(dev, "/dev/") {
		return "", fmt.Errorf("attach %s: losetup printed %q, not a device path", file, dev)
	}
	return dev, nil
}

// Refresh makes the kernel re-read the backing file's size after it grew
// (`losetup -c`).
func (l *Losetup) Refresh(ctx context.Context, dev string) error {
	if _, err := l.Runner.Run(ctx, l.bin(), "--set-capacity", dev); err != nil {
		return fmt.Errorf("refresh size of %s: %w", dev, err)
	}
	return nil
}

// Detach detaches dev. A device that is already gone is not an error. A
// device still mounted is detached by the kernel when it is unmounted
// (autoclear).
func (l *Losetup) Detach(ctx context.Context, dev string) error {
	if _, err := l.Runner.Run(ctx, l.bin(), "--detach", dev); err != nil {
		if strings.Contains(err.Error(), "No such device") {
			return nil
		}
		return fmt.Errorf("detach %s: %w", dev, err)
	}
	return nil
}
