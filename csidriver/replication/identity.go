package replication

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// A node's identity on the copy stream is its certificate, issued by the
// controllers from the replication CA (controllers/nodecerts). The node
// name is in two places, which must agree:
//
//   - Subject CommonName CommonNamePrefix+node ("hwameistor-node:worker-1"),
//     for people reading logs and openssl output;
//   - one DNS SAN NodeDNSName(node) ("worker-1.node.hwameistor.internal"),
//     which TLS checks: a client sets it as ServerName, so the standard
//     hostname verification proves the server is the source node it meant
//     to reach (node names are DNS subdomains, so every node has one), and
//     a server serving several (simulated) nodes picks the certificate the
//     client asked for from the SNI.
//
// The name is never resolved; ".internal" is reserved for private use and
// so never clashes with a real domain.
const (
	CommonNamePrefix = "hwameistor-node:"
	NodeDomain       = "node.hwameistor.internal"
)

// Secret names and fields of the certificates (kubernetes.io/tls).
const (
	// CASecretName holds the replication CA (tls.crt, tls.key: the
	// signing pair; ca.crt: the CAs to trust). Only the controllers may
	// read it.
	CASecretName = "hwameistor-replication-ca"
	// NodeSecretPrefix starts each node's Secret (NodeSecretName).
	NodeSecretPrefix = "hwameistor-replication-node-"
	// NodeCertRole is the Role the controllers keep granting the node
	// agents get on exactly the node Secrets (RBAC names cannot be
	// prefixes, and the CA Secret in the same namespace must stay out
	// of the agents' reach).
	NodeCertRole = "hwameistor-node-certificates"

	SecretCertField = "tls.crt"
	SecretKeyField  = "tls.key"
	SecretCAField   = "ca.crt"

	// NodeAnnotation on a node Secret names its node (a label value
	// cannot hold every node name).
	NodeAnnotation = "hwameistor.io/node"
	// ComponentLabel with the value NodeCertComponent marks the node
	// Secrets (what the controllers watch and list).
	ComponentLabel    = "app.kubernetes.io/component"
	NodeCertComponent = "replication-node-certificate"
)

// CommonName is the certificate subject's CommonName of node.
func CommonName(node string) string { return CommonNamePrefix + node }

// NodeDNSName is the DNS SAN of node's certificate and the ServerName a
// client asks for when it pulls from node.
func NodeDNSName(node string) string { return node + "." + NodeDomain }

// NodeSecretName is the Secret holding node's certificate. A name that
// would exceed a Secret's 253 characters is shortened with a hash.
func NodeSecretName(node string) string {
	name := NodeSecretPrefix + node
	if len(name) <= 253 {
		return name
	}
	sum := sha256.Sum256([]byte(node))
	return name[:253-17] + "-" + hex.EncodeToString(sum[:8])
}

// NodeOf returns the node a certificate is for: the one DNS SAN under
// NodeDomain, whose CommonName must agree. It does not verify the chain
// (the TLS handshake does).
func NodeOf(cert *x509.Certificate) (string, error) {
	var nodes []string
	for _, d := range cert.DNSNames {
		if n, ok := strings.CutSuffix(d, "."+NodeDomain); ok && n != "" {
			nodes = append(nodes, n)
		}
	}
	switch {
	case len(nodes) == 0:
		return "", fmt.Errorf("certificate %q names no node (no DNS name under %s)", cert.Subject.CommonName, NodeDomain)
	case len(nodes) > 1:
		return "", fmt.Errorf("certificate %q names several nodes %v", cert.Subject.CommonName, nodes)
	case cert.Subject.CommonName != CommonName(nodes[0]):
		return "", fmt.Errorf("certificate for node %s has CommonName %q, want %q", nodes[0], cert.Subject.CommonName, CommonName(nodes[0]))
	}
	return nodes[0], nil
}

// nodeOfServerName is the node a client asked for in its SNI, or "".
func nodeOfServerName(sni string) string {
	n, _ := strings.CutSuffix(sni, "."+NodeDomain)
	if n == sni {
		return ""
	}
	return n
}

// ErrForbidden: the client's node may not receive this copy (403).
var ErrForbidden = errors.New("not authorized")

// ErrNoCertificate: the certificate of a node this agent serves is not
// loaded (not issued yet, or its Secret unreadable).
var ErrNoCertificate = errors.New("replication: no certificate")
