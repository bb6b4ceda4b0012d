// Command hwameistor-node is the node agent of lvm.hwameistor.io: it
// allocates the LocalVolumeReplicas of its node through a backend (lvm2, or
// emulated file-backed pools), reports the node's pools, and serves the CSI
// node service to kubelet. With --nodes and the emulated backend one process
// serves many (fake) nodes, without the CSI node service.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/agent"
	"hwameistor.io/local/csidriver/backend"
	"hwameistor.io/local/csidriver/backend/emulated"
	"hwameistor.io/local/csidriver/backend/lvm"
	"hwameistor.io/local/csidriver/driver"
)

func main() {
	var (
		nodeName, nodes, kind, root, pools, endpoint, metricsAddr string
		attach                                                    bool
		interval                                                  time.Duration
	)
	flag.StringVar(&nodeName, "node-name", os.Getenv("NODE_NAME"), "the node this agent serves (default $NODE_NAME)")
	flag.StringVar(&nodes, "nodes", "", "comma-separated nodes to serve with the emulated backend (simulator); replaces --node-name and disables the CSI node service")
	flag.StringVar(&kind, "backend", "lvm", "storage backend: lvm or emulated")
	flag.StringVar(&root, "emulated-root", "/var/lib/hwameistor/emulated", "folder of the emulated pools (one sub-folder per node)")
	flag.StringVar(&pools, "emulated-pools", "HDD=100Gi", "emulated pools per node, e.g. HDD=100Gi,NVMe=50Gi")
	flag.BoolVar(&attach, "emulated-attach", true, "attach emulated volumes as loop devices (needs root); false for capacity-only simulation")
	flag.StringVar(&endpoint, "csi-address", "unix:///csi/csi.sock", "CSI node service endpoint; empty disables it")
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "metrics address (0 disables it)")
	flag.DurationVar(&interval, "report-interval", 30*time.Second, "how often pools are re-read and reported")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("node")

	served := []string{nodeName}
	if nodes != "" {
		served, endpoint = strings.Split(nodes, ","), ""
		if kind != "emulated" {
			fail(log, fmt.Errorf("--nodes needs --backend=emulated"), "Bad flags")
		}
	}
	if len(served) == 1 && served[0] == "" {
		fail(log, fmt.Errorf("set --node-name or NODE_NAME"), "Bad flags")
	}
	backends := map[string]backend.Backend{}
	for _, n := range served {
		be, err := newBackend(kind, filepath.Join(root, n), pools, attach)
		if err != nil {
			fail(log, err, "Cannot open the backend", "node", n)
		}
		backends[n] = be
	}

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1.AddToScheme(scheme))
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: metricsAddr}})
	if err != nil {
		fail(log, err, "Cannot create the manager")
	}
	a := &agent.Agent{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorderFor("hwameistor-node"), Backends: backends}
	if err := a.SetupWithManager(mgr); err != nil {
		fail(log, err, "Cannot set up the agent")
	}
	ctx := ctrl.SetupSignalHandler()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return mgr.Start(ctx) })
	g.Go(func() error {
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return nil
		}
		a.ReportAll(ctx, interval)
		return nil
	})
	if endpoint != "" {
		node := driver.NewNode(served[0], driver.ReplicaDevices{Client: mgr.GetClient(), Node: served[0]})
		g.Go(func() error { return driver.Serve(ctx, endpoint, &driver.Identity{}, nil, node) })
	}
	log.Info("Serving", "nodes", len(served), "backend", kind)
	if err := g.Wait(); err != nil && ctx.Err() == nil {
		fail(log, err, "Stopped")
	}
}

// newBackend opens a node's storage.
func newBackend(kind, root, pools string, attach bool) (backend.Backend, error) {
	switch kind {
	case "lvm":
		return lvm.New(lvm.Options{})
	case "emulated":
		cfgs, err := parsePools(pools)
		if err != nil {
			return nil, err
		}
		var opts []emulated.Option
		if !attach {
			opts = append(opts, emulated.WithoutLoop())
		}
		return emulated.New(root, cfgs, opts...)
	}
	return nil, fmt.Errorf("--backend %q: use lvm or emulated", kind)
}

// parsePools reads "HDD=100Gi,NVMe=50Gi".
func parsePools(s string) ([]emulated.PoolConfig, error) {
	var out []emulated.PoolConfig
	for _, part := range strings.Split(s, ",") {
		class, size, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("--emulated-pools %q: want CLASS=SIZE, e.g. HDD=100Gi", part)
		}
		c, err := v1.ParsePoolClass(class)
		if err != nil {
			return nil, fmt.Errorf("--emulated-pools: %w", err)
		}
		q, err := resource.ParseQuantity(size)
		if err != nil || q.Value() <= 0 {
			return nil, fmt.Errorf("--emulated-pools %q: size %q is not a positive quantity", part, size)
		}
		out = append(out, emulated.PoolConfig{Class: c, CapacityBytes: q.Value()})
	}
	return out, nil
}

func fail(log logr.Logger, err error, msg string, kv ...any) {
	log.Error(err, msg, kv...)
	os.Exit(1)
}
