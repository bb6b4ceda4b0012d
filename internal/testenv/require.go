package testenv

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

// Tests that need root or a program skip with the reason on a developer's
// machine, but fail under CI=true: CI must run them, and a skip there would
// let it go green having run none of them. hack/test.sh also fails on any
// skip not on hack/test-skips.allow.

// Decision is what a test does about one of its requirements.
type Decision int

const (
	Run  Decision = iota // the requirement is met
	Skip                 // missing, outside CI: skip with the reason
	Fail                 // missing under CI=true: fail with the reason
)

func (d Decision) String() string {
	switch d {
	case Run:
		return "run"
	case Skip:
		return "skip"
	case Fail:
		return "fail"
	}
	return fmt.Sprintf("Decision(%d)", int(d))
}

// Decide is the rule: ciEnv is the value of $CI ("true" on CI, the value
// the CI systems and .ci/run set; anything else is a developer's machine).
func Decide(ciEnv string, have bool) Decision {
	switch {
	case have:
		return Run
	case ciEnv == "true":
		return Fail
	default:
		return Skip
	}
}

// Require skips t, or fails it under CI=true, when missing (what a
// Missing* function returned) is not empty.
func Require(t testing.TB, missing string) {
	t.Helper()
	switch Decide(os.Getenv("CI"), missing == "") {
	case Skip:
		t.Skip(missing)
	case Fail:
		t.Fatalf("%s; CI=true, so this fails instead of skipping", missing)
	}
}

// RequireRoot needs root; why says what the test does with it.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	Require(t, MissingRoot(why))
}

// RequireCommands needs the programs in PATH.
func RequireCommands(t testing.TB, names ...string) {
	t.Helper()
	Require(t, MissingCommands(names...))
}

// RequireOrExit is Require for a TestMain, which has no *testing.T: when
// missing is not empty it prints a "--- SKIP: TestMain/<name>" line (so
// hack/test.sh counts the package as a skipped test) and exits 0, or under
// CI=true a "--- FAIL: TestMain/<name>" line and exits 1.
func RequireOrExit(name, missing string) {
	if exit, code := requireOrExit(os.Stdout, os.Getenv("CI"), name, missing); exit {
		os.Exit(code)
	}
}

// requireOrExit writes what RequireOrExit prints to w and says whether and
// with which code it exits.
func requireOrExit(w io.Writer, ciEnv, name, missing string) (exit bool, code int) {
	switch Decide(ciEnv, missing == "") {
	case Skip:
		fmt.Fprintf(w, "--- SKIP: TestMain/%s (0.00s)\n    %s\n", name, missing)
		return true, 0
	case Fail:
		fmt.Fprintf(w, "--- FAIL: TestMain/%s (0.00s)\n    %s; CI=true, so this fails instead of skipping\n", name, missing)
		return true, 1
	}
	return false, 0
}

// MissingRoot is "" as root, else what is missing and why.
func MissingRoot(why string) string {
	if os.Geteuid() == 0 {
		return ""
	}
	return "needs root: " + why + " (CI runs as root)"
}

// debianPackages are the Debian packages of the programs the tests run.
var debianPackages = map[string]string{
	"bash":       "bash",
	"sh":         "dash",
	"losetup":    "util-linux",
	"mount":      "mount",
	"umount":     "mount",
	"mkfs.xfs":   "xfsprogs",
	"xfs_growfs": "xfsprogs",
	"mkfs.ext4":  "e2fsprogs",
	"resize2fs":  "e2fsprogs",
	"lvm":        "lvm2",
	"vgs":        "lvm2",
	"openssl":    "openssl",
	"curl":       "curl",
}

// MissingCommands is "" when every program is in PATH, else which are not
// and the apt-get command that installs them.
func MissingCommands(names ...string) string {
	var missing []string
	pkgs := map[string]bool{}
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			missing = append(missing, n)
			if p, ok := debianPackages[n]; ok {
				pkgs[p] = true
			} else {
				pkgs["<the package with "+n+">"] = true
			}
		}
	}
	if len(missing) == 0 {
		return ""
	}
	list := make([]string, 0, len(pkgs))
	for p := range pkgs {
		list = append(list, p)
	}
	sort.Strings(list)
	return fmt.Sprintf("needs %s in PATH: apt-get install -y %s (hack/install-deps.sh installs what the tests use)",
		strings.Join(missing, ", "), strings.Join(list, " "))
}
