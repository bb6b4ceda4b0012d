package vm_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/migrate"
	"hwameistor.io/local/controllers/nodecerts"
	"hwameistor.io/local/controllers/volume"
	"hwameistor.io/local/csidriver/replication"
	"hwameistor.io/local/internal/vm"
)

const (
	vg         = v1.PoolNameHDD // the agent's default volume group for the HDD pool
	nodeLog    = "/tmp/hwameistor-node.log"
	copyRate   = "4Mi" // the source agent's copy rate: a 64 MiB volume takes 16 s, time to mount it mid-copy
	volumeSize = 64 << 20
)

// TestMigrationBetweenGuests moves volumes between two guests with the real
// node agent (hwameistor-node, lvm backend, activated LVs) in each and the
// volume and migrate controllers on the host, against a kube-apiserver
// that listens on the guests' bridge. The source's agent refuses to copy a
// volume while it is mounted as a file system or bind-mounted as a raw
// block device, and a mount attempted during a copy fails; once nothing
// uses the volume the copy runs, its checksum is verified, and the target
// guest reads every byte the source wrote.
func TestMigrationBetweenGuests(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	ctrl.SetLogger(klog.Background())
	src, dst := cluster.Guests[0], cluster.Guests[1]

	c := api.Client
	createNodes(ctx, t)
	startMoveControllers(t)

	for _, g := range cluster.Guests {
		var args []string
		if g == src {
			args = []string{"--replication-rate", copyRate}
		}
		startAgent(ctx, t, g, args...)
	}
	waitFor(ctx, t, "both nodes report their pool", func() bool {
		for _, g := range cluster.Guests {
			lsn := &v1.LocalStorageNode{}
			if c.Get(ctx, client.ObjectKey{Name: g.Name}, lsn) != nil || lsn.Status.Pools[v1.PoolNameHDD].TotalCapacityBytes == 0 || lsn.Spec.StorageIP == "" {
				return false
			}
		}
		return true
	})

	// A volume on the source with an ext4 file system holding a file (xfs needs 300 MiB).
	createVolume(ctx, t, "pvc-move", src.Name)
	dev := "/dev/" + vg + "/pvc-move"
	fileSum := strings.Fields(sh(ctx, t, src, fmt.Sprintf(`mkfs.ext4 -q -F %[1]s; mkdir -p /mnt/v; mount %[1]s /mnt/v
		head -c 33554432 /dev/urandom > /mnt/v/data; sync; sha256sum /mnt/v/data`, dev)))[0]

	// 1. Mounted as a file system: the copy is refused.
	mig := startMigration(ctx, t, "move-mounted", "pvc-move", src.Name, dst.Name)
	waitSyncRefused(ctx, t, "pvc-move", dst.Name, "mounted file system")
	// 2. Bind-mounted as a raw block device (how a block volume is
	// published to a pod): still refused.
	sh(ctx, t, src, fmt.Sprintf("umount /mnt/v; touch /tmp/blk; mount --bind %s /tmp/blk", dev))
	clearSyncMessage(ctx, t, "pvc-move", dst.Name)
	waitSyncRefused(ctx, t, "pvc-move", dst.Name, "raw block bind mount")
	// 3. Nothing uses it: the copy runs and is verified.
	sh(ctx, t, src, "umount /tmp/blk")
	waitMigration(ctx, t, mig, v1.OperationStateCompleted)
	rep := &v1.LocalVolumeReplica{}
	must(t, c.Get(ctx, client.ObjectKey{Name: v1.ReplicaName("pvc-move", dst.Name)}, rep))
	if !rep.Status.Synced || rep.Status.Checksum == "" {
		t.Errorf("target replica after the migration: synced %v, checksum %q", rep.Status.Synced, rep.Status.Checksum)
	}
	got := strings.Fields(sh(ctx, t, dst, fmt.Sprintf("mkdir -p /mnt/v; mount -o ro %s /mnt/v; sha256sum /mnt/v/data; umount /mnt/v", dev)))[0]
	if got != fileSum {
		t.Errorf("the file on %s has sha256 %s, the source wrote %s", dst.Name, got, fileSum)
	}
	checkCopyPortRefuses(t, src.IP+":9810")
	waitFor(ctx, t, "the source LV is pruned", func() bool {
		out, err := src.Run(ctx, nil, "lvm", "lvs", "--noheadings", "-o", "lv_name", vg)
		return err == nil && !strings.Contains(out.Stdout, "pvc-move")
	})

	// 4. While a copy streams the source, mounting its file system fails
	// (the source is held open exclusively), and a raw block bind mount,
	// which opens nothing, fails the copy before it is verified; once
	// unmounted, the retried copy completes with the data as it was.
	createVolume(ctx, t, "pvc-busy", src.Name)
	dev = "/dev/" + vg + "/pvc-busy"
	rawSum := strings.Fields(sh(ctx, t, src, fmt.Sprintf(`mkfs.ext4 -q -F %[1]s; mount %[1]s /mnt/v
		head -c 41943040 /dev/urandom > /mnt/v/data; umount /mnt/v; sha256sum %[1]s`, dev)))[0]
	mig = startMigration(ctx, t, "move-busy", "pvc-busy", src.Name, dst.Name)
	waitFor(ctx, t, "the copy of pvc-busy to start", func() bool {
		rep := &v1.LocalVolumeReplica{}
		return api.Client.Get(ctx, client.ObjectKey{Name: v1.ReplicaName("pvc-busy", dst.Name)}, rep) == nil && rep.Status.SyncedBytes > 0 && !rep.Status.Synced
	})
	if res, err := src.Run(ctx, nil, "mount", dev, "/mnt/v"); err == nil {
		t.Errorf("mounting %s during its copy succeeded: %+v", dev, res)
		_, _ = src.Run(ctx, nil, "umount", "/mnt/v")
	} else if !strings.Contains(err.Error(), "busy") {
		t.Errorf("mounting %s during its copy failed, but not as busy: %v", dev, err)
	}
	sh(ctx, t, src, "mount --bind "+dev+" /tmp/blk")
	waitSyncRefused(ctx, t, "pvc-busy", dst.Name, "raw block bind mount made during the copy")
	sh(ctx, t, src, "umount /tmp/blk")
	waitMigration(ctx, t, mig, v1.OperationStateCompleted)
	got = strings.Fields(sh(ctx, t, dst, "sha256sum "+dev))[0]
	if got != rawSum {
		t.Errorf("pvc-busy on %s has sha256 %s, the source held %s", dst.Name, got, rawSum)
	}
}

