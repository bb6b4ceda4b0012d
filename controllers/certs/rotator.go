// Package certs issues and rotates the admission webhook's serving
// certificate, so that installing hwameistor-controllers needs no
// cert-manager and no openssl: every replica keeps the shared Secret
// current, serves the certificate it holds, and keeps the webhook
// configuration's caBundle in step with it.
package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// Defaults: a year's certificate renewed with three months left, checked
// every minute (a caBundle wiped by re-applying an old manifest is back
// within a minute).
const (
	DefaultValidity    = 365 * 24 * time.Hour
	DefaultRenewBefore = 90 * 24 * time.Hour
	DefaultInterval    = time.Minute
)

// Rotator keeps Secret holding a serving certificate for Hosts, valid for
// at least RenewBefore, and the caBundle of every webhook of the
// MutatingWebhookConfiguration Webhook equal to its CA bundle.
//
// Every replica runs one (it does not need leadership: each replica serves
// the webhook). Replicas that race to issue are ordered by the apiserver:
// Create fails with AlreadyExists and Update with a Conflict for all but
// one, and the others load the winner's certificate on their next pass.
type Rotator struct {
	// Client must read Secrets and webhook configurations directly, not
	// through a cluster-wide informer cache (RBAC grants one Secret).
	Client client.Client
	Secret types.NamespacedName
	// Webhook is the MutatingWebhookConfiguration whose caBundle follows
	// the certificate; empty leaves every caBundle alone (no webhook
	// configuration, or one whose caBundle someone else sets).
	Webhook string
	// Hosts are the DNS names (or IP addresses) the certificate is for; the
	// apiserver calls a Service-backed webhook at <service>.<namespace>.svc.
	Hosts []string

	Validity, RenewBefore, Interval time.Duration
	Now                             func() time.Time
	Log                             logr.Logger

	serving   atomic.Pointer[tls.Certificate]
	caBundled atomic.Bool
}

var (
	_ manager.Runnable               = &Rotator{}
	_ manager.LeaderElectionRunnable = &Rotator{}
)

// ServiceHosts are the names the apiserver may use for Service service in
// namespace.
func ServiceHosts(service, namespace string) []string {
	return []string{
		fmt.Sprintf("%s.%s.svc", service, namespace),
		fmt.Sprintf("%s.%s.svc.cluster.local", service, namespace),
	}
}

// NeedLeaderElection is false: standbys serve the webhook too.
func (r *Rotator) NeedLeaderElection() bool { return false }

