// Package testenv starts a real etcd and kube-apiserver (envtest, with the
// binaries hack/build-control-plane.sh builds from the pinned modules) with
// the project's CRDs installed, for integration tests.
package testenv

import (
	"fmt"
	"k8s.io/client-go/tools/clientcmd"
	"net"
	"os"
	"path/filepath"
	"runtime"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"hwameistor.io/local/api/v1alpha1"
)

// Env is a running control plane.
type Env struct {
	Config *rest.Config
	Client client.Client
	Scheme *k8sruntime.Scheme
	env    *envtest.Environment
}

// RootDir is the checkout's top folder.
func RootDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Start brings up etcd and kube-apiserver with the CRDs of manifests/crds
// installed. It fails with instructions when the binaries are missing.
func Start() (*Env, error) { return StartOn("") }

// StartOn is Start with the kube-apiserver listening on address (and its
// serving certificate naming it), for clients outside this host's loopback
// such as test guests (internal/vm); empty is envtest's default, 127.0.0.1.
func StartOn(address string) (*Env, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		return nil, fmt.Errorf("KUBEBUILDER_ASSETS is not set: run `make test`, or export KUBEBUILDER_ASSETS=$(hack/build-control-plane.sh)")
	}
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			return nil, fmt.Errorf("KUBEBUILDER_ASSETS=%s has no %s: run hack/build-control-plane.sh", assets, b)
		}
	}
	scheme, err := newScheme()
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(RootDir(), "manifests", "crds")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	if address != "" {
		// envtest picks 127.0.0.1 unless both address and port are set.
		port, err := freePort(address)
		if err != nil {
			return nil, err
		}
		env.ControlPlane.GetAPIServer().SecureServing.ListenAddr = envtest.ListenAddr{Address: address, Port: port}
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting envtest: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	return &Env{Config: cfg, Client: c, Scheme: scheme, env: env}, nil
}

func newScheme() (*k8sruntime.Scheme, error) {
	scheme := k8sruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return scheme, v1alpha1.AddToScheme(scheme)
}

// freePort is a TCP port free on address.
func freePort(address string) (string, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(address, "0"))
	if err != nil {
		return "", fmt.Errorf("no free port on %s: %w", address, err)
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	return port, err
}

// Connect is an Env for a control plane someone else runs (a test guest
// reaching the host's, see StartOn), from its kubeconfig; Stop leaves it
// running. The CRDs must be installed already.
func Connect(kubeconfig string) (*Env, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	scheme, err := newScheme()
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	return &Env{Config: cfg, Client: c, Scheme: scheme}, nil
}

// Stop shuts the control plane down (if this Env started it).
func (e *Env) Stop() error {
	if e.env == nil {
		return nil
	}
	return e.env.Stop()
}

// GVR is the resource of a hwameistor.io kind, for dynamic and table requests.
func GVR(resource string) schema.GroupVersionResource {
	return v1alpha1.GroupVersion.WithResource(resource)
}
