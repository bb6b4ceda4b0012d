// Package layering_test fails when a package imports one it must not, so
// imports read in one direction: api <- internal <- controllers, csidriver,
// plugins, scheduler, kwok, cli (see "Package map" in docs/architecture.md).
package layering_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"hwameistor.io/local/internal/testenv"
)

const module = "hwameistor.io/local/"

// rules: no package under from may import, directly or not, a package under
// forbidden (paths relative to the module; "cli" is cli and cli/...).
var rules = []struct{ from, forbidden string }{
	{"api", "internal"},
	{"api", "controllers"},
	{"api", "csidriver"},
	{"api", "plugins"},
	{"api", "scheduler"},
	{"api", "kwok"},
	{"api", "cli"},
	{"internal", "controllers"},
	{"internal", "csidriver"},
	{"internal", "plugins"},
	{"internal", "scheduler"},
	{"internal", "kwok"},
	{"internal", "cli"},
	{"cli", "controllers"},
	{"cli", "csidriver"},
	{"cmd/kubectl-hwameistor", "controllers"},
	{"cmd/kubectl-hwameistor", "csidriver"},
}

// testExceptions are the imports a package's _test.go files may make
// despite rules, with why.
var testExceptions = map[string][]string{
	// TestAgainstControllers runs the real evictor and migrate controller
	// to hold drain-check to what they do.
	"cli": {"controllers/evictor", "controllers/migrate"},
}

type pkg struct {
	ImportPath                         string
	Imports, TestImports, XTestImports []string
}

// under says whether path (relative to the module) is dir or below it.
func under(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// listPackages is `go list -json ./...` of the module, by path relative to
// the module.
func listPackages(t *testing.T) map[string]*pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "./...")
	cmd.Dir = testenv.RootDir()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	pkgs := map[string]*pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := &pkg{}
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs[strings.TrimPrefix(p.ImportPath, module)] = p
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

// local is imports of the module, relative to it.
func local(imports []string) []string {
	var l []string
	for _, i := range imports {
		if strings.HasPrefix(i, module) {
			l = append(l, strings.TrimPrefix(i, module))
		}
	}
	return l
}

// chain is the import path from start to the first package under forbidden
// it reaches (start itself excluded), nil when there is none.
func chain(pkgs map[string]*pkg, start []string, forbidden string) []string {
	prev := map[string]string{}
	queue := []string{}
	for _, s := range start {
		if _, seen := prev[s]; !seen {
			prev[s] = ""
			queue = append(queue, s)
		}
	}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if under(p, forbidden) {
			var c []string
			for ; p != ""; p = prev[p] {
				c = append(c, p)
			}
			slices.Reverse(c)
			return c
		}
		if q, ok := pkgs[p]; ok {
			for _, i := range local(q.Imports) {
				if _, seen := prev[i]; !seen {
					prev[i] = p
					queue = append(queue, i)
				}
			}
		}
	}
	return nil
}

// describe names a chain's forbidden package and, when it is not imported
// directly, the way to it.
func describe(c []string) string {
	if len(c) == 1 {
		return c[0]
	}
	return c[len(c)-1] + " (via " + strings.Join(c, " -> ") + ")"
}

func TestImportsReadInOneDirection(t *testing.T) {
	pkgs := listPackages(t)
	paths := make([]string, 0, len(pkgs))
	for p := range pkgs {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, r := range rules {
		t.Run(r.from+"-not-"+r.forbidden, func(t *testing.T) {
			matched := false
			for _, path := range paths {
				if !under(path, r.from) {
					continue
				}
				matched = true
				p := pkgs[path]
				if c := chain(pkgs, local(p.Imports), r.forbidden); c != nil {
					t.Errorf("%s imports %s: %s must not depend on %s", path, describe(c), r.from, r.forbidden)
				}
				var tests []string
				for _, i := range local(append(slices.Clone(p.TestImports), p.XTestImports...)) {
					if !slices.Contains(testExceptions[path], i) {
						tests = append(tests, i)
					}
				}
				if c := chain(pkgs, tests, r.forbidden); c != nil {
					t.Errorf("%s's tests import %s: %s must not depend on %s", path, describe(c), r.from, r.forbidden)
				}
			}
			if !matched {
				t.Errorf("no package under %s: the rule is stale", r.from)
			}
		})
	}
}
