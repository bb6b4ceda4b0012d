package nodecerts

import (
	"bytes"
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	certutil "k8s.io/client-go/util/cert"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"hwameistor.io/local/csidriver/replication"
)

// caState is the CA in use and the CAs agents must trust (it first).
type caState struct {
	ca     *replication.CA
	bundle []byte
	read   time.Time
}

// caReadInterval: how long the CA read from its Secret is used before it
// is read again (a Secret deleted by hand is then re-created, and all node
// certificates reissued, within this long).
const caReadInterval = time.Minute

// currentCA returns the CA, creating its Secret the first time and
// replacing the CA (keeping the old one trusted while it is valid) when
// it has less than CARenewBefore left. A Secret that does not hold a CA is
// an error, never overwritten: every node certificate hangs on it.
func (r *Reconciler) currentCA(ctx context.Context) (caState, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if r.ca.ca != nil && now.Sub(r.ca.read) < caReadInterval && now.Before(r.ca.ca.Cert.NotAfter.Add(-r.CARenewBefore)) {
		return r.ca, nil
	}
	key := client.ObjectKey{Namespace: r.Namespace, Name: replication.CASecretName}
	s := &corev1.Secret{}
	err := r.APIReader.Get(ctx, key, s)
	if apierrors.IsNotFound(err) {
		ca, err := replication.NewCA(now, r.CAValidity)
		if err != nil {
			return caState{}, err
		}
		s = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: replication.CASecretName, Labels: map[string]string{managedBy: "hwameistor-controllers"}},
			Type:       corev1.SecretTypeTLS,
			Data:       map[string][]byte{replication.SecretCertField: ca.CertPEM, replication.SecretKeyField: ca.KeyPEM, replication.SecretCAField: ca.CertPEM},
		}
		if err := r.Client.Create(ctx, s); err != nil {
			// Another replica won: read its CA on the next pass.
			return caState{}, fmt.Errorf("creating the replication CA Secret %s: %w", key, err)
		}
		log.FromContext(ctx).Info("Created the replication CA", "secret", key.String(), "notAfter", ca.Cert.NotAfter.UTC().Format(time.RFC3339))
		r.ca = caState{ca: ca, bundle: ca.CertPEM, read: now}
		return r.ca, nil
	}
	if err != nil {
		return caState{}, fmt.Errorf("reading the replication CA Secret %s: %w", key, err)
	}
	ca, err := replication.ParseCA(s.Data[replication.SecretCertField], s.Data[replication.SecretKeyField])
	if err != nil {
		return caState{}, fmt.Errorf("Secret %s does not hold the replication CA (delete it to make a new CA; every node certificate is then reissued): %w", key, err)
	}
	bundle := s.Data[replication.SecretCAField]
	if len(bundle) == 0 || !bytes.Contains(bundle, ca.CertPEM) {
		bundle = append(bytes.Clone(ca.CertPEM), bundle...)
	}
	if !now.Before(ca.Cert.NotAfter.Add(-r.CARenewBefore)) {
		next, err := replication.NewCA(now, r.CAValidity)
		if err != nil {
			return caState{}, err
		}
		// The old CA stays trusted until it expires: agents that have
		// not loaded their reissued certificate yet still verify.
		bundle = append(bytes.Clone(next.CertPEM), stillValid(bundle, now)...)
		s.Data = map[string][]byte{replication.SecretCertField: next.CertPEM, replication.SecretKeyField: next.KeyPEM, replication.SecretCAField: bundle}
		if err := r.Client.Update(ctx, s); err != nil {
			return caState{}, fmt.Errorf("renewing the replication CA in Secret %s: %w", key, err)
		}
		log.FromContext(ctx).Info("Renewed the replication CA; every node certificate is reissued", "secret", key.String(),
			"oldNotAfter", ca.Cert.NotAfter.UTC().Format(time.RFC3339), "notAfter", next.Cert.NotAfter.UTC().Format(time.RFC3339))
		ca = next
	}
	r.ca = caState{ca: ca, bundle: bundle, read: now}
	return r.ca, nil
}

// stillValid keeps the certificates of a PEM bundle that have not expired.
func stillValid(bundle []byte, now time.Time) []byte {
	certs, err := certutil.ParseCertsPEM(bundle)
	if err != nil {
		return nil
	}
	var out []byte
	for _, c := range certs {
		if now.Before(c.NotAfter) {
			pem, err := certutil.EncodeCertificates(c)
			if err == nil {
				out = append(out, pem...)
			}
		}
	}
	return out
}
