package fence_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/fence"
	"hwameistor.io/local/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

func haVolume(t *testing.T, name string) {
	t.Helper()
	lv := &v1.LocalVolume{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.LocalVolumeSpec{
		PoolName: v1.PoolNameHDD, RequiredCapacityBytes: 1 << 30, ReplicaNumber: 2, VolumeKind: v1.VolumeKindLVM,
		Accessibility: v1.AccessibilityTopology{Nodes: []string{"a", "b"}},
		Config: &v1.VolumeConfig{Version: 1, VolumeName: name, RequiredCapacityBytes: 1 << 30, ResourceID: 1,
			Replicas: []v1.VolumeReplica{{ID: 1, Hostname: "a", Primary: true}, {ID: 2, Hostname: "b"}}}}}
	if err := env.Client.Create(context.Background(), lv); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), lv) })
}

func outdated(t *testing.T, name string) string {
	t.Helper()
	lv := &v1.LocalVolume{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: name}, lv); err != nil {
		t.Fatal(err)
	}
	return lv.DRBDOutdated()
}

// TestOutdateRace: the two replicas of a volume that lost each other both
// try to record the other, at the same time, through the real API server:
// exactly one wins in every round, and the volume names the loser.
func TestOutdateRace(t *testing.T) {
	ctx := context.Background()
	for round := range 20 {
		name := fmt.Sprintf("pvc-race-%d", round)
		haVolume(t, name)
		var wg sync.WaitGroup
		won := map[string]bool{}
		var mu sync.Mutex
		start := make(chan struct{})
		for _, side := range [][2]string{{"a", "b"}, {"b", "a"}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				ok, err := fence.Outdate(ctx, env.Client, env.Client, name, side[0], side[1])
				if err != nil {
					t.Errorf("round %d: Outdate(%s over %s): %v", round, side[0], side[1], err)
				}
				mu.Lock()
				won[side[0]] = ok
				mu.Unlock()
			}()
		}
		close(start)
		wg.Wait()
		if won["a"] == won["b"] {
			t.Fatalf("round %d: a won %v, b won %v: want exactly one winner", round, won["a"], won["b"])
		}
		winner, loser := "a", "b"
		if won["b"] {
			winner, loser = "b", "a"
		}
		if got := outdated(t, name); got != loser {
			t.Errorf("round %d: %s won, the volume records %q outdated, want %q", round, winner, got, loser)
		}
	}
}

// TestOutdateAndClear: recording is idempotent for the winner and refused
// to the loser until the record is cleared; only the outdated node's clear
// removes it; a volume that is gone clears without error.
func TestOutdateAndClear(t *testing.T) {
	ctx := context.Background()
	c := env.Client
	haVolume(t, "pvc-clear")
	for _, step := range []struct {
		what           string
		winner, loser  string
		want           bool
		clear          string
		wantOutdatedAt string
	}{
		{what: "a outdates b", winner: "a", loser: "b", want: true, wantOutdatedAt: "b"},
		{what: "a again (its agent's next pass)", winner: "a", loser: "b", want: true, wantOutdatedAt: "b"},
		{what: "b cannot take over", winner: "b", loser: "a", want: false, wantOutdatedAt: "b"},
		{what: "a's clear does not remove b's record", clear: "a", wantOutdatedAt: "b"},
		{what: "b, resynced, clears its record", clear: "b", wantOutdatedAt: ""},
		{what: "b may now outdate a", winner: "b", loser: "a", want: true, wantOutdatedAt: "a"},
	} {
		if step.clear != "" {
			if err := fence.Clear(ctx, c, c, "pvc-clear", step.clear); err != nil {
				t.Fatalf("%s: %v", step.what, err)
			}
		} else {
			won, err := fence.Outdate(ctx, c, c, "pvc-clear", step.winner, step.loser)
			if err != nil || won != step.want {
				t.Fatalf("%s: Outdate = %v, %v; want %v", step.what, won, err, step.want)
			}
		}
		if got := outdated(t, "pvc-clear"); got != step.wantOutdatedAt {
			t.Errorf("%s: the volume records %q outdated, want %q", step.what, got, step.wantOutdatedAt)
		}
	}
	if err := fence.Clear(ctx, c, c, "pvc-gone", "a"); err != nil {
		t.Errorf("Clear on a volume that is gone: %v", err)
	}
	if _, err := fence.Outdate(ctx, c, c, "pvc-gone", "a", "b"); err == nil {
		t.Error("Outdate on a volume that is gone: no error")
	}
}
