// Package manifests_test checks the deployable manifests (manifests/): every
// kustomization builds; RBAC has no wildcards and grants each component
// exactly the table in rbac_test.go; images come from the one images list;
// the CSIDriver's storageCapacity switch and the default StorageClasses are
// as documented; the pods pass Pod Security where they claim to; the
// pieces refer to each other correctly; and the overlays apply with a
// server-side dry run against a real kube-apiserver (dryrun_test.go).
package manifests_test

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/kustomize/api/krusty"
	kusttypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"hwameistor.io/local/internal/scparams"
	"hwameistor.io/local/internal/testenv"
)

// Namespace is where every namespaced object goes.
const Namespace = "hwameistor"

// The kustomizations an operator deploys (all of them are built by
// TestEveryKustomizationBuilds, these are checked in depth).
const (
	base      = "manifests/base"
	prod      = "manifests/overlays/production"
	capacity  = "manifests/overlays/capacity-tracking"
	simulator = "manifests/overlays/simulator"
)

// imagesList names every image and tag, once.
const imagesList = "manifests/components/images/kustomization.yaml"

var deployables = []string{base, prod, capacity, simulator}

// root is the checkout's top folder.
func root() string { return testenv.RootDir() }

// build runs kustomize (krusty, the library kubectl embeds, with kubectl's
// defaults: load files only from within the kustomization's folder) on a
// folder relative to the checkout.
func build(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(root(), dir))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var out []*unstructured.Unstructured
	for _, r := range rm.Resources() {
		// Through JSON, so numbers are int64 as unstructured expects.
		data, err := r.MarshalJSON()
		if err != nil {
			t.Fatalf("kustomize build %s: %s: %v", dir, r.CurId(), err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(data); err != nil {
			t.Fatalf("kustomize build %s: %s: %v", dir, r.CurId(), err)
		}
		out = append(out, u)
	}
	return out
}

// objects are the built objects of one kustomization, by kind.
type objects []*unstructured.Unstructured

func (o objects) ofKind(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, u := range o {
		if u.GetKind() == kind {
			out = append(out, u)
		}
	}
	return out
}

func (o objects) find(kind, namespace, name string) *unstructured.Unstructured {
	for _, u := range o {
		if u.GetKind() == kind && u.GetNamespace() == namespace && u.GetName() == name {
			return u
		}
	}
	return nil
}

// typed converts a built object into its Go type.
func typed[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, out); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return out
}

