package vm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ModuleRoot returns the folder of this Go module (go env GOMOD).
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the module")
	}
	return filepath.Dir(mod), nil
}

// Image returns the guest image folder: $HWAMEISTOR_VM_IMAGE when set, else
// what hack/build-guest-image.sh prints (it builds the image once, then
// answers from its cache).
func Image(ctx context.Context) (string, error) {
	if dir := os.Getenv("HWAMEISTOR_VM_IMAGE"); dir != "" {
		return dir, nil
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(root, "hack", "build-guest-image.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/build-guest-image.sh: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}

// BuildAgent builds the guest agent into share/hwvm-guest.
func BuildAgent(ctx context.Context, share string) error {
	return GoBuild(ctx, filepath.Join(share, "hwvm-guest"), "./internal/vm/cmd/hwvm-guest")
}

// GoBuild builds the package (a path relative to the module root) for the
// guests. They run the same Debian release as the host, so binaries linked
// against the host's C library run there, and the build shares the cache of
// the host's own builds and tests.
func GoBuild(ctx context.Context, out, pkg string, extraArgs ...string) error {
	return goCmd(ctx, append(append([]string{"build", "-o", out}, extraArgs...), pkg)...)
}

// GoTestBuild compiles the package's tests (go test -c) with the build
// tags, for the guests.
func GoTestBuild(ctx context.Context, out, pkg string, tags ...string) error {
	args := []string{"test", "-c", "-o", out}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	return goCmd(ctx, append(args, pkg)...)
}

func goCmd(ctx context.Context, args ...string) error {
	root, err := ModuleRoot()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}
