package replication

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"time"

	"hwameistor.io/local/internal/pki"
)

// The certificate profile of the copy stream lives here, next to the code
// that verifies it; the controllers (controllers/nodecerts) decide when to
// issue and where to keep the results.

// CA is the replication CA: it signs every node's certificate.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	// CertPEM and KeyPEM are Cert and Key as stored in the CA Secret.
	CertPEM, KeyPEM []byte
}

// NewCA makes a CA (ECDSA P-256) valid from now-1h (clock skew) for
// validity.
func NewCA(now time.Time, validity time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          pki.SerialNumber(),
		Subject:               pkix.Name{CommonName: "hwameistor-replication-ca@" + now.UTC().Format(time.RFC3339)},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true, // it signs node certificates, never other CAs
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("signing the replication CA: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return ParseCA(pki.EncodePEM("CERTIFICATE", der), pki.EncodePEM("EC PRIVATE KEY", keyDER))
}

// ParseCA loads a CA from the CA Secret's tls.crt and tls.key.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("replication CA: %w", err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("replication CA: %w", err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || !cert.IsCA {
		return nil, errors.New("replication CA: not an ECDSA CA certificate")
	}
	return &CA{Cert: cert, Key: key, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// IssueNode signs a certificate for node, good for both ends of a copy
// (server and client authentication), valid from now-1h for validity but
// never beyond the CA. It returns the certificate and its key, PEM
// encoded.
func (ca *CA) IssueNode(node string, now time.Time, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if node == "" {
		return nil, nil, errors.New("no node name")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	notAfter := now.Add(validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: pki.SerialNumber(),
		Subject:      pkix.Name{CommonName: CommonName(node)},
		DNSNames:     []string{NodeDNSName(node)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("signing the certificate of node %s: %w", node, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pki.EncodePEM("CERTIFICATE", der), pki.EncodePEM("EC PRIVATE KEY", keyDER), nil
}

// CheckNode returns why certPEM/keyPEM is not a usable certificate of node
// signed by ca until now+renewBefore, or nil.
func CheckNode(ca *CA, node string, certPEM, keyPEM []byte, now time.Time, renewBefore time.Duration) error {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("key pair does not load: %w", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return err
	}
	if got, err := NodeOf(leaf); err != nil || got != node {
		return fmt.Errorf("certificate is not node %s's (%q, %v)", node, leaf.Subject.CommonName, err)
	}
	if renewAt := leaf.NotAfter.Add(-renewBefore); !now.Before(renewAt) {
		return fmt.Errorf("certificate expires at %s (renewed %s before)", leaf.NotAfter.UTC().Format(time.RFC3339), renewBefore)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}); err != nil {
		return fmt.Errorf("certificate is not signed by the current CA: %w", err)
	}
	return nil
}