// kustomizationDirs are the folders under manifests/ with a
// kustomization.yaml, and whether each is a Component (which only builds
// as part of another kustomization).
func kustomizationDirs(t *testing.T) map[string]bool {
	t.Helper()
	dirs := map[string]bool{}
	err := filepath.WalkDir(filepath.Join(root(), "manifests"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "kustomization.yaml" {
			return err
		}
		k := readKustomization(t, path)
		rel, _ := filepath.Rel(root(), filepath.Dir(path))
		dirs[rel] = k.Kind == kusttypes.ComponentKind
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

func readKustomization(t *testing.T, path string) *kusttypes.Kustomization {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k := &kusttypes.Kustomization{}
	if err := yaml.UnmarshalStrict(data, k); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return k
}

func TestEveryKustomizationBuilds(t *testing.T) {
	dirs := kustomizationDirs(t)
	for _, d := range deployables {
		if _, ok := dirs[d]; !ok {
			t.Errorf("%s/kustomization.yaml is missing", d)
		}
	}
	for dir, component := range dirs {
		if component {
			// Built through the overlays that use it.
			continue
		}
		t.Run(dir, func(t *testing.T) {
			if objs := build(t, dir); len(objs) == 0 {
				t.Errorf("%s builds to nothing", dir)
			}
		})
	}
	// Every component is used by some overlay.
	for dir, component := range dirs {
		if !component {
			continue
		}
		used := false
		for other, isComp := range dirs {
			if isComp {
				continue
			}
			k := readKustomization(t, filepath.Join(root(), other, "kustomization.yaml"))
			for _, c := range k.Components {
				if filepath.Clean(filepath.Join(other, c)) == dir {
					used = true
				}
			}
		}
		if !used {
			t.Errorf("component %s is used by no kustomization, so nothing builds it", dir)
		}
	}
}

// allowedImages are the images of the base's images list, name:tag.
func allowedImages(t *testing.T) []string {
	t.Helper()
	k := readKustomization(t, filepath.Join(root(), imagesList))
	var out []string
	for _, im := range k.Images {
		name := im.Name
		if im.NewName != "" {
			name = im.NewName
		}
		switch {
		case im.Digest != "":
			out = append(out, name+"@"+im.Digest)
		case im.NewTag != "":
			out = append(out, name+":"+im.NewTag)
		default:
			t.Errorf("images entry %s has no tag or digest: name every version in the list", im.Name)
		}
	}
	return out
}

// podTemplates are the pod templates of the Deployments and DaemonSets.
func podTemplates(t *testing.T, objs objects) map[string]*corev1.PodTemplateSpec {
	t.Helper()
	out := map[string]*corev1.PodTemplateSpec{}
	for _, u := range objs.ofKind("Deployment") {
		out["Deployment "+u.GetName()] = &typed[appsv1.Deployment](t, u).Spec.Template
	}
	for _, u := range objs.ofKind("DaemonSet") {
		out["DaemonSet "+u.GetName()] = &typed[appsv1.DaemonSet](t, u).Spec.Template
	}
	for _, u := range objs {
		switch u.GetKind() {
		case "Deployment", "DaemonSet", "StatefulSet", "Job", "CronJob", "Pod", "ReplicaSet":
			if _, ok := out[u.GetKind()+" "+u.GetName()]; !ok {
				t.Errorf("%s %s: the tests do not check this kind of workload yet", u.GetKind(), u.GetName())
			}
		}
	}
	return out
}

func TestImagesComeFromTheImagesList(t *testing.T) {
	allowed := allowedImages(t)
	ours := []string{"hwameistor/local-scheduler:dev", "hwameistor/local-controllers:dev", "hwameistor/local-csi-controller:dev", "hwameistor/local-node:dev"}
	for _, im := range ours {
		if !slices.Contains(allowed, im) {
			t.Errorf("the images list has no %s", im)
		}
	}
	for _, dir := range deployables {
		used := map[string]bool{}
		for name, tmpl := range podTemplates(t, build(t, dir)) {
			for _, c := range append(slices.Clone(tmpl.Spec.InitContainers), tmpl.Spec.Containers...) {
				used[c.Image] = true
				if !slices.Contains(allowed, c.Image) {
					t.Errorf("%s: %s container %s has image %q, which is not in %s images %v", dir, name, c.Name, c.Image, imagesList, allowed)
				}
			}
		}
		for _, im := range allowed {
			if !used[im] {
				t.Errorf("%s: image %s is listed but no container uses it", dir, im)
			}
		}
	}
}

func provisionerArgs(t *testing.T, objs objects) []string {
	t.Helper()
	u := objs.find("Deployment", Namespace, "hwameistor-csi-controller")
	if u == nil {
		t.Fatal("no Deployment hwameistor-csi-controller")
	}
	for _, c := range typed[appsv1.Deployment](t, u).Spec.Template.Spec.Containers {
		if c.Name == "csi-provisioner" {
			return c.Args
		}
	}
	t.Fatal("Deployment hwameistor-csi-controller has no csi-provisioner container")
	return nil
}

func TestCSIDriverStorageCapacitySwitch(t *testing.T) {
	for _, tc := range []struct {
		dir      string
		capacity bool
	}{{base, false}, {prod, false}, {capacity, true}, {simulator, false}} {
		t.Run(tc.dir, func(t *testing.T) {
			objs := objects(build(t, tc.dir))
			u := objs.find("CSIDriver", "", "lvm.hwameistor.io")
			if u == nil {
				t.Fatal("no CSIDriver lvm.hwameistor.io")
			}
			d := typed[storagev1.CSIDriver](t, u)
			if d.Spec.StorageCapacity == nil || *d.Spec.StorageCapacity != tc.capacity {
				t.Errorf("CSIDriver storageCapacity is %v, want %v", d.Spec.StorageCapacity, tc.capacity)
			}
			if d.Spec.AttachRequired == nil || *d.Spec.AttachRequired {
				t.Errorf("CSIDriver attachRequired is %v, want false", d.Spec.AttachRequired)
			}
			if d.Spec.PodInfoOnMount == nil || !*d.Spec.PodInfoOnMount {
				t.Errorf("CSIDriver podInfoOnMount is %v, want true", d.Spec.PodInfoOnMount)
			}

			args := provisionerArgs(t, objs)
			want := []string{"--feature-gates=Topology=true", "--extra-create-metadata", "--leader-election", "--csi-address=/csi/csi.sock"}
			if tc.capacity {
				want = append(want, "--enable-capacity=true", "--capacity-ownerref-level=2")
			} else {
				want = append(want, "--enable-capacity=false")
			}
			for _, a := range want {
				if !slices.Contains(args, a) {
					t.Errorf("csi-provisioner args %v lack %s", args, a)
				}
			}
			for _, a := range args {
				if strings.HasPrefix(a, "--enable-capacity") && !slices.Contains(want, a) {
					t.Errorf("csi-provisioner has %s as well", a)
				}
			}
			for _, prefix := range []string{"--kube-api-qps=", "--kube-api-burst="} {
				if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, prefix) }) {
					t.Errorf("csi-provisioner args %v do not raise %s (the default 5/10 throttles provisioning)", args, prefix)
				}
			}
		})
	}
}

