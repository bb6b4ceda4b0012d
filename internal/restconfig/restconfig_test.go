package restconfig

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const kubeconfig = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`

func TestFlags(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", path)
	for _, tc := range []struct {
		args      []string
		wantQPS   float32
		wantBurst int
		wantErr   string
	}{
		{nil, DefaultQPS, DefaultBurst, ""},
		{[]string{"--kube-api-qps=200", "--kube-api-burst=400"}, 200, 400, ""},
		{[]string{"--kube-api-qps=0"}, 0, 0, "must be positive"},
		{[]string{"--kube-api-burst=-1"}, 0, 0, "must be positive"},
	} {
		var f Flags
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		f.Bind(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		cfg, err := f.Config()
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v: err %v, want %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil || cfg.QPS != tc.wantQPS || cfg.Burst != tc.wantBurst {
			t.Errorf("%v: %v/%v (%v), want %v/%v", tc.args, cfg.QPS, cfg.Burst, err, tc.wantQPS, tc.wantBurst)
		}
	}
}
