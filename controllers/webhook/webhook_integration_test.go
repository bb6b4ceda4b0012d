package webhook

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"hwameistor.io/local/api/v1alpha1"
)

// The integration test runs one real etcd + kube-apiserver with the
// MutatingWebhookConfiguration of manifests/webhook installed (envtest
// rewrites its service reference to the local webhook server), and the
// mutator wired as in the binary (a manager, a CacheFirstReader). It checks
// the scheduler name the API server stores, and, through the webhook's
// request counter, whether the API server called the webhook at all.

const (
	itOwnNS = "hwameistor-controllers-test" // the mutator's own namespace: called, left alone
	itAppNS = "apps"
)

func manifestPath() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "manifests", "webhook", "mutatingwebhookconfiguration.yaml")
}

func startControlPlane(t *testing.T) *envtest.Environment {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run `make test`, or export KUBEBUILDER_ASSETS=$(hack/build-control-plane.sh)")
	}
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			t.Fatalf("KUBEBUILDER_ASSETS=%s has no %s: run hack/build-control-plane.sh", assets, b)
		}
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: []string{manifestPath()}},
	}
	if _, err := env.Start(); err != nil {
		t.Fatalf("starting envtest: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping envtest: %v", err)
		}
	})
	if n := len(env.WebhookInstallOptions.MutatingWebhooks); n != 1 {
		t.Fatalf("want 1 MutatingWebhookConfiguration from %s, got %d", manifestPath(), n)
	}
	return env
}

// webhookCalls counts the admission requests the webhook server answered.
func webhookCalls(t *testing.T) (total, ok float64) {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "controller_runtime_webhook_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["webhook"] != Path {
				continue
			}
			total += m.GetCounter().GetValue()
			if labels["code"] == "200" {
				ok += m.GetCounter().GetValue()
			}
		}
	}
	return total, ok
}

