package perf

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// provisionerName is a benchmark-only plugin that plays external-provisioner
// and the PV controller: scheduler_perf runs only an apiserver and the
// scheduler, and a pod with a WaitForFirstConsumer claim is bound only once
// its claim is. For each claim given a selected node it creates a PV of our
// driver and binds both sides, as quickly as the apiserver allows.
const provisionerName = "BenchProvisioner"

type provisioner struct{}

var _ framework.PreFilterPlugin = provisioner{}

func (provisioner) Name() string { return provisionerName }

// PreFilter does nothing: the plugin exists for the goroutine New starts.
func (provisioner) PreFilter(context.Context, fwk.CycleState, *corev1.Pod, []fwk.NodeInfo) (*framework.PreFilterResult, *fwk.Status) {
	return nil, fwk.NewStatus(fwk.Skip)
}

func (provisioner) PreFilterExtensions() framework.PreFilterExtensions { return nil }

func newProvisioner(ctx context.Context, _ runtime.Object, h framework.Handle) (framework.Plugin, error) {
	cs := h.ClientSet()
	work := make(chan *corev1.PersistentVolumeClaim, 10000)
	_, err := h.SharedInformerFactory().Core().V1().PersistentVolumeClaims().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, obj interface{}) {
			pvc := obj.(*corev1.PersistentVolumeClaim)
			if pvc.Spec.VolumeName == "" && pvc.Annotations["volume.kubernetes.io/selected-node"] != "" {
				work <- pvc
			}
		},
	})
	if err != nil {
		return nil, err
	}
	for i := 0; i < 8; i++ {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case pvc := <-work:
					if err := bind(ctx, cs, pvc); err != nil {
						klog.FromContext(ctx).Error(err, "Benchmark provisioner", "pvc", klog.KObj(pvc))
					}
				}
			}
		}()
	}
	return provisioner{}, nil
}

// bind creates the claim's PV (pre-bound to it) and binds the claim.
func bind(ctx context.Context, cs kubernetes.Interface, pvc *corev1.PersistentVolumeClaim) error {
	name := "pvc-" + string(pvc.UID)
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{"pv.kubernetes.io/provisioned-by": v1.DriverName}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      pvc.Spec.Resources.Requests,
			AccessModes:                   pvc.Spec.AccessModes,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			StorageClassName:              *pvc.Spec.StorageClassName,
			ClaimRef:                      &corev1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID},
			PersistentVolumeSource:        corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: v1.DriverName, VolumeHandle: name}},
		},
	}
	if _, err := cs.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating PV: %w", err)
	}
	for attempt := 0; attempt < 5; attempt++ {
		cur, err := cs.CoreV1().PersistentVolumeClaims(pvc.Namespace).Get(ctx, pvc.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.Spec.VolumeName != "" {
			return nil
		}
		cur.Spec.VolumeName = name
		metav1.SetMetaDataAnnotation(&cur.ObjectMeta, "pv.kubernetes.io/bind-completed", "yes")
		if _, err = cs.CoreV1().PersistentVolumeClaims(pvc.Namespace).Update(ctx, cur, metav1.UpdateOptions{}); err == nil {
			return nil
		} else if !apierrors.IsConflict(err) {
			return err
		}
	}
	return fmt.Errorf("binding claim %s/%s: too many conflicts", pvc.Namespace, pvc.Name)
}
