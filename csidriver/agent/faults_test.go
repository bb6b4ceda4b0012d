package agent

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/volume"
	"hwameistor.io/local/csidriver/backend"
	"hwameistor.io/local/csidriver/backend/command"
	"hwameistor.io/local/internal/testenv"
)

// failingCreate is a backend whose CreateVolume fails the way a failing
// lvcreate does: a command error carrying lvm's stderr.
type failingCreate struct{ backend.Backend }

func (f failingCreate) CreateVolume(_ context.Context, pool, name string, _ int64, _ backend.CreateOptions) (backend.Volume, error) {
	return backend.Volume{}, &command.Error{
		Argv:     []string{"lvm", "lvcreate", "-n", name, pool},
		ExitCode: 5,
		Stderr:   "/dev/mapper/control: open failed: No such device; Failure to communicate with kernel device-mapper driver.",
		Err:      errors.New("exit status 5"),
	}
}

// startWithRecorder is start() with a recorder the test can read.
func startWithRecorder(t *testing.T, backends map[string]backend.Backend, rec *record.FakeRecorder) (stop func()) {
	t.Helper()
	return env.StartManager(t, func(ctx context.Context, mgr ctrl.Manager) error {
		if err := (&volume.Reconciler{Client: mgr.GetClient(), Recorder: rec}).SetupWithManager(ctx, mgr); err != nil {
			return err
		}
		a := &Agent{Client: mgr.GetClient(), Recorder: rec, Backends: backends, Zones: map[string]string{}}
		if err := a.SetupWithManager(mgr); err != nil {
			return err
		}
		go func() {
			if mgr.GetCache().WaitForCacheSync(ctx) {
				a.ReportAll(ctx, time.Hour)
			}
		}()
		return nil
	})
}

// TestFailingCommand: the failing command's stderr reaches the replica's
// status and an Event, where a user looks.
func TestFailingCommand(t *testing.T) {
	ctx := context.Background()
	be := newBackends(t, t.TempDir(), "fail-a")["fail-a"]
	rec := record.NewFakeRecorder(1000)
	startWithRecorder(t, map[string]backend.Backend{"fail-a": failingCreate{be}}, rec)
	if err := env.Client.Create(ctx, newVolume("pvc-fail", gi, "fail-a")); err != nil {
		t.Fatal(err)
	}
	name := v1.ReplicaName("pvc-fail", "fail-a")
	testenv.Eventually(t, "the replica NotReady with lvm's stderr", func() bool {
		r := &v1.LocalVolumeReplica{}
		return env.Client.Get(ctx, clientKey(name), r) == nil && r.Status.State == v1.StateNotReady &&
			strings.Contains(r.Status.Message, "Failure to communicate with kernel device-mapper driver")
	})
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-rec.Events:
			if strings.HasPrefix(e, "Warning AllocationFailed") && strings.Contains(e, "lvcreate") && strings.Contains(e, "device-mapper") {
				return
			}
		case <-deadline:
			t.Fatal("no AllocationFailed event carrying the command and its stderr")
		}
	}
}

// TestRestartMidCreate: the agent died after the backend created the volume
// but before it reported the replica; the next agent adopts the volume
// instead of failing or allocating twice.
func TestRestartMidCreate(t *testing.T) {
	ctx := context.Background()
	backends := newBackends(t, t.TempDir(), "crash-a")
	if _, err := backends["crash-a"].CreateVolume(ctx, v1.PoolNameHDD, "pvc-crash", 2*gi, backend.CreateOptions{Tags: []string{VolumeTag + "pvc-crash"}}); err != nil {
		t.Fatal(err)
	}
	start(t, backends)
	if err := env.Client.Create(ctx, newVolume("pvc-crash", 2*gi, "crash-a")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the volume Ready", func() bool { return get(t, "pvc-crash", &v1.LocalVolume{}).Status.State == v1.StateReady })
	testenv.Eventually(t, "one volume's worth used", func() bool {
		lsn := &v1.LocalStorageNode{}
		if env.Client.Get(ctx, clientKey("crash-a"), lsn) != nil {
			return false
		}
		p := lsn.Status.Pools[v1.PoolNameHDD]
		return p.UsedVolumeCount == 1 && p.FreeCapacityBytes == 8*gi
	})
	vols, err := backends["crash-a"].ListVolumes(ctx, v1.PoolNameHDD)
	if err != nil || len(vols) != 1 {
		t.Fatalf("backend volumes %v, %v: want exactly the one created before the restart", vols, err)
	}
}

// poolsFail is a backend whose pool listing fails the way lvm does when
// its metadata is locked; noPools one with no volume group of ours.
type (
	poolsFail struct{ backend.Backend }
	noPools   struct{ backend.Backend }
)

func (poolsFail) Pools(context.Context) ([]backend.Pool, error) {
	return nil, &command.Error{Argv: []string{"lvm", "vgs"}, ExitCode: 5, Stderr: "Unable to obtain global lock.", Err: errors.New("exit status 5")}
}

func (noPools) Pools(context.Context) ([]backend.Pool, error) { return nil, nil }

// TestPoolProblemsOnTheNode: a node whose pools cannot be read, or that
// has none, says so in a Warning Event on its Node.
func TestPoolProblemsOnTheNode(t *testing.T) {
	dir := t.TempDir()
	rec := record.NewFakeRecorder(1000)
	be := newBackends(t, dir, "pools-fail", "pools-none")
	startWithRecorder(t, map[string]backend.Backend{"pools-fail": poolsFail{be["pools-fail"]}, "pools-none": noPools{be["pools-none"]}}, rec)
	want := map[string][]string{
		"Warning " + EventPoolReportFailed: {"storage pools of node pools-fail", "Unable to obtain global lock"},
		"Warning " + EventNoPools:          {"Node pools-none has no storage pool", v1.PoolNameHDD, "docs/install.md"},
	}
	deadline := time.After(10 * time.Second)
	for len(want) > 0 {
		select {
		case e := <-rec.Events:
			for prefix, parts := range want {
				if strings.HasPrefix(e, prefix) && containsAll(e, parts) {
					delete(want, prefix)
				}
			}
		case <-deadline:
			t.Fatalf("no events %v", want)
		}
	}
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
