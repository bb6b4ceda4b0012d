package agent

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/go-logr/logr"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/volume"
	"hwameistor.io/local/csidriver/replication"
	"hwameistor.io/local/internal/testenv"
)

// TestCopyTakesTheSourcesLastUse: a copy holds the data of its source's
// last use, so before it counts as synced it carries the source's
// staged-at stamp (the scheduler places pods only on the replicas staged
// last; a copy without it would look stale, or its stale peer current).
func TestCopyTakesTheSourcesLastUse(t *testing.T) {
	ctx := context.Background()
	backends := newBackends(t, t.TempDir(), "copy-a", "copy-b")
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	repl := &Replication{TLS: testCertificates(t, "copy-a", "copy-b"), Endpoint: lis.Addr().String()}
	env.StartManager(t, func(ctx context.Context, mgr ctrl.Manager) error {
		rec := record.NewFakeRecorder(1000)
		if err := (&volume.Reconciler{Client: mgr.GetClient(), Recorder: rec}).SetupWithManager(ctx, mgr); err != nil {
			return err
		}
		a := &Agent{Client: mgr.GetClient(), Recorder: rec, Backends: backends, Zones: map[string]string{}, Replication: repl}
		if err := a.SetupWithManager(mgr); err != nil {
			return err
		}
		go func() { _ = replication.Serve(ctx, lis, a.ReplicationServer(), repl.TLS, logr.Discard()) }()
		go func() {
			if mgr.GetCache().WaitForCacheSync(ctx) {
				a.ReportAll(ctx, time.Hour)
			}
		}()
		return nil
	})

	// A volume on copy-a, used there (the node service stamped it).
	if err := env.Client.Create(ctx, newVolume("pvc-copy", gi/4, "copy-a")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the volume Ready", func() bool { return get(t, "pvc-copy", &v1.LocalVolume{}).Status.State == v1.StateReady })
	const stamp = "2026-11-26T08:01:00Z"
	src := get(t, v1.ReplicaName("pvc-copy", "copy-a"), &v1.LocalVolumeReplica{})
	src.Annotations = map[string]string{v1.StagedAtAnnotation: stamp}
	if err := env.Client.Update(ctx, src); err != nil {
		t.Fatal(err)
	}

	// A migration's target on copy-b, as the migrate controller makes it.
	lv := get(t, "pvc-copy", &v1.LocalVolume{})
	tgt := &v1.LocalVolumeReplica{
		ObjectMeta: metav1.ObjectMeta{Name: v1.ReplicaName("pvc-copy", "copy-b"), Finalizers: []string{v1.ReplicaFinalizer},
			Annotations: map[string]string{v1.SyncPendingAnnotation: "mig-copy", v1.SyncSourceAnnotation: "copy-a"}},
		Spec: v1.LocalVolumeReplicaSpec{VolumeName: "pvc-copy", NodeName: "copy-b", PoolName: v1.PoolNameHDD,
			RequiredCapacityBytes: lv.Spec.RequiredCapacityBytes},
	}
	if err := env.Client.Create(ctx, tgt); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the copy synced", func() bool { return get(t, tgt.Name, &v1.LocalVolumeReplica{}).Status.Synced })
	if got := get(t, tgt.Name, &v1.LocalVolumeReplica{}).Annotations[v1.StagedAtAnnotation]; got != stamp {
		t.Errorf("the synced copy's staged-at is %q, want the source's %q", got, stamp)
	}
}

// testCertificates is a Store with certificates of nodes from a fresh CA,
// as the controllers would issue them.
func testCertificates(t *testing.T, nodes ...string) *replication.Store {
	t.Helper()
	ca, err := replication.NewCA(time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	store := &replication.Store{}
	for _, n := range nodes {
		cert, key, err := ca.IssueNode(n, time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Set(n, cert, key, ca.CertPEM, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	return store
}
