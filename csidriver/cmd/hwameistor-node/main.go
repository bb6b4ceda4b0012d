// Command hwameistor-node is the node agent of lvm.hwameistor.io: it
// allocates the LocalVolumeReplicas of its node through a backend (lvm2, or
// emulated file-backed pools), reports the node's pools, and serves the CSI
// node service to kubelet. With --nodes or --node-selector and the emulated
// backend one process serves many (fake) nodes, without the CSI node service.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"hwameistor.io/local/internal/profiling"
	"hwameistor.io/local/internal/restconfig"

	"github.com/go-logr/logr"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/agent"
	"hwameistor.io/local/csidriver/backend"
	"hwameistor.io/local/csidriver/backend/command"
	"hwameistor.io/local/csidriver/backend/emulated"
	"hwameistor.io/local/csidriver/backend/lvm"
	"hwameistor.io/local/csidriver/drbd"
	"hwameistor.io/local/csidriver/driver"
	"hwameistor.io/local/csidriver/replication"
)

func main() {
	var (
		nodeName, nodes, nodeSelector, kind, root, pools string
		endpoint, metricsAddr                            string
		replAddr, replAdvertise                          string
		replRate, drbdDir                                string
		replTimeouts                                     replication.Timeouts
		attach, useDRBD                                  bool
		interval, heartbeat, certRefresh                 time.Duration
	)
	flag.StringVar(&nodeName, "node-name", os.Getenv("NODE_NAME"), "the node this agent serves (default $NODE_NAME)")
	flag.StringVar(&nodes, "nodes", "", "comma-separated nodes to serve with the emulated backend (simulator); replaces --node-name and disables the CSI node service")
	flag.StringVar(&nodeSelector, "node-selector", "", "label selector of the (fake) nodes to serve with the emulated backend, e.g. type=kwok, listed once at start (restart to serve nodes added later); replaces --node-name and disables the CSI node service")
	flag.StringVar(&kind, "backend", "lvm", "storage backend: lvm or emulated")
	flag.StringVar(&root, "emulated-root", "/var/lib/hwameistor/emulated", "folder of the emulated pools (one sub-folder per node)")
	flag.StringVar(&pools, "emulated-pools", "HDD=100Gi", "emulated pools per node, CLASS=SIZE[:VOLUME-COUNT-LIMIT], e.g. HDD=100Gi,NVMe=50Gi:200")
	flag.BoolVar(&attach, "emulated-attach", true, "attach emulated volumes as loop devices (needs root); false for capacity-only simulation")
	flag.StringVar(&endpoint, "csi-address", "unix:///csi/csi.sock", "CSI node service endpoint; empty disables it")
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "metrics address (0 disables it)")
	flag.DurationVar(&interval, "report-interval", 30*time.Second, "how often pools are re-read and reported")
	flag.DurationVar(&heartbeat, "heartbeat-interval", agent.DefaultHeartbeatInterval, "how often the agent renews each served node's Lease (valid four intervals; an expired one makes the node NotReady); 0 disables it")
	flag.StringVar(&replAddr, "replication-address", "", "address other agents pull migration copies from, e.g. :9810; empty disables migrations to and from this agent")
	flag.StringVar(&replAdvertise, "replication-advertise", "", "host:port other agents reach --replication-address at (written to LocalStorageNode spec.storageIP); default --replication-address")
	flag.DurationVar(&certRefresh, "replication-cert-refresh", replication.DefaultRefresh, "how often each served node's certificate Secret (issued by hwameistor-controllers in $POD_NAMESPACE) is read again, so a renewal is used without a restart")
	flag.DurationVar(&replTimeouts.Dial, "replication-dial-timeout", replication.DefaultDialTimeout, "how long a copy waits to connect to the source's agent")
	flag.DurationVar(&replTimeouts.ResponseHeader, "replication-response-timeout", replication.DefaultResponseHeaderTimeout, "how long a copy waits for the source's agent to answer its request")
	flag.DurationVar(&replTimeouts.Idle, "replication-idle-timeout", replication.DefaultIdleTimeout, "a copy that receives nothing from the source for this long fails (and is retried)")
	flag.BoolVar(&useDRBD, "drbd", false, "replicate HA volumes with DRBD (lvm backend, one node; the kernel needs the drbd module and the node drbd-utils)")
	flag.StringVar(&drbdDir, "drbd-dir", "/var/lib/hwameistor/drbd", "folder of the DRBD resource files this agent writes")
	drbdEmulatedRoot := flag.String("drbd-emulated-root", "", "replicate HA volumes through the emulated DRBD 8.4 rooted at this folder, which every agent process of a simulation shares (--backend emulated, any number of nodes; resource files in --drbd-dir/NODE)")
	drbdEmulatedRate := flag.String("drbd-emulated-rate", "0", "resync rate of the emulated DRBD, bytes per second as a quantity (e.g. 100Mi); 0 finishes a resync at once")
	flag.StringVar(&replRate, "replication-rate", "0", "copy-rate limit per agent for the copies it serves, bytes per second as a quantity (e.g. 100Mi); 0 is unlimited")
	var apiFlags restconfig.Flags
	apiFlags.Bind(flag.CommandLine)
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	pprofAddr := profiling.Flag(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("node")

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1.AddToScheme(scheme))
	cfg, err := apiFlags.Config()
	if err != nil {
		fail(log, err, "Bad flags")
	}

	served := []string{nodeName}
	switch {
	case nodes != "" && nodeSelector != "":
		fail(log, fmt.Errorf("--nodes and --node-selector exclude each other"), "Bad flags")
	case nodes != "":
		served, endpoint = strings.Split(nodes, ","), ""
	case nodeSelector != "":
		direct, err := client.New(cfg, client.Options{Scheme: scheme})
		if err != nil {
			fail(log, err, "Cannot create a client")
		}
		if served, err = selectNodes(context.Background(), direct, nodeSelector); err != nil {
			fail(log, err, "Cannot list the nodes to serve")
		}
		endpoint = ""
	}
	if (nodes != "" || nodeSelector != "") && kind != "emulated" {
		fail(log, fmt.Errorf("--nodes and --node-selector need --backend=emulated"), "Bad flags")
	}
	if len(served) == 1 && served[0] == "" {
		fail(log, fmt.Errorf("set --node-name or NODE_NAME"), "Bad flags")
	}
	backends := map[string]backend.Backend{}
	for _, n := range served {
		be, err := newBackend(kind, filepath.Join(root, n), pools, attach, useDRBD)
		if err != nil {
			fail(log, err, "Cannot open the backend", "node", n)
		}
		backends[n] = be
	}

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: metricsAddr}})
	if err != nil {
		fail(log, err, "Cannot create the manager")
	}
	a := &agent.Agent{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorderFor("hwameistor-node"), Backends: backends}
	if *drbdEmulatedRoot != "" {
		if useDRBD {
			fail(log, errors.New("--drbd and --drbd-emulated-root exclude each other"), "Bad flags")
		}
		if a.DRBD, err = emulatedDRBD(*drbdEmulatedRoot, *drbdEmulatedRate, drbdDir, attach, backends); err != nil {
			fail(log, err, "Cannot replicate with the emulated DRBD")
		}
		log.Info("Replicating HA volumes with the emulated DRBD 8.4", "root", *drbdEmulatedRoot, "rate", *drbdEmulatedRate)
	}
	if useDRBD {
		if kind != "lvm" || len(backends) != 1 {
			fail(log, errors.New("--drbd needs --backend lvm and one node"), "Cannot replicate with DRBD")
		}
		m := &drbd.Manager{Runner: command.Exec{}, Dir: drbdDir}
		if v, err := m.Detect(); err != nil {
			// The node still serves single-replica volumes; its
			// LocalStorageNode says why it takes no HA replica.
			log.Error(err, "Cannot replicate with DRBD: HA volumes are not placed on this node")
			a.NoDRBD = map[string]string{nodeName: err.Error()}
		} else {
			log.Info("Replicating HA volumes with DRBD", "version", v.String(), "dir", drbdDir)
			a.DRBD = map[string]*drbd.Manager{nodeName: m}
			a.DRBDWatchInterval = time.Second
		}
	}
	if err := a.SetupWithManager(mgr); err != nil {
		fail(log, err, "Cannot set up the agent")
	}
	ctx := ctrl.SetupSignalHandler()
	go func() {
		if err := profiling.Serve(ctx, *pprofAddr); err != nil {
			ctrl.Log.Error(err, "Cannot serve pprof", "address", *pprofAddr)
		}
	}()
	namespace := os.Getenv("POD_NAMESPACE")
	if namespace == "" {
		namespace = "hwameistor"
	}
	// Leases and the node certificates come from the API directly, not
	// through a cache of every object of their kind.
	direct, err := client.New(mgr.GetConfig(), client.Options{Scheme: scheme})
	if err != nil {
		fail(log, err, "Cannot create a client")
	}
	if heartbeat > 0 {
		holder := cmp.Or(os.Getenv("POD_NAME"), served[0])
		if err := mgr.Add(&agent.Heartbeat{Client: direct, Namespace: namespace, Nodes: served, Holder: holder, Interval: heartbeat}); err != nil {
			fail(log, err, "Cannot set up the heartbeat")
		}
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return mgr.Start(ctx) })
	if replAddr != "" {
		limit, err := parseRate(replRate)
		if err != nil {
			fail(log, err, "Bad flags")
		}
		if replAdvertise == "" {
			replAdvertise = replAddr
		}
		// Copies run over mutual TLS with the served nodes'
		// certificates, which the controllers issue into Secrets; the
		// loader reads them (and their renewals) with a client of its
		// own, so that thousands of simulated nodes do not hold up
		// the agent's other requests.
		certs := &replication.Store{}
		certCfg := rest.CopyConfig(mgr.GetConfig())
		certCfg.QPS, certCfg.Burst = 20, 40
		certClient, err := client.New(certCfg, client.Options{Scheme: scheme})
		if err != nil {
			fail(log, err, "Cannot create a client")
		}
		loader := &replication.SecretLoader{Client: certClient, Namespace: namespace, Nodes: served, Store: certs,
			Refresh: certRefresh, Log: ctrl.Log.WithName("replication-certs")}
		g.Go(func() error { return loader.Start(ctx) })
		a.Replication = &agent.Replication{TLS: certs, Endpoint: replAdvertise, Timeouts: replTimeouts}
		srv := a.ReplicationServer()
		srv.Limiter = limit
		lis, err := net.Listen("tcp", replAddr)
		if err != nil {
			fail(log, err, "Cannot listen for replication", "address", replAddr)
		}
		g.Go(func() error { return replication.Serve(ctx, lis, srv, certs, ctrl.Log.WithName("replication")) })
		log.Info("Serving volume copies over mutual TLS", "address", replAddr, "advertised", replAdvertise, "rate", replRate,
			"certificates", namespace+"/"+replication.NodeSecretName(served[0]))
	}
	g.Go(func() error {
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return nil
		}
		a.ReportAll(ctx, interval)
		return nil
	})
	if endpoint != "" {
		node := driver.NewNode(served[0], driver.ReplicaDevices{Client: mgr.GetClient(), Node: served[0]})
		if m := a.DRBD[served[0]]; m != nil {
			node.Replicas = driver.DRBDReplicas{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Node: served[0], DRBD: m}
		}
		g.Go(func() error { return driver.Serve(ctx, endpoint, &driver.Identity{}, nil, node) })
	}
	log.Info("Serving", "nodes", len(served), "backend", kind)
	if err := g.Wait(); err != nil && ctx.Err() == nil {
		fail(log, err, "Stopped")
	}
}