// Start syncs until ctx ends: every Interval, and after a failure every
// few seconds, with the failure logged (the webhook keeps serving the last
// good certificate meanwhile).
func (r *Rotator) Start(ctx context.Context) error {
	r.defaults()
	for {
		wait := r.Interval
		if err := r.Sync(ctx); err != nil {
			r.Log.Error(err, "Webhook serving certificate not in place; pods are admitted without the webhook (failurePolicy Ignore) until it is",
				"secret", r.Secret.String(), "webhookConfiguration", r.Webhook)
			wait = 5 * time.Second
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// Sync makes one pass: issue or renew the certificate when needed, load
// it, and bring the caBundle in step.
func (r *Rotator) Sync(ctx context.Context) error {
	r.defaults()
	b, err := r.ensureSecret(ctx)
	if err != nil {
		return err
	}
	if err := r.load(b); err != nil {
		return err
	}
	if err := r.ensureCABundle(ctx, b.CA); err != nil {
		return err
	}
	r.caBundled.Store(true)
	return nil
}

// GetCertificate is the webhook server's tls.Config.GetCertificate.
func (r *Rotator) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := r.serving.Load(); c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("no webhook serving certificate yet (Secret %s not issued or not readable; see the log)", r.Secret)
}

// TLSOpt hands GetCertificate to a webhook server's TLS configuration.
func (r *Rotator) TLSOpt(c *tls.Config) { c.GetCertificate = r.GetCertificate }

// Ready is a readiness check: the certificate is loaded and the caBundle
// was in step at least once, so the apiserver can call this replica.
func (r *Rotator) Ready(*http.Request) error {
	switch {
	case r.serving.Load() == nil:
		return errors.New("webhook serving certificate not loaded yet")
	case !r.caBundled.Load():
		return fmt.Errorf("caBundle of MutatingWebhookConfiguration %s not updated yet", r.Webhook)
	}
	return nil
}

func (r *Rotator) defaults() {
	if r.Validity == 0 {
		r.Validity = DefaultValidity
	}
	if r.RenewBefore == 0 {
		r.RenewBefore = DefaultRenewBefore
	}
	if r.Interval == 0 {
		r.Interval = DefaultInterval
	}
	if r.Now == nil {
		r.Now = time.Now
	}
}

// ensureSecret returns a Bundle good for at least RenewBefore, issuing one
// into the Secret when it is missing, broken, for other hosts or expiring.
func (r *Rotator) ensureSecret(ctx context.Context) (Bundle, error) {
	now := r.Now()
	secret := &corev1.Secret{}
	err := r.Client.Get(ctx, r.Secret, secret)
	if apierrors.IsNotFound(err) {
		b, err := issue(r.Hosts, now, r.Validity)
		if err != nil {
			return Bundle{}, err
		}
		secret = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: r.Secret.Name, Namespace: r.Secret.Namespace,
				Labels: map[string]string{"app.kubernetes.io/managed-by": "hwameistor-controllers"}},
			Type: corev1.SecretTypeTLS,
			Data: b.data(),
		}
		if err := r.Client.Create(ctx, secret); err != nil {
			return Bundle{}, fmt.Errorf("creating Secret %s: %w", r.Secret, err)
		}
		r.Log.Info("Issued the webhook serving certificate", "secret", r.Secret.String(), "hosts", r.Hosts)
		return b, nil
	}
	if err != nil {
		return Bundle{}, fmt.Errorf("reading Secret %s: %w", r.Secret, err)
	}
	current := bundleOf(secret.Data)
	why := current.check(r.Hosts, now, r.RenewBefore)
	if why == nil {
		return current, nil
	}
	b, err := issue(r.Hosts, now, r.Validity)
	if err != nil {
		return Bundle{}, err
	}
	b = b.withPreviousCAs(current.CA, now)
	secret.Data = b.data()
	if err := r.Client.Update(ctx, secret); err != nil {
		return Bundle{}, fmt.Errorf("renewing Secret %s: %w", r.Secret, err)
	}
	r.Log.Info("Renewed the webhook serving certificate", "secret", r.Secret.String(), "reason", why.Error())
	return b, nil
}

func (r *Rotator) load(b Bundle) error {
	if c := r.serving.Load(); c != nil && bytes.Equal(c.Certificate[0], firstDER(b.Cert)) {
		return nil
	}
	pair, err := tls.X509KeyPair(b.Cert, b.Key)
	if err != nil {
		return fmt.Errorf("loading the certificate of Secret %s: %w", r.Secret, err)
	}
	r.serving.Store(&pair)
	return nil
}

// ensureCABundle sets caBundle on every webhook of the configuration.
func (r *Rotator) ensureCABundle(ctx context.Context, ca []byte) error {
	if r.Webhook == "" {
		return nil
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cfg := &admissionv1.MutatingWebhookConfiguration{}
		if err := r.Client.Get(ctx, client.ObjectKey{Name: r.Webhook}, cfg); err != nil {
			return fmt.Errorf("reading MutatingWebhookConfiguration %s: %w", r.Webhook, err)
		}
		changed := false
		for i := range cfg.Webhooks {
			if !bytes.Equal(cfg.Webhooks[i].ClientConfig.CABundle, ca) {
				cfg.Webhooks[i].ClientConfig.CABundle, changed = ca, true
			}
		}
		if !changed {
			return nil
		}
		if err := r.Client.Update(ctx, cfg); err != nil {
			return err
		}
		r.Log.Info("Updated the webhook's caBundle", "webhookConfiguration", r.Webhook)
		return nil
	})
}

func firstDER(certPEM []byte) []byte {
	if block, _ := pem.Decode(certPEM); block != nil {
		return block.Bytes
	}
	return nil
}