// defaultClasses are the default StorageClasses (docs/storageclasses.md): name -> poolClass,
// replicaNumber, convertible.
var defaultClasses = map[string][3]string{
	"hwameistor-storage-lvm-hdd":              {"HDD", "1", "false"},
	"hwameistor-storage-lvm-hdd-ha":           {"HDD", "2", "false"},
	"hwameistor-storage-lvm-hdd-convertible":  {"HDD", "1", "true"},
	"hwameistor-storage-lvm-ssd":              {"SSD", "1", "false"},
	"hwameistor-storage-lvm-ssd-ha":           {"SSD", "2", "false"},
	"hwameistor-storage-lvm-ssd-convertible":  {"SSD", "1", "true"},
	"hwameistor-storage-lvm-nvme":             {"NVMe", "1", "false"},
	"hwameistor-storage-lvm-nvme-ha":          {"NVMe", "2", "false"},
	"hwameistor-storage-lvm-nvme-convertible": {"NVMe", "1", "true"},
}

func TestDefaultStorageClasses(t *testing.T) {
	for _, dir := range deployables {
		objs := objects(build(t, dir))
		seen := map[string]bool{}
		for _, u := range objs.ofKind("StorageClass") {
			sc := typed[storagev1.StorageClass](t, u)
			seen[sc.Name] = true
			want, ok := defaultClasses[sc.Name]
			if !ok {
				t.Errorf("%s: StorageClass %s is not one of the default classes", dir, sc.Name)
				continue
			}
			if sc.Provisioner != "lvm.hwameistor.io" {
				t.Errorf("%s: StorageClass %s provisioner %q", dir, sc.Name, sc.Provisioner)
			}
			if sc.VolumeBindingMode == nil || *sc.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer {
				t.Errorf("%s: StorageClass %s volumeBindingMode %v, want WaitForFirstConsumer", dir, sc.Name, sc.VolumeBindingMode)
			}
			if sc.AllowVolumeExpansion == nil || !*sc.AllowVolumeExpansion {
				t.Errorf("%s: StorageClass %s does not allow volume expansion", dir, sc.Name)
			}
			p := sc.Parameters
			got := [3]string{p[scparams.PoolClass], p[scparams.ReplicaNumber], p[scparams.Convertible]}
			if got != want || p[scparams.PoolType] != "REGULAR" || p[scparams.VolumeKind] != "LVM" || p[scparams.FSType] != "xfs" {
				t.Errorf("%s: StorageClass %s parameters %v; want poolClass/replicaNumber/convertible %v, poolType REGULAR, volumeKind LVM, fstype xfs", dir, sc.Name, p, want)
			}
			// The driver and the scheduler accept them.
			if _, err := scparams.Parse(p); err != nil {
				t.Errorf("%s: StorageClass %s: %v", dir, sc.Name, err)
			}
		}
		for name := range defaultClasses {
			if !seen[name] {
				t.Errorf("%s: StorageClass %s is missing", dir, name)
			}
		}
	}
}

