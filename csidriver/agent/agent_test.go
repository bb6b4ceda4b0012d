package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/backend"
	"hwameistor.io/local/csidriver/backend/emulated"
	"hwameistor.io/local/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

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
		// Volumes a test leaves behind stay attached to loop devices:
		// detach them before the folder goes (cleanups run last-in first).
		t.Cleanup(func() {
			if err := be.DetachAll(context.Background()); err != nil {
				t.Error(err)
			}
		})
		out[n] = be
	}
	return out
}

// start runs the volume controller and an agent serving backends until the
// returned stop is called (a restart is stop + start).
func start(t *testing.T, backends map[string]backend.Backend) (stop func()) {
	t.Helper()
	return startWithRecorder(t, backends, record.NewFakeRecorder(1000))
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

	testenv.Eventually(t, "LocalStorageNodes reported", func() bool {
		lsn := &v1.LocalStorageNode{}
		err := env.Client.Get(ctx, client.ObjectKey{Name: "agent-a"}, lsn)
		return err == nil && lsn.Status.State == v1.StateReady && lsn.Status.Pools[v1.PoolNameHDD].FreeCapacityBytes == 10*gi
	})

	if err := env.Client.Create(ctx, newVolume("pvc-agent", 2*gi, "agent-a", "agent-b")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the volume Ready", func() bool { return get(t, "pvc-agent", &v1.LocalVolume{}).Status.State == v1.StateReady })
	for _, n := range []string{"agent-a", "agent-b"} {
		rep := get(t, v1.ReplicaName("pvc-agent", n), &v1.LocalVolumeReplica{})
		if rep.Status.AllocatedCapacityBytes != 2*gi || !rep.Status.Synced {
			t.Errorf("replica on %s: %+v", n, rep.Status)
		}
		if os.Geteuid() == 0 && !strings.HasPrefix(rep.Status.DevicePath, "/dev/loop") {
			t.Errorf("replica on %s has device %q, want a loop device", n, rep.Status.DevicePath)
		}
		testenv.Eventually(t, "the pool of "+n+" to count the volume", func() bool {
			p := get(t, n, &v1.LocalStorageNode{}).Status.Pools[v1.PoolNameHDD]
			return p.FreeCapacityBytes == 8*gi && p.UsedVolumeCount == 1 && len(p.Volumes) == 1 && p.Volumes[0] == "pvc-agent"
		})
	}

	lv := get(t, "pvc-agent", &v1.LocalVolume{})
	lv.Spec.RequiredCapacityBytes = 3 * gi
	if err := env.Client.Update(ctx, lv); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the volume expanded", func() bool { return get(t, "pvc-agent", &v1.LocalVolume{}).Status.AllocatedCapacityBytes == 3*gi })

	// Restart with new backends over the same folders: nothing is created twice.
	stop()
	start(t, newBackends(t, dir, "agent-a", "agent-b"))
	if err := env.Client.Create(ctx, newVolume("pvc-agent-2", gi, "agent-a")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the second volume Ready", func() bool { return get(t, "pvc-agent-2", &v1.LocalVolume{}).Status.State == v1.StateReady })
	testenv.Eventually(t, "agent-a to hold both", func() bool {
		return get(t, "agent-a", &v1.LocalStorageNode{}).Status.Pools[v1.PoolNameHDD].FreeCapacityBytes == 6*gi
	})

	for _, name := range []string{"pvc-agent", "pvc-agent-2"} {
		if err := env.Client.Delete(ctx, get(t, name, &v1.LocalVolume{})); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, "volumes gone and space freed", func() bool {
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
	testenv.Eventually(t, "the replica NotReady", func() bool {
		r := &v1.LocalVolumeReplica{}
		return env.Client.Get(ctx, client.ObjectKey{Name: name}, r) == nil && r.Status.State == v1.StateNotReady
	})
	msg := get(t, name, &v1.LocalVolumeReplica{}).Status.Message
	if !strings.Contains(msg, "insufficient capacity") || !strings.Contains(msg, "20Gi") {
		t.Errorf("replica message %q lacks the shortage", msg)
	}
	testenv.Eventually(t, "the volume to name the replica", func() bool {
		return strings.Contains(get(t, "pvc-huge", &v1.LocalVolume{}).Status.Message, name)
	})
	if err := env.Client.Delete(ctx, get(t, "pvc-huge", &v1.LocalVolume{})); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the failed volume deleted", func() bool {
		return apierrors.IsNotFound(env.Client.Get(ctx, client.ObjectKey{Name: "pvc-huge"}, &v1.LocalVolume{}))
	})
}

func clientKey(name string) client.ObjectKey { return client.ObjectKey{Name: name} }
