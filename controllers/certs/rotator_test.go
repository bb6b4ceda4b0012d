package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"hwameistor.io/local/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

const day = 24 * time.Hour

var hosts = ServiceHosts("hwameistor-controllers", "hwameistor")

// setup creates a namespace and a webhook configuration for one test and
// returns a Rotator for them with a clock the test moves.
func setup(t *testing.T) (*Rotator, *time.Time) {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	cfg := webhookConfiguration(name)
	if err := env.Client.Create(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = env.Client.Delete(context.Background(), cfg)
		_ = env.Client.Delete(context.Background(), ns)
	})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	logger, _ := ktesting.NewTestContext(t)
	return &Rotator{
		Client: env.Client, Secret: types.NamespacedName{Namespace: name, Name: "webhook-cert"},
		Webhook: name, Hosts: hosts, Validity: 30 * day, RenewBefore: 10 * day,
		Now: func() time.Time { return now }, Log: logger,
	}, &now
}

func webhookConfiguration(name string) *admissionv1.MutatingWebhookConfiguration {
	none := admissionv1.SideEffectClassNone
	hook := func(n string) admissionv1.MutatingWebhook {
		return admissionv1.MutatingWebhook{
			Name: n, AdmissionReviewVersions: []string{"v1"}, SideEffects: &none,
			FailurePolicy: ptr.To(admissionv1.Ignore),
			ClientConfig: admissionv1.WebhookClientConfig{Service: &admissionv1.ServiceReference{
				Namespace: "hwameistor", Name: "hwameistor-controllers", Path: ptr.To("/mutate-v1-pod")}},
			// Matches nothing, so the test's own requests never call it.
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"never": "matches"}},
		}
	}
	return &admissionv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks:   []admissionv1.MutatingWebhook{hook("a.hwameistor.io"), hook("b.hwameistor.io")},
	}
}

func sync1(t *testing.T, r *Rotator) {
	t.Helper()
	if err := r.Sync(context.Background()); err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

func secret(t *testing.T, r *Rotator) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{}
	if err := env.Client.Get(context.Background(), r.Secret, s); err != nil {
		t.Fatal(err)
	}
	return s
}

func caBundles(t *testing.T, r *Rotator) [][]byte {
	t.Helper()
	cfg := &admissionv1.MutatingWebhookConfiguration{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: r.Webhook}, cfg); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, w := range cfg.Webhooks {
		out = append(out, w.ClientConfig.CABundle)
	}
	return out
}

// handshake is what the apiserver does: a TLS connection to the webhook
// server trusting only the caBundle, for the Service's DNS name, at now.
func handshake(t *testing.T, serve func(*tls.ClientHelloInfo) (*tls.Certificate, error), caBundle []byte, now time.Time) error {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: serve})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if c, err := l.Accept(); err == nil {
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	defer wg.Wait()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caBundle)
	conn, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: roots, ServerName: hosts[0], Time: func() time.Time { return now }})
	if err != nil {
		return err
	}
	return conn.Close()
}

func TestIssuesWhenMissing(t *testing.T) {
	r, now := setup(t)
	if err := r.Ready(nil); err == nil {
		t.Error("ready before the first sync")
	}
	if _, err := r.GetCertificate(nil); err == nil || !strings.Contains(err.Error(), r.Secret.String()) {
		t.Errorf("GetCertificate before the first sync: %v, want an error naming the Secret", err)
	}
	sync1(t, r)

	s := secret(t, r)
	if s.Type != corev1.SecretTypeTLS {
		t.Errorf("Secret type %s, want %s", s.Type, corev1.SecretTypeTLS)
	}
	for _, b := range caBundles(t, r) {
		if string(b) != string(s.Data[KeyCA]) {
			t.Errorf("caBundle %q, want the Secret's ca.crt", b)
		}
	}
	if err := handshake(t, r.GetCertificate, s.Data[KeyCA], *now); err != nil {
		t.Errorf("a client trusting the caBundle cannot connect: %v", err)
	}
	if err := r.Ready(nil); err != nil {
		t.Errorf("not ready after a sync: %v", err)
	}

	// A second pass changes nothing.
	rv := s.ResourceVersion
	sync1(t, r)
	if got := secret(t, r).ResourceVersion; got != rv {
		t.Errorf("a valid certificate was reissued (resourceVersion %s -> %s)", rv, got)
	}
}

// TestRotation: near its end the certificate is renewed with a new CA; the
// caBundle keeps the previous CA while it is valid, so a replica that still
// serves the old certificate stays trusted, and drops it once it expired.
func TestRotation(t *testing.T) {
	r, now := setup(t)
	sync1(t, r)
	first := bundleOf(secret(t, r).Data)
	stale := &Rotator{}
	if err := stale.load(first); err != nil {
		t.Fatal(err)
	}

	*now = now.Add(19 * day) // 11 days left: not yet
	sync1(t, r)
	if got := bundleOf(secret(t, r).Data); string(got.Cert) != string(first.Cert) {
		t.Fatal("renewed with 11 days left, RenewBefore is 10")
	}

	*now = now.Add(2 * day) // 9 days left
	sync1(t, r)
	second := bundleOf(secret(t, r).Data)
	if string(second.Cert) == string(first.Cert) {
		t.Fatal("not renewed with 9 days left")
	}
	bundle := caBundles(t, r)[0]
	if err := handshake(t, r.GetCertificate, bundle, *now); err != nil {
		t.Errorf("the new certificate does not verify against the caBundle: %v", err)
	}
	if err := handshake(t, stale.GetCertificate, bundle, *now); err != nil {
		t.Errorf("a replica still serving the old certificate is not trusted during the rotation: %v", err)
	}

	// Past the old CA's end, the next renewal drops it.
	*now = now.Add(25 * day)
	sync1(t, r)
	third := bundleOf(secret(t, r).Data)
	if cas := strings.Count(string(third.CA), "BEGIN CERTIFICATE"); cas != 2 {
		t.Errorf("CA bundle holds %d certificates, want the new and the previous one", cas)
	}
	if strings.Contains(string(third.CA), string(first.CA)) {
		t.Error("the expired first CA is still in the bundle")
	}
}

