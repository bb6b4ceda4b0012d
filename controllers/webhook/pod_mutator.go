// Package webhook holds the mutating admission webhook that routes pods with
// hwameistor volumes to hwameistor-scheduler. Only that scheduler knows pool
// capacity, replica locality and volume groups, so a pod that reached
// default-scheduler could land on a node whose pool cannot hold its volume.
package webhook

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"hwameistor.io/local/api/v1alpha1"
)

// Path is where the pod mutator is served; manifests/webhook points the
// MutatingWebhookConfiguration at it.
const Path = "/mutate-v1-pod"

// Annotations that mark the cluster's default StorageClass (the beta one is
// still honoured by kube-apiserver).
const (
	defaultClassAnnotation     = "storageclass.kubernetes.io/is-default-class"
	betaDefaultClassAnnotation = "storageclass.beta.kubernetes.io/is-default-class"
)

// PodSchedulerMutator sets spec.schedulerName to hwameistor-scheduler on pods
// that use a volume provisioned by lvm.hwameistor.io.
//
// It fails open: when a lookup fails the pod is admitted unchanged (it then
// goes to default-scheduler), because a webhook that rejects pods would stop
// every workload in the cluster while the API server or this process is in
// trouble. Such failures are logged and returned to the user as a warning.
type PodSchedulerMutator struct {
	// Reader reads PVCs, PVs, StorageClasses and Namespaces. In the binary it
	// is a CacheFirstReader, so admission costs no API call in the common case.
	Reader client.Reader
	// Decoder decodes the pod from the admission request.
	Decoder admission.Decoder
	// OwnNamespace is the namespace the webhook runs in. Its pods (our own
	// controllers, CSI driver, scheduler) are never routed: they must start
	// even when hwameistor-scheduler is down.
	OwnNamespace string
	// LookupTimeout bounds the claim lookups (DefaultLookupTimeout when 0).
	LookupTimeout time.Duration
}

// DefaultLookupTimeout keeps admission well inside the webhook's timeout:
// a claim the cache does not hold yet is read from the API server, which a
// burst of pods can slow to seconds; past the budget the pod is routed to
// hwameistor-scheduler as when the read fails. Letting the apiserver's
// timeout expire instead would admit it unchanged (failurePolicy Ignore) to
// default-scheduler, which knows no pools: the 1,000-node benchmark lost four
// pods that way.
const DefaultLookupTimeout = 2 * time.Second

var _ admission.Handler = &PodSchedulerMutator{}

// NewPodSchedulerMutator returns a mutator reading through reader and
// decoding pods with scheme (which must know core/v1).
func NewPodSchedulerMutator(reader client.Reader, scheme *runtime.Scheme, ownNamespace string) *PodSchedulerMutator {
	return &PodSchedulerMutator{Reader: reader, Decoder: admission.NewDecoder(scheme), OwnNamespace: ownNamespace}
}

// Register serves the mutator at Path on the manager's webhook server. The
// webhook server runs on every replica, leader or not, so a rolling update
// never leaves the Service without endpoints.
func Register(mgr manager.Manager, m *PodSchedulerMutator) {
	mgr.GetWebhookServer().Register(Path, &admission.Webhook{Handler: m})
}

// Handle implements admission.Handler.
func (m *PodSchedulerMutator) Handle(ctx context.Context, req admission.Request) admission.Response {
	// Only a new pod can change its scheduler; subresources (binding,
	// ephemeralcontainers, ...) are not pods.
	if req.Operation != admissionv1.Create || req.SubResource != "" {
		return admission.Allowed("only pod creation is mutated")
	}
	pod := &corev1.Pod{}
	if err := m.Decoder.Decode(req, pod); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding pod: %w", err))
	}
	ns := req.Namespace
	if ns == "" {
		ns = pod.Namespace
	}
	name := pod.Name
	if name == "" {
		name = pod.GenerateName
	}
	log := logf.FromContext(ctx).WithValues("pod", klog.KRef(ns, name))

	if s := pod.Spec.SchedulerName; s != "" && s != corev1.DefaultSchedulerName {
		return admission.Allowed("pod names its own scheduler " + s)
	}
	if ns == m.OwnNamespace {
		return admission.Allowed("pods in the webhook's own namespace are left alone")
	}
	ignored, err := m.namespaceIgnored(ctx, ns)
	if err != nil {
		log.Error(err, "Cannot read the pod's namespace; admitting the pod unchanged (fail-open)")
		return admission.Allowed("").WithWarnings(warning(err))
	}
	if ignored {
		return admission.Allowed(fmt.Sprintf("namespace %s is labelled %s=%s", ns, v1alpha1.WebhookLabel, v1alpha1.WebhookIgnore))
	}

	l := &lookup{m: m, log: log, ns: ns, pod: pod}
	lctx, cancel := context.WithTimeout(ctx, cmp.Or(m.LookupTimeout, DefaultLookupTimeout))
	defer cancel()
	volume, err := l.firstOurVolume(lctx, pod)
	var warnings []string
	switch {
	case volume == "" && err != nil:
		// A claim could not be read (the API server is slow under a burst
		// of pods). Route the pod anyway: hwameistor-scheduler runs every
		// default plugin, so a pod whose claims are not ours is placed as
		// default-scheduler would place it, while a pod whose claims are
		// ours must not go where no ledger checks the pools.
		log.Error(err, "Cannot tell whether the pod uses hwameistor volumes; routing it to "+v1alpha1.SchedulerName)
		volume, warnings = "(unresolved)", []string{routedWarning(err)}
	case volume == "":
		return admission.Allowed("pod uses no " + v1alpha1.DriverName + " volume").WithWarnings(l.notes...)
	case err != nil:
		// Another volume failed to resolve, but one is ours: route anyway.
		log.V(1).Info("Some volumes could not be resolved", "error", err.Error())
	}

	patched, err := setSchedulerName(req.Object.Raw)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("patching pod: %w", err))
	}
	log.V(1).Info("Routing pod to "+v1alpha1.SchedulerName, "volume", volume)
	return admission.PatchResponseFromRaw(req.Object.Raw, patched).WithWarnings(warnings...)
}