// TestPodSecurity: the namespace enforces privileged for the node agent
// only; every other pod must pass the restricted profile, so a privilege
// added by mistake shows up here.
func TestPodSecurity(t *testing.T) {
	eval, err := policy.NewEvaluator(policy.DefaultChecks())
	if err != nil {
		t.Fatal(err)
	}
	restricted := psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}
	privileged := map[string]bool{"DaemonSet hwameistor-node": true}
	for _, dir := range deployables {
		objs := objects(build(t, dir))
		ns := objs.find("Namespace", "", Namespace)
		if ns == nil {
			t.Fatalf("%s: no Namespace %s", dir, Namespace)
		}
		labels := ns.GetLabels()
		if labels[psapi.EnforceLevelLabel] != string(psapi.LevelPrivileged) || labels[psapi.AuditLevelLabel] != string(psapi.LevelRestricted) {
			t.Errorf("%s: Namespace %s labels %v: want enforce privileged (the node agent) and audit restricted", dir, Namespace, labels)
		}
		for name, tmpl := range podTemplates(t, objs) {
			res := policy.AggregateCheckResults(eval.EvaluatePod(restricted, &tmpl.ObjectMeta, &tmpl.Spec))
			switch {
			case privileged[name] && res.Allowed:
				t.Errorf("%s: %s passes restricted; drop it from the privileged list and the namespace's enforce level", dir, name)
			case !privileged[name] && !res.Allowed:
				t.Errorf("%s: %s violates restricted: %s", dir, name, res.ForbiddenDetail())
			}
		}
	}
}

// TestWiring checks the references between objects that no apiserver
// checks: the webhook's Service and port, the Services' and budgets'
// selectors, the scheduler's ConfigMap and lease, the namespaces.
func TestWiring(t *testing.T) {
	for _, dir := range deployables {
		t.Run(dir, func(t *testing.T) {
			objs := objects(build(t, dir))
			templates := podTemplates(t, objs)

			for _, u := range objs {
				ns := u.GetNamespace()
				switch {
				case u.GetKind() == "RoleBinding" && ns == "kube-system" && u.GetName() == "hwameistor-scheduler-extension-apiserver-authentication-reader":
				case (u.GetKind() == "Role" || u.GetKind() == "RoleBinding") && ns == corev1.NamespaceNodeLease && u.GetName() == "hwameistor-controllers-node-leases":
					// The failover controller reads kubelets' Leases there.
				case ns != "" && ns != Namespace:
					t.Errorf("%s %s is in namespace %q, want %s", u.GetKind(), u.GetName(), ns, Namespace)
				case ns == "" && namespaced(u.GetKind()):
					t.Errorf("%s %s has no namespace: kubectl would put it in the kubeconfig's namespace", u.GetKind(), u.GetName())
				}
			}

			// Webhook -> Service -> pods' port.
			for _, u := range objs.ofKind("MutatingWebhookConfiguration") {
				hooks, _, _ := unstructured.NestedSlice(u.Object, "webhooks")
				for _, h := range hooks {
					svc, _, _ := unstructured.NestedMap(h.(map[string]interface{}), "clientConfig", "service")
					name, _ := svc["name"].(string)
					ns, _ := svc["namespace"].(string)
					port, _ := svc["port"].(int64)
					s := objs.find("Service", ns, name)
					if s == nil {
						t.Errorf("webhook of %s calls Service %s/%s, which is not deployed", u.GetName(), ns, name)
						continue
					}
					checkServicePort(t, typed[corev1.Service](t, s), int32(port), templates)
				}
			}

			// Budgets select pods that exist.
			for _, u := range objs.ofKind("PodDisruptionBudget") {
				sel, _, _ := unstructured.NestedStringMap(u.Object, "spec", "selector", "matchLabels")
				if matching(sel, templates) == "" {
					t.Errorf("PodDisruptionBudget %s selects %v, which no pod template carries", u.GetName(), sel)
				}
			}

			// Scheduler: its ConfigMap exists under the generated name and
			// its lease is the one its Role lets it renew.
			sched := templates["Deployment hwameistor-scheduler"]
			if sched == nil {
				t.Fatal("no Deployment hwameistor-scheduler")
			}
			var cmName string
			for _, v := range sched.Spec.Volumes {
				if v.ConfigMap != nil {
					cmName = v.ConfigMap.Name
				}
			}
			cm := objs.find("ConfigMap", Namespace, cmName)
			if cm == nil {
				t.Fatalf("the scheduler mounts ConfigMap %q, which is not deployed", cmName)
			}
			data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
			var cfg struct {
				LeaderElection struct {
					LeaderElect       bool   `json:"leaderElect"`
					ResourceName      string `json:"resourceName"`
					ResourceNamespace string `json:"resourceNamespace"`
				} `json:"leaderElection"`
			}
			if err := yaml.Unmarshal([]byte(data["scheduler-config.yaml"]), &cfg); err != nil {
				t.Fatalf("ConfigMap %s scheduler-config.yaml: %v", cmName, err)
			}
			le := cfg.LeaderElection
			if !le.LeaderElect || le.ResourceNamespace != Namespace || le.ResourceName != "hwameistor-scheduler" {
				t.Errorf("scheduler leaderElection %+v: want leaderElect on, lease %s/hwameistor-scheduler (the one its Role names)", le, Namespace)
			}
			if !slices.Contains(sched.Spec.Containers[0].Args, "--config=/etc/hwameistor-scheduler/scheduler-config.yaml") {
				t.Errorf("scheduler args %v do not read the mounted configuration", sched.Spec.Containers[0].Args)
			}

			// Node agent: the downward API node name, and kubelet's folder
			// with Bidirectional propagation.
			node := templates["DaemonSet hwameistor-node"]
			if node == nil {
				t.Fatal("no DaemonSet hwameistor-node")
			}
			agent := node.Spec.Containers[0]
			if agent.Name != "hwameistor-node" || agent.SecurityContext == nil || agent.SecurityContext.Privileged == nil || !*agent.SecurityContext.Privileged {
				t.Errorf("the node DaemonSet's first container must be hwameistor-node, privileged")
			}
			if !slices.ContainsFunc(agent.Env, func(e corev1.EnvVar) bool {
				return e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName"
			}) {
				t.Errorf("hwameistor-node has no NODE_NAME from spec.nodeName")
			}
			if !slices.ContainsFunc(agent.VolumeMounts, func(m corev1.VolumeMount) bool {
				return m.MountPath == "/var/lib/kubelet" && m.MountPropagation != nil && *m.MountPropagation == corev1.MountPropagationBidirectional
			}) {
				t.Errorf("hwameistor-node does not mount /var/lib/kubelet with Bidirectional propagation")
			}
		})
	}
}