// TestRepairs: a broken Secret, a certificate for other names and a wiped
// caBundle (an old manifest applied again) are put right by the next pass.
func TestRepairs(t *testing.T) {
	r, now := setup(t)
	sync1(t, r)

	s := secret(t, r)
	s.Data[KeyKey] = []byte("not a key")
	if err := env.Client.Update(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	sync1(t, r)
	if err := bundleOf(secret(t, r).Data).check(hosts, *now, r.RenewBefore); err != nil {
		t.Errorf("broken Secret not reissued: %v", err)
	}

	r.Hosts = ServiceHosts("renamed", "hwameistor")
	sync1(t, r)
	if err := bundleOf(secret(t, r).Data).check(r.Hosts, *now, r.RenewBefore); err != nil {
		t.Errorf("not reissued for new hosts: %v", err)
	}

	cfg := &admissionv1.MutatingWebhookConfiguration{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: r.Webhook}, cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Webhooks[1].ClientConfig.CABundle = nil
	if err := env.Client.Update(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	sync1(t, r)
	if got := caBundles(t, r); string(got[1]) != string(secret(t, r).Data[KeyCA]) {
		t.Error("wiped caBundle not restored")
	}
}

// TestReplicasAgree: replicas starting at once end up serving one
// certificate, the one in the Secret.
func TestReplicasAgree(t *testing.T) {
	r, _ := setup(t)
	replicas := make([]*Rotator, 4)
	var wg sync.WaitGroup
	for i := range replicas {
		replicas[i] = &Rotator{Client: r.Client, Secret: r.Secret, Webhook: r.Webhook, Hosts: r.Hosts,
			Validity: r.Validity, RenewBefore: r.RenewBefore, Now: r.Now, Log: r.Log}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A loser of the race fails this pass and loads the winner's
			// certificate on the next one, as Start retries.
			for range 3 {
				if replicas[i].Sync(context.Background()) == nil {
					return
				}
			}
			t.Errorf("replica %d did not converge", i)
		}()
	}
	wg.Wait()
	want := firstDER(secret(t, r).Data[KeyCert])
	for i, rep := range replicas {
		c, err := rep.GetCertificate(nil)
		if err != nil || string(c.Certificate[0]) != string(want) {
			t.Errorf("replica %d serves another certificate (err %v)", i, err)
		}
	}
}

// TestMissingWebhookConfiguration: the error names what is missing, the
// certificate is still served, and the replica is not ready.
func TestMissingWebhookConfiguration(t *testing.T) {
	r, _ := setup(t)
	r.Webhook = "no-such-webhook"
	err := r.Sync(context.Background())
	if err == nil || !strings.Contains(err.Error(), "MutatingWebhookConfiguration no-such-webhook") {
		t.Fatalf("Sync: %v, want an error naming the configuration", err)
	}
	if _, err := r.GetCertificate(nil); err != nil {
		t.Errorf("certificate not served: %v", err)
	}
	if err := r.Ready(nil); err == nil || !strings.Contains(err.Error(), "caBundle") {
		t.Errorf("Ready: %v, want not ready for the caBundle", err)
	}
}

func TestIssueCoversIPs(t *testing.T) {
	now := time.Now()
	b, err := issue([]string{"127.0.0.1", "svc.ns.svc"}, now, day)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(b.Cert, b.Key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	if len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) || fmt.Sprint(leaf.DNSNames) != "[svc.ns.svc]" {
		t.Errorf("SANs %v %v", leaf.IPAddresses, leaf.DNSNames)
	}
	if err := b.check([]string{"127.0.0.1"}, now, time.Hour); err != nil {
		t.Errorf("check: %v", err)
	}
	if err := b.check([]string{"127.0.0.1"}, now.Add(day), time.Hour); err == nil || !strings.Contains(err.Error(), "expires") {
		t.Errorf("check past the end: %v", err)
	}
}

// TestWithoutWebhookConfiguration: with no configuration to manage, the
// certificate is issued and served, and the replica is ready.
func TestWithoutWebhookConfiguration(t *testing.T) {
	r, now := setup(t)
	r.Webhook = ""
	sync1(t, r)
	if err := r.Ready(nil); err != nil {
		t.Errorf("Ready: %v", err)
	}
	if err := handshake(t, r.GetCertificate, secret(t, r).Data[KeyCA], *now); err != nil {
		t.Errorf("handshake: %v", err)
	}
}
