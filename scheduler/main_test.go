package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hwameistor.io/local/internal/testenv"
)

// TestBrokenConfigRefusesToStart runs the binary with the shipped
// KubeSchedulerConfiguration broken in one place: it must exit non-zero
// before it serves anything, and its error must name the field. The
// kubeconfig points at an address where nothing listens: each mistake is
// caught before the scheduler talks to an apiserver.
func TestBrokenConfigRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "hwameistor-scheduler")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	shipped, err := os.ReadFile(filepath.Join(testenv.RootDir(), "manifests", "scheduler", "scheduler-config.yaml"))
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name, old, new string
		want           []string
	}{
		{name: "misspelt plugin args field",
			old: "      scoringStrategy:", new: "      scoringStrategi:",
			want: []string{"unknown field", "scoringStrategi", "LocalStorage"}},
		{name: "plugin args value",
			old: "        type: spread", new: "        type: packed",
			want: []string{"args.scoringStrategy.type", "packed", "supported values"}},
		{name: "plugin args range",
			old: "      reservationTTLSeconds: 300", new: "      reservationTTLSeconds: -1",
			want: []string{"reservationTTLSeconds"}},
		{name: "scheduler field",
			old: "leaderElection:\n", new: "percentageOfNodesToScore: 150\nleaderElection:\n",
			want: []string{"percentageOfNodesToScore"}},
		{name: "unknown plugin",
			old: "    preFilter:\n      enabled:\n      - name: LocalStorage", new: "    preFilter:\n      enabled:\n      - name: LocalStorag",
			want: []string{"PreFilterPlugin", "LocalStorag", "does not exist"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(string(shipped), tc.old) {
				t.Fatalf("the shipped configuration no longer contains %q: update the case", tc.old)
			}
			cfg := strings.Replace(string(shipped), tc.old, tc.new, 1)
			// Outside a cluster: no leader election, our kubeconfig.
			cfg = strings.Replace(cfg, "leaderElect: true", "leaderElect: false", 1)
			cfg = strings.Replace(cfg, "kind: KubeSchedulerConfiguration\n", "kind: KubeSchedulerConfiguration\nclientConnection:\n  kubeconfig: "+kubeconfig+"\n", 1)
			path := filepath.Join(t.TempDir(), "config.yaml")
			if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, "--config", path, "--secure-port=0").CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("still running after 60s: a broken configuration was accepted\n%s", out)
			}
			if err == nil {
				t.Fatalf("exit status 0 with a broken configuration\n%s", out)
			}
			// klog quotes the error: compare without its escapes.
			out = []byte(strings.ReplaceAll(string(out), `\"`, `"`))
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output does not name %s:\n%s", w, out)
				}
			}
		})
	}
}