func TestWebhookIntegration(t *testing.T) {
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true)))
	env := startControlPlane(t)

	scheme := k8sruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	wio := &env.WebhookInstallOptions
	mgr, err := manager.New(env.Config, manager.Options{
		Scheme:  scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		WebhookServer: ctrlwebhook.NewServer(ctrlwebhook.Options{
			Host: wio.LocalServingHost, Port: wio.LocalServingPort, CertDir: wio.LocalServingCertDir,
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	reader := CacheFirstReader{Cache: mgr.GetCache(), Live: mgr.GetAPIReader()}
	Register(mgr, NewPodSchedulerMutator(reader, scheme, itOwnNS))

	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- mgr.Start(ctx) }()
	stopManager := func() {
		if cancel == nil {
			return
		}
		cancel()
		cancel = nil
		select {
		case err := <-stopped:
			if err != nil {
				t.Errorf("manager stopped with: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("manager did not stop within 30s")
		}
	}
	t.Cleanup(stopManager)

	check := mgr.GetWebhookServer().StartedChecker()
	deadline := time.Now().Add(30 * time.Second)
	for err := check(nil); err != nil; err = check(nil) {
		if time.Now().After(deadline) {
			t.Fatalf("webhook server did not start: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	c, err := client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	create := func(t *testing.T, objs ...client.Object) {
		t.Helper()
		for _, o := range objs {
			if err := c.Create(context.Background(), o); err != nil {
				t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
			}
		}
	}
	wffc := storagev1.VolumeBindingWaitForFirstConsumer
	sc := func(name, provisioner string, isDefault bool) *storagev1.StorageClass {
		s := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: provisioner, VolumeBindingMode: &wffc}
		if isDefault {
			s.Annotations = map[string]string{defaultClassAnnotation: "true"}
		}
		return s
	}
	claim := func(ns, name string, class *string, volumeName string) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
				StorageClassName: class,
				VolumeName:       volumeName,
			},
		}
	}
	create(t,
		namespace(itAppNS, nil),
		namespace("opted-out", map[string]string{v1alpha1.WebhookLabel: v1alpha1.WebhookIgnore}),
		namespace("hwameistor", nil), // excluded by name in the manifest
		namespace(itOwnNS, nil),
		sc("hwameistor-storage-lvm-hdd", v1alpha1.DriverName, false),
		sc("other", "ebs.csi.aws.com", false),
		sc("hwameistor-default", v1alpha1.DriverName, true),
		&corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: "pv-ours"},
			Spec: corev1.PersistentVolumeSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Capacity:    corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
				PersistentVolumeSource: corev1.PersistentVolumeSource{
					CSI: &corev1.CSIPersistentVolumeSource{Driver: v1alpha1.DriverName, VolumeHandle: "pv-ours"},
				},
				ClaimRef: &corev1.ObjectReference{Namespace: itAppNS, Name: "bound"},
			},
		},
	)

	ours := ptr("hwameistor-storage-lvm-hdd")
	cases := []struct {
		name      string
		ns        string
		scheduler string
		claims    []*corev1.PersistentVolumeClaim // created right before the pod
		volumes   []corev1.Volume
		want      string
		called    bool // the API server must (or must not) call the webhook
	}{
		{name: "hwameistor PVC", ns: itAppNS, claims: []*corev1.PersistentVolumeClaim{claim(itAppNS, "data", ours, "")},
			volumes: []corev1.Volume{claimVolume("v", "data")}, want: v1alpha1.SchedulerName, called: true},
		{name: "explicit default-scheduler", ns: itAppNS, scheduler: corev1.DefaultSchedulerName,
			claims:  []*corev1.PersistentVolumeClaim{claim(itAppNS, "data2", ours, "")},
			volumes: []corev1.Volume{claimVolume("v", "data2")}, want: v1alpha1.SchedulerName, called: true},
		{name: "other provisioner", ns: itAppNS, claims: []*corev1.PersistentVolumeClaim{claim(itAppNS, "ebs", ptr("other"), "")},
			volumes: []corev1.Volume{claimVolume("v", "ebs")}, want: corev1.DefaultSchedulerName, called: true},
		{name: "custom scheduler kept", ns: itAppNS, scheduler: "my-scheduler",
			claims:  []*corev1.PersistentVolumeClaim{claim(itAppNS, "data3", ours, "")},
			volumes: []corev1.Volume{claimVolume("v", "data3")}, want: "my-scheduler", called: true},
		{name: "PVC without class gets our default class", ns: itAppNS,
			claims:  []*corev1.PersistentVolumeClaim{claim(itAppNS, "defaulted", nil, "")},
			volumes: []corev1.Volume{claimVolume("v", "defaulted")}, want: v1alpha1.SchedulerName, called: true},
		{name: "bound PVC with our PV", ns: itAppNS, claims: []*corev1.PersistentVolumeClaim{claim(itAppNS, "bound", ptr(""), "pv-ours")},
			volumes: []corev1.Volume{claimVolume("v", "bound")}, want: v1alpha1.SchedulerName, called: true},
		{name: "generic ephemeral volume", ns: itAppNS,
			volumes: []corev1.Volume{func() corev1.Volume {
				v := ephemeralVolume("scratch", ours)
				v.Ephemeral.VolumeClaimTemplate.Spec = claim("", "", ours, "").Spec
				return v
			}()}, want: v1alpha1.SchedulerName, called: true},
		{name: "no volumes", ns: itAppNS, want: corev1.DefaultSchedulerName, called: true},
		{name: "missing PVC", ns: itAppNS, volumes: []corev1.Volume{claimVolume("v", "later")},
			want: corev1.DefaultSchedulerName, called: true},
		{name: "namespace opted out", ns: "opted-out", claims: []*corev1.PersistentVolumeClaim{claim("opted-out", "data", ours, "")},
			volumes: []corev1.Volume{claimVolume("v", "data")}, want: corev1.DefaultSchedulerName, called: false},
		{name: "hwameistor namespace excluded by the manifest", ns: "hwameistor",
			claims:  []*corev1.PersistentVolumeClaim{claim("hwameistor", "data", ours, "")},
			volumes: []corev1.Volume{claimVolume("v", "data")}, want: corev1.DefaultSchedulerName, called: false},
		{name: "webhook's own namespace", ns: itOwnNS, claims: []*corev1.PersistentVolumeClaim{claim(itOwnNS, "data", ours, "")},
			volumes: []corev1.Volume{claimVolume("v", "data")}, want: corev1.DefaultSchedulerName, called: true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, pvc := range tc.claims {
				create(t, pvc)
			}
			before, beforeOK := webhookCalls(t)
			p := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: tc.ns, Name: fmt.Sprintf("pod-%d", i)},
				Spec: corev1.PodSpec{
					SchedulerName: tc.scheduler,
					Containers:    []corev1.Container{{Name: "c", Image: "busybox"}},
					Volumes:       tc.volumes,
				},
			}
			create(t, p)
			stored := &corev1.Pod{}
			if err := c.Get(context.Background(), client.ObjectKeyFromObject(p), stored); err != nil {
				t.Fatal(err)
			}
			if stored.Spec.SchedulerName != tc.want {
				t.Errorf("schedulerName = %q, want %q", stored.Spec.SchedulerName, tc.want)
			}
			after, afterOK := webhookCalls(t)
			if called := after > before; called != tc.called {
				t.Errorf("webhook called = %v, want %v (requests %v -> %v)", called, tc.called, before, after)
			}
			if tc.called && afterOK-beforeOK != 1 {
				t.Errorf("want one request answered with 200, got %v", afterOK-beforeOK)
			}
		})
	}

	// failurePolicy: Ignore — with the webhook down, pods are still admitted.
	t.Run("webhook down fails open", func(t *testing.T) {
		stopManager()
		create(t, claim(itAppNS, "while-down", ours, ""))
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: itAppNS, Name: "pod-while-down"},
			Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "c", Image: "busybox"}},
				Volumes:    []corev1.Volume{claimVolume("v", "while-down")},
			},
		}
		start := time.Now()
		if err := c.Create(context.Background(), p); err != nil {
			t.Fatalf("pod creation must not fail while the webhook is down: %v", err)
		}
		if p.Spec.SchedulerName != corev1.DefaultSchedulerName {
			t.Errorf("schedulerName = %q, want %q", p.Spec.SchedulerName, corev1.DefaultSchedulerName)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("pod creation took %v with the webhook down: a refused connection must fail open at once", d)
		}
	})
}
