package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/volume"
	"hwameistor.io/local/csidriver/backend"
	"hwameistor.io/local/csidriver/backend/emulated"
	"hwameistor.io/local/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	var err error
	env, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

const gi = int64(1) << 30

// newBackends gives each node an emulated 10Gi HDD pool under dir. As root
// the volumes are attached as real loop devices; otherwise capacity only.
func newBackends(t *testing.T, dir string, nodes ...string) map[string]backend.Backend {
	t.Helper()
	out := map[string]backend.Backend{}
	for _, n := range nodes {
		var opts []emulated.Option
		if os.Geteuid() != 0 {
			opts = append(opts, emulated.WithoutLoop())
		}
		be, err := emulated.New(filepath.Join(dir, n), []emulated.PoolConfig{{Class: v1.PoolClassHDD, CapacityBytes: 10 * gi}}, opts...)
		if err != nil {
			t.Fatal(err)
		}
		out[n] = be
	}
	return out
}

// start runs the volume controller and an agent serving backends until the
// returned stop is called (a restart is stop + start).
func start(t *testing.T, backends map[string]backend.Backend) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: ptr.To(true)}})
	if err != nil {
		t.Fatal(err)
	}
	rec := record.NewFakeRecorder(1000)
	if err := (&volume.Reconciler{Client: mgr.GetClient(), Recorder: rec}).SetupWithManager(ctx, mgr); err != nil {
		t.Fatal(err)
	}
	a := &Agent{Client: mgr.GetClient(), Recorder: rec, Backends: backends, Zones: map[string]string{}}
	if err := a.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("manager: %v", err)
		}
	}()
	go a.ReportAll(ctx, time.Hour)
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil }); err != nil {
		t.Fatalf("waiting for %s", what)
	}
}

func get[T client.Object](t *testing.T, name string, obj T) T {
	t.Helper()
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: name}, obj); err != nil {
		t.Fatalf("get %s: %v", name, err)
	}
	return obj
}

func newVolume(name string, bytes int64, nodes ...string) *v1.LocalVolume {
	lv := &v1.LocalVolume{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.LocalVolumeSpec{
		PoolName: v1.PoolNameHDD, RequiredCapacityBytes: bytes, ReplicaNumber: int64(len(nodes)),
		Accessibility: v1.AccessibilityTopology{Nodes: nodes}, Config: &v1.VolumeConfig{}}}
	for i, n := range nodes {
		lv.Spec.Config.Replicas = append(lv.Spec.Config.Replicas, v1.VolumeReplica{ID: int64(i + 1), Hostname: n, Primary: i == 0})
	}
	return lv
}

