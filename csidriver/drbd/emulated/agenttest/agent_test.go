// Package agenttest runs the real node agent (csidriver/agent) over the
// emulated DRBD on a real kube-apiserver (internal/testenv), serving two fake
// nodes with the emulated backend as the simulator's agents do.
package agenttest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/volume"
	"hwameistor.io/local/csidriver/agent"
	"hwameistor.io/local/csidriver/backend"
	bemulated "hwameistor.io/local/csidriver/backend/emulated"
	"hwameistor.io/local/csidriver/drbd"
	"hwameistor.io/local/csidriver/drbd/emulated"
	"hwameistor.io/local/csidriver/driver"
	"hwameistor.io/local/csidriver/replication"
	"hwameistor.io/local/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

const gi = int64(1) << 30

// TestHAVolumeOnFakeNodes: an HA volume's two replicas on fake nodes come
// up through the agent's real replicate path (resource files, drbdadm argv,
// the 8.4 /proc/drbd parser) to UpToDate/UpToDate, with status.drbd on both
// replicas; the CSI node service's promotion works on one node and is
// refused on the other, and a write through the Primary lands in both
// replicas' files.
func TestHAVolumeOnFakeNodes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cluster, err := emulated.Open(filepath.Join(dir, "drbd"))
	if err != nil {
		t.Fatal(err)
	}
	nodes := []string{"emu-a", "emu-b"}
	backends := map[string]backend.Backend{}
	managers := map[string]*drbd.Manager{}
	for _, n := range nodes {
		be, err := bemulated.New(filepath.Join(dir, "pools", n), []bemulated.PoolConfig{{Class: v1.PoolClassHDD, CapacityBytes: 10 * gi}}, bemulated.WithoutLoop())
		if err != nil {
			t.Fatal(err)
		}
		// As hwameistor-node --drbd-emulated-root without loop devices.
		backends[n] = emulated.FileDevices(be)
		managers[n] = cluster.Node(n).Manager(filepath.Join(dir, "resources", n))
		if _, err := managers[n].Detect(); err != nil {
			t.Fatal(err)
		}
	}
	rec := record.NewFakeRecorder(1000)
	env.StartManager(t, func(ctx context.Context, mgr ctrl.Manager) error {
		if err := (&volume.Reconciler{Client: mgr.GetClient(), Recorder: rec}).SetupWithManager(ctx, mgr); err != nil {
			return err
		}
		// The stack's agents advertise 127.0.0.1:PORT as storage IP.
		a := &agent.Agent{Client: mgr.GetClient(), Recorder: rec, Backends: backends, DRBD: managers, Zones: map[string]string{},
			Replication: &agent.Replication{Endpoint: "127.0.0.1:9810"}}
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

	lv := &v1.LocalVolume{ObjectMeta: metav1.ObjectMeta{Name: "pvc-emu-ha"}, Spec: v1.LocalVolumeSpec{
		PoolName: v1.PoolNameHDD, RequiredCapacityBytes: gi, ReplicaNumber: 2,
		Accessibility: v1.AccessibilityTopology{Nodes: nodes}, Config: &v1.VolumeConfig{Replicas: []v1.VolumeReplica{
			{ID: 1, Hostname: nodes[0], Primary: true}, {ID: 2, Hostname: nodes[1]}}}}}
	if err := env.Client.Create(ctx, lv); err != nil {
		t.Fatal(err)
	}
	reps := map[string]*v1.LocalVolumeReplica{}
	testenv.Eventually(t, "both replicas UpToDate/UpToDate in status.drbd", func() bool {
		for _, n := range nodes {
			rep := &v1.LocalVolumeReplica{}
			if env.Client.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(lv.Name, n)}, rep) != nil {
				return false
			}
			d := rep.Status.DRBD
			if d == nil || d.Connection != "Connected" || d.DiskState != "UpToDate" || d.PeerDiskState != "UpToDate" || !d.MayServe {
				return false
			}
			reps[n] = rep
		}
		return true
	})
	for _, n := range nodes {
		d := reps[n].Status.DRBD
		if d.Device == "" || d.Port == 0 || d.Role != "Secondary" || d.InSyncPercent != "100" || d.OutOfSyncBytes != 0 || d.Message != "" {
			t.Errorf("status.drbd on %s: %+v", n, d)
		}
		if filepath.Base(reps[n].Status.DevicePath) != lv.Name+".img" {
			t.Errorf("replica on %s: device %q, want its file", n, reps[n].Status.DevicePath)
		}
	}

	// The CSI node service's promotion, then a write through the Primary.
	csi := func(n string) driver.DRBDReplicas {
		return driver.DRBDReplicas{Client: env.Client, Node: n, DRBD: managers[n]}
	}
	dev, err := csi(nodes[0]).Promote(ctx, lv.Name)
	if err != nil || dev != reps[nodes[0]].Status.DRBD.Device {
		t.Fatalf("promote on %s = %q, %v", nodes[0], dev, err)
	}
	if _, err := csi(nodes[1]).Promote(ctx, lv.Name); err == nil {
		t.Error("the other node was promoted while the volume is Primary on the first")
	}
	if p, err := cluster.Write(lv.Name, 1<<20, []byte("written through the Primary")); err != nil || p != nodes[0] {
		t.Fatalf("write = %s, %v", p, err)
	}
	var sums []string
	for _, n := range nodes {
		f, err := os.Open(reps[n].Status.DevicePath)
		if err != nil {
			t.Fatal(err)
		}
		sum, err := replication.Checksum(f, gi)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, sum)
	}
	if sums[0] != sums[1] {
		t.Errorf("the replicas differ after a write while connected: %v", sums)
	}
	if err := csi(nodes[0]).Demote(ctx, lv.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := csi(nodes[1]).Promote(ctx, lv.Name); err != nil {
		t.Errorf("promotion on %s after the demotion: %v", nodes[1], err)
	}
}
