// Package stack runs the whole system on the local control plane
// (hack/cluster-up.sh: etcd, kube-apiserver, kube-controller-manager, kwok)
// with every component as its real binary: hwameistor-scheduler,
// hwameistor-controllers (with the webhook), hwameistor-csi-controller with
// the real external-provisioner and external-resizer, and hwameistor-node
// with emulated pools for the fake nodes. Each component runs as its
// ServiceAccount with the RBAC of manifests/base (rbac.go), so a grant the
// code needs and the manifests lack fails here. The end-to-end test, the
// simulator and the demo use it.
package stack

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/internal/testenv"
)

// Options say what to run.
type Options struct {
	// Name names the work folder _output/<Name> (cluster state, logs,
	// binaries, pools).
	Name string
	// Ports is the first of a block of ports the stack uses (etcd, etcd
	// peer, apiserver, controller-manager, kwok, scheduler, webhook, probes
	// at Ports+0..7, node agents' replication at Ports+10, +11, ...).
	// Stacks with different blocks can run side by side.
	Ports int
	// Nodes are the fake nodes to create, each with Pools (e.g.
	// "HDD=20Gi,NVMe=10Gi") emulated by one node agent.
	Nodes []string
	Pools string
	// Zones optionally places node i in Zones[i % len(Zones)].
	Zones []string
	// NodePools optionally gives a node its own pools (same syntax as
	// Pools); nodes not in it get Pools. One node agent runs per distinct
	// pools string.
	NodePools map[string]string
	// NodeLabels are extra labels for a node (the simulator's scenarios).
	NodeLabels map[string]map[string]string
	// OwnAgent nodes are each served by a node agent process of their own,
	// which StopAgent and StartAgent stop and start (a node that fails).
	OwnAgent []string
	// Cordoned nodes start unschedulable.
	Cordoned map[string]bool
	// Mount attaches volumes as loop devices (root only) and, with exactly
	// one node, serves the CSI node service on NodeSocket.
	Mount bool
	// Assets is the folder of the pinned control-plane and sidecar binaries
	// (hack/build-control-plane.sh prints it).
	Assets string
	// CopyRate limits each node agent's copy rate (a quantity of bytes per
	// second, "0" or empty: unlimited).
	CopyRate string
	// MigrationsPerNode is the controllers' --migrate-max-per-node; their
	// default when 0.
	MigrationsPerNode int
	// RebuildAfter is the controllers' --rebuild-after; theirs when 0.
	RebuildAfter time.Duration
	// Baseline runs the stock setup instead of routing pods to
	// hwameistor-scheduler: no webhook, a default-scheduler profile (the
	// in-tree VolumeBinding alone), and capacity tracking on (CSIDriver
	// storageCapacity true, csi-provisioner publishing CSIStorageCapacity
	// from GetCapacity), as docs/benchmarks.md describes for the baseline.
	Baseline bool
	// Pprof serves /debug/pprof on 127.0.0.1 for the controllers
	// (Ports+8), the CSI controller (Ports+9), csi-provisioner (Ports+30)
	// and node agent i (Ports+20+i); the scheduler and kube-apiserver
	// always serve it on their secure ports (Ports+5, Ports+2, with the
	// kubeconfig's token).
	Pprof bool
	// DRBD replicates HA volumes between the fake nodes through the
	// emulated DRBD 8.4 (csidriver/drbd/emulated) every node agent shares
	// (DRBDRoot: the simulator fails, recovers and isolates nodes); DRBDRate is its
	// resync rate, a quantity of bytes per second ("0" or empty: at once).
	DRBD     bool
	DRBDRate string
	// Log receives progress lines; nil discards them.
	Log func(format string, args ...any)
	// Context, when set, stops a bring-up in progress when it ends
	// (Ctrl-C); whatever started is stopped.
	Context context.Context
}

// ctx is the bring-up's context.
func (h *Stack) ctx() context.Context {
	if h.Context != nil {
		return h.Context
	}
	return context.Background()
}

