package manifests_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"hwameistor.io/local/internal/testenv"
)

// TestServerSideDryRun applies each deployable kustomization with
// `kubectl apply --server-side --dry-run=server -k` against a real
// kube-apiserver (envtest, with the CRDs installed), the way an operator
// installs it: the apiserver validates every object (schemas, RBAC
// escalation checks, webhook configuration, Pod Security labels) without
// persisting it. The namespace is created for real first: a dry run of
// objects in a namespace that does not exist yet is refused.
func TestServerSideDryRun(t *testing.T) {
	kubectl := kubectlBinary(t)
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	kubeconfig := testenv.WriteKubeconfig(t, env.Config)
	run := func(stdin []byte, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig=" + kubeconfig, "--cache-dir=" + t.TempDir()}, args...)...)
		cmd.Dir = root()
		cmd.Stdin = bytes.NewReader(stdin)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("kubectl %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
		}
		if stderr.Len() > 0 {
			t.Logf("kubectl %s warned:\n%s", strings.Join(args, " "), stderr.String())
		}
		return stdout.String()
	}

	// The namespace, for real, as the base defines it.
	ns := objects(build(t, base)).find("Namespace", "", Namespace)
	if ns == nil {
		t.Fatalf("%s has no Namespace %s", base, Namespace)
	}
	nsYAML, err := yaml.Marshal(ns.Object)
	if err != nil {
		t.Fatal(err)
	}
	run(nsYAML, "apply", "--server-side", "-f", "-")

	for _, dir := range []string{prod, base, capacity, simulator} {
		t.Run(dir, func(t *testing.T) {
			out := run(nil, "apply", "--server-side", "--dry-run=server", "-k", dir)
			applied := 0
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				if strings.HasSuffix(line, "(server dry run)") {
					applied++
				}
			}
			if want := len(build(t, dir)); applied != want {
				t.Errorf("kubectl dry-ran %d objects, the kustomization has %d:\n%s", applied, want, out)
			}
		})
	}

	// Then for real, and ask the apiserver's RBAC authorizer what each
	// component may do: everything in the reviewed table (so the built-in
	// roles exist and the rules mean what the table says), and, for the
	// components without built-in roles, nothing another component has.
	run(nil, "apply", "--server-side", "-k", prod)
	checkAccess(t, kubernetes.NewForConfigOrDie(env.Config), wantRBAC(false))
	checkNodeCertificates(t, kubernetes.NewForConfigOrDie(env.Config))
}

// checkNodeCertificates creates the Role hwameistor-node-certificates as
// hwameistor-controllers keep it (controllers/nodecerts) and asks the
// authorizer: the bound agents read exactly the node Secrets it names,
// not the replication CA's, not any other, and list none.
func checkNodeCertificates(t *testing.T, cs kubernetes.Interface) {
	t.Helper()
	ctx := context.Background()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: Namespace, Name: "hwameistor-node-certificates"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"},
			ResourceNames: []string{"hwameistor-replication-node-n1", "hwameistor-replication-node-n2"}}}}
	if _, err := cs.RbacV1().Roles(Namespace).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		verb, name string
		want       bool
	}{
		{"get", "hwameistor-replication-node-n1", true},
		{"get", "hwameistor-replication-node-n2", true},
		{"get", "hwameistor-replication-ca", false},
		{"get", "hwameistor-controllers-webhook-cert", false},
		{"list", "", false},
		{"update", "hwameistor-replication-node-n1", false},
	} {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:               "system:serviceaccount:" + Namespace + ":hwameistor-node",
			Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + Namespace, "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: Namespace, Resource: "secrets", Verb: tc.verb, Name: tc.name},
		}}
		res, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Status.Allowed != tc.want {
			t.Errorf("hwameistor-node %s secret %q: allowed %v, want %v", tc.verb, tc.name, res.Status.Allowed, tc.want)
		}
	}
}

// access is one parsed wantRBAC line.
type access struct {
	namespace, group, resource, subresource, verb, name string
}

