package replication

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"hwameistor.io/local/csidriver/backend"
)

const (
	ki = int64(1 << 10)
	mi = int64(1 << 20)
	gi = int64(1 << 30)

	pool = "LocalStorage_PoolHDD"
)

// extent is data written at off; zeros are written (allocated), not
// skipped.
type extent struct {
	off  int64
	data []byte
}

// random returns n deterministic pseudo-random bytes.
func random(n int64, seed uint64) []byte {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

func zeros(n int64) []byte { return make([]byte, n) }

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// mkfile creates a sparse file of size with the extents written, and
// returns its path.
func mkfile(t testing.TB, dir, name string, size int64, extents ...extent) string {
	t.Helper()
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for _, e := range extents {
		if _, err := f.WriteAt(e.data, e.off); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// garbageFile creates a fully allocated file of non-zero bytes.
func garbageFile(t testing.TB, dir, name string, size int64) string {
	t.Helper()
	return mkfile(t, dir, name, size, extent{0, bytes.Repeat([]byte{0xAB}, int(size))})
}

func open(t testing.TB, path string, flag int) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func readAll(t testing.TB, path string, n int64) []byte {
	t.Helper()
	f := open(t, path, os.O_RDONLY)
	b := make([]byte, n)
	if _, err := io.ReadFull(f, b); err != nil {
		t.Fatal(err)
	}
	return b
}

func allocated(t testing.TB, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

func checksumOf(t testing.TB, path string, size int64) string {
	t.Helper()
	sum, err := Checksum(open(t, path, os.O_RDONLY), size)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// The nodes of the tests: the fixture's server serves node-a's volumes,
// the client pulls for node-b.
const (
	sourceNode = "node-a"
	targetNode = "node-b"
)

// testPKI is one CA and the Stores of the nodes the tests use, made once.
var testPKI = sync.OnceValues(func() (*CA, map[string]*Store) {
	ca, err := NewCA(time.Now(), 24*time.Hour)
	if err != nil {
		panic(err)
	}
	stores := map[string]*Store{}
	for _, n := range []string{sourceNode, targetNode, "node-c"} {
		stores[n] = mustStore(ca, n)
	}
	return ca, stores
})

// mustStore is a Store holding node's certificate signed by ca.
func mustStore(ca *CA, node string) *Store {
	cert, key, err := ca.IssueNode(node, time.Now(), time.Hour)
	if err != nil {
		panic(err)
	}
	s := &Store{}
	if _, err := s.Set(node, cert, key, ca.CertPEM, time.Now()); err != nil {
		panic(err)
	}
	return s
}

// storeOf is the shared Store of a test node.
func storeOf(node string) *Store {
	_, stores := testPKI()
	return stores[node]
}

// serveTLS serves h over mutual TLS with store's certificates on a
// loopback port until the test ends, and returns the address.
func serveTLS(t testing.TB, h http.Handler, store *Store) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = Serve(ctx, lis, h, store, logr.Discard()) }()
	t.Cleanup(func() { cancel(); <-done })
	return lis.Addr().String()
}

// fixture is a Server of node-a over files in a directory, served over
// mutual TLS; node-b is the live target of every volume unless targets
// says otherwise.
type fixture struct {
	dir    string
	srv    *Server
	client *Store // node-b's certificate
	addr   string

	mu      sync.Mutex
	vols    map[string]string // volume -> file
	busy    map[string]error
	targets map[string]string // volume -> its live copy's target
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	fx := &fixture{dir: t.TempDir(), client: storeOf(targetNode), vols: map[string]string{}, busy: map[string]error{}, targets: map[string]string{}}
	fx.srv = &Server{
		Authorize: func(_ context.Context, _, volume, client string) error {
			fx.mu.Lock()
			defer fx.mu.Unlock()
			if want := cmp.Or(fx.targets[volume], targetNode); client != want {
				return fmt.Errorf("%w: node %s is not the target of a live copy of %s", ErrForbidden, client, volume)
			}
			return nil
		},
		Open: func(_ context.Context, p, volume, _ string) (*os.File, int64, error) {
			fx.mu.Lock()
			path, ok := fx.vols[volume]
			fx.mu.Unlock()
			if !ok || p != pool {
				return nil, 0, backend.ErrNotFound
			}
			f, err := os.Open(path)
			if err != nil {
				return nil, 0, err
			}
			st, err := f.Stat()
			if err != nil {
				f.Close()
				return nil, 0, err
			}
			return f, st.Size(), nil
		},
		Busy: func(volume string) error {
			fx.mu.Lock()
			defer fx.mu.Unlock()
			return fx.busy[volume]
		},
	}
	// Through a handler, so that tests may change fx.srv's fields.
	fx.addr = serveTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fx.srv.ServeHTTP(w, r) }), storeOf(sourceNode))
	return fx
}

// volume creates a source volume file and registers it.
func (fx *fixture) volume(t testing.TB, name string, size int64, extents ...extent) string {
	t.Helper()
	path := mkfile(t, fx.dir, name+".src", size, extents...)
	fx.mu.Lock()
	fx.vols[name] = path
	fx.mu.Unlock()
	return path
}

func (fx *fixture) setBusy(volume string, err error) {
	fx.mu.Lock()
	fx.busy[volume] = err
	fx.mu.Unlock()
}

func (fx *fixture) setTarget(volume, node string) {
	fx.mu.Lock()
	fx.targets[volume] = node
	fx.mu.Unlock()
}

func (fx *fixture) endpoint() string { return fx.addr }

// request builds a stream request for the handler as if it came over
// mutual TLS from client's verified certificate ("": no TLS at all),
// asking for target ("": no target parameter).
func request(t testing.TB, volume, client, target string) *http.Request {
	t.Helper()
	path := PathPrefix + pool + "/" + volume
	if target != "" {
		path += "?target=" + target
	}
	r := httptest.NewRequest(http.MethodGet, path, nil)
	if client != "" {
		ca, _ := testPKI()
		leaf := storeOf(client).get(client).cert.Leaf
		r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}, VerifiedChains: [][]*x509.Certificate{{leaf, ca.Cert}}}
	}
	return r
}

// decode splits a stream into its frames' headers and returns the trailer's
// text.
func decode(t testing.TB, body []byte) (frames []header, trailer string) {
	t.Helper()
	r := bytes.NewReader(body)
	for {
		h, err := readHeader(r)
		if errors.Is(err, io.EOF) {
			return frames, trailer
		}
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		frames = append(frames, h)
		if h.typ != frameZero {
			p := make([]byte, h.length)
			if _, err := io.ReadFull(r, p); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if h.typ == frameTrailer || h.typ == frameError {
				trailer = string(p)
			}
		}
	}
}

// stream builds a stream body from frames (for crafted servers).
type frame struct {
	h       header
	payload []byte
}

func stream(frames ...frame) []byte {
	var b bytes.Buffer
	for _, f := range frames {
		_ = writeFrame(&b, f.h, f.payload)
	}
	return b.Bytes()
}

// craftedServer answers every request with size and body, over mutual TLS
// as node-a.
func craftedServer(t testing.TB, size int64, body []byte) string {
	t.Helper()
	return serveTLS(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set(SizeHeader, strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	}), storeOf(sourceNode))
}
