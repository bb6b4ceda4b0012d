package replication

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

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

// fixture is a Server over files in a directory, served by httptest.
type fixture struct {
	dir string
	key []byte
	srv *Server
	ts  *httptest.Server

	mu   sync.Mutex
	vols map[string]string // volume -> file
	busy map[string]error
}

var testKey = []byte("0123456789abcdef0123456789abcdef")

func newFixture(t testing.TB) *fixture {
	t.Helper()
	fx := &fixture{dir: t.TempDir(), key: testKey, vols: map[string]string{}, busy: map[string]error{}}
	fx.srv = &Server{
		Key: fx.key,
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
	fx.ts = httptest.NewServer(fx.srv)
	t.Cleanup(fx.ts.Close)
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

func (fx *fixture) endpoint() string { return strings.TrimPrefix(fx.ts.URL, "http://") }

// request builds a signed stream request for the handler.
func request(key []byte, volume, target string, at time.Time) *http.Request {
	path := PathPrefix + pool + "/" + volume
	r := httptest.NewRequest(http.MethodGet, path+"?target="+target, nil)
	r.Header.Set("Authorization", Sign(key, path, target, at))
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

// craftedServer answers every request with size and body.
func craftedServer(t testing.TB, size int64, body []byte) string {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set(SizeHeader, strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	}))
	t.Cleanup(ts.Close)
	return strings.TrimPrefix(ts.URL, "http://")
}
