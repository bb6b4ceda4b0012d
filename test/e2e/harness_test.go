// Package e2e runs the whole system on the local control plane
// (hack/cluster-up.sh: etcd, kube-apiserver, kube-controller-manager, kwok)
// with every component as its real binary: hwameistor-scheduler,
// hwameistor-controllers (with the webhook), hwameistor-csi-controller with
// the real external-provisioner and external-resizer, and hwameistor-node
// with an emulated backend on real loop devices for one fake node. There is
// no kubelet on a fake node, so the test plays it: it calls the CSI node
// service to stage and publish the volume, and writes through the mount.
package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/internal/testenv"
)

// Ports of the e2e cluster: apart from `make cluster-up`'s, so both can run.
var clusterEnv = []string{
	"ETCD_PORT=22379", "ETCD_PEER_PORT=22380", "APISERVER_PORT=26443", "KCM_PORT=20257", "KWOK_PORT=20247",
}

const (
	webhookPort   = 20443
	schedulerPort = 20259
	nodeName      = "e2e-node-0"
)

type harness struct {
	root, work, bin, kubeconfig string
	cs                          *kubernetes.Clientset
	c                           client.Client
	procs                       []*exec.Cmd
	nodeSocket                  string
}

var h *harness

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Println("e2e: skipped, it mounts loop devices and needs root (CI runs as root)")
		os.Exit(0)
	}
	var err error
	h, err = setup()
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
	} else {
		code = m.Run()
	}
	if h != nil {
		h.teardown()
	}
	os.Exit(code)
}

func setup() (*harness, error) {
	root := testenv.RootDir()
	h := &harness{root: root, work: filepath.Join(root, "_output", "e2e")}
	_ = os.RemoveAll(h.work)
	if err := os.MkdirAll(h.work, 0o755); err != nil {
		return nil, err
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		return nil, fmt.Errorf("KUBEBUILDER_ASSETS is not set: run `make test`, or export KUBEBUILDER_ASSETS=$(hack/build-control-plane.sh)")
	}
	h.bin = assets
	clusterDir := filepath.Join(h.work, "cluster")
	h.kubeconfig = filepath.Join(clusterDir, "kubeconfig")
	up := exec.Command(filepath.Join(root, "hack", "cluster-up.sh"))
	up.Env = append(os.Environ(), append(clusterEnv, "HWAMEISTOR_CLUSTER_DIR="+clusterDir)...)
	if out, err := up.CombinedOutput(); err != nil {
		return h, fmt.Errorf("cluster-up: %v\n%s", err, out)
	}
	// Build our binaries.
	ours := filepath.Join(h.work, "bin")
	for bin, pkg := range map[string]string{
		"hwameistor-scheduler":      "./scheduler",
		"hwameistor-controllers":    "./controllers/cmd/hwameistor-controllers",
		"hwameistor-csi-controller": "./csidriver/cmd/hwameistor-csi-controller",
		"hwameistor-node":           "./csidriver/cmd/hwameistor-node",
	} {
		build := exec.Command("go", "build", "-o", filepath.Join(ours, bin), pkg)
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			return h, fmt.Errorf("building %s: %v\n%s", bin, err, out)
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", h.kubeconfig)
	if err != nil {
		return h, err
	}
	cfg.QPS, cfg.Burst = 100, 200
	h.cs = kubernetes.NewForConfigOrDie(cfg)
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1.AddToScheme(scheme)
	if h.c, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return h, err
	}
	if err := h.startComponents(ours); err != nil {
		return h, err
	}
	return h, nil
}

