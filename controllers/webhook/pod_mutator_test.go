package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"hwameistor.io/local/api/v1alpha1"
)

const (
	testNS   = "apps"
	ownNS    = "hwameistor"
	ourSC    = "hwameistor-storage-lvm-hdd"
	otherSC  = "other"
	otherDrv = "ebs.csi.aws.com"
)

func storageClass(name, provisioner string, isDefault bool, created time.Time) *storagev1.StorageClass {
	sc := &storagev1.StorageClass{
		ObjectMeta:  metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(created)},
		Provisioner: provisioner,
	}
	if isDefault {
		sc.Annotations = map[string]string{defaultClassAnnotation: "true"}
	}
	return sc
}

func namespace(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func pvc(name string, class *string, volumeName string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: name},
		Spec:       corev1.PersistentVolumeClaimSpec{StorageClassName: class, VolumeName: volumeName},
	}
}

func csiPV(name, driver string) *corev1.PersistentVolume {
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{
			CSI: &corev1.CSIPersistentVolumeSource{Driver: driver, VolumeHandle: name},
		}},
	}
}

func claimVolume(name, claim string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim},
	}}
}

func ephemeralVolume(name string, class *string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{
		VolumeClaimTemplate: &corev1.PersistentVolumeClaimTemplate{Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: class}},
	}}}
}

func pod(schedulerName string, volumes ...corev1.Volume) *corev1.Pod {
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: testNS},
		Spec: corev1.PodSpec{
			SchedulerName: schedulerName,
			Containers:    []corev1.Container{{Name: "c", Image: "busybox"}},
			Volumes:       volumes,
		},
	}
}

// statefulSet has one claim template.
func statefulSet(name, template string, class *string) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS},
		Spec: appsv1.StatefulSetSpec{VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
			ObjectMeta: metav1.ObjectMeta{Name: template},
			Spec:       corev1.PersistentVolumeClaimSpec{StorageClassName: class},
		}}},
	}
}

// setPod is ordinal i of StatefulSet set, as its controller makes it.
func setPod(set string, i int, volumes ...corev1.Volume) *corev1.Pod {
	p := pod("", volumes...)
	p.Name = fmt.Sprintf("%s-%d", set, i)
	p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: set, UID: types.UID("uid-" + set), Controller: ptr(true)}}
	return p
}

func podRequest(t *testing.T, ns string, p *corev1.Pod) admission.Request {
	t.Helper()
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return rawRequest(ns, raw)
}

func rawRequest(ns string, raw []byte) admission.Request {
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       "uid",
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Namespace: ns,
		Operation: admissionv1.Create,
		Object:    runtime.RawExtension{Raw: raw},
	}}
}

var errAPI = errors.New("connection refused")

// failGet makes Get of one kind fail with a non-NotFound error.
func failGet(kind client.Object) interceptor.Funcs {
	return interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
		if _, ok := obj.(*corev1.PersistentVolumeClaim); ok {
			if _, want := kind.(*corev1.PersistentVolumeClaim); want {
				return errAPI
			}
		}
		if _, ok := obj.(*corev1.Namespace); ok {
			if _, want := kind.(*corev1.Namespace); want {
				return errAPI
			}
		}
		return c.Get(ctx, key, obj, opts...)
	}}
}

