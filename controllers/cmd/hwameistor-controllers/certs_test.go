package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/internal/testenv"
)

// syncBuffer is a bytes.Buffer the binary writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testSelfManagedCertificate runs the binary without --webhook-cert-dir
// behind the shipped MutatingWebhookConfiguration (pointed at 127.0.0.1):
// without a way to issue its certificate it says so and pods are admitted
// unchanged (failurePolicy Ignore); with one it issues the certificate,
// patches the caBundle, and the apiserver's calls route pods.
func testSelfManagedCertificate(t *testing.T, bin, kubeconfig string, cfg *rest.Config) {
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	port := freePort(t)
	webhook := shippedWebhook(t, fmt.Sprintf("https://127.0.0.1:%d/mutate-v1-pod", port))
	if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, webhook, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, webhook.Name, metav1.DeleteOptions{})
	})
	// The controllers' own namespace; pods are created in default.
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "hwameistor"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wffc := storagev1.VolumeBindingWaitForFirstConsumer
	if _, err := cs.StorageV1().StorageClasses().Create(ctx, &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "certs-lvm"},
		Provisioner: v1alpha1.DriverName, VolumeBindingMode: &wffc}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().PersistentVolumeClaims("default").Create(ctx, &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "certs-data"},
		Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: ptr.To("certs-lvm"),
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createPod := func(t *testing.T, name string) *corev1.Pod {
		t.Helper()
		p, err := cs.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}},
				Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
					PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "certs-data"}}}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("creating pod %s: %v", name, err)
		}
		return p
	}
	start := func(t *testing.T, namespace string) (*syncBuffer, func()) {
		t.Helper()
		out := &syncBuffer{}
		cmd := exec.Command(bin, "--kubeconfig", kubeconfig, "--webhook-port", fmt.Sprint(port),
			"--webhook-cert-extra-hosts", "127.0.0.1", "--metrics-bind-address", "0", "--health-probe-bind-address", "0")
		cmd.Env = append(os.Environ(), "POD_NAMESPACE="+namespace)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return out, func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	}

	t.Run("no certificate: a clear log, pods admitted unchanged", func(t *testing.T) {
		// The Secret's namespace does not exist: the certificate cannot be
		// issued, the server is up but cannot complete a TLS handshake.
		out, stop := start(t, "no-such-namespace")
		defer stop()
		want := "Webhook serving certificate not in place; pods are admitted without the webhook (failurePolicy Ignore)"
		testenv.Eventually(t, "the log line", func() bool { return strings.Contains(out.String(), want) })
		if !strings.Contains(out.String(), "no-such-namespace/hwameistor-controllers-webhook-cert") {
			t.Errorf("the log does not name the Secret:\n%s", out.String())
		}
		if p := createPod(t, "without-cert"); p.Spec.SchedulerName != corev1.DefaultSchedulerName {
			t.Errorf("schedulerName %q, want %q (failurePolicy Ignore)", p.Spec.SchedulerName, corev1.DefaultSchedulerName)
		}
	})

	t.Run("issued, caBundle patched, pods routed", func(t *testing.T) {
		out, stop := start(t, "hwameistor")
		defer stop()
		testenv.Eventually(t, "caBundle", func() bool {
			w, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, webhook.Name, metav1.GetOptions{})
			return err == nil && len(w.Webhooks[0].ClientConfig.CABundle) > 0
		})
		secret, err := cs.CoreV1().Secrets("hwameistor").Get(ctx, "hwameistor-controllers-webhook-cert", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("Secret: %v\n%s", err, out.String())
		}
		w, _ := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, webhook.Name, metav1.GetOptions{})
		if !bytes.Equal(w.Webhooks[0].ClientConfig.CABundle, secret.Data["ca.crt"]) {
			t.Error("caBundle is not the Secret's ca.crt")
		}
		// The server loads the certificate in the same pass; the apiserver
		// may still fail open on the first call, so retry with new pods.
		var routed bool
		for i := 0; i < 20 && !routed; i++ {
			p := createPod(t, fmt.Sprintf("with-cert-%d", i))
			routed = p.Spec.SchedulerName == v1alpha1.SchedulerName
			if !routed {
				time.Sleep(500 * time.Millisecond)
			}
		}
		if !routed {
			t.Errorf("pods were not routed to %s through the issued certificate\n%s", v1alpha1.SchedulerName, out.String())
		}
	})
}

// shippedWebhook is manifests/webhook's configuration, called at url.
func shippedWebhook(t *testing.T, url string) *admissionv1.MutatingWebhookConfiguration {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(testenv.RootDir(), "manifests", "webhook", "mutatingwebhookconfiguration.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	w := &admissionv1.MutatingWebhookConfiguration{}
	if err := yaml.UnmarshalStrict(raw, w); err != nil {
		t.Fatal(err)
	}
	for i := range w.Webhooks {
		w.Webhooks[i].ClientConfig = admissionv1.WebhookClientConfig{URL: ptr.To(url)}
	}
	return w
}
