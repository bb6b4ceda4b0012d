package stack

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// createFakeNode registers a kwok-managed Node and the CSINode that kubelet
// and node-driver-registrar would create on a real node (external-provisioner
// needs its topology key).
func (h *Stack) createFakeNode(ctx context.Context, nodeName, zone string) error {
	res := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("128Gi"), corev1.ResourcePods: resource.MustParse("110")}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: nodeName,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
			Labels: map[string]string{"kubernetes.io/hostname": nodeName, "type": "kwok",
				corev1.LabelTopologyZone: zone, v1.TopologyKey: nodeName}},
		Spec:   corev1.NodeSpec{Unschedulable: h.Cordoned[nodeName]},
		Status: corev1.NodeStatus{Capacity: res, Allocatable: res},
	}
	for k, v := range h.NodeLabels[nodeName] {
		node.Labels[k] = v
	}
	if _, err := h.Clientset.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating node: %w", err)
	}
	csiNode := &storagev1.CSINode{
		ObjectMeta: metav1.ObjectMeta{Name: nodeName},
		Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{{
			Name: v1.DriverName, NodeID: nodeName, TopologyKeys: []string{v1.TopologyKey}}}},
	}
	if _, err := h.Clientset.StorageV1().CSINodes().Create(ctx, csiNode, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating CSINode: %w", err)
	}
	return nil
}

// installCSIDriver registers the CSIDriver object as manifests/base does,
// with storageCapacity on only for the baseline.
func (h *Stack) installCSIDriver() error {
	d := &storagev1.CSIDriver{
		ObjectMeta: metav1.ObjectMeta{Name: v1.DriverName},
		Spec: storagev1.CSIDriverSpec{
			AttachRequired:  ptr.To(false),
			PodInfoOnMount:  ptr.To(true),
			StorageCapacity: ptr.To(h.Baseline),
		},
	}
	_, err := h.Clientset.StorageV1().CSIDrivers().Create(context.Background(), d, metav1.CreateOptions{})
	return err
}

// installWebhook registers the shipped MutatingWebhookConfiguration, pointed
// at the controllers process on 127.0.0.1, without a caBundle (the
// controllers set it), and returns its name.
func (h *Stack) installWebhook() (string, error) {
	raw, err := os.ReadFile(filepath.Join(h.Root, "manifests", "webhook", "mutatingwebhookconfiguration.yaml"))
	if err != nil {
		return "", err
	}
	cfg := &admissionv1.MutatingWebhookConfiguration{}
	if err := yaml.Unmarshal(raw, cfg); err != nil {
		return "", err
	}
	url := fmt.Sprintf("https://127.0.0.1:%d/mutate-v1-pod", h.Ports+6)
	for i := range cfg.Webhooks {
		cfg.Webhooks[i].ClientConfig = admissionv1.WebhookClientConfig{URL: &url}
	}
	_, err = h.Clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(context.Background(), cfg, metav1.CreateOptions{})
	return cfg.Name, err
}

// waitForCABundle waits until the controllers have issued the webhook's
// certificate and set the caBundle of the configuration name.
func (h *Stack) waitForCABundle(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		cfg, err := h.Clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, w := range cfg.Webhooks {
			if len(w.ClientConfig.CABundle) == 0 {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("the controllers did not set the caBundle of %s within 2m (see controllers.log): %w", name, err)
	}
	return nil
}
