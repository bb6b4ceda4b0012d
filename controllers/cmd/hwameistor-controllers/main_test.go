package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"hwameistor.io/local/internal/testenv"
)

// TestBinary builds the command and runs it against a real kube-apiserver:
// it must refuse to start without the certificate --webhook-cert-dir names,
// with one it must become ready (webhook serving, informers synced, leader
// elected) and stop cleanly on SIGTERM, and without --webhook-cert-dir it
// issues its own (certs_test.go).
func TestBinary(t *testing.T) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run `make test`, or export KUBEBUILDER_ASSETS=$(hack/build-control-plane.sh)")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "hwameistor-controllers")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	// The controllers index and watch hwameistor.io kinds: install the CRDs.
	env := &envtest.Environment{BinaryAssetsDirectory: assets, ErrorIfCRDPathMissing: true,
		CRDDirectoryPaths: []string{filepath.Join(testenv.RootDir(), "manifests", "crds")}}
	if _, err := env.Start(); err != nil {
		t.Fatalf("starting envtest: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	user, err := env.AddUser(envtest.User{Name: "controllers", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfigPath := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	wio := env.WebhookInstallOptions // envtest generated a serving certificate there

	t.Run("missing certificate", func(t *testing.T) {
		missing := filepath.Join(dir, "no-certs")
		var stderr bytes.Buffer
		cmd := exec.Command(bin, "--kubeconfig", kubeconfigPath, "--webhook-cert-dir", missing,
			"--metrics-bind-address", "0", "--health-probe-bind-address", "0")
		cmd.Stderr = &stderr
		err := cmd.Run()
		if err == nil {
			t.Fatal("want a non-zero exit without a certificate")
		}
		if !strings.Contains(stderr.String(), missing) {
			t.Errorf("the error must name the folder %s; got:\n%s", missing, stderr.String())
		}
	})

	t.Run("ready and stops on SIGTERM", func(t *testing.T) {
		probe := freeAddr(t)
		var out bytes.Buffer
		cmd := exec.Command(bin, "--kubeconfig", kubeconfigPath,
			"--webhook-cert-dir", wio.LocalServingCertDir, "--webhook-port", fmt.Sprint(freePort(t)),
			"--metrics-bind-address", "0", "--health-probe-bind-address", probe, "--leader-elect")
		cmd.Env = append(os.Environ(), "POD_NAMESPACE=default")
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		defer func() {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
				<-exited
			}
		}()

		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		for {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+probe+"/readyz", nil)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			select {
			case err := <-exited:
				t.Fatalf("binary exited before ready: %v\n%s", err, out.String())
			case <-ctx.Done():
				t.Fatalf("not ready within 60s\n%s", out.String())
			case <-time.After(200 * time.Millisecond):
			}
		}

		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("want a clean exit on SIGTERM, got %v\n%s", err, out.String())
			}
			t.Logf("binary output:\n%s", out.String())
		case <-time.After(60 * time.Second):
			t.Fatalf("did not stop within 60s of SIGTERM\n%s", out.String())
		}
	})

	t.Run("self-managed certificate", func(t *testing.T) { testSelfManagedCertificate(t, bin, kubeconfigPath, env.Config) })
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func freeAddr(t *testing.T) string {
	return fmt.Sprintf("127.0.0.1:%d", freePort(t))
}
