package nodecerts

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/replication"
	"hwameistor.io/local/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

const day = 24 * time.Hour

// setup makes a namespace for one test and a Reconciler for it with a
// clock the test moves.
func setup(t *testing.T) (*Reconciler, *time.Time) {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), ns) })
	now := time.Now()
	return newReconciler(name, &now), &now
}

// newReconciler is a fresh Reconciler (a restarted controller) over
// namespace, reading through the API (no cache).
func newReconciler(namespace string, now *time.Time) *Reconciler {
	r := &Reconciler{Client: env.Client, APIReader: env.Client, Namespace: namespace,
		Validity: 30 * day, RenewBefore: 10 * day, CAValidity: 365 * day, CARenewBefore: 60 * day,
		Now: func() time.Time { return *now }}
	r.defaults()
	return r
}

// node creates a Node and its LocalStorageNode.
func node(t *testing.T, name string) {
	t.Helper()
	ctx := context.Background()
	for _, o := range []client.Object{&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}},
		&v1.LocalStorageNode{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.LocalStorageNodeSpec{Hostname: name}}} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(ctx, o) })
	}
}

func reconcileNode(t *testing.T, r *Reconciler, name string) reconcile.Result {
	t.Helper()
	res, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: client.ObjectKey{Name: name}})
	if err != nil {
		t.Fatalf("reconcile %s: %v", name, err)
	}
	return res
}

func secret(t *testing.T, namespace, name string) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, s); err != nil {
		t.Fatalf("Secret %s/%s: %v", namespace, name, err)
	}
	return s
}

func notAfter(t *testing.T, s *corev1.Secret) time.Time {
	t.Helper()
	leaf, err := leafOf(s.Data[replication.SecretCertField])
	if err != nil {
		t.Fatal(err)
	}
	return leaf.NotAfter
}

// load puts a node Secret into a Store, as the agent's loader does.
func load(t *testing.T, s *corev1.Secret, node string, now time.Time) *replication.Store {
	t.Helper()
	store := &replication.Store{}
	if _, err := store.Set(node, s.Data[replication.SecretCertField], s.Data[replication.SecretKeyField], s.Data[replication.SecretCAField], now); err != nil {
		t.Fatalf("the agent cannot load %s: %v", s.Name, err)
	}
	return store
}

