package vm_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/volume"
	"hwameistor.io/local/internal/vm"
)

// guestWriter is test/vm/guest's TestHAMoveStep writer run in a guest: it
// stages an HA volume there and fsyncs files into it, listing each write
// the volume acknowledged in a ledger on the host, until the stop file
// exists; a failed write ends it and goes into the error file.
type guestWriter struct {
	volume                    string
	ledger, errFile, stopFile string // host paths, on the share
	log                       string // in the guest
	pid                       int    // in the guest; 0 when not running
}

// newGuestWriter names the writer's files after prefix and removes those
// an earlier run left.
func newGuestWriter(prefix, volume string) *guestWriter {
	w := &guestWriter{volume: volume, ledger: filepath.Join(share, prefix+"-ledger.txt"), errFile: filepath.Join(share, prefix+"-errors.txt"),
		stopFile: filepath.Join(share, prefix+"-stop"), log: "/tmp/" + prefix + "-writer.log"}
	for _, f := range []string{w.ledger, w.errFile, w.stopFile} {
		_ = os.Remove(f)
	}
	return w
}

// env is TestHAMoveStep's environment for step on g (writer, verify,
// verify-cut).
func (w *guestWriter) env(g *vm.Guest, step string) []string {
	return []string{"HWVM_KUBECONFIG=" + guestPath("kubeconfig"), "HWVM_MOVE_STEP=" + step, "HWVM_MOVE_NODE=" + g.Name,
		"HWVM_MOVE_VOLUME=" + w.volume, "HWVM_MOVE_LEDGER=" + guestPath(filepath.Base(w.ledger)),
		"HWVM_MOVE_ERRORS=" + guestPath(filepath.Base(w.errFile)), "HWVM_MOVE_STOP=" + guestPath(filepath.Base(w.stopFile))}
}

// start runs the writer in g, in the background.
func (w *guestWriter) start(ctx context.Context, t *testing.T, g *vm.Guest) {
	t.Helper()
	pid, err := g.Start(ctx, w.env(g, "writer"), w.log, guestPath("guest.test"), "-test.v", "-test.count=1", "-test.run", "^TestHAMoveStep$")
	must(t, err)
	w.pid = pid
}

// acked is how many writes the ledger lists.
func (w *guestWriter) acked() int { return countLines(w.ledger) }

// failure is what the writer recorded in its error file, "" while none.
func (w *guestWriter) failure() string {
	b, _ := os.ReadFile(w.errFile)
	return string(b)
}

// mustNotHaveFailed fails t when the writer recorded an error.
func (w *guestWriter) mustNotHaveFailed(t *testing.T) {
	t.Helper()
	if f := w.failure(); f != "" {
		t.Fatalf("the writer failed: %s", f)
	}
}

// startDRBDPair runs the volume controller on the host and the node agents
// with --drbd in the first two guests.
func startDRBDPair(ctx context.Context, t *testing.T) {
	t.Helper()
	ctrl.SetLogger(klog.Background())
	createNodes(ctx, t)
	api.StartManager(t, func(ctx context.Context, mgr ctrl.Manager) error {
		return (&volume.Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorderFor("hwameistor-volume")}).SetupWithManager(ctx, mgr)
	})
	for _, g := range cluster.Guests[:2] {
		startAgent(ctx, t, g, "--drbd")
	}
}

// createHAVolume creates an HA LocalVolume of size bytes with replicas on
// a (the first) and b, as the CSI controller does, and waits until the
// node agents have both replicas connected, UpToDate and serving.
func createHAVolume(ctx context.Context, t *testing.T, name string, size int64, a, b *vm.Guest) *v1.LocalVolume {
	t.Helper()
	lv := &v1.LocalVolume{ObjectMeta: metav1.ObjectMeta{Name: name, Finalizers: []string{v1.VolumeFinalizer}}, Spec: v1.LocalVolumeSpec{
		PoolName: v1.PoolNameHDD, RequiredCapacityBytes: size, ReplicaNumber: 2, VolumeKind: v1.VolumeKindLVM,
		Accessibility: v1.AccessibilityTopology{Nodes: []string{a.Name, b.Name}},
		Config: &v1.VolumeConfig{Version: 1, VolumeName: name, RequiredCapacityBytes: size,
			Replicas: []v1.VolumeReplica{{ID: 1, Hostname: a.Name, Primary: true}, {ID: 2, Hostname: b.Name}}},
	}}
	must(t, api.Client.Create(ctx, lv))
	waitFor(ctx, t, "the replicas on "+a.Name+" and "+b.Name+" connected and UpToDate", func() bool {
		return replicaInSync(ctx, name, a) && replicaInSync(ctx, name, b)
	})
	must(t, api.Client.Get(ctx, client.ObjectKeyFromObject(lv), lv))
	if lv.Spec.Config.ResourceID == 0 {
		t.Fatal("the HA volume has no resource id")
	}
	return lv
}

// replicaDRBD is the DRBD state volume's replica on g reports (empty while
// none).
func replicaDRBD(ctx context.Context, volume string, g *vm.Guest) *v1.ReplicaDRBDStatus {
	rep := &v1.LocalVolumeReplica{}
	if api.Client.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(volume, g.Name)}, rep) != nil || rep.Status.DRBD == nil {
		return &v1.ReplicaDRBDStatus{}
	}
	return rep.Status.DRBD
}

// replicaInSync says whether volume's replica on g is connected, UpToDate
// on both sides and may serve.
func replicaInSync(ctx context.Context, volume string, g *vm.Guest) bool {
	d := replicaDRBD(ctx, volume, g)
	return d.Connection == "Connected" && d.DiskState == "UpToDate" && d.PeerDiskState == "UpToDate" && d.MayServe
}
