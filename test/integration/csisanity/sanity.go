// Package csisanity runs csi-sanity (github.com/kubernetes-csi/csi-test) on
// lvm.hwameistor.io end to end: the CSI controller and node services on a
// unix socket, the volume controller and the node agent with a backend,
// all against a real kube-apiserver. NodeStage formats and mounts for real,
// so it needs root. TestSanity runs it with the emulated backend on loop
// devices; test/vm runs it with the lvm2 backend on activated logical
// volumes in a test guest (Run).
package csisanity

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/expand"
	"hwameistor.io/local/controllers/volume"
	"hwameistor.io/local/csidriver/agent"
	"hwameistor.io/local/csidriver/backend"
	"hwameistor.io/local/csidriver/driver"
	"hwameistor.io/local/internal/testenv"
)

// Node is the node the suite's volumes live on.
const Node = "sanity-node"

// Run runs the sanity suite against the driver with be as the node's
// backend, the controllers and the agent on env's apiserver, and dir for
// the socket and the mount points.
func Run(t *testing.T, env *testenv.Env, be backend.Backend, dir string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		t.Fatal(err)
	}
	rec := record.NewFakeRecorder(10000)
	if err := (&volume.Reconciler{Client: mgr.GetClient(), Recorder: rec}).SetupWithManager(ctx, mgr); err != nil {
		t.Fatal(err)
	}
	if err := (&expand.Reconciler{Client: mgr.GetClient(), Recorder: rec}).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	a := &agent.Agent{Client: mgr.GetClient(), Recorder: rec, Backends: map[string]backend.Backend{Node: be}, Zones: map[string]string{Node: "a"}}
	if err := a.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	go func() { _ = mgr.Start(ctx) }()
	go a.ReportAll(ctx, time.Minute)
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		lsn := &v1.LocalStorageNode{}
		return env.Client.Get(ctx, client.ObjectKey{Name: Node}, lsn) == nil && lsn.Status.State == v1.StateReady, nil
	}); err != nil {
		t.Fatal("the agent never reported the node")
	}
	go func() { <-ctx.Done(); drainRecorder(rec) }()

	socket := filepath.Join(dir, "csi.sock")
	controller := &driver.Controller{Client: env.Client, PollInterval: 50 * time.Millisecond}
	nodeSvc := driver.NewNode(Node, driver.ReplicaDevices{Client: env.Client, Node: Node})
	go func() {
		err := serveWithTopology(ctx, "unix://"+socket, &driver.Identity{}, controller, nodeSvc)
		if err != nil && ctx.Err() == nil {
			t.Errorf("serving CSI: %v", err)
		}
	}()

	cfg := sanity.NewTestConfig()
	cfg.Address = socket
	cfg.TargetPath = filepath.Join(dir, "target")
	cfg.StagingPath = filepath.Join(dir, "staging")
	cfg.TestVolumeSize = 512 << 20 // mkfs.xfs needs 300MiB
	cfg.TestVolumeExpandSize = 1 << 30
	cfg.TestVolumeParameters = map[string]string{"poolClass": "HDD"}
	cfg.IdempotentCount = 2
	sanity.Test(t, cfg)
}

// drainRecorder keeps the fake recorder from blocking.
func drainRecorder(rec *record.FakeRecorder) {
	for {
		select {
		case <-rec.Events:
		default:
			return
		}
	}
}

// serveWithTopology serves the driver and, for CreateVolume calls that carry
// no topology, adds this node as the preferred one. external-provisioner
// always passes the selected node; csi-sanity does not in every test.
func serveWithTopology(ctx context.Context, endpoint string, ids csi.IdentityServer, cs csi.ControllerServer, ns csi.NodeServer) error {
	return driver.Serve(ctx, endpoint, ids, topologyDefaulter{ControllerServer: cs}, ns)
}

type topologyDefaulter struct{ csi.ControllerServer }

func (d topologyDefaulter) CreateVolume(ctx context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	if req.GetAccessibilityRequirements() == nil {
		req.AccessibilityRequirements = &csi.TopologyRequirement{Preferred: []*csi.Topology{{Segments: map[string]string{v1.TopologyKey: Node}}}}
	}
	return d.ControllerServer.CreateVolume(ctx, req)
}
