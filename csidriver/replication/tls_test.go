package replication

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// get requests path from endpoint with a hand-made TLS configuration.
func get(endpoint, path string, cfg *tls.Config) (*http.Response, []byte, error) {
	c := &http.Client{Transport: newTransport(cfg, time.Second), Timeout: 10 * time.Second}
	resp, err := c.Get("https://" + endpoint + path)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// TestMutualTLS: what each party must present. The server requires a
// client certificate chained to its CA and serves a volume only to the
// node its live copy is for, whatever the client asks for in ?target=;
// the client accepts only the source node's certificate from the source's
// CA. A refusal sends no byte of the volume and leaves the target alone.
func TestMutualTLS(t *testing.T) {
	ca, _ := testPKI()
	otherCA, err := NewCA(time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	fx := newFixture(t)
	const size = 4 * mi
	src := fx.volume(t, "pvc-ok", size, extent{mi, random(mi, 1)})
	var opened atomic.Int32
	open0 := fx.srv.Open
	fx.srv.Open = func(ctx context.Context, p, v, target string) (*os.File, int64, error) {
		opened.Add(1)
		return open0(ctx, p, v, target)
	}
	// A server with node-a's name from another CA.
	impostor := serveTLS(t, fx.srv, mustStore(otherCA, sourceNode))

	t.Run("raw requests", func(t *testing.T) {
		b := storeOf(targetNode).get(targetNode).cert
		foreign := mustStore(otherCA, targetNode).get(targetNode).cert
		tests := []struct {
			name       string
			cert       *tls.Certificate // the client's; nil: none
			target     string
			wantErr    string // the request fails (handshake)
			wantStatus int
			wantMsg    string
		}{
			{name: "the live target", cert: b, target: targetNode, wantStatus: http.StatusOK},
			{name: "no client certificate", wantErr: "certificate required"},
			{name: "a client certificate from another CA", cert: foreign, wantErr: "unknown certificate authority"},
			{
				name: "node-c's certificate, asking for node-b's copy", cert: storeOf("node-c").get("node-c").cert, target: targetNode,
				wantStatus: http.StatusForbidden, wantMsg: "the client certificate is node node-c's; it cannot receive a copy for node node-b",
			},
			{
				name: "node-c's certificate, asking for its own", cert: storeOf("node-c").get("node-c").cert, target: "node-c",
				wantStatus: http.StatusForbidden, wantMsg: "node node-c is not the target of a live copy of pvc-ok",
			},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				opened.Store(0)
				cfg := &tls.Config{RootCAs: roots, ServerName: NodeDNSName(sourceNode), MinVersion: tls.VersionTLS13}
				if tc.cert != nil {
					// Sent whatever CAs the server names (as
					// Store.ClientTLSConfig does).
					cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return tc.cert, nil }
				}
				resp, body, err := get(fx.endpoint(), PathPrefix+pool+"/pvc-ok?target="+tc.target, cfg)
				if tc.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
						t.Fatalf("err = %v (status %v), want a failed handshake: %q", err, resp, tc.wantErr)
					}
				} else if err != nil {
					t.Fatal(err)
				} else if resp.StatusCode != tc.wantStatus || !strings.Contains(string(body), tc.wantMsg) {
					t.Errorf("got %d %q, want %d containing %q", resp.StatusCode, body, tc.wantStatus, tc.wantMsg)
				}
				if want := int32(0); tc.wantStatus == http.StatusOK {
					if opened.Load() != 1 {
						t.Errorf("the volume was opened %d times, want once", opened.Load())
					}
				} else if opened.Load() != want {
					t.Errorf("a refused request opened the volume")
				}
			})
		}
	})

	t.Run("pulls", func(t *testing.T) {
		tests := []struct {
			name     string
			endpoint string
			source   string // the node the client means to reach
			client   *Store
			target   string
			wantErr  error
			wantMsg  string
		}{
			{name: "a copy over mutual TLS", endpoint: fx.endpoint(), source: sourceNode, client: fx.client, target: targetNode},
			{
				name: "node-c pulling node-b's copy", endpoint: fx.endpoint(), source: sourceNode, client: storeOf("node-c"), target: "node-c",
				wantErr: ErrForbidden, wantMsg: "403 Forbidden: not authorized: node node-c is not the target of a live copy of pvc-ok",
			},
			{
				name: "the server is not the source node", endpoint: fx.endpoint(), source: "node-c", client: fx.client, target: targetNode,
				wantMsg: "certificate is valid for node-a.node.hwameistor.internal, not node-c.node.hwameistor.internal",
			},
			{
				name: "the server's certificate is from another CA", endpoint: impostor, source: sourceNode, client: fx.client, target: targetNode,
				wantMsg: "certificate signed by unknown authority",
			},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				opened.Store(0)
				path := garbageFile(t, t.TempDir(), "dst", size)
				dst := open(t, path, os.O_RDWR)
				sum, err := Pull(context.Background(), tc.client, tc.endpoint, tc.source, pool, "pvc-ok", tc.target, dst, nil)
				if tc.wantErr == nil && tc.wantMsg == "" {
					if err != nil || sum != checksumOf(t, src, size) || checksumOf(t, path, size) != sum {
						t.Fatalf("Pull = %q, %v; want the source's checksum in the target", sum, err)
					}
					return
				}
				if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) || !strings.Contains(err.Error(), tc.wantMsg) {
					t.Fatalf("Pull = %q, %v; want an error (%v) containing %q", sum, err, tc.wantErr, tc.wantMsg)
				}
				if opened.Load() != 0 {
					t.Error("a refused pull opened the source volume")
				}
				if !bytes.Equal(readAll(t, path, size), bytes.Repeat([]byte{0xAB}, int(size))) {
					t.Error("a refused pull changed the target")
				}
			})
		}
	})
}