// routedWarning is what kubectl shows when a claim could not be checked.
func routedWarning(err error) string {
	return fmt.Sprintf("hwameistor webhook could not check this pod's claims (%v); it is routed to %s, which places pods without hwameistor volumes as the default scheduler does", err, v1alpha1.SchedulerName)
}

// warning is what kubectl shows the user when the webhook had to fail open.
func warning(err error) string {
	return fmt.Sprintf("hwameistor webhook could not check this pod (%v); it keeps its scheduler and may be placed without regard to local volume capacity", err)
}

// setSchedulerName edits the raw JSON rather than re-marshalling the typed
// pod, so the patch holds exactly one operation instead of noise from fields
// that do not round-trip (empty structs, null timestamps).
func setSchedulerName(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // keep integers exact
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, err
	}
	spec, ok := obj["spec"].(map[string]any)
	if !ok {
		spec = map[string]any{}
		obj["spec"] = spec
	}
	spec["schedulerName"] = v1alpha1.SchedulerName
	return json.Marshal(obj)
}

func (m *PodSchedulerMutator) namespaceIgnored(ctx context.Context, name string) (bool, error) {
	ns := &corev1.Namespace{}
	if err := m.Reader.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("reading namespace %s: %w", name, err)
	}
	return ns.Labels[v1alpha1.WebhookLabel] == v1alpha1.WebhookIgnore, nil
}

// lookup resolves the volumes of one admission request and remembers the
// default StorageClass so it is looked up at most once.
type lookup struct {
	m   *PodSchedulerMutator
	log logr.Logger
	ns  string
	pod *corev1.Pod

	defaultDone  bool
	defaultClass *storagev1.StorageClass
	defaultErr   error

	// notes are admission warnings for a pod left alone for want of an
	// object that may yet come (a claim, a StorageClass).
	notes []string
}

// firstOurVolume returns the name of the first volume provisioned by our
// driver, or "" and the lookup errors met on the way.
func (l *lookup) firstOurVolume(ctx context.Context, pod *corev1.Pod) (string, error) {
	var errs []error
	for _, v := range pod.Spec.Volumes {
		var ours bool
		var err error
		switch {
		case v.PersistentVolumeClaim != nil:
			ours, err = l.claimIsOurs(ctx, v.PersistentVolumeClaim.ClaimName)
		case v.Ephemeral != nil && v.Ephemeral.VolumeClaimTemplate != nil:
			ours, err = l.classIsOurs(ctx, v.Ephemeral.VolumeClaimTemplate.Spec.StorageClassName)
		default:
			continue
		}
		if ours {
			return v.Name, errors.Join(errs...)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("volume %s: %w", v.Name, err))
		}
	}
	return "", errors.Join(errs...)
}

// claimIsOurs checks the PVC's StorageClass and, when the PVC is bound, its
// PV: a statically provisioned or migrated volume may have no class of ours.
// A StatefulSet's pod is answered from its claim template first.
func (l *lookup) claimIsOurs(ctx context.Context, name string) (bool, error) {
	ours, fromTemplate := l.templateIsOurs(ctx, name)
	if ours {
		return true, nil
	}
	pvc := &corev1.PersistentVolumeClaim{}
	if err := l.m.Reader.Get(ctx, client.ObjectKey{Namespace: l.ns, Name: name}, pvc); err != nil {
		if apierrors.IsNotFound(err) {
			// A pod may be created before its PVC; there is nothing to go by.
			l.log.V(2).Info("PVC does not exist yet; not routing for it", "pvc", name)
			if fromTemplate {
				return false, nil // the template says it is not ours
			}
			l.notes = append(l.notes, fmt.Sprintf("persistentvolumeclaim %q does not exist yet, so this pod keeps its scheduler; "+
				"if the claim will use %s, create it before the pod (or recreate the pod) so that %s places it", name, v1alpha1.DriverName, v1alpha1.SchedulerName))
			return false, nil
		}
		return false, fmt.Errorf("reading PVC %s/%s: %w", l.ns, name, err)
	}
	class := pvc.Spec.StorageClassName
	if c, ok := pvc.Annotations[corev1.BetaStorageClassAnnotation]; ok {
		class = &c // the deprecated annotation wins, as in kube-controller-manager
	}
	ours, err := l.classIsOurs(ctx, class)
	if ours || pvc.Spec.VolumeName == "" {
		return ours, err
	}
	pv := &corev1.PersistentVolume{}
	if perr := l.m.Reader.Get(ctx, client.ObjectKey{Name: pvc.Spec.VolumeName}, pv); perr != nil {
		if !apierrors.IsNotFound(perr) {
			err = errors.Join(err, fmt.Errorf("reading PV %s: %w", pvc.Spec.VolumeName, perr))
		}
		return false, err
	}
	if pv.Spec.CSI != nil && pv.Spec.CSI.Driver == v1alpha1.DriverName {
		return true, nil
	}
	return false, err
}

