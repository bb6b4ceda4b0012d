package manifests_test

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	rbacv1 "k8s.io/api/rbac/v1"
)

// TestNoWildcards fails on any `*` in a Role or ClusterRole of any
// kustomization: verbs, resources (including "x/*"), API groups, resource
// names, non-resource URLs.
func TestNoWildcards(t *testing.T) {
	for dir, component := range kustomizationDirs(t) {
		if component {
			continue
		}
		for _, u := range build(t, dir) {
			if u.GetKind() != "Role" && u.GetKind() != "ClusterRole" {
				continue
			}
			role := typed[rbacv1.ClusterRole](t, u) // Role has the same rules field
			if role.AggregationRule != nil {
				t.Errorf("%s: %s %s aggregates other roles: its grants cannot be reviewed here", dir, u.GetKind(), u.GetName())
			}
			for i, r := range role.Rules {
				for field, values := range map[string][]string{
					"verbs": r.Verbs, "resources": r.Resources, "apiGroups": r.APIGroups,
					"resourceNames": r.ResourceNames, "nonResourceURLs": r.NonResourceURLs,
				} {
					for _, v := range values {
						if strings.Contains(v, "*") {
							t.Errorf("%s: %s %s rule %d grants %s %q: name each one the code uses", dir, u.GetKind(), u.GetName(), i, field, v)
						}
					}
				}
			}
		}
	}
}

// Built-in roles the manifests bind without defining them.
var builtinRoles = map[string]bool{
	"ClusterRole system:kube-scheduler":                          true,
	"ClusterRole system:volume-scheduler":                        true,
	"Role kube-system/extension-apiserver-authentication-reader": true,
}

// controllerRoles are roles the manifests bind but the controllers create
// and keep at runtime: hwameistor-controllers (controllers/nodecerts) keep
// hwameistor-node-certificates granting get on exactly the node
// certificate Secrets hwameistor-replication-node-<node>, whose names
// depend on the nodes (never the CA's Secret, never a rule without
// resourceNames; TestServerSideDryRun checks what such a Role grants).
var controllerRoles = map[string]bool{
	"Role " + Namespace + "/hwameistor-node-certificates": true,
}

// grants spells out rules as "scope group/resource verb [name]" lines;
// scope is "cluster" or a namespace, the core group is "core".
func grants(scope, group string, resources, verbs []string, names ...string) []string {
	if group == "" {
		group = "core"
	}
	var out []string
	for _, r := range resources {
		for _, v := range verbs {
			if len(names) == 0 {
				out = append(out, fmt.Sprintf("%s %s/%s %s", scope, group, r, v))
			}
			for _, n := range names {
				out = append(out, fmt.Sprintf("%s %s/%s %s [%s]", scope, group, r, v, n))
			}
		}
	}
	return out
}

func l(s ...string) []string { return s }

var (
	read   = l("get", "list", "watch")
	hwKind = l("localstoragenodes", "localvolumes", "localvolumereplicas", "localvolumegroups")
)