// TestRenewalWithoutRestart: a certificate replaced in the Store is the
// one the next handshake presents, on the server and on the client.
func TestRenewalWithoutRestart(t *testing.T) {
	ca, _ := testPKI()
	server, client := mustStore(ca, sourceNode), mustStore(ca, targetNode)
	var seen atomic.Pointer[x509.Certificate] // the client certificate the server saw
	endpoint := serveTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.TLS.PeerCertificates[0])
	}), server)
	handshake := func() (serverCert *x509.Certificate) {
		t.Helper()
		cfg, err := client.ClientTLSConfig(sourceNode, targetNode)
		if err != nil {
			t.Fatal(err)
		}
		cfg.VerifyConnection = func(cs tls.ConnectionState) error { serverCert = cs.PeerCertificates[0]; return nil }
		if _, _, err := get(endpoint, "/", cfg); err != nil {
			t.Fatal(err)
		}
		return serverCert
	}
	s1, c1 := handshake(), seen.Load()
	renew := func(s *Store, node string) {
		cert, key, err := ca.IssueNode(node, time.Now(), 2*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if changed, err := s.Set(node, cert, key, ca.CertPEM, time.Now()); !changed || err != nil {
			t.Fatalf("Set = %v, %v; want a change", changed, err)
		}
	}
	renew(server, sourceNode)
	renew(client, targetNode)
	s2, c2 := handshake(), seen.Load()
	if s1.SerialNumber.Cmp(s2.SerialNumber) == 0 || c1.SerialNumber.Cmp(c2.SerialNumber) == 0 {
		t.Errorf("after renewal the server presented serial %v (before %v), the client %v (before %v): want the new ones", s2.SerialNumber, s1.SerialNumber, c2.SerialNumber, c1.SerialNumber)
	}
	if !s2.Equal(server.get(sourceNode).cert.Leaf) || !c2.Equal(client.get(targetNode).cert.Leaf) {
		t.Error("the renewed certificates are not the Store's")
	}
}

// TestStoreSet: only a certificate of the node, chained to the given CA
// and valid now, is installed; a refused one leaves the previous in place.
func TestStoreSet(t *testing.T) {
	ca, _ := testPKI()
	other, err := NewCA(time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	issue := func(ca *CA, node string, at time.Time, validity time.Duration) (cert, key []byte) {
		cert, key, err := ca.IssueNode(node, at, validity)
		if err != nil {
			t.Fatal(err)
		}
		return cert, key
	}
	goodCert, goodKey := issue(ca, "n1", now, time.Hour)
	n2Cert, n2Key := issue(ca, "n2", now, time.Hour)
	otherCert, otherKey := issue(other, "n1", now, time.Hour)
	oldCert, oldKey := issue(ca, "n1", now.Add(-3*time.Hour), time.Hour)
	tests := []struct {
		name          string
		cert, key, ca []byte
		wantMsg       string
	}{
		{name: "another node's certificate", cert: n2Cert, key: n2Key, ca: ca.CertPEM, wantMsg: "not node n1's"},
		{name: "another CA", cert: otherCert, key: otherKey, ca: ca.CertPEM, wantMsg: "unknown authority"},
		{name: "expired", cert: oldCert, key: oldKey, ca: ca.CertPEM, wantMsg: "expired"},
		{name: "key of another certificate", cert: goodCert, key: n2Key, ca: ca.CertPEM, wantMsg: "private key does not match"},
		{name: "no CA", cert: goodCert, key: goodKey, ca: nil, wantMsg: "no CA"},
		{name: "garbage", cert: []byte("x"), key: []byte("y"), ca: ca.CertPEM, wantMsg: "failed to find"},
	}
	s := &Store{}
	if changed, err := s.Set("n1", goodCert, goodKey, ca.CertPEM, now); !changed || err != nil {
		t.Fatalf("Set = %v, %v", changed, err)
	}
	if changed, err := s.Set("n1", goodCert, goodKey, ca.CertPEM, now); changed || err != nil {
		t.Errorf("the same again: Set = %v, %v; want no change", changed, err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Set("n1", tc.cert, tc.key, tc.ca, now); err == nil || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("Set = %v, want an error containing %q", err, tc.wantMsg)
			}
			if !bytes.Equal(s.get("n1").cert.Certificate[0], firstBlock(goodCert)) {
				t.Error("a refused certificate replaced the good one")
			}
		})
	}
	if _, err := s.ClientTLSConfig(sourceNode, "n9"); !errors.Is(err, ErrNoCertificate) {
		t.Errorf("ClientTLSConfig for a node without a certificate: %v, want ErrNoCertificate", err)
	}
}

func firstBlock(certPEM []byte) []byte {
	block, _ := pem.Decode(certPEM)
	return block.Bytes
}

// TestNoPlainHTTP: the copy port answers plain HTTP with Go's 400 for an
// HTTP request to an HTTPS server, and never with the handler.
func TestNoPlainHTTP(t *testing.T) {
	fx := newFixture(t)
	fx.volume(t, "pvc-ok", mi, extent{0, []byte("data")})
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + fx.endpoint() + PathPrefix + pool + "/pvc-ok?target=" + targetNode)
	if err != nil {
		return // refused outright: fine too
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get(SizeHeader) != "" {
		t.Errorf("plain HTTP: %s %q", resp.Status, body)
	}
}