func checkServicePort(t *testing.T, s *corev1.Service, port int32, templates map[string]*corev1.PodTemplateSpec) {
	t.Helper()
	owner := matching(s.Spec.Selector, templates)
	if owner == "" {
		t.Errorf("Service %s selects %v, which no pod template carries", s.Name, s.Spec.Selector)
		return
	}
	for _, p := range s.Spec.Ports {
		if p.Port != port {
			continue
		}
		for _, c := range templates[owner].Spec.Containers {
			for _, cp := range c.Ports {
				if (p.TargetPort.StrVal != "" && cp.Name == p.TargetPort.StrVal) || (p.TargetPort.StrVal == "" && cp.ContainerPort == p.TargetPort.IntVal) {
					return
				}
			}
		}
		t.Errorf("Service %s port %d targets %s, which no container of %s declares", s.Name, port, p.TargetPort.String(), owner)
		return
	}
	t.Errorf("Service %s has no port %d", s.Name, port)
}

// matching returns the pod template whose labels carry every selector
// label ("" when none does).
func matching(sel map[string]string, templates map[string]*corev1.PodTemplateSpec) string {
	if len(sel) == 0 {
		return ""
	}
	names := make([]string, 0, len(templates))
	for n := range templates {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ok := true
		for k, v := range sel {
			if templates[n].Labels[k] != v {
				ok = false
			}
		}
		if ok {
			return n
		}
	}
	return ""
}

// namespaced reports whether a kind the manifests use is namespaced.
func namespaced(kind string) bool {
	switch kind {
	case "Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
		"StorageClass", "CSIDriver", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "PriorityClass":
		return false
	}
	return true
}
