package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"

	"hwameistor.io/local/internal/pki"
)

// The Secret's keys: the kubernetes.io/tls pair plus the CA bundle the
// webhook's caBundle must hold.
const (
	KeyCert = "tls.crt"
	KeyKey  = "tls.key"
	KeyCA   = "ca.crt"
)

// Bundle is the serving certificate as stored in the Secret, PEM encoded.
type Bundle struct {
	Cert, Key []byte
	// CA is the current CA first, then earlier CAs that have not expired:
	// replicas still serving a certificate of the previous CA stay trusted
	// until they load the new one.
	CA []byte
}

func (b Bundle) data() map[string][]byte {
	return map[string][]byte{KeyCert: b.Cert, KeyKey: b.Key, KeyCA: b.CA}
}

func bundleOf(data map[string][]byte) Bundle {
	return Bundle{Cert: data[KeyCert], Key: data[KeyKey], CA: data[KeyCA]}
}

// issue makes a new CA and a serving certificate it signs for hosts (DNS
// names or IP addresses), both valid from now-1h (clock skew) for
// validity. The CA's key is discarded: the next rotation makes a new CA, so
// no long-lived signing key is ever stored.
func issue(hosts []string, now time.Time, validity time.Duration) (Bundle, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Bundle{}, err
	}
	notBefore, notAfter := now.Add(-time.Hour), now.Add(validity)
	caTmpl := &x509.Certificate{
		SerialNumber:          pki.SerialNumber(),
		Subject:               pkix.Name{CommonName: "hwameistor-controllers-webhook-ca@" + now.UTC().Format(time.RFC3339)},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return Bundle{}, fmt.Errorf("signing the CA: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return Bundle{}, err
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Bundle{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: pki.SerialNumber(),
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return Bundle{}, fmt.Errorf("signing the serving certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return Bundle{}, err
	}
	return Bundle{
		Cert: pki.EncodePEM(certutil.CertificateBlockType, der),
		Key:  pki.EncodePEM(keyutil.ECPrivateKeyBlockType, keyDER),
		CA:   pki.EncodePEM(certutil.CertificateBlockType, caDER),
	}, nil
}

// check returns why b cannot serve hosts until now+renewBefore, or nil. A
// nil result also means b's key pair loads and its CA bundle verifies it.
func (b Bundle) check(hosts []string, now time.Time, renewBefore time.Duration) error {
	pair, err := tls.X509KeyPair(b.Cert, b.Key)
	if err != nil {
		return fmt.Errorf("key pair does not load: %w", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return err
	}
	if renewAt := leaf.NotAfter.Add(-renewBefore); !now.Before(renewAt) {
		return fmt.Errorf("certificate expires at %s (renewed %s before)", leaf.NotAfter.UTC().Format(time.RFC3339), renewBefore)
	}
	roots := x509.NewCertPool()
	if len(b.CA) == 0 || !roots.AppendCertsFromPEM(b.CA) {
		return errors.New("no CA bundle")
	}
	for _, h := range hosts {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: h, Roots: roots, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			return fmt.Errorf("certificate does not verify for %s: %w", h, err)
		}
	}
	return nil
}

// withPreviousCAs appends to b's CA bundle the CAs of old that are still
// valid at now and not already there.
func (b Bundle) withPreviousCAs(old []byte, now time.Time) Bundle {
	previous, err := certutil.ParseCertsPEM(old)
	if err != nil {
		return b
	}
	out := slices.Clone(b.CA)
	for _, c := range previous {
		if now.Before(c.NotAfter) && !bytes.Contains(out, pki.EncodePEM(certutil.CertificateBlockType, c.Raw)) {
			out = append(out, pki.EncodePEM(certutil.CertificateBlockType, c.Raw)...)
		}
	}
	b.CA = out
	return b
}