// selectNodes lists the nodes matching selector, sorted by name.
func selectNodes(ctx context.Context, c client.Reader, selector string) ([]string, error) {
	sel, err := labels.Parse(selector)
	if err != nil {
		return nil, fmt.Errorf("--node-selector %q: %w", selector, err)
	}
	list := &corev1.NodeList{}
	if err := c.List(ctx, list, client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return nil, err
	}
	if len(list.Items) == 0 {
		return nil, fmt.Errorf("no node matches --node-selector %q", selector)
	}
	names := make([]string, 0, len(list.Items))
	for _, n := range list.Items {
		names = append(names, n.Name)
	}
	slices.Sort(names)
	return names, nil
}

// newBackend opens a node's storage.
func newBackend(kind, root, pools string, attach, drbd bool) (backend.Backend, error) {
	switch kind {
	case "lvm":
		if drbd {
			return lvm.New(lvm.Options{Config: lvm.DRBDFilterConfig})
		}
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

// parsePools reads "HDD=100Gi,NVMe=50Gi:200" (an optional volume count
// limit after the size).
func parsePools(s string) ([]emulated.PoolConfig, error) {
	var out []emulated.PoolConfig
	for _, part := range strings.Split(s, ",") {
		class, size, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("--emulated-pools %q: want CLASS=SIZE[:VOLUME-COUNT-LIMIT], e.g. HDD=100Gi", part)
		}
		var limit int64
		size, count, hasLimit := strings.Cut(size, ":")
		if hasLimit {
			n, err := strconv.ParseInt(count, 10, 64)
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("--emulated-pools %q: volume count limit %q is not a positive integer", part, count)
			}
			limit = n
		}
		c, err := v1.ParsePoolClass(class)
		if err != nil {
			return nil, fmt.Errorf("--emulated-pools: %w", err)
		}
		q, err := resource.ParseQuantity(size)
		if err != nil || q.Value() <= 0 {
			return nil, fmt.Errorf("--emulated-pools %q: size %q is not a positive quantity", part, size)
		}
		out = append(out, emulated.PoolConfig{Class: c, CapacityBytes: q.Value(), VolumeCountLimit: limit})
	}
	return out, nil
}

// parseRate reads --replication-rate: bytes per second, 0 unlimited.
func parseRate(s string) (*rate.Limiter, error) {
	q, err := resource.ParseQuantity(s)
	if err != nil || q.Sign() < 0 {
		return nil, fmt.Errorf("--replication-rate %q: want bytes per second such as 100Mi, or 0", s)
	}
	if q.IsZero() {
		return nil, nil
	}
	// A burst of 1MiB (one chunk) keeps the rate even.
	return rate.NewLimiter(rate.Limit(q.Value()), 1<<20), nil
}

func fail(log logr.Logger, err error, msg string, kv ...any) {
	log.Error(err, msg, kv...)
	os.Exit(1)
}