// wantRBAC is what each ServiceAccount may do, read off the code (see the
// comments in manifests/base/*/rbac.yaml for which line needs what). A
// change here is a change in privilege: review it as such.
func wantRBAC(capacityTracking bool) map[string][]string {
	want := map[string][][]string{
		"hwameistor-scheduler": {
			l("cluster ClusterRole system:kube-scheduler", "cluster ClusterRole system:volume-scheduler",
				"kube-system Role kube-system/extension-apiserver-authentication-reader"),
			grants("cluster", "hwameistor.io", hwKind, read),
			grants("cluster", "hwameistor.io", l("localvolumegroups"), l("create", "update")),
			grants(Namespace, "coordination.k8s.io", l("leases"), l("create")),
			grants(Namespace, "coordination.k8s.io", l("leases"), l("get", "update"), "hwameistor-scheduler"),
		},
		"hwameistor-controllers": {
			grants("cluster", "hwameistor.io", l("localvolumes"), l("get", "list", "watch", "update", "delete")),
			grants("cluster", "hwameistor.io", l("localvolumes/status", "localvolumes/finalizers"), l("update")),
			grants("cluster", "hwameistor.io", l("localvolumereplicas"), l("get", "list", "watch", "create", "update", "patch", "delete")),
			grants("cluster", "hwameistor.io", l("localvolumemigrates"), l("get", "list", "watch", "create", "patch", "delete")),
			grants("cluster", "hwameistor.io", l("localvolumemigrates/status", "localvolumeconverts/status", "localvolumeexpands/status"), l("update")),
			grants("cluster", "hwameistor.io", l("localvolumeconverts"), l("get", "list", "watch", "update")),
			grants("cluster", "hwameistor.io", l("localvolumeexpands"), read),
			grants("cluster", "hwameistor.io", l("localvolumegroups"), l("get", "list", "watch", "update", "delete")),
			grants("cluster", "hwameistor.io", l("localvolumegroups/status"), l("update")),
			grants("cluster", "hwameistor.io", l("localstoragenodes"), l("get", "list", "watch", "patch")),
			grants("cluster", "hwameistor.io", l("localstoragenodes/status"), l("patch")),
			grants("cluster", "", l("nodes"), l("get", "list", "watch", "patch")),
			grants("cluster", "", l("persistentvolumeclaims", "persistentvolumes", "namespaces", "pods"), read),
			// controllers/failover: deletes the pods it fails over, marks a
			// labelled pod completed, reads a kubelet's Lease.
			grants("cluster", "", l("pods"), l("delete", "patch")),
			grants("kube-node-lease", "coordination.k8s.io", l("leases"), l("get")),
			grants("cluster", "storage.k8s.io", l("storageclasses"), read),
			grants("cluster", "apps", l("statefulsets"), read),
			grants("cluster", "", l("events"), l("create", "patch")),
			grants(Namespace, "coordination.k8s.io", l("leases"), l("create")),
			grants(Namespace, "coordination.k8s.io", l("leases"), l("get", "update"), "hwameistor-controllers"),
			grants(Namespace, "coordination.k8s.io", l("leases"), read),
			grants("cluster", "admissionregistration.k8s.io", l("mutatingwebhookconfigurations"), l("get", "update"), "hwameistor-pod-scheduler"),
			grants(Namespace, "", l("secrets"), l("create")),
			grants(Namespace, "", l("secrets"), l("get", "update"), "hwameistor-controllers-webhook-cert"),
			// controllers/nodecerts: the replication CA and the node
			// certificate Secrets (names depend on the nodes), and the
			// agents' Role to them.
			grants(Namespace, "", l("secrets"), l("get", "list", "watch", "create", "update", "delete")),
			grants(Namespace, "rbac.authorization.k8s.io", l("roles"), l("create")),
			grants(Namespace, "rbac.authorization.k8s.io", l("roles"), l("get", "update"), "hwameistor-node-certificates"),
		},
		"hwameistor-csi-controller": {
			// hwameistor-csi-controller
			grants("cluster", "hwameistor.io", l("localvolumes", "localvolumeexpands"), l("get", "list", "watch", "create", "delete")),
			grants("cluster", "hwameistor.io", l("localstoragenodes", "localvolumereplicas"), read),
			grants("cluster", "hwameistor.io", l("localvolumegroups"), l("get", "list", "watch", "update")),
			// external-provisioner
			grants("cluster", "", l("persistentvolumes"), l("get", "list", "watch", "create", "patch", "delete")),
			grants("cluster", "", l("persistentvolumeclaims"), l("get", "list", "watch", "update")),
			grants("cluster", "storage.k8s.io", l("storageclasses", "csinodes"), read),
			grants("cluster", "", l("nodes"), read),
			// external-provisioner and external-resizer
			grants("cluster", "", l("events"), l("create", "update", "patch")),
			// external-resizer
			grants("cluster", "", l("persistentvolumes"), l("get", "list", "watch", "patch")),
			grants("cluster", "", l("persistentvolumeclaims"), read),
			grants("cluster", "", l("persistentvolumeclaims/status"), l("patch")),
			// the sidecars' leader election
			grants(Namespace, "coordination.k8s.io", l("leases"), l("create")),
			grants(Namespace, "coordination.k8s.io", l("leases"), l("get", "update"), "lvm-hwameistor-io", "external-resizer-lvm-hwameistor-io"),
		},
		"hwameistor-node": {
			grants("cluster", "hwameistor.io", l("localvolumereplicas"), l("get", "list", "watch", "update", "patch")),
			grants("cluster", "hwameistor.io", l("localvolumereplicas/status"), l("update", "patch")),
			grants("cluster", "hwameistor.io", l("localvolumes"), l("get", "list", "watch", "patch")),
			grants("cluster", "hwameistor.io", l("localstoragenodes/status"), l("patch")),
			grants("cluster", "hwameistor.io", l("localstoragenodes"), l("get", "list", "watch", "create", "patch")),
			l(Namespace + " Role " + Namespace + "/hwameistor-node-certificates"),
			grants(Namespace, "coordination.k8s.io", l("leases"), l("get", "create", "update")),
			grants("cluster", "", l("nodes"), read),
			grants("cluster", "", l("events"), l("create", "patch")),
		},
	}
	if capacityTracking {
		want["hwameistor-csi-controller"] = append(want["hwameistor-csi-controller"],
			grants(Namespace, "storage.k8s.io", l("csistoragecapacities"), l("get", "list", "watch", "create", "update", "patch", "delete")),
			grants(Namespace, "", l("pods"), l("get")),
			grants(Namespace, "apps", l("replicasets"), l("get")))
	}
	out := map[string][]string{}
	for sa, groups := range want {
		out[sa] = normalise(slices.Concat(groups...))
	}
	return out
}