// start runs a component in its own process group, logging to work/NAME.log.
func (h *harness) start(name, bin string, env []string, args ...string) error {
	logf, err := os.Create(filepath.Join(h.work, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	h.procs = append(h.procs, cmd)
	return nil
}

func (h *harness) startComponents(ours string) error {
	kc := "--kubeconfig=" + h.kubeconfig

	// Scheduler: the shipped profile, pointed at this cluster, no election.
	schedCfg, err := h.schedulerConfig()
	if err != nil {
		return err
	}
	if err := h.start("scheduler", filepath.Join(ours, "hwameistor-scheduler"), nil,
		"--config="+schedCfg, kc, "--authentication-kubeconfig="+h.kubeconfig, "--authorization-kubeconfig="+h.kubeconfig,
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", schedulerPort), "--v=2"); err != nil {
		return err
	}

	// Controllers with the webhook on 127.0.0.1, its certificate made here.
	certDir := filepath.Join(h.work, "webhook-certs")
	caPEM, err := writeServingCert(certDir)
	if err != nil {
		return err
	}
	if err := h.start("controllers", filepath.Join(ours, "hwameistor-controllers"), []string{"POD_NAMESPACE=hwameistor", "KUBECONFIG=" + h.kubeconfig},
		"--webhook-cert-dir="+certDir, fmt.Sprintf("--webhook-port=%d", webhookPort),
		"--metrics-bind-address=0", "--health-probe-bind-address=127.0.0.1:20081"); err != nil {
		return err
	}
	if err := h.installWebhook(caPEM); err != nil {
		return err
	}

	// CSI controller service with the real sidecars.
	ctrlSock := filepath.Join(h.work, "csi", "controller.sock")
	if err := h.start("csi-controller", filepath.Join(ours, "hwameistor-csi-controller"), []string{"KUBECONFIG=" + h.kubeconfig},
		"--csi-address=unix://"+ctrlSock); err != nil {
		return err
	}
	if err := h.start("csi-provisioner", filepath.Join(h.bin, "csi-provisioner"), nil,
		"--csi-address="+ctrlSock, kc, "--feature-gates=Topology=true", "--extra-create-metadata",
		"--leader-election=false", "--kube-api-qps=50", "--kube-api-burst=100", "--timeout=60s", "--v=3"); err != nil {
		return err
	}
	if err := h.start("csi-resizer", filepath.Join(h.bin, "csi-resizer"), nil,
		"--csi-address="+ctrlSock, kc, "--leader-election=false", "--timeout=60s", "--v=3"); err != nil {
		return err
	}

	// The fake node and its agent.
	if err := h.createFakeNode(); err != nil {
		return err
	}
	h.nodeSocket = filepath.Join(h.work, "csi", "node.sock")
	return h.start("node", filepath.Join(ours, "hwameistor-node"), []string{"KUBECONFIG=" + h.kubeconfig},
		"--node-name="+nodeName, "--backend=emulated", "--emulated-root="+filepath.Join(h.work, "pools"),
		"--emulated-pools=HDD=20Gi", "--csi-address=unix://"+h.nodeSocket, "--metrics-bind-address=0", "--report-interval=5s")
}

// schedulerConfig writes the shipped KubeSchedulerConfiguration with this
// cluster's kubeconfig and leader election off.
func (h *harness) schedulerConfig() (string, error) {
	raw, err := os.ReadFile(filepath.Join(h.root, "manifests", "scheduler", "scheduler-config.yaml"))
	if err != nil {
		return "", err
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		return "", err
	}
	cfg["leaderElection"] = map[string]any{"leaderElect": false}
	cfg["clientConnection"] = map[string]any{"kubeconfig": h.kubeconfig, "qps": 100, "burst": 200}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return "", err
	}
	path := filepath.Join(h.work, "scheduler-config.yaml")
	return path, os.WriteFile(path, out, 0o644)
}

// writeServingCert makes a self-signed certificate for 127.0.0.1 and
// returns it (PEM) for the webhook's caBundle.
func writeServingCert(dir string) ([]byte, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hwameistor-e2e-webhook"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), certPEM, 0o600); err != nil {
		return nil, err
	}
	return certPEM, os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
}

func (h *harness) teardown() {
	for _, p := range h.procs {
		if p.Process != nil {
			_ = syscall.Kill(-p.Process.Pid, syscall.SIGTERM)
		}
	}
	done := make(chan struct{})
	go func() {
		for _, p := range h.procs {
			_ = p.Wait()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		for _, p := range h.procs {
			if p.Process != nil {
				_ = syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
			}
		}
	}
	h.detachLoops()
	down := exec.Command(filepath.Join(h.root, "hack", "cluster-down.sh"))
	down.Env = append(os.Environ(), "HWAMEISTOR_CLUSTER_DIR="+filepath.Join(h.work, "cluster"))
	_ = down.Run()
}

// detachLoops detaches loop devices still backed by this run's pool files.
func (h *harness) detachLoops() {
	out, _ := exec.Command("losetup", "-a").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if dev, _, ok := strings.Cut(line, ":"); ok && strings.Contains(line, filepath.Join(h.work, "pools")) {
			_ = exec.Command("losetup", "-d", dev).Run()
		}
	}
}

// logs returns the tail of every component's log, for failure messages.
func (h *harness) logs() string {
	var b strings.Builder
	for _, name := range []string{"scheduler", "controllers", "csi-controller", "csi-provisioner", "csi-resizer", "node"} {
		raw, _ := os.ReadFile(filepath.Join(h.work, name+".log"))
		lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		fmt.Fprintf(&b, "--- %s\n%s\n", name, strings.Join(lines, "\n"))
	}
	return b.String()
}
