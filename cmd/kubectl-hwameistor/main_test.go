package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPlugin builds the binary and runs it the way users do, through
// kubectl's plugin mechanism (the pinned kubectl of KUBEBUILDER_ASSETS):
// kubectl finds it on the PATH, passes the arguments and hands back its
// exit status, which drain-check's callers rely on. The server named is
// refused at once, so no control plane is needed (cli's tests run one).
func TestPlugin(t *testing.T) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run `make test`, or export KUBEBUILDER_ASSETS=$(hack/build-control-plane.sh)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "kubectl-hwameistor"), ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	kubectl := func(args ...string) (stdout, stderr string, code int) {
		t.Helper()
		cmd := exec.Command(filepath.Join(assets, "kubectl"), args...)
		// Only the plugin's folder on the PATH; a HOME without a kubeconfig.
		cmd.Env = []string{"PATH=" + dir, "HOME=" + dir}
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			code = exit.ExitCode()
		case err != nil:
			t.Fatal(err)
		}
		return out.String(), errOut.String(), code
	}

	if out, _, code := kubectl("plugin", "list"); code != 0 || !strings.Contains(out, filepath.Join(dir, "kubectl-hwameistor")) {
		t.Errorf("kubectl plugin list (%d):\n%s", code, out)
	}
	out, _, code := kubectl("hwameistor", "--help")
	for _, want := range []string{"kubectl hwameistor [command]", "drain-check", "migrate", "migrations", "pools", "volumes", "--kubeconfig", "--context"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("kubectl hwameistor --help (%d) lacks %q:\n%s", code, want, out)
		}
	}
	const refused = "https://127.0.0.1:1"
	for _, tt := range []struct {
		args []string
		code int
	}{
		{[]string{"pools"}, 1},
		{[]string{"drain-check", "node-1"}, 2}, // 1 would mean "cannot be drained"
	} {
		_, errOut, code := kubectl(append(append([]string{"hwameistor"}, tt.args...), "--server", refused)...)
		if code != tt.code || !strings.HasPrefix(errOut, "error: ") || !strings.Contains(errOut, "connection refused") {
			t.Errorf("kubectl hwameistor %v: exit %d, stderr %q; want %d and the connection error", tt.args, code, errOut, tt.code)
		}
	}
}