// TestVolumeOnTwoNodes follows an HA volume from LocalVolume to storage on
// both nodes and back: replicas allocated (and attached, as root), pools
// reported with the volume counted, expansion, a restart of the agent, and
// deletion freeing the space.
func TestVolumeOnTwoNodes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	backends := newBackends(t, dir, "agent-a", "agent-b")
	stop := start(t, backends)

	eventually(t, "LocalStorageNodes reported", func() bool {
		lsn := &v1.LocalStorageNode{}
		err := env.Client.Get(ctx, client.ObjectKey{Name: "agent-a"}, lsn)
		return err == nil && lsn.Status.State == v1.StateReady && lsn.Status.Pools[v1.PoolNameHDD].FreeCapacityBytes == 10*gi
	})

	if err := env.Client.Create(ctx, newVolume("pvc-agent", 2*gi, "agent-a", "agent-b")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the volume Ready", func() bool { return get(t, "pvc-agent", &v1.LocalVolume{}).Status.State == v1.StateReady })
	for _, n := range []string{"agent-a", "agent-b"} {
		rep := get(t, v1.ReplicaName("pvc-agent", n), &v1.LocalVolumeReplica{})
		if rep.Status.AllocatedCapacityBytes != 2*gi || !rep.Status.Synced {
			t.Errorf("replica on %s: %+v", n, rep.Status)
		}
		if os.Geteuid() == 0 && !strings.HasPrefix(rep.Status.DevicePath, "/dev/loop") {
			t.Errorf("replica on %s has device %q, want a loop device", n, rep.Status.DevicePath)
		}
		eventually(t, "the pool of "+n+" to count the volume", func() bool {
			p := get(t, n, &v1.LocalStorageNode{}).Status.Pools[v1.PoolNameHDD]
			return p.FreeCapacityBytes == 8*gi && p.UsedVolumeCount == 1 && len(p.Volumes) == 1 && p.Volumes[0] == "pvc-agent"
		})
	}

	lv := get(t, "pvc-agent", &v1.LocalVolume{})
	lv.Spec.RequiredCapacityBytes = 3 * gi
	if err := env.Client.Update(ctx, lv); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the volume expanded", func() bool { return get(t, "pvc-agent", &v1.LocalVolume{}).Status.AllocatedCapacityBytes == 3*gi })

	// Restart with new backends over the same folders: nothing is created twice.
	stop()
	start(t, newBackends(t, dir, "agent-a", "agent-b"))
	if err := env.Client.Create(ctx, newVolume("pvc-agent-2", gi, "agent-a")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the second volume Ready", func() bool { return get(t, "pvc-agent-2", &v1.LocalVolume{}).Status.State == v1.StateReady })
	eventually(t, "agent-a to hold both", func() bool {
		return get(t, "agent-a", &v1.LocalStorageNode{}).Status.Pools[v1.PoolNameHDD].FreeCapacityBytes == 6*gi
	})

	for _, name := range []string{"pvc-agent", "pvc-agent-2"} {
		if err := env.Client.Delete(ctx, get(t, name, &v1.LocalVolume{})); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "volumes gone and space freed", func() bool {
		err := env.Client.Get(ctx, client.ObjectKey{Name: "pvc-agent"}, &v1.LocalVolume{})
		a := get(t, "agent-a", &v1.LocalStorageNode{}).Status.Pools[v1.PoolNameHDD]
		b := get(t, "agent-b", &v1.LocalStorageNode{}).Status.Pools[v1.PoolNameHDD]
		return apierrors.IsNotFound(err) && a.FreeCapacityBytes == 10*gi && b.FreeCapacityBytes == 10*gi && len(a.Volumes) == 0
	})
}

// TestPoolTooSmall: a replica that does not fit stays NotReady with the
// numbers in its message, and the volume says which replica waits.
func TestPoolTooSmall(t *testing.T) {
	ctx := context.Background()
	start(t, newBackends(t, t.TempDir(), "small-a"))
	if err := env.Client.Create(ctx, newVolume("pvc-huge", 20*gi, "small-a")); err != nil {
		t.Fatal(err)
	}
	name := v1.ReplicaName("pvc-huge", "small-a")
	eventually(t, "the replica NotReady", func() bool {
		r := &v1.LocalVolumeReplica{}
		return env.Client.Get(ctx, client.ObjectKey{Name: name}, r) == nil && r.Status.State == v1.StateNotReady
	})
	msg := get(t, name, &v1.LocalVolumeReplica{}).Status.Message
	if !strings.Contains(msg, "insufficient capacity") || !strings.Contains(msg, "20Gi") {
		t.Errorf("replica message %q lacks the shortage", msg)
	}
	eventually(t, "the volume to name the replica", func() bool {
		return strings.Contains(get(t, "pvc-huge", &v1.LocalVolume{}).Status.Message, name)
	})
	if err := env.Client.Delete(ctx, get(t, "pvc-huge", &v1.LocalVolume{})); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the failed volume deleted", func() bool {
		return apierrors.IsNotFound(env.Client.Get(ctx, client.ObjectKey{Name: "pvc-huge"}, &v1.LocalVolume{}))
	})
}

func clientKey(name string) client.ObjectKey { return client.ObjectKey{Name: name} }