// parseGrant reads "scope group/resource[/sub] verb [name]"; ok is false
// for the lines naming a built-in role.
func parseGrant(t *testing.T, line string) (access, bool) {
	t.Helper()
	f := strings.Fields(line)
	if f[1] == "ClusterRole" || f[1] == "Role" {
		return access{}, false
	}
	var a access
	if f[0] != "cluster" {
		a.namespace = f[0]
	}
	gr := strings.SplitN(f[1], "/", 3)
	a.group, a.resource, a.verb = gr[0], gr[1], f[2]
	if a.group == "core" {
		a.group = ""
	}
	if len(gr) == 3 {
		a.subresource = gr[2]
	}
	if len(f) == 4 {
		a.name = strings.Trim(f[3], "[]")
	}
	return a, true
}

// covers reports whether having a implies b (same verb and resource, at
// least as wide a scope and name).
func (a access) covers(b access) bool {
	return a.group == b.group && a.resource == b.resource && a.subresource == b.subresource && a.verb == b.verb &&
		(a.namespace == "" || a.namespace == b.namespace) && (a.name == "" || a.name == b.name)
}

func checkAccess(t *testing.T, cs kubernetes.Interface, want map[string][]string) {
	t.Helper()
	ctx := context.Background()
	allowed := func(sa string, a access) bool {
		t.Helper()
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   "system:serviceaccount:" + Namespace + ":" + sa,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + Namespace, "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: a.namespace, Group: a.group, Resource: a.resource, Subresource: a.subresource, Verb: a.verb, Name: a.name,
			},
		}}
		res, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("SubjectAccessReview: %v", err)
		}
		return res.Status.Allowed
	}
	parsed := map[string][]access{}
	var all []access
	for sa, lines := range want {
		for _, line := range lines {
			if a, ok := parseGrant(t, line); ok {
				parsed[sa] = append(parsed[sa], a)
				all = append(all, a)
			}
		}
	}
	for sa, grants := range parsed {
		for _, a := range grants {
			if !allowed(sa, a) {
				t.Errorf("%s may not %+v, which the table grants it", sa, a)
			}
		}
	}
	// What the scheduler needs through system:kube-scheduler and
	// system:volume-scheduler.
	for _, a := range []access{
		{group: "", resource: "pods", subresource: "binding", verb: "create", namespace: "default"},
		{group: "", resource: "persistentvolumeclaims", verb: "update", namespace: "default"},
		{group: "", resource: "persistentvolumes", verb: "update"},
		{group: "storage.k8s.io", resource: "csinodes", verb: "watch"},
		{group: "events.k8s.io", resource: "events", verb: "create", namespace: "default"},
		{group: "", resource: "configmaps", verb: "get", namespace: "kube-system", name: "extension-apiserver-authentication"},
	} {
		if !allowed("hwameistor-scheduler", a) {
			t.Errorf("hwameistor-scheduler may not %+v: are the built-in scheduler roles bound?", a)
		}
	}
	// Nobody reads secrets.
	for sa := range want {
		if a := (access{resource: "secrets", verb: "get"}); allowed(sa, a) {
			t.Errorf("%s may read secrets", sa)
		}
	}
	// The components without built-in roles can do nothing the table does
	// not give them, of what any component can do.
	for _, sa := range []string{"hwameistor-controllers", "hwameistor-csi-controller", "hwameistor-node"} {
		for _, b := range all {
			if slices.ContainsFunc(parsed[sa], func(a access) bool { return a.covers(b) }) {
				continue
			}
			if allowed(sa, b) {
				t.Errorf("%s may %+v, which the table does not grant it", sa, b)
			}
		}
	}
}

// kubectlBinary is the pinned kubectl that hack/build-control-plane.sh
// builds next to the control plane.
func kubectlBinary(t *testing.T) string {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run `make test`, or export KUBEBUILDER_ASSETS=$(hack/build-control-plane.sh)")
	}
	path := filepath.Join(assets, "kubectl")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("KUBEBUILDER_ASSETS=%s has no kubectl: run hack/build-control-plane.sh", assets)
	}
	return path
}
