// Package generated_test fails when the generated deepcopy code or CRDs are
// older than api/: run `make manifests` and commit the result.
package generated_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"hwameistor.io/local/internal/testenv"
)

func controllerGen(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("go", append([]string{"tool", "controller-gen"}, args...)...)
	cmd.Dir = testenv.RootDir()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("controller-gen %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

// deepCopyPackages are the packages `make manifests` generates deepcopy for.
var deepCopyPackages = []string{"api/v1alpha1", "plugins/localstorage/apis/config", "plugins/localstorage/apis/config/v1"}

func TestDeepCopyIsCurrent(t *testing.T) {
	for _, pkg := range deepCopyPackages {
		want := controllerGen(t, "object", "paths=./"+pkg, "output:stdout")
		got, err := os.ReadFile(filepath.Join(testenv.RootDir(), pkg, "zz_generated.deepcopy.go"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(bytes.TrimSpace(got), bytes.TrimSpace(want)) {
			t.Errorf("%s/zz_generated.deepcopy.go is stale: run `make manifests`", pkg)
		}
	}
}

func TestCRDsAreCurrent(t *testing.T) {
	dir := t.TempDir()
	controllerGen(t, "crd", "paths=./api/...", "output:crd:artifacts:config="+dir)
	fresh, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(fresh) == 0 {
		t.Fatalf("controller-gen wrote no CRDs: %v", err)
	}
	committed, _ := filepath.Glob(filepath.Join(testenv.RootDir(), "manifests", "crds", "hwameistor.io_*.yaml"))
	if len(committed) != len(fresh) {
		t.Errorf("manifests/crds has %d CRDs, api/ generates %d: run `make manifests`", len(committed), len(fresh))
	}
	for _, f := range fresh {
		want, _ := os.ReadFile(f)
		got, err := os.ReadFile(filepath.Join(testenv.RootDir(), "manifests", "crds", filepath.Base(f)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("manifests/crds/%s is stale or missing: run `make manifests`", filepath.Base(f))
		}
	}
}