func normalise(lines []string) []string {
	sort.Strings(lines)
	return slices.Compact(lines)
}

// TestLeastPrivilege computes what each ServiceAccount is granted through
// the bindings of each kustomization and compares it with wantRBAC: a
// grant the table does not list (more than the code uses) fails, and so
// does a missing one (the component would be forbidden).
func TestLeastPrivilege(t *testing.T) {
	for _, tc := range []struct {
		dir      string
		capacity bool
	}{{base, false}, {prod, false}, {capacity, true}, {simulator, false}} {
		t.Run(tc.dir, func(t *testing.T) {
			objs := objects(build(t, tc.dir))
			roles := map[string][]rbacv1.PolicyRule{}
			for _, u := range objs {
				switch u.GetKind() {
				case "ClusterRole":
					roles["ClusterRole "+u.GetName()] = typed[rbacv1.ClusterRole](t, u).Rules
				case "Role":
					roles["Role "+u.GetNamespace()+"/"+u.GetName()] = typed[rbacv1.Role](t, u).Rules
				}
			}
			used := map[string]bool{}
			got := map[string][]string{}
			for _, u := range objs {
				var ref rbacv1.RoleRef
				var subjects []rbacv1.Subject
				scope := "cluster"
				switch u.GetKind() {
				case "ClusterRoleBinding":
					b := typed[rbacv1.ClusterRoleBinding](t, u)
					ref, subjects = b.RoleRef, b.Subjects
				case "RoleBinding":
					b := typed[rbacv1.RoleBinding](t, u)
					ref, subjects, scope = b.RoleRef, b.Subjects, u.GetNamespace()
				default:
					continue
				}
				key := "ClusterRole " + ref.Name
				if ref.Kind == "Role" {
					key = "Role " + u.GetNamespace() + "/" + ref.Name
				}
				used[key] = true
				var lines []string
				rules, ok := roles[key]
				switch {
				case ok:
					for _, r := range rules {
						for _, g := range r.APIGroups {
							lines = append(lines, grants(scope, g, r.Resources, r.Verbs, r.ResourceNames...)...)
						}
					}
				case builtinRoles[key]:
					lines = append(lines, scope+" "+key)
				case controllerRoles[key]:
					lines = append(lines, scope+" "+key)
				default:
					t.Errorf("%s %s refers to %s, which is neither deployed nor a known built-in role", u.GetKind(), u.GetName(), key)
				}
				for _, s := range subjects {
					if s.Kind != rbacv1.ServiceAccountKind || s.Namespace != Namespace {
						t.Errorf("%s %s binds %s %s/%s: only the components' ServiceAccounts should be bound", u.GetKind(), u.GetName(), s.Kind, s.Namespace, s.Name)
						continue
					}
					if objs.find("ServiceAccount", Namespace, s.Name) == nil {
						t.Errorf("%s %s binds ServiceAccount %s, which is not deployed", u.GetKind(), u.GetName(), s.Name)
					}
					got[s.Name] = append(got[s.Name], lines...)
				}
			}
			for key := range roles {
				if !used[key] {
					t.Errorf("%s is bound to nothing", key)
				}
			}
			for sa := range got {
				got[sa] = normalise(got[sa])
			}
			if diff := cmp.Diff(wantRBAC(tc.capacity), got); diff != "" {
				t.Errorf("grants per ServiceAccount differ from the reviewed table in rbac_test.go (-want +got):\n%s", diff)
			}
			// Every pod runs as its component's account.
			for name, tmpl := range podTemplates(t, objs) {
				if _, ok := got[tmpl.Spec.ServiceAccountName]; !ok {
					t.Errorf("%s runs as ServiceAccount %q, which has no grants in the table", name, tmpl.Spec.ServiceAccountName)
				}
			}
		})
	}
}