func TestPodSchedulerMutator(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ours := ptr(ourSC)
	base := []client.Object{
		namespace(testNS, nil),
		namespace("skip", map[string]string{v1alpha1.WebhookLabel: v1alpha1.WebhookIgnore}),
		namespace(ownNS, nil),
		storageClass(ourSC, v1alpha1.DriverName, false, t0),
		storageClass(otherSC, otherDrv, false, t0),
	}
	cases := []struct {
		name      string
		objects   []client.Object
		intercept *interceptor.Funcs
		ns        string // request namespace; testNS when empty
		pod       *corev1.Pod
		raw       []byte // overrides pod
		op        admissionv1.Operation
		patched   bool
		code      int32 // expected error code; 0 = allowed
		warning   bool
	}{
		{name: "hwameistor PVC is patched", objects: []client.Object{pvc("data", ours, "")},
			pod: pod("", claimVolume("v", "data")), patched: true},
		{name: "default-scheduler is patched", objects: []client.Object{pvc("data", ours, "")},
			pod: pod(corev1.DefaultSchedulerName, claimVolume("v", "data")), patched: true},
		{name: "other provisioner is unchanged", objects: []client.Object{pvc("data", ptr(otherSC), "")},
			pod: pod("", claimVolume("v", "data"))},
		{name: "custom scheduler is never overwritten", objects: []client.Object{pvc("data", ours, "")},
			pod: pod("my-scheduler", claimVolume("v", "data"))},
		{name: "PVC without class and our default class is patched",
			objects: []client.Object{pvc("data", nil, ""), storageClass("def", v1alpha1.DriverName, true, t0)},
			pod:     pod("", claimVolume("v", "data")), patched: true},
		{name: "PVC without class and another default class is unchanged",
			objects: []client.Object{pvc("data", nil, ""), storageClass("def", otherDrv, true, t0)},
			pod:     pod("", claimVolume("v", "data"))},
		{name: "PVC without class and no default class is unchanged",
			objects: []client.Object{pvc("data", nil, "")}, pod: pod("", claimVolume("v", "data"))},
		{name: "newest of two default classes wins",
			objects: []client.Object{pvc("data", nil, ""),
				storageClass("old", otherDrv, true, t0), storageClass("new", v1alpha1.DriverName, true, t0.Add(time.Hour))},
			pod: pod("", claimVolume("v", "data")), patched: true},
		{name: "PVC with explicit empty class ignores the default class",
			objects: []client.Object{pvc("data", ptr(""), ""), storageClass("def", v1alpha1.DriverName, true, t0)},
			pod:     pod("", claimVolume("v", "data"))},
		{name: "beta class annotation is honoured",
			objects: []client.Object{func() client.Object {
				c := pvc("data", nil, "")
				c.Annotations = map[string]string{corev1.BetaStorageClassAnnotation: ourSC}
				return c
			}()},
			pod: pod("", claimVolume("v", "data")), patched: true},
		{name: "bound PVC whose PV has our CSI driver is patched",
			objects: []client.Object{pvc("data", ptr(""), "pv-1"), csiPV("pv-1", v1alpha1.DriverName)},
			pod:     pod("", claimVolume("v", "data")), patched: true},
		{name: "bound PVC whose PV has another driver is unchanged",
			objects: []client.Object{pvc("data", ptr(otherSC), "pv-1"), csiPV("pv-1", otherDrv)},
			pod:     pod("", claimVolume("v", "data"))},
		{name: "ephemeral volume of our class is patched",
			pod: pod("", ephemeralVolume("scratch", ours)), patched: true},
		{name: "ephemeral volume with our default class is patched",
			objects: []client.Object{storageClass("def", v1alpha1.DriverName, true, t0)},
			pod:     pod("", ephemeralVolume("scratch", nil)), patched: true},
		{name: "ephemeral volume of another class is unchanged",
			pod: pod("", ephemeralVolume("scratch", ptr(otherSC)))},
		{name: "second volume is ours", objects: []client.Object{pvc("a", ptr(otherSC), ""), pvc("b", ours, "")},
			pod: pod("", corev1.Volume{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				claimVolume("va", "a"), claimVolume("vb", "b")), patched: true},
		{name: "pod without volumes is unchanged", pod: pod("")},
		{name: "missing PVC is admitted unchanged with a warning", pod: pod("", claimVolume("v", "not-yet")), warning: true},
		{name: "missing StorageClass is admitted unchanged with a warning", objects: []client.Object{pvc("data", ptr("gone"), "")},
			pod: pod("", claimVolume("v", "data")), warning: true},
		{name: "ignored namespace is unchanged", ns: "skip", objects: []client.Object{func() client.Object {
			c := pvc("data", ours, "")
			c.Namespace = "skip"
			return c
		}()}, pod: func() *corev1.Pod { p := pod("", claimVolume("v", "data")); p.Namespace = "skip"; return p }()},
		{name: "own namespace is unchanged", ns: ownNS, objects: []client.Object{func() client.Object {
			c := pvc("data", ours, "")
			c.Namespace = ownNS
			return c
		}()}, pod: func() *corev1.Pod { p := pod("", claimVolume("v", "data")); p.Namespace = ownNS; return p }()},
		{name: "PVC lookup error routes to hwameistor-scheduler with a warning", objects: []client.Object{pvc("data", ours, "")},
			intercept: ptr(failGet(&corev1.PersistentVolumeClaim{})),
			pod:       pod("", claimVolume("v", "data")), patched: true, warning: true},
		{name: "PVC read slower than the budget routes to hwameistor-scheduler with a warning", objects: []client.Object{pvc("data", ours, "")},
			intercept: ptr(interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				if _, ok := obj.(*corev1.PersistentVolumeClaim); ok {
					<-ctx.Done() // an apiserver slowed by a burst
					return ctx.Err()
				}
				return c.Get(ctx, key, obj, opts...)
			}}),
			pod: pod("", claimVolume("v", "data")), patched: true, warning: true},
		{name: "StatefulSet pod whose claim is not readable yet is routed by its template, without a claim read",
			objects: []client.Object{statefulSet("web", "data", ours)}, intercept: ptr(failGet(&corev1.PersistentVolumeClaim{})),
			pod: setPod("web", 0, claimVolume("v", "data-web-0")), patched: true},
		{name: "StatefulSet template of another class falls through to the claim",
			objects: []client.Object{statefulSet("web", "data", ptr(otherSC)), pvc("data-web-0", ours, "")},
			pod:     setPod("web", 0, claimVolume("v", "data-web-0")), patched: true},
		{name: "StatefulSet template of another class and no claim is unchanged",
			objects: []client.Object{statefulSet("web", "data", ptr(otherSC))},
			pod:     setPod("web", 0, claimVolume("v", "data-web-0"))},
		{name: "claim not made from the template falls through to the claim",
			objects: []client.Object{statefulSet("web", "data", ours), pvc("extra", ptr(otherSC), "")},
			pod:     setPod("web", 0, claimVolume("v", "extra"))},
		{name: "namespace lookup error fails open with a warning", objects: []client.Object{pvc("data", ours, "")},
			intercept: ptr(failGet(&corev1.Namespace{})),
			pod:       pod("", claimVolume("v", "data")), warning: true},
		{name: "lookup error on one volume does not stop another that is ours",
			objects:   []client.Object{pvc("data", ours, "")},
			intercept: ptr(failGet(&corev1.PersistentVolumeClaim{})),
			pod:       pod("", claimVolume("v", "data"), ephemeralVolume("scratch", ours)), patched: true},
		{name: "update is not mutated", objects: []client.Object{pvc("data", ours, "")},
			pod: pod("", claimVolume("v", "data")), op: admissionv1.Update},
		{name: "malformed object is a 400", raw: []byte(`{"spec": [`), code: http.StatusBadRequest},
		{name: "empty object is a 400", raw: []byte{}, code: http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(base...).WithObjects(tc.objects...)
			if tc.intercept != nil {
				b = b.WithInterceptorFuncs(*tc.intercept)
			}
			m := NewPodSchedulerMutator(b.Build(), clientgoscheme.Scheme, ownNS)
			m.LookupTimeout = 100 * time.Millisecond
			ns := tc.ns
			if ns == "" {
				ns = testNS
			}
			var req admission.Request
			if tc.raw != nil {
				req = rawRequest(ns, tc.raw)
			} else {
				req = podRequest(t, ns, tc.pod)
			}
			if tc.op != "" {
				req.Operation = tc.op
			}

			resp := m.Handle(context.Background(), req)

			if tc.code != 0 {
				if resp.Allowed || resp.Result == nil || resp.Result.Code != tc.code {
					t.Fatalf("want error %d, got allowed=%v result=%+v", tc.code, resp.Allowed, resp.Result)
				}
				return
			}
			if !resp.Allowed {
				t.Fatalf("pod was not allowed: %+v", resp.Result)
			}
			if got := len(resp.Warnings) > 0; got != tc.warning {
				t.Errorf("warnings = %q, want some: %v", resp.Warnings, tc.warning)
			}
			if !tc.patched {
				if len(resp.Patches) != 0 {
					t.Fatalf("want no patch, got %+v", resp.Patches)
				}
				return
			}
			if len(resp.Patches) != 1 {
				t.Fatalf("want exactly one patch operation, got %+v", resp.Patches)
			}
			p := resp.Patches[0]
			if p.Path != "/spec/schedulerName" || p.Value != v1alpha1.SchedulerName || (p.Operation != "add" && p.Operation != "replace") {
				t.Fatalf("unexpected patch %+v", p)
			}
		})
	}
}