// TestIssue: a new node gets a Secret with its certificate from the CA,
// the agents' Role names it, and two nodes' certificates make a mutual
// TLS connection as agents would.
func TestIssue(t *testing.T) {
	r, now := setup(t)
	node(t, "issue-a")
	node(t, "issue-b")
	res := reconcileNode(t, r, "issue-a")
	reconcileNode(t, r, "issue-b")
	a := secret(t, r.Namespace, replication.NodeSecretName("issue-a"))
	b := secret(t, r.Namespace, replication.NodeSecretName("issue-b"))
	caSecret := secret(t, r.Namespace, replication.CASecretName)
	if a.Type != corev1.SecretTypeTLS || a.Annotations[replication.NodeAnnotation] != "issue-a" || a.Labels[replication.ComponentLabel] != replication.NodeCertComponent {
		t.Errorf("node Secret: type %s, annotations %v, labels %v", a.Type, a.Annotations, a.Labels)
	}
	if len(a.OwnerReferences) != 1 || a.OwnerReferences[0].Kind != "LocalStorageNode" || a.OwnerReferences[0].Name != "issue-a" {
		t.Errorf("owner references %+v, want the LocalStorageNode", a.OwnerReferences)
	}
	if !bytes.Equal(a.Data[replication.SecretCAField], caSecret.Data[replication.SecretCAField]) || len(a.Data[replication.SecretKeyField]) == 0 {
		t.Error("the node Secret does not carry the CA bundle or a key")
	}
	leaf, err := leafOf(a.Data[replication.SecretCertField])
	if err != nil {
		t.Fatal(err)
	}
	if leaf.Subject.CommonName != "hwameistor-node:issue-a" || !slices.Equal(leaf.DNSNames, []string{"issue-a.node.hwameistor.internal"}) {
		t.Errorf("certificate CN %q, DNS names %v", leaf.Subject.CommonName, leaf.DNSNames)
	}
	if want := now.Add(20 * day); res.RequeueAfter > 24*time.Hour || res.RequeueAfter <= 0 {
		t.Errorf("requeue after %v, want at most a day (renewal due %s)", res.RequeueAfter, want)
	}

	// The agents' Role grants get on exactly the node Secrets.
	if err := r.SyncRole(context.Background()); err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.Role{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: r.Namespace, Name: replication.NodeCertRole}, role); err != nil {
		t.Fatal(err)
	}
	want := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"},
		ResourceNames: []string{replication.NodeSecretName("issue-a"), replication.NodeSecretName("issue-b")}}}
	if !rulesEqual(role.Rules, want) {
		t.Errorf("Role rules %+v, want %+v", role.Rules, want)
	}

	// A copy's TLS between the two nodes, from the Secrets alone.
	server, client := load(t, a, "issue-a", *now), load(t, b, "issue-b", *now)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_ = replication.Serve(ctx, lis, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(r.TLS.PeerCertificates[0].Subject.CommonName))
		}), server, logr.Discard())
	}()
	cfg, err := client.ClientTLSConfig("issue-a", "issue-b")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}).Get("https://" + lis.Addr().String() + "/")
	if err != nil {
		t.Fatalf("mutual TLS between issue-b and issue-a: %v", err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	if body.String() != "hwameistor-node:issue-b" {
		t.Errorf("the server saw client %q", body.String())
	}
}

// TestRenewal: a certificate within RenewBefore of its expiry is replaced;
// one that is not is left alone, also by a restarted controller, which
// keeps the CA.
func TestRenewal(t *testing.T) {
	r, now := setup(t)
	node(t, "renew-a")
	reconcileNode(t, r, "renew-a")
	first := secret(t, r.Namespace, replication.NodeSecretName("renew-a"))
	ca := secret(t, r.Namespace, replication.CASecretName)

	// A restart, days later: same CA, same certificate.
	*now = now.Add(5 * day)
	r = newReconciler(r.Namespace, now)
	reconcileNode(t, r, "renew-a")
	if s := secret(t, r.Namespace, replication.NodeSecretName("renew-a")); !bytes.Equal(s.Data[replication.SecretCertField], first.Data[replication.SecretCertField]) {
		t.Error("a certificate far from expiry was reissued")
	}
	if s := secret(t, r.Namespace, replication.CASecretName); !bytes.Equal(s.Data[replication.SecretKeyField], ca.Data[replication.SecretKeyField]) || s.ResourceVersion != ca.ResourceVersion {
		t.Error("the CA changed across a restart")
	}

	// Within RenewBefore (10 days) of its expiry: renewed by the same CA.
	*now = notAfter(t, first).Add(-9 * day)
	reconcileNode(t, r, "renew-a")
	renewed := secret(t, r.Namespace, replication.NodeSecretName("renew-a"))
	if bytes.Equal(renewed.Data[replication.SecretCertField], first.Data[replication.SecretCertField]) {
		t.Fatal("a certificate 9 days from expiry was not renewed")
	}
	if got := notAfter(t, renewed); !got.After(notAfter(t, first)) {
		t.Errorf("renewed certificate expires %s, not after the old %s", got, notAfter(t, first))
	}
	load(t, renewed, "renew-a", *now)
	if s := secret(t, r.Namespace, replication.CASecretName); s.ResourceVersion != ca.ResourceVersion {
		t.Error("renewing a node certificate changed the CA")
	}
}

// TestRepairs: a Secret deleted, or edited into something else, is
// issued again; another node's certificate is not accepted.
func TestRepairs(t *testing.T) {
	r, now := setup(t)
	node(t, "repair-a")
	node(t, "repair-b")
	reconcileNode(t, r, "repair-a")
	reconcileNode(t, r, "repair-b")
	ctx := context.Background()
	a := secret(t, r.Namespace, replication.NodeSecretName("repair-a"))
	b := secret(t, r.Namespace, replication.NodeSecretName("repair-b"))
	a.Data = b.Data // another node's certificate
	if err := env.Client.Update(ctx, a); err != nil {
		t.Fatal(err)
	}
	reconcileNode(t, r, "repair-a")
	load(t, secret(t, r.Namespace, a.Name), "repair-a", *now)
	if err := env.Client.Delete(ctx, b); err != nil {
		t.Fatal(err)
	}
	reconcileNode(t, r, "repair-b")
	load(t, secret(t, r.Namespace, b.Name), "repair-b", *now)
}

// TestNodeGone: the Secret of a node whose Node or LocalStorageNode is
// deleted is deleted, and dropped from the Role (no rule at all once no
// node is left: an empty resourceNames would grant every Secret).
func TestNodeGone(t *testing.T) {
	r, _ := setup(t)
	node(t, "gone-a")
	reconcileNode(t, r, "gone-a")
	if err := r.SyncRole(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Delete(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "gone-a"}}); err != nil {
		t.Fatal(err)
	}
	reconcileNode(t, r, "gone-a")
	err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: r.Namespace, Name: replication.NodeSecretName("gone-a")}, &corev1.Secret{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("the Secret of a deleted node: %v, want NotFound", err)
	}
	if err := r.SyncRole(context.Background()); err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.Role{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: r.Namespace, Name: replication.NodeCertRole}, role); err != nil {
		t.Fatal(err)
	}
	if len(role.Rules) != 0 {
		t.Errorf("Role rules %+v, want none", role.Rules)
	}
	// A LocalStorageNode that never had a Node gets nothing.
	if err := env.Client.Create(context.Background(), &v1.LocalStorageNode{ObjectMeta: metav1.ObjectMeta{Name: "gone-b"}, Spec: v1.LocalStorageNodeSpec{Hostname: "gone-b"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = env.Client.Delete(context.Background(), &v1.LocalStorageNode{ObjectMeta: metav1.ObjectMeta{Name: "gone-b"}})
	})
	reconcileNode(t, r, "gone-b")
	err = env.Client.Get(context.Background(), client.ObjectKey{Namespace: r.Namespace, Name: replication.NodeSecretName("gone-b")}, &corev1.Secret{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("the Secret of a LocalStorageNode without a Node: %v, want NotFound", err)
	}
}

// TestCARotation: a CA within CARenewBefore of its expiry is replaced; the
// old one stays in the trust bundle, and every node certificate is
// reissued by the new one. A Secret that holds no CA is an error, never
// overwritten.
func TestCARotation(t *testing.T) {
	r, now := setup(t)
	node(t, "rotate-a")
	reconcileNode(t, r, "rotate-a")
	oldCA := secret(t, r.Namespace, replication.CASecretName)
	caLeaf, err := leafOf(oldCA.Data[replication.SecretCertField])
	if err != nil {
		t.Fatal(err)
	}
	*now = caLeaf.NotAfter.Add(-59 * day)
	r = newReconciler(r.Namespace, now)
	reconcileNode(t, r, "rotate-a")
	newCA := secret(t, r.Namespace, replication.CASecretName)
	if bytes.Equal(newCA.Data[replication.SecretCertField], oldCA.Data[replication.SecretCertField]) {
		t.Fatal("a CA 59 days from expiry was not renewed")
	}
	bundle := newCA.Data[replication.SecretCAField]
	if !bytes.HasPrefix(bundle, newCA.Data[replication.SecretCertField]) || !bytes.Contains(bundle, oldCA.Data[replication.SecretCertField]) {
		t.Error("the trust bundle does not hold the new CA first and the old one")
	}
	a := secret(t, r.Namespace, replication.NodeSecretName("rotate-a"))
	if !bytes.Equal(a.Data[replication.SecretCAField], bundle) {
		t.Error("the node Secret does not carry the new bundle")
	}
	ca, err := replication.ParseCA(newCA.Data[replication.SecretCertField], newCA.Data[replication.SecretKeyField])
	if err != nil {
		t.Fatal(err)
	}
	if err := replication.CheckNode(ca, "rotate-a", a.Data[replication.SecretCertField], a.Data[replication.SecretKeyField], *now, 0); err != nil {
		t.Errorf("the node certificate is not from the new CA: %v", err)
	}

	// A broken CA Secret stops issuance, and stays as it is.
	newCA.Data[replication.SecretKeyField] = []byte("garbage")
	if err := env.Client.Update(context.Background(), newCA); err != nil {
		t.Fatal(err)
	}
	r = newReconciler(r.Namespace, now)
	node(t, "rotate-b")
	_, err = r.Reconcile(context.Background(), reconcile.Request{NamespacedName: client.ObjectKey{Name: "rotate-b"}})
	if err == nil || !strings.Contains(err.Error(), "does not hold the replication CA") {
		t.Errorf("reconcile with a broken CA: %v", err)
	}
	if s := secret(t, r.Namespace, replication.CASecretName); !bytes.Equal(s.Data[replication.SecretKeyField], []byte("garbage")) {
		t.Error("a broken CA Secret was overwritten")
	}
}

// TestWithManager: wired into a manager, a new node gets its Secret and a
// place in the Role without anyone calling Reconcile.
func TestWithManager(t *testing.T) {
	r, _ := setup(t)
	r.Now = nil
	env.StartManager(t, func(_ context.Context, mgr ctrl.Manager) error {
		r.Client, r.APIReader = mgr.GetClient(), mgr.GetAPIReader()
		return r.SetupWithManager(mgr)
	})
	node(t, "mgr-a")
	name := replication.NodeSecretName("mgr-a")
	testenv.Eventually(t, "the node Secret issued and named in the Role", func() bool {
		role := &rbacv1.Role{}
		if env.Client.Get(context.Background(), client.ObjectKey{Namespace: r.Namespace, Name: name}, &corev1.Secret{}) != nil ||
			env.Client.Get(context.Background(), client.ObjectKey{Namespace: r.Namespace, Name: replication.NodeCertRole}, role) != nil {
			return false
		}
		return len(role.Rules) == 1 && slices.Contains(role.Rules[0].ResourceNames, name)
	})
}
