package lvm

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"hwameistor.io/local/csidriver/backend"
	"hwameistor.io/local/csidriver/backend/command"
)

// slowRunner delays each command, so its latency is known to be at least
// delay.
type slowRunner struct {
	command.Runner
	delay time.Duration
}

func (r slowRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	time.Sleep(r.delay)
	return r.Runner.Run(ctx, name, args...)
}

// commandStats is the count and sum of lvm_command_duration_seconds and
// the value of lvm_command_errors_total for each command.
type commandStats map[string]struct {
	count  uint64
	sum    float64
	errors float64
}

func readCommandStats(t *testing.T) commandStats {
	t.Helper()
	out := commandStats{}
	for _, c := range commands {
		m := &dto.Metric{}
		if err := commandDuration.WithLabelValues(c).(prometheus.Histogram).Write(m); err != nil {
			t.Fatal(err)
		}
		s := out[c]
		s.count, s.sum = m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
		s.errors = testutil.ToFloat64(commandErrors.WithLabelValues(c))
		out[c] = s
	}
	return out
}

// TestCommandMetrics: every command the backend runs is timed under its
// subcommand, and the failed ones (lvcreate short of space, lvremove of a
// volume in use) are counted as errors.
func TestCommandMetrics(t *testing.T) {
	const delay = 10 * time.Millisecond
	// Pools; CreateVolume whose lvcreate fails although vg_free said
	// there was room (another process took it); DeleteVolume of a
	// volume in use.
	fake := command.NewFake(
		fullreportCall(testdata(t, "fullreport.json")),
		vgsCall(testdata(t, "vgs_hdd.json"), hdd), lvsCall(testdata(t, "lvs_hdd.json"), hdd),
		failed(cmd("lvm", "lvcreate", "-y", "-Wy", "-Zy", "-L", "1073741824b", "-n", "pvc-new", "--addtag", owner, "--addtag", zeroTag0, hdd),
			5, testdata(t, "lvcreate_insufficient.stderr")),
		lvsCall(testdata(t, "lvs_hdd.json"), hdd),
		failed(cmd("lvm", "lvremove", "-y", hdd+"/pvc-aaa"), 5, "  Logical volume LocalStorage_PoolHDD/pvc-aaa contains a filesystem in use.\n"),
	)
	b, err := New(Options{Runner: slowRunner{Runner: fake, delay: delay}})
	if err != nil {
		t.Fatal(err)
	}
	before := readCommandStats(t)
	ctx := context.Background()
	if _, err := b.Pools(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateVolume(ctx, hdd, "pvc-new", gi, backend.CreateOptions{}); err == nil {
		t.Fatal("CreateVolume succeeded, want lvm's capacity error")
	}
	if err := b.DeleteVolume(ctx, hdd, "pvc-aaa"); err == nil {
		t.Fatal("DeleteVolume succeeded, want lvremove's error")
	}
	if err := fake.Verify(); err != nil {
		t.Fatal(err)
	}
	after := readCommandStats(t)
	want := map[string]struct {
		runs   uint64
		errors float64
	}{
		"fullreport": {1, 0}, "vgs": {1, 0}, "lvs": {2, 0}, "lvcreate": {1, 1}, "lvextend": {0, 0}, "lvchange": {0, 0}, "lvremove": {1, 1},
	}
	for _, c := range commands {
		runs, errs := after[c].count-before[c].count, after[c].errors-before[c].errors
		if runs != want[c].runs || errs != want[c].errors {
			t.Errorf("%s: %d runs, %v errors; want %d, %v", c, runs, errs, want[c].runs, want[c].errors)
		}
		if sum := after[c].sum - before[c].sum; sum < float64(runs)*delay.Seconds() {
			t.Errorf("%s: %d runs took %vs in all, want at least %v each", c, runs, sum, delay)
		}
	}
}