// TestSetSchedulerNameKeepsTheRest checks that patching the raw object
// touches nothing but spec.schedulerName, large integers included.
func TestSetSchedulerNameKeepsTheRest(t *testing.T) {
	raw := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"schedulerName":"default-scheduler","activeDeadlineSeconds":9007199254740993,"containers":[{"name":"c","resources":{}}]}}`)
	out, err := setSchedulerName(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"activeDeadlineSeconds":9007199254740993`) {
		t.Errorf("large integer changed: %s", out)
	}
	resp := admission.PatchResponseFromRaw(raw, out)
	if len(resp.Patches) != 1 || resp.Patches[0].Operation != "replace" {
		t.Errorf("want one replace operation, got %+v", resp.Patches)
	}
}

func TestCacheFirstReader(t *testing.T) {
	live := fake.NewClientBuilder().WithObjects(pvc("fresh", ptr(ourSC), "")).Build()
	cache := fake.NewClientBuilder().Build()
	r := CacheFirstReader{Cache: cache, Live: live}
	got := &corev1.PersistentVolumeClaim{}
	if err := r.Get(context.Background(), client.ObjectKey{Namespace: testNS, Name: "fresh"}, got); err != nil {
		t.Fatalf("a PVC missing from the cache must be read from the API server: %v", err)
	}
	failing := fake.NewClientBuilder().WithInterceptorFuncs(failGet(&corev1.PersistentVolumeClaim{})).Build()
	r = CacheFirstReader{Cache: failing, Live: live}
	if err := r.Get(context.Background(), client.ObjectKey{Namespace: testNS, Name: "fresh"}, got); !errors.Is(err, errAPI) {
		t.Fatalf("a cache error other than NotFound must be returned, got %v", err)
	}
}

func ptr[T any](v T) *T { return &v }
