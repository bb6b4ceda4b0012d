package replication

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// Store holds the certificates of the nodes an agent serves and the CAs
// each trusts (its Secret's ca.crt), and hands the latest ones to every
// TLS handshake: a renewed certificate is used from the next copy on,
// without a restart (SecretLoader keeps it filled).
type Store struct {
	mu    sync.RWMutex
	nodes map[string]*identity
}

// identity is one node's certificate and the CAs it trusts.
type identity struct {
	cert  *tls.Certificate // Leaf set
	roots *x509.CertPool
	ca    []byte
}

// ClientTLS is the client side of a copy's mutual TLS: a Pull for target
// from source presents target's certificate and accepts only source's.
type ClientTLS interface {
	ClientTLSConfig(source, target string) (*tls.Config, error)
}

var _ ClientTLS = (*Store)(nil)

// Set installs node's certificate: certPEM/keyPEM must be a pair for node
// that chains, at now, to a CA of caPEM. It reports whether anything
// changed; on error the node's previous certificate stays.
func (s *Store) Set(node string, certPEM, keyPEM, caPEM []byte, now time.Time) (changed bool, err error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return false, fmt.Errorf("certificate of node %s: %w", node, err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return false, fmt.Errorf("certificate of node %s: %w", node, err)
	}
	pair.Leaf = leaf
	if got, err := NodeOf(leaf); err != nil || got != node {
		return false, fmt.Errorf("certificate %q is not node %s's: %v", leaf.Subject.CommonName, node, err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return false, fmt.Errorf("certificate of node %s: no CA in %s", node, SecretCAField)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}); err != nil {
		return false, fmt.Errorf("certificate of node %s: %w", node, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.nodes[node]; old != nil && bytes.Equal(old.cert.Leaf.Raw, leaf.Raw) && bytes.Equal(old.ca, caPEM) {
		return false, nil
	}
	if s.nodes == nil {
		s.nodes = map[string]*identity{}
	}
	s.nodes[node] = &identity{cert: &pair, roots: roots, ca: bytes.Clone(caPEM)}
	return true, nil
}

// Has says whether node's certificate is loaded.
func (s *Store) Has(node string) bool { return s.get(node) != nil }

// NotAfter is when node's loaded certificate expires (zero: none loaded).
func (s *Store) NotAfter(node string) time.Time {
	if id := s.get(node); id != nil {
		return id.cert.Leaf.NotAfter
	}
	return time.Time{}
}

func (s *Store) get(node string) *identity {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.nodes[node]
}

// serving is the identity a server presents to a client that asked for
// sni: that node's when loaded, else the first loaded node's (the client
// then refuses it with a message naming both nodes, which says more than
// a failed handshake), nil when none is loaded.
func (s *Store) serving(sni string) *identity {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if id := s.nodes[nodeOfServerName(sni)]; id != nil {
		return id
	}
	names := make([]string, 0, len(s.nodes))
	for n := range s.nodes {
		names = append(names, n)
	}
	if len(names) == 0 {
		return nil
	}
	return s.nodes[slices.Min(names)]
}

// ServerTLSConfig is the copy server's TLS: TLS 1.3, the certificate of the
// node the client asked for, and a client certificate chained to that
// node's CAs required (tls.RequireAndVerifyClientCert; which node it names
// is the Server's business). Each handshake reads the latest certificates.
func (s *Store) ServerTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			id := s.serving(hello.ServerName)
			if id == nil {
				return nil, fmt.Errorf("%w: no node certificate loaded yet (the controllers have not issued it, or its Secret is not readable)", ErrNoCertificate)
			}
			return &tls.Config{
				MinVersion:   tls.VersionTLS13,
				Certificates: []tls.Certificate{*id.cert},
				ClientAuth:   tls.RequireAndVerifyClientCert,
				ClientCAs:    id.roots,
			}, nil
		},
	}
}

// ClientTLSConfig is the TLS of a pull for target from source: target's
// certificate as the client's, and a server certificate that chains to
// target's CAs and is source's (its DNS name; the standard hostname check).
// An error that Is ErrNoCertificate when target's is not loaded.
func (s *Store) ClientTLSConfig(source, target string) (*tls.Config, error) {
	id := s.get(target)
	if id == nil {
		return nil, fmt.Errorf("%w for node %s yet (the controllers issue it into Secret %s; the agent loads it within seconds of that)", ErrNoCertificate, target, NodeSecretName(target))
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ServerName: NodeDNSName(source),
		RootCAs:    id.roots,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if cur := s.get(target); cur != nil {
				return cur.cert, nil
			}
			return id.cert, nil
		},
		// Belt and braces: the hostname check already proved it; this
		// also holds the CommonName to the same node.
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the source presented no certificate")
			}
			got, err := NodeOf(cs.PeerCertificates[0])
			if err != nil {
				return fmt.Errorf("the source's certificate: %w", err)
			}
			if got != source {
				return fmt.Errorf("the source's certificate is node %s's, not %s's", got, source)
			}
			return nil
		},
	}, nil
}

// Serve serves h over mutual TLS with store's certificates on lis until
// ctx ends. Plain HTTP is never served. Refused handshakes (no client
// certificate, one from another CA) are logged to log.
func Serve(ctx context.Context, lis net.Listener, h http.Handler, store *Store, log logr.Logger) error {
	hs := &http.Server{
		ErrorLog:          stdlog.New(logWriter{log}, "", 0),
		Handler:           h,
		TLSConfig:         store.ServerTLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		// HTTP/1.1: a copy is one long response on its own connection.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	go func() {
		<-ctx.Done()
		_ = hs.Close()
	}()
	if err := hs.ServeTLS(lis, "", ""); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// peerNode is the node of a request's verified client certificate.
func peerNode(cs *tls.ConnectionState) (string, error) {
	if cs == nil {
		return "", errors.New("not a TLS connection: copies are served over mutual TLS only")
	}
	if len(cs.VerifiedChains) == 0 || len(cs.PeerCertificates) == 0 {
		return "", errors.New("no verified client certificate")
	}
	return NodeOf(cs.PeerCertificates[0])
}

// logWriter hands http.Server's error lines to a logr.Logger.
type logWriter struct{ log logr.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.Info(strings.TrimSpace(string(p)))
	return len(p), nil
}