// checkCopyPortRefuses: an agent's copy port speaks mutual TLS only:
// plain HTTP gets no answer, and a TLS client without a certificate fails
// the handshake, before any request is read.
func checkCopyPortRefuses(t *testing.T, addr string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	if resp, err := c.Get("http://" + addr + replication.PathPrefix + vg + "/pvc-move"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest { // Go's TLS server answers plain HTTP with 400 and nothing else
			t.Errorf("plain HTTP to the copy port %s: %s", addr, resp.Status)
		}
	}
	c.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} // the server's identity is not the point here
	resp, err := c.Get("https://" + addr + replication.PathPrefix + vg + "/pvc-move")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("a client without a certificate got %s from the copy port %s", resp.Status, addr)
	}
	if !strings.Contains(err.Error(), "certificate required") {
		t.Errorf("a client without a certificate: %v, want the handshake refused (certificate required)", err)
	}
}

// createNodes creates the hwameistor Namespace and a Node per guest, once
// for the tests that run the node agents.
func createNodes(ctx context.Context, t *testing.T) {
	t.Helper()
	objs := []client.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "hwameistor"}}}
	for _, g := range cluster.Guests {
		objs = append(objs, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: g.Name}})
	}
	for _, o := range objs {
		if err := api.Client.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
}

// startMoveControllers runs on the host the controllers a move needs: the
// volume, nodecerts (the guests' certificates for the copy's mutual TLS,
// as the controllers issue them in a cluster) and migrate controllers.
func startMoveControllers(t *testing.T) {
	t.Helper()
	api.StartManager(t, func(ctx context.Context, mgr ctrl.Manager) error {
		if err := (&volume.Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorderFor("hwameistor-volume")}).SetupWithManager(ctx, mgr); err != nil {
			return err
		}
		if err := (&nodecerts.Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Namespace: "hwameistor"}).SetupWithManager(mgr); err != nil {
			return err
		}
		return (&migrate.Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorderFor("hwameistor-migrate")}).SetupWithManager(mgr)
	})
}

// startAgent makes the guest's volume group on its disks and starts the
// node agent (the lvm backend) with replication on the guest's address,
// and extra flags.
func startAgent(ctx context.Context, t *testing.T, g *vm.Guest, extra ...string) {
	t.Helper()
	disks := strings.ReplaceAll(guestDisks(), ",", " ")
	sh(ctx, t, g, fmt.Sprintf("for d in %[1]s; do wipefs -a -q $d; done; lvm pvcreate -q -y %[1]s; lvm vgcreate -q %[2]s %[1]s", disks, vg))
	runAgent(ctx, t, g, extra...)
	i := slices.Index(cluster.Guests, g)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		g := cluster.Guests[i] // a new one if the test restarted it
		if t.Failed() {
			if out, err := g.Run(ctx, nil, "tail", "-n", "40", nodeLog); err == nil {
				t.Logf("%s's node agent log ends:\n%s", g.Name, out.Stdout)
			}
		}
		// pkill -x: the process name, never this script's own command line.
		if _, err := g.Sh(ctx, fmt.Sprintf("pkill -x hwameistor-node || true; sleep 1; umount /mnt/v /tmp/blk 2>/dev/null || true; lvm vgremove -q -f %s; lvm pvremove -q -y %s", vg, disks)); err != nil {
			t.Errorf("cleaning up %s: %v", g.Name, err)
		}
	})
}