// templateIsOurs reports whether the pod's StatefulSet makes the claim
// from a template of our class. The StatefulSet controller creates a claim
// a moment before its pod, so the informer has often not seen the claim yet
// and the lookup would go to the apiserver: under a burst of thousands of
// pods those reads made the webhook miss its timeout, and pods failed open
// to default-scheduler. The StatefulSet is in the cache long before. Only
// "ours" is trusted: a claim that existed before with another class is
// then routed to hwameistor-scheduler too, which places such a pod as the
// default scheduler would; anything else falls through to the claim.
// fromTemplate is whether a template of the pod's StatefulSet makes the
// claim at all.
func (l *lookup) templateIsOurs(ctx context.Context, claim string) (ours, fromTemplate bool) {
	owner := metav1.GetControllerOfNoCopy(l.pod)
	if owner == nil || owner.Kind != "StatefulSet" || owner.APIVersion != appsv1.SchemeGroupVersion.String() {
		return false, false
	}
	sts := &appsv1.StatefulSet{}
	if err := l.m.Reader.Get(ctx, client.ObjectKey{Namespace: l.ns, Name: owner.Name}, sts); err != nil {
		return false, false
	}
	for i := range sts.Spec.VolumeClaimTemplates {
		t := &sts.Spec.VolumeClaimTemplates[i]
		// The controller names claims <template>-<pod>; the pod is <set>-<ordinal>.
		if claim != t.Name+"-"+l.pod.Name || !strings.HasPrefix(l.pod.Name, sts.Name+"-") {
			continue
		}
		class := t.Spec.StorageClassName
		if c, ok := t.Annotations[corev1.BetaStorageClassAnnotation]; ok {
			class = &c
		}
		ours, err := l.classIsOurs(ctx, class)
		return ours && err == nil, true
	}
	return false, false
}

// classIsOurs reports whether the named StorageClass is provisioned by our
// driver. nil means "the default class"; "" means "no class" (static binding).
func (l *lookup) classIsOurs(ctx context.Context, name *string) (bool, error) {
	if name == nil {
		sc, err := l.defaultStorageClass(ctx)
		return sc != nil && sc.Provisioner == v1alpha1.DriverName, err
	}
	if *name == "" {
		return false, nil
	}
	sc := &storagev1.StorageClass{}
	if err := l.m.Reader.Get(ctx, client.ObjectKey{Name: *name}, sc); err != nil {
		if apierrors.IsNotFound(err) {
			l.log.V(2).Info("StorageClass does not exist; not routing for it", "storageClass", *name)
			l.notes = append(l.notes, fmt.Sprintf("storageclass %q does not exist, so this pod keeps its scheduler; "+
				"if the class will use %s, create it first and recreate the pod so that %s places it", *name, v1alpha1.DriverName, v1alpha1.SchedulerName))
			return false, nil
		}
		return false, fmt.Errorf("reading StorageClass %s: %w", *name, err)
	}
	return sc.Provisioner == v1alpha1.DriverName, nil
}

// defaultStorageClass picks the default class as kube-apiserver's
// DefaultStorageClass admission plugin does: the newest one marked default,
// ties broken by name.
func (l *lookup) defaultStorageClass(ctx context.Context) (*storagev1.StorageClass, error) {
	if l.defaultDone {
		return l.defaultClass, l.defaultErr
	}
	l.defaultDone = true
	list := &storagev1.StorageClassList{}
	if err := l.m.Reader.List(ctx, list); err != nil {
		l.defaultErr = fmt.Errorf("listing StorageClasses for the default one: %w", err)
		return nil, l.defaultErr
	}
	for i := range list.Items {
		sc := &list.Items[i]
		if sc.Annotations[defaultClassAnnotation] != "true" && sc.Annotations[betaDefaultClassAnnotation] != "true" {
			continue
		}
		best := l.defaultClass
		if best == nil || sc.CreationTimestamp.After(best.CreationTimestamp.Time) ||
			(sc.CreationTimestamp.Equal(&best.CreationTimestamp) && sc.Name < best.Name) {
			l.defaultClass = sc
		}
	}
	return l.defaultClass, nil
}
