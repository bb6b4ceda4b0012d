package stack

import (
	"context"
	"fmt"
	"path/filepath"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// namespace is where manifests/ put the components.
const namespace = "hwameistor"

// Identities of the components: the ServiceAccounts of manifests/base.
const (
	saScheduler     = "hwameistor-scheduler"
	saControllers   = "hwameistor-controllers"
	saCSIController = "hwameistor-csi-controller"
	saNode          = "hwameistor-node"
)

// rbacKinds are what installRBAC takes from the manifests.
var rbacKinds = map[string]bool{"ServiceAccount": true, "ClusterRole": true, "ClusterRoleBinding": true, "Role": true, "RoleBinding": true}

// installRBAC creates the ServiceAccounts, roles and bindings of
// manifests/base and writes a kubeconfig for each ServiceAccount (a bound
// token, valid two days), so that every component runs with exactly the
// privileges an installation grants it: a grant missing from the manifests
// fails here as it would in a cluster. It returns the kubeconfig files by
// ServiceAccount.
func (h *Stack) installRBAC(ctx context.Context) (map[string]string, error) {
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).
		Run(filesys.MakeFsOnDisk(), filepath.Join(h.Root, "manifests", "base"))
	if err != nil {
		return nil, fmt.Errorf("building manifests/base: %w", err)
	}
	var accounts []string
	for _, r := range resources.Resources() {
		if !rbacKinds[r.GetKind()] {
			continue
		}
		m, err := r.Map()
		if err != nil {
			return nil, err
		}
		obj := &unstructured.Unstructured{Object: m}
		if err := h.Client.Create(ctx, obj); err != nil {
			return nil, fmt.Errorf("creating %s %s: %w", obj.GetKind(), obj.GetName(), err)
		}
		if obj.GetKind() == "ServiceAccount" {
			accounts = append(accounts, obj.GetName())
		}
	}

	admin, err := clientcmd.LoadFromFile(h.Kubeconfig)
	if err != nil {
		return nil, err
	}
	cluster := admin.Clusters[admin.Contexts[admin.CurrentContext].Cluster]
	out := map[string]string{}
	for _, sa := range accounts {
		tr, err := h.Clientset.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](48 * 3600)},
		}, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("token for ServiceAccount %s: %w", sa, err)
		}
		cfg := clientcmdapi.NewConfig()
		cfg.Clusters["local"] = cluster
		cfg.AuthInfos[sa] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
		cfg.Contexts[sa] = &clientcmdapi.Context{Cluster: "local", AuthInfo: sa}
		cfg.CurrentContext = sa
		path := filepath.Join(h.Work, "kubeconfig-"+sa)
		if err := clientcmd.WriteToFile(*cfg, path); err != nil {
			return nil, err
		}
		out[sa] = path
	}
	for _, sa := range []string{saScheduler, saControllers, saCSIController, saNode} {
		if out[sa] == "" {
			return nil, fmt.Errorf("manifests/base has no ServiceAccount %s", sa)
		}
	}
	return out, nil
}