// runAgent starts the node agent on the guest's volume group (after
// startAgent made it, or after the guest rebooted).
func runAgent(ctx context.Context, t *testing.T, g *vm.Guest, extra ...string) {
	t.Helper()
	args := []string{guestPath("hwameistor-node"), "--node-name", g.Name, "--backend", "lvm",
		"--kubeconfig", guestPath("kubeconfig"), "--csi-address", "unix:///tmp/csi.sock",
		"--metrics-bind-address", "0", "--report-interval", "2s",
		"--replication-address", g.IP + ":9810"}
	if _, err := g.Start(ctx, nil, nodeLog, append(args, extra...)...); err != nil {
		t.Fatal(err)
	}
}

// createVolume creates a LocalVolume of one replica on node, as the CSI
// controller does, and waits until the node's agent made it Ready.
func createVolume(ctx context.Context, t *testing.T, name, node string) {
	t.Helper()
	lv := &v1.LocalVolume{ObjectMeta: metav1.ObjectMeta{Name: name, Finalizers: []string{v1.VolumeFinalizer}}, Spec: v1.LocalVolumeSpec{
		PoolName: v1.PoolNameHDD, RequiredCapacityBytes: volumeSize, ReplicaNumber: 1, VolumeKind: v1.VolumeKindLVM,
		Accessibility: v1.AccessibilityTopology{Nodes: []string{node}},
		Config: &v1.VolumeConfig{Version: 1, VolumeName: name, RequiredCapacityBytes: volumeSize,
			Replicas: []v1.VolumeReplica{{ID: 1, Hostname: node, Primary: true}}},
	}}
	must(t, api.Client.Create(ctx, lv))
	waitFor(ctx, t, name+" Ready", func() bool {
		return api.Client.Get(ctx, client.ObjectKeyFromObject(lv), lv) == nil && lv.Status.State == v1.StateReady
	})
}

func startMigration(ctx context.Context, t *testing.T, name, volume, from, to string) *v1.LocalVolumeMigrate {
	t.Helper()
	m := &v1.LocalVolumeMigrate{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.LocalVolumeMigrateSpec{
		VolumeName: volume, SourceNode: from, TargetNodesSuggested: []string{to}}}
	must(t, api.Client.Create(ctx, m))
	return m
}

func waitMigration(ctx context.Context, t *testing.T, m *v1.LocalVolumeMigrate, want v1.State) {
	t.Helper()
	waitFor(ctx, t, fmt.Sprintf("migration %s %s", m.Name, want), func() bool {
		if err := api.Client.Get(ctx, client.ObjectKeyFromObject(m), m); err != nil {
			return false
		}
		if m.Status.State == v1.OperationStateFailed || m.Status.State == v1.OperationStateAborted {
			t.Fatalf("migration %s ended %s: %s", m.Name, m.Status.State, m.Status.Message)
		}
		return m.Status.State == want
	})
}

// waitSyncRefused waits until the target replica reports that the source
// refused the copy because the volume is in use.
func waitSyncRefused(ctx context.Context, t *testing.T, volume, target, how string) {
	t.Helper()
	rep := &v1.LocalVolumeReplica{}
	waitFor(ctx, t, "the copy refused while "+volume+" is used as a "+how, func() bool {
		if err := api.Client.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(volume, target)}, rep); err != nil {
			return false
		}
		if rep.Status.Synced {
			t.Fatalf("%s was copied while used as a %s", volume, how)
		}
		return strings.Contains(rep.Status.Message, "in use") || strings.Contains(rep.Status.Message, "mounted") || strings.Contains(rep.Status.Message, "busy")
	})
	t.Logf("refused while used as a %s: %s", how, rep.Status.Message)
}

// clearSyncMessage empties the target replica's last copy message, so the
// next refusal is seen as new.
func clearSyncMessage(ctx context.Context, t *testing.T, volume, target string) {
	t.Helper()
	rep := &v1.LocalVolumeReplica{}
	must(t, api.Client.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(volume, target)}, rep))
	patch := client.MergeFrom(rep.DeepCopy())
	rep.Status.Message = ""
	must(t, api.Client.Status().Patch(ctx, rep, patch))
}

func sh(ctx context.Context, t *testing.T, g *vm.Guest, script string) string {
	t.Helper()
	res, err := g.Sh(ctx, script)
	if err != nil {
		t.Fatal(err)
	}
	return res.Stdout
}

func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 5*time.Minute, true, func(context.Context) (bool, error) {
		return cond(), nil
	}); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
