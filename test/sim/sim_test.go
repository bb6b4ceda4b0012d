// Package sim runs scenario files through the simulator (kwok/sim, the
// code path of `hwameistor-sim run`) on the whole system and checks the
// report. Volumes are capacity-only (no mounts), so it needs no root, but
// it needs the control-plane binaries (KUBEBUILDER_ASSETS).
package sim

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hwameistor.io/local/internal/testenv"
	"hwameistor.io/local/kwok/scenario"
	"hwameistor.io/local/kwok/sim"
)

func TestBurstNearFull(t *testing.T) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run `export KUBEBUILDER_ASSETS=$(hack/build-control-plane.sh)` first, or `make test`")
	}
	sc, err := scenario.Load(filepath.Join(testenv.RootDir(), "kwok", "scenarios", "burst-near-full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	rep, _, err := sim.Run(ctx, sc, sim.Options{Name: "sim-test", Ports: 32370, Assets: assets, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	rep.Summary(&b)
	t.Log("\n" + b.String())
	if rep.Pods.Total != 10 || rep.Pods.Running != 9 || rep.Pods.Pending != 1 {
		t.Errorf("pods: %+v, want 10 total, 9 running, 1 pending", rep.Pods)
	}
	found := false
	for reason := range rep.Pods.PendingReasons {
		found = found || strings.Contains(reason, "need 6Gi")
	}
	if !found {
		t.Errorf("pending reasons %v: none says \"need 6Gi\"", rep.Pods.PendingReasons)
	}
	if rep.Overcommits != 0 {
		t.Errorf("overcommits = %d, want 0", rep.Overcommits)
	}
	if rep.Volumes.Requested != 10 || rep.Volumes.Provisioned != 9 {
		t.Errorf("volumes: %+v, want 10 requested, 9 provisioned", rep.Volumes)
	}
}
