package replication

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func nodeSecret(t *testing.T, ca *CA, node string) *corev1.Secret {
	t.Helper()
	cert, key, err := ca.IssueNode(node, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "hwameistor", Name: NodeSecretName(node)}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{SecretCertField: cert, SecretKeyField: key, SecretCAField: ca.CertPEM}}
}

// TestSecretLoader: a node whose Secret is missing waits (and is retried),
// a present one is loaded, a renewed one replaces it while the loader
// runs, and a broken one leaves the loaded certificate alone.
func TestSecretLoader(t *testing.T) {
	ca, _ := testPKI()
	c := fake.NewClientBuilder().WithObjects(nodeSecret(t, ca, "n1")).Build()
	store := &Store{}
	l := &SecretLoader{Client: c, Namespace: "hwameistor", Nodes: []string{"n1", "n2"}, Store: store, Refresh: 50 * time.Millisecond, Retry: 50 * time.Millisecond}
	ctx := context.Background()

	if changed, err := l.Load(ctx, "n1"); !changed || err != nil {
		t.Fatalf("Load n1 = %v, %v", changed, err)
	}
	if changed, err := l.Load(ctx, "n1"); changed || err != nil {
		t.Errorf("Load n1 again = %v, %v; want no change", changed, err)
	}
	if _, err := l.Load(ctx, "n2"); err == nil || !strings.Contains(err.Error(), "hwameistor-replication-node-n2") {
		t.Errorf("Load n2 = %v, want the missing Secret named", err)
	}
	first := store.get("n1").cert.Leaf

	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = l.Start(ctx) }()
	defer func() { cancel(); <-done }()

	// Issued later, renewed later: both picked up without a restart.
	if err := c.Create(ctx, nodeSecret(t, ca, "n2")); err != nil {
		t.Fatal(err)
	}
	renewed := nodeSecret(t, ca, "n1")
	if err := c.Update(ctx, renewed); err != nil {
		t.Fatal(err)
	}
	eventually(t, "n2 loaded and n1 renewed", func() bool {
		return store.Has("n2") && !store.get("n1").cert.Leaf.Equal(first)
	})

	// A broken Secret does not unload the good certificate.
	good := store.get("n1").cert.Leaf
	broken := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(renewed), broken); err != nil {
		t.Fatal(err)
	}
	broken.Data[SecretKeyField] = []byte("garbage")
	if err := c.Update(ctx, broken); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if !store.get("n1").cert.Leaf.Equal(good) {
		t.Error("a broken Secret replaced the loaded certificate")
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s: not within 10s", what)
}