// Stack is a running system.
type Stack struct {
	Options
	Root, Work, Kubeconfig string
	// NodeSocket is the CSI node service's socket (Mount with one node).
	NodeSocket string
	Config     *rest.Config
	Clientset  *kubernetes.Clientset
	Client     client.Client

	procs  []*proc
	agents []string
	// agentOf names the node agent process serving each node.
	agentOf map[string]string
}

// proc is one component process; a restart starts it again with the same
// command line and keeps the usage of the incarnations before.
type proc struct {
	name, bin string
	env, args []string
	cmd       *exec.Cmd
	past      Usage
	restarts  int
}

// Up brings the stack up; on error, whatever started is stopped.
func Up(o Options) (s *Stack, err error) {
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	if o.Assets == "" {
		return nil, fmt.Errorf("no control-plane binaries: run hack/build-control-plane.sh and pass the folder it prints (KUBEBUILDER_ASSETS)")
	}
	root := testenv.RootDir()
	h := &Stack{Options: o, Root: root, Work: filepath.Join(root, "_output", o.Name)}
	defer func() {
		if err != nil {
			h.Down()
		}
	}()
	_ = os.RemoveAll(h.Work)
	if err := os.MkdirAll(h.Work, 0o755); err != nil {
		return nil, err
	}
	clusterDir := filepath.Join(h.Work, "cluster")
	h.Kubeconfig = filepath.Join(clusterDir, "kubeconfig")
	o.Log("starting the control plane (etcd, kube-apiserver, kube-controller-manager, kwok)")
	up := exec.CommandContext(h.ctx(), filepath.Join(root, "hack", "cluster-up.sh"))
	up.Env = append(os.Environ(), "HWAMEISTOR_CLUSTER_DIR="+clusterDir,
		fmt.Sprintf("ETCD_PORT=%d", o.Ports), fmt.Sprintf("ETCD_PEER_PORT=%d", o.Ports+1), fmt.Sprintf("APISERVER_PORT=%d", o.Ports+2),
		fmt.Sprintf("KCM_PORT=%d", o.Ports+3), fmt.Sprintf("KWOK_PORT=%d", o.Ports+4), fmt.Sprintf("NODE_LEASE_SECONDS=%d", nodeLeaseSeconds(len(o.Nodes))))
	if out, err := up.CombinedOutput(); err != nil {
		return h, fmt.Errorf("cluster-up: %v\n%s", err, out)
	}
	o.Log("building the hwameistor binaries")
	ours := filepath.Join(h.Work, "bin")
	// One go build for the four: their links run in parallel.
	build := exec.CommandContext(h.ctx(), "go", "build", "-o", ours+string(filepath.Separator),
		"./scheduler", "./controllers/cmd/hwameistor-controllers", "./csidriver/cmd/hwameistor-csi-controller", "./csidriver/cmd/hwameistor-node")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return h, fmt.Errorf("building the hwameistor binaries: %v\n%s", err, out)
	}
	// ./scheduler builds as "scheduler".
	if err := os.Rename(filepath.Join(ours, "scheduler"), filepath.Join(ours, "hwameistor-scheduler")); err != nil {
		return h, err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", h.Kubeconfig)
	if err != nil {
		return h, err
	}
	cfg.QPS, cfg.Burst = 100, 200
	h.Config = cfg
	h.Clientset = kubernetes.NewForConfigOrDie(cfg)
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1.AddToScheme(scheme)
	if h.Client, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return h, err
	}
	o.Log("starting hwameistor-scheduler, -controllers, -csi-controller with csi-provisioner and csi-resizer, and the node agent")
	if err := h.startComponents(ours); err != nil {
		return h, err
	}
	return h, nil
}

// nodeLeaseSeconds keeps the fake nodes' lease renewals (one every
// duration/4 per node) at about 20 a second however many nodes there are,
// with kubelet's 40s as the floor: at 5,000 nodes and 40s they would be
// 500 writes a second, fanned out to every lease watcher, on the apiserver
// whose capacity the simulator measures.
func nodeLeaseSeconds(nodes int) int { return max(40, nodes/5) }

// start runs a component in its own process group, logging to work/NAME.log.
func (h *Stack) start(name, bin string, env []string, args ...string) error {
	p := &proc{name: name, bin: bin, env: env, args: args}
	if err := h.launch(p); err != nil {
		return err
	}
	h.procs = append(h.procs, p)
	return nil
}

// launch starts p's process, appending to its log.
func (h *Stack) launch(p *proc) error {
	logf, err := os.OpenFile(filepath.Join(h.Work, p.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), p.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", p.name, err)
	}
	p.cmd = cmd
	return nil
}

func (h *Stack) startComponents(ours string) error {
	if _, err := h.Clientset.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	// Each component as its ServiceAccount, with the manifests' RBAC.
	as, err := h.installRBAC(context.Background())
	if err != nil {
		return err
	}

	// Scheduler: the shipped profile, pointed at this cluster, no election.
	schedCfg, err := h.schedulerConfig(as[saScheduler])
	if err != nil {
		return err
	}
	if err := h.start("scheduler", filepath.Join(ours, "hwameistor-scheduler"), nil,
		"--config="+schedCfg, "--authentication-kubeconfig="+h.Kubeconfig, "--authorization-kubeconfig="+h.Kubeconfig,
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", h.Ports+5), "--v=2"); err != nil {
		return err
	}

	// Controllers with the webhook on 127.0.0.1. They issue its certificate
	// and fill in the caBundle of the shipped webhook configuration, as in a
	// cluster (controllers/certs); the baseline has no webhook.
	webhookConfig := ""
	if !h.Baseline {
		if webhookConfig, err = h.installWebhook(); err != nil {
			return err
		}
	}
	if err := h.start("controllers", filepath.Join(ours, "hwameistor-controllers"), []string{"POD_NAMESPACE=" + namespace, "KUBECONFIG=" + as[saControllers]},
		"--webhook-cert-extra-hosts=127.0.0.1", "--webhook-configuration="+webhookConfig, fmt.Sprintf("--webhook-port=%d", h.Ports+6),
		"--kube-api-qps=100", "--kube-api-burst=200",
		"--metrics-bind-address=0", fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", h.Ports+7),
		fmt.Sprintf("--migrate-max-per-node=%d", cmp.Or(h.MigrationsPerNode, v1.MigrateDefaultMaxPerNode)),
		"--rebuild-after="+cmp.Or(h.RebuildAfter, v1.RebuildDefaultAfter).String(), h.pprofFlag(8)); err != nil {
		return err
	}
	if webhookConfig != "" {
		// Pods created before the caBundle is in would fail open.
		if err := h.waitForCABundle(webhookConfig); err != nil {
			return err
		}
	}
	if err := h.installCSIDriver(); err != nil {
		return err
	}

	// CSI controller service with the real sidecars.
	ctrlSock := filepath.Join(h.Work, "csi", "controller.sock")
	csiKC := "--kubeconfig=" + as[saCSIController]
	if err := h.start("csi-controller", filepath.Join(ours, "hwameistor-csi-controller"), []string{"KUBECONFIG=" + as[saCSIController]},
		"--csi-address=unix://"+ctrlSock, "--kube-api-qps=100", "--kube-api-burst=200", h.pprofFlag(9)); err != nil {
		return err
	}
	provArgs := []string{"--csi-address=" + ctrlSock, "--feature-gates=Topology=true", "--extra-create-metadata",
		"--leader-election=false", "--kube-api-qps=100", "--kube-api-burst=200", "--worker-threads=50", "--timeout=60s", "--v=3"}
	if h.Pprof {
		provArgs = append(provArgs, fmt.Sprintf("--http-endpoint=127.0.0.1:%d", h.Ports+30), "--enable-pprof")
	}
	var provEnv []string
	if h.Baseline {
		// CSIStorageCapacity objects go to kube-system; no owner outside a
		// pod. One object per class and node: the sidecar's defaults (one
		// thread, 1 write/s of its own rate limit) publish 4,000 of them
		// in over an hour, and the baseline left most pods Pending ("did
		// not have enough free storage") for want of objects, not of
		// space. 16 threads at the components' QPS publish them in
		// seconds; a 10s poll (default 1m) keeps them about as fresh as
		// the baseline can have them without flooding GetCapacity
		// (classes x nodes calls per poll).
		// Not as a production install would (manifests/components/capacity-tracking):
		// admin rights for kube-system.
		provArgs = append(provArgs, "--kubeconfig="+h.Kubeconfig, "--enable-capacity", "--capacity-ownerref-level=-1", "--capacity-threads=16", "--capacity-poll-interval=10s",
			"--kube-api-capacity-qps=100", "--kube-api-capacity-burst=200")
		provEnv = []string{"NAMESPACE=kube-system"}
	} else {
		provArgs = append(provArgs, csiKC)
	}
	if err := h.start("csi-provisioner", filepath.Join(h.Assets, "csi-provisioner"), provEnv, provArgs...); err != nil {
		return err
	}
	if err := h.start("csi-resizer", filepath.Join(h.Assets, "csi-resizer"), nil,
		"--csi-address="+ctrlSock, csiKC, "--leader-election=false", "--handle-volume-inuse-error=false", "--timeout=60s", "--kube-api-qps=100", "--kube-api-burst=200", "--v=3"); err != nil {
		return err
	}

	// The fake nodes and one agent for all of them.
	// Many at once: a thousand nodes one by one take most of a minute.
	g, ctx := errgroup.WithContext(h.ctx())
	g.SetLimit(16)
	for i, n := range h.Nodes {
		zone := ""
		if len(h.Zones) > 0 {
			zone = h.Zones[i%len(h.Zones)]
		}
		g.Go(func() error {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return h.createFakeNode(ctx, n, zone)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// Group the nodes by pools: one agent per group ("node", "node-1", ...),
	// and one of its own for each node in OwnAgent.
	var order []string
	groups, poolsOf := map[string][]string{}, map[string]string{}
	for _, n := range h.Nodes {
		pools := h.Pools
		if p, ok := h.NodePools[n]; ok {
			pools = p
		}
		key := pools
		if slices.Contains(h.OwnAgent, n) {
			key = pools + "\x00" + n
		}
		if _, ok := groups[key]; !ok {
			order = append(order, key)
		}
		groups[key] = append(groups[key], n)
		poolsOf[key] = pools
	}
	h.agentOf = map[string]string{}
	for i, key := range order {
		nodes, pools := groups[key], poolsOf[key]
		args := []string{"--backend=emulated", "--emulated-root=" + filepath.Join(h.Work, "pools"), "--emulated-pools=" + pools,
			"--metrics-bind-address=0", "--report-interval=5s", fmt.Sprintf("--emulated-attach=%t", h.Mount), "--kube-api-qps=100", "--kube-api-burst=200",
			// Heartbeats scale with the nodes as the fake nodes' leases do.
			fmt.Sprintf("--heartbeat-interval=%ds", nodeLeaseSeconds(len(h.Nodes))/4),
			fmt.Sprintf("--replication-address=127.0.0.1:%d", h.Ports+10+i), "--replication-rate=" + cmp.Or(h.CopyRate, "0"), h.pprofFlag(20 + i),
			// The node certificates (issued by the controllers) are
			// re-read at most 10 a second, however many nodes.
			"--replication-cert-refresh=" + certRefresh(len(nodes)).String()}
		if h.DRBD {
			args = append(args, "--drbd-emulated-root="+h.DRBDRoot(), "--drbd-emulated-rate="+cmp.Or(h.DRBDRate, "0"),
				"--drbd-dir="+filepath.Join(h.Work, "drbd", "resources"))
		}
		if h.Mount && len(h.Nodes) == 1 {
			h.NodeSocket = filepath.Join(h.Work, "csi", "node.sock")
			args = append(args, "--node-name="+nodes[0], "--csi-address=unix://"+h.NodeSocket)
		} else {
			args = append(args, "--nodes="+strings.Join(nodes, ","))
		}
		name := "node"
		if i > 0 {
			name = fmt.Sprintf("node-%d", i)
		}
		for _, n := range nodes {
			h.agentOf[n] = name
		}
		if err := h.start(name, filepath.Join(ours, "hwameistor-node"), []string{"KUBECONFIG=" + as[saNode], "POD_NAMESPACE=" + namespace}, args...); err != nil {
			return err
		}
		h.agents = append(h.agents, name)
	}
	return nil
}

// certRefresh is an agent's --replication-cert-refresh for nodes: the
// default, or longer so that it reads at most 10 Secrets a second.
func certRefresh(nodes int) time.Duration {
	return max(5*time.Minute, time.Duration(nodes)*100*time.Millisecond)
}

// pprofFlag is the --pprof-bind-address of the component at Ports+offset
// (empty, which serves nothing, without Options.Pprof).
func (h *Stack) pprofFlag(offset int) string {
	if !h.Pprof {
		return "--pprof-bind-address="
	}
	return fmt.Sprintf("--pprof-bind-address=127.0.0.1:%d", h.Ports+offset)
}

// schedulerConfig writes the shipped KubeSchedulerConfiguration with
// kubeconfig and leader election off.
func (h *Stack) schedulerConfig(kubeconfig string) (string, error) {
	raw, err := os.ReadFile(filepath.Join(h.Root, "manifests", "scheduler", "scheduler-config.yaml"))
	if err != nil {
		return "", err
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		return "", err
	}
	cfg["leaderElection"] = map[string]any{"leaderElect": false}
	// The stock profile too, for the baseline and for pods that name it.
	cfg["profiles"] = append(cfg["profiles"].([]any), map[string]any{"schedulerName": "default-scheduler"})
	cfg["clientConnection"] = map[string]any{"kubeconfig": kubeconfig, "qps": 100, "burst": 200}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return "", err
	}
	path := filepath.Join(h.Work, "scheduler-config.yaml")
	return path, os.WriteFile(path, out, 0o644)
}

// Down stops every component and the control plane, and detaches the
// loop devices of the stack's pools.
func (h *Stack) Down() {
	for _, p := range h.procs {
		if p.cmd != nil && p.cmd.Process != nil {
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		}
	}
	done := make(chan struct{})
	go func() {
		for _, p := range h.procs {
			if p.cmd != nil {
				_ = p.cmd.Wait()
			}
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		for _, p := range h.procs {
			if p.cmd != nil && p.cmd.Process != nil {
				_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			}
		}
	}
	h.detachLoops()
	down := exec.Command(filepath.Join(h.Root, "hack", "cluster-down.sh"))
	down.Env = append(os.Environ(), "HWAMEISTOR_CLUSTER_DIR="+filepath.Join(h.Work, "cluster"))
	h.procs = nil
	_ = down.Run()
}

// detachLoops detaches loop devices still backed by this run's pool files.
func (h *Stack) detachLoops() {
	out, _ := exec.Command("losetup", "-a").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if dev, _, ok := strings.Cut(line, ":"); ok && strings.Contains(line, filepath.Join(h.Work, "pools")) {
			_ = exec.Command("losetup", "-d", dev).Run()
		}
	}
}

// DRBDRoot is the emulated DRBD's folder, shared by the node agents
// (Options.DRBD): the simulator opens it (csidriver/drbd/emulated) to fail,
// recover and isolate nodes and to write through a volume's Primary.
func (h *Stack) DRBDRoot() string { return filepath.Join(h.Work, "drbd", "cluster") }

// PoolDir is the folder of a fake node's emulated pools.
func (h *Stack) PoolDir(node string) string { return filepath.Join(h.Work, "pools", node) }

// Logs returns the tail of every component's log, for failure messages.
func (h *Stack) Logs() string {
	var b strings.Builder
	names := []string{"scheduler", "controllers", "csi-controller", "csi-provisioner", "csi-resizer"}
	if len(h.agents) == 0 {
		names = append(names, "node")
	}
	for _, name := range append(names, h.agents...) {
		raw, _ := os.ReadFile(filepath.Join(h.Work, name+".log"))
		lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		fmt.Fprintf(&b, "--- %s\n%s\n", name, strings.Join(lines, "\n"))
	}
	return b.String()
}
