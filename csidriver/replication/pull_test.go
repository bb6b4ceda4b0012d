package replication

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/backend"
	"hwameistor.io/local/csidriver/backend/emulated"
)

// TestPullRoundTrip copies sparse volumes through a real HTTP server into a
// fresh target, a target full of garbage and a larger garbage target, and
// checks the frames sent, the bytes, the checksums, the progress reports
// and that holes stay holes in the copy.
func TestPullRoundTrip(t *testing.T) {
	tests := []struct {
		name     string
		size     int64
		extents  []extent
		wantData int // data frames
		wantZero int // zero frames
	}{
		{name: "only holes", size: 8 * mi},
		{name: "data at the start", size: 8 * mi, extents: []extent{{0, random(100*ki, 1)}}, wantData: 1},
		{name: "data in the middle across chunks", size: 16 * mi, extents: []extent{{5*mi + 12345, random(2*mi, 2)}}, wantData: 3},
		{name: "data at the end", size: 8 * mi, extents: []extent{{8*mi - 1000, random(1000, 3)}}, wantData: 1},
		{
			name: "data at start, middle and end", size: 32 * mi,
			extents:  []extent{{0, random(4096, 4)}, {16*mi - 1, random(2, 5)}, {32*mi - 1, []byte{9}}},
			wantData: 4,
		},
		{
			name: "zero chunks inside a data extent", size: 8 * mi,
			extents:  []extent{{mi, concat(random(mi, 6), zeros(2*mi), random(mi, 7), zeros(mi))}},
			wantData: 2, wantZero: 2,
		},
		{name: "unaligned size, data in the short last chunk", size: 5*mi + 123, extents: []extent{{5 * mi, random(123, 8)}}, wantData: 1},
		{name: "unaligned size, all written zeros", size: 3*mi + 7, extents: []extent{{0, zeros(3*mi + 7)}}, wantZero: 1},
		{
			name: "two data extents and a hole inside one chunk", size: 2 * mi,
			extents:  []extent{{0, random(4096, 9)}, {512 * ki, random(4096, 10)}},
			wantData: 1,
		},
		{name: "dense", size: 4 * mi, extents: []extent{{0, random(4*mi, 11)}}, wantData: 4},
	}
	fx := newFixture(t)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vol := "pvc-" + string(rune('a'+i))
			src := fx.volume(t, vol, tc.size, tc.extents...)
			want := checksumOf(t, src, tc.size)
			srcBytes := readAll(t, src, tc.size)

			// The frames the server sends.
			rec := httptest.NewRecorder()
			fx.srv.ServeHTTP(rec, request(t, vol, targetNode, targetNode))
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			frames, trailer := decode(t, rec.Body.Bytes())
			var data, zero int
			for _, f := range frames {
				switch f.typ {
				case frameData:
					data++
				case frameZero:
					zero++
				}
			}
			if data != tc.wantData || zero != tc.wantZero || trailer != want {
				t.Errorf("stream: %d data and %d zero frames, trailer %s; want %d, %d, %s", data, zero, trailer, tc.wantData, tc.wantZero, want)
			}

			for _, target := range []struct {
				name    string
				size    int64
				garbage bool
			}{{"fresh target", tc.size, false}, {"garbage target", tc.size, true}, {"larger garbage target", tc.size + 3*mi + 5, true}} {
				t.Run(target.name, func(t *testing.T) {
					dir := t.TempDir()
					path := mkfile(t, dir, "dst", target.size)
					if target.garbage {
						path = garbageFile(t, dir, "dst", target.size)
					}
					dst := open(t, path, os.O_RDWR)
					var reports [][2]int64
					got, err := Pull(context.Background(), fx.client, fx.endpoint(), sourceNode, pool, vol, targetNode, dst,
						func(copied, total int64) { reports = append(reports, [2]int64{copied, total}) })
					if err != nil {
						t.Fatal(err)
					}
					if got != want || checksumOf(t, path, tc.size) != want {
						t.Errorf("Pull returned %s, target has %s, source %s", got, checksumOf(t, path, tc.size), want)
					}
					all := readAll(t, path, target.size)
					if !bytes.Equal(all[:tc.size], srcBytes) {
						t.Error("the target's bytes differ from the source's")
					}
					if extra := all[tc.size:]; !bytes.Equal(extra, bytes.Repeat([]byte{0xAB}, len(extra))) {
						t.Error("bytes beyond the volume's size were changed")
					}
					if target.size == tc.size {
						// One file system block more: a partial last
						// block cannot be punched out.
						if a := allocated(t, path); a > int64(tc.wantData)*ChunkSize+4096 {
							t.Errorf("the target allocates %d bytes, more than its %d data chunks: holes and zeros were not punched", a, tc.wantData)
						}
					}
					checkProgress(t, reports, tc.size)
				})
			}
		})
	}
}

func checkProgress(t *testing.T, reports [][2]int64, total int64) {
	t.Helper()
	if len(reports) == 0 || reports[len(reports)-1] != [2]int64{total, total} {
		t.Fatalf("progress %v, want it to end at %d of %d", reports, total, total)
	}
	for i, r := range reports {
		if r[1] != total || (i > 0 && r[0] < reports[i-1][0]) {
			t.Fatalf("progress %v: not monotonic or wrong total", reports)
		}
	}
}

// TestServerRefuses checks each refusal's status and message. The request
// comes as if over mutual TLS from a verified certificate (the handshake's
// own refusals: tls_test.go).
func TestServerRefuses(t *testing.T) {
	fx := newFixture(t)
	fx.volume(t, "pvc-ok", 2*mi, extent{0, []byte("data")})
	fx.volume(t, "pvc-busy", 2*mi)
	fx.setBusy("pvc-busy", errors.New("published on node-a"))

	tests := []struct {
		name     string
		req      func() *http.Request
		server   func(s *Server) *Server
		wantCode int
		wantMsg  string
	}{
		{name: "the live target", req: func() *http.Request { return request(t, "pvc-ok", targetNode, targetNode) }, wantCode: http.StatusOK},
		{name: "the live target, no target parameter", req: func() *http.Request { return request(t, "pvc-ok", targetNode, "") }, wantCode: http.StatusOK},
		{
			name:     "not over TLS",
			req:      func() *http.Request { return request(t, "pvc-ok", "", targetNode) },
			wantCode: http.StatusForbidden, wantMsg: "mutual TLS only",
		},
		{
			name: "no verified client certificate",
			req: func() *http.Request {
				r := request(t, "pvc-ok", targetNode, targetNode)
				r.TLS.VerifiedChains = nil
				return r
			},
			wantCode: http.StatusForbidden, wantMsg: "no verified client certificate",
		},
		{
			name:     "another node's certificate",
			req:      func() *http.Request { return request(t, "pvc-ok", "node-c", "") },
			wantCode: http.StatusForbidden, wantMsg: "node node-c is not the target of a live copy of pvc-ok",
		},
		{
			name:     "another node's certificate naming the live target",
			req:      func() *http.Request { return request(t, "pvc-ok", "node-c", targetNode) },
			wantCode: http.StatusForbidden, wantMsg: "the client certificate is node node-c's; it cannot receive a copy for node node-b",
		},
		{
			name:     "the live target asking for another node",
			req:      func() *http.Request { return request(t, "pvc-ok", targetNode, "node-c") },
			wantCode: http.StatusForbidden, wantMsg: "cannot receive a copy for node node-c",
		},
		{
			name:     "no authorization configured",
			req:      func() *http.Request { return request(t, "pvc-ok", targetNode, targetNode) },
			server:   func(s *Server) *Server { s.Authorize = nil; return s },
			wantCode: http.StatusInternalServerError, wantMsg: "no copy authorization configured",
		},
		{
			name: "authorization fails",
			req:  func() *http.Request { return request(t, "pvc-ok", targetNode, targetNode) },
			server: func(s *Server) *Server {
				s.Authorize = func(context.Context, string, string, string) error { return errors.New("apiserver down") }
				return s
			},
			wantCode: http.StatusInternalServerError, wantMsg: "authorizing the copy: apiserver down",
		},
		{
			name:     "refused before the busy check",
			req:      func() *http.Request { return request(t, "pvc-busy", "node-c", "") },
			wantCode: http.StatusForbidden, wantMsg: "not the target",
		},
		{name: "busy", req: func() *http.Request { return request(t, "pvc-busy", targetNode, targetNode) }, wantCode: http.StatusConflict, wantMsg: "volume pvc-busy is busy: published on node-a"},
		{name: "missing volume", req: func() *http.Request { return request(t, "pvc-none", targetNode, targetNode) }, wantCode: http.StatusNotFound, wantMsg: "volume not found"},
		{
			name:     "open fails",
			req:      func() *http.Request { return request(t, "pvc-ok", targetNode, targetNode) },
			server:   func(s *Server) *Server { s.Open = failingOpen(errors.New("disk on fire")); return s },
			wantCode: http.StatusInternalServerError, wantMsg: "disk on fire",
		},
		{name: "invalid volume name", req: func() *http.Request { return request(t, "-rf", targetNode, targetNode) }, wantCode: http.StatusBadRequest, wantMsg: "must not start with"},
		{
			name: "not GET",
			req: func() *http.Request {
				r := request(t, "pvc-ok", targetNode, targetNode)
				r.Method = http.MethodPost
				return r
			},
			wantCode: http.StatusMethodNotAllowed, wantMsg: "only GET",
		},
		{name: "unknown path", req: func() *http.Request { return httptest.NewRequest(http.MethodGet, "/v1/volumes/only-pool", nil) }, wantCode: http.StatusNotFound, wantMsg: "no such resource"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := *fx.srv
			srv := &s
			if tc.server != nil {
				srv = tc.server(srv)
			}
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, tc.req())
			if rec.Code != tc.wantCode || !strings.Contains(rec.Body.String(), tc.wantMsg) {
				t.Errorf("got %d %q, want %d containing %q", rec.Code, rec.Body.String(), tc.wantCode, tc.wantMsg)
			}
			if tc.wantCode != http.StatusOK && rec.Header().Get(SizeHeader) != "" {
				t.Errorf("a refusal sent %s", SizeHeader)
			}
		})
	}
}

func failingOpen(err error) func(context.Context, string, string, string) (*os.File, int64, error) {
	return func(context.Context, string, string, string) (*os.File, int64, error) { return nil, 0, err }
}

// TestPullErrors checks what Pull returns when the copy cannot be made.
func TestPullErrors(t *testing.T) {
	fx := newFixture(t)
	fx.volume(t, "pvc-ok", 4*mi, extent{mi, random(mi, 1)})
	fx.volume(t, "pvc-busy", 4*mi)
	fx.setBusy("pvc-busy", errors.New("published"))
	// A source that fails while reading: Open hands out a write-only file.
	wo := mkfile(t, t.TempDir(), "wo", 4*mi, extent{0, []byte("x")})
	failing := serveTLS(t, &Server{Authorize: fx.srv.Authorize, Open: func(context.Context, string, string, string) (*os.File, int64, error) {
		f, err := os.OpenFile(wo, os.O_WRONLY, 0)
		return f, 4 * mi, err
	}}, storeOf(sourceNode))
	// A source whose volume is published while it is being read.
	var calls sync.Mutex
	n := 0
	flipping := serveTLS(t, &Server{Authorize: fx.srv.Authorize, Open: fx.srv.Open, Busy: func(string) error {
		calls.Lock()
		defer calls.Unlock()
		if n++; n > 1 {
			return errors.New("published meanwhile")
		}
		return nil
	}}, storeOf(sourceNode))

	dir := t.TempDir()
	tests := []struct {
		name     string
		endpoint string
		client   string // the node pulling (node-b)
		volume   string
		dst      func() *os.File
		wantErr  error
		wantCode int
		wantMsg  string
	}{
		{name: "not the live target", client: "node-c", volume: "pvc-ok", wantErr: ErrForbidden, wantCode: http.StatusForbidden, wantMsg: "node node-c is not the target"},
		{name: "busy", volume: "pvc-busy", wantErr: ErrBusy, wantCode: http.StatusConflict},
		{name: "missing volume", volume: "pvc-none", wantErr: backend.ErrNotFound, wantCode: http.StatusNotFound},
		{name: "source read error", endpoint: failing, volume: "pvc-ok", wantMsg: "the source failed"},
		{name: "published during the copy", endpoint: flipping, volume: "pvc-ok", wantMsg: "became busy during the copy"},
		{
			name: "target smaller than the volume", volume: "pvc-ok",
			dst:     func() *os.File { return open(t, mkfile(t, dir, "small", 4*mi-1), os.O_RDWR) },
			wantMsg: "fewer than the source volume's",
		},
		{
			name: "target neither file nor block device", volume: "pvc-ok",
			dst:     func() *os.File { return open(t, os.DevNull, os.O_RDWR) },
			wantMsg: "neither a regular file nor a block device",
		},
		{name: "no certificate of the target loaded", client: "node-unknown", volume: "pvc-ok", wantErr: ErrNoCertificate, wantMsg: "no certificate for node node-unknown"},
		{name: "invalid volume name", volume: "../x", wantErr: backend.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			endpoint, client := fx.endpoint(), cmp.Or(tc.client, targetNode)
			if tc.endpoint != "" {
				endpoint = tc.endpoint
			}
			store := storeOf(client)
			if store == nil {
				store = &Store{}
			}
			path := garbageFile(t, t.TempDir(), "dst", 4*mi)
			dst := open(t, path, os.O_RDWR)
			if tc.dst != nil {
				dst = tc.dst()
			}
			sum, err := Pull(context.Background(), store, endpoint, sourceNode, pool, tc.volume, client, dst, nil)
			if err == nil {
				t.Fatalf("Pull succeeded (%s), want an error", sum)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("err = %v, want errors.Is %v", err, tc.wantErr)
			}
			var se *StatusError
			if tc.wantCode != 0 && (!errors.As(err, &se) || se.StatusCode != tc.wantCode) {
				t.Errorf("err = %v, want a StatusError %d", err, tc.wantCode)
			}
			if tc.wantMsg != "" && !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("err = %v, want it to contain %q", err, tc.wantMsg)
			}
			if errors.Is(err, ErrChecksumMismatch) {
				t.Errorf("err = %v: not a mismatch", err)
			}
		})
	}
}

// TestTruncatedStream cuts the real server's stream at several points: no
// cut before the trailer's end may pass as a copy.
func TestTruncatedStream(t *testing.T) {
	fx := newFixture(t)
	size := 4 * mi
	fx.volume(t, "pvc-a", size, extent{0, random(2*mi, 1)}, extent{3 * mi, zeros(mi)})
	rec := httptest.NewRecorder()
	fx.srv.ServeHTTP(rec, request(t, "pvc-a", targetNode, targetNode))
	body := rec.Body.Bytes()
	trailerLen := headerLen + len(ChecksumPrefix) + 64

	tests := []struct {
		name string
		cut  int
	}{
		{"empty body", 0},
		{"inside the first header", 5},
		{"inside a data payload", headerLen + 1000},
		{"after a whole data frame", headerLen + int(mi)},
		{"just before the trailer", len(body) - trailerLen},
		{"inside the trailer's header", len(body) - trailerLen + 3},
		{"inside the trailer's checksum", len(body) - 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			endpoint := craftedServer(t, size, body[:tc.cut])
			dst := open(t, garbageFile(t, t.TempDir(), "dst", size), os.O_RDWR)
			sum, err := Pull(context.Background(), fx.client, endpoint, sourceNode, pool, "pvc-a", targetNode, dst, nil)
			if !errors.Is(err, ErrTruncated) {
				t.Errorf("Pull = %q, %v; want an error that Is ErrTruncated", sum, err)
			}
		})
	}
	// The whole body is a valid copy (the crafted server is sound).
	dst := open(t, garbageFile(t, t.TempDir(), "dst", size), os.O_RDWR)
	if _, err := Pull(context.Background(), fx.client, craftedServer(t, size, body), sourceNode, pool, "pvc-a", targetNode, dst, nil); err != nil {
		t.Fatalf("the whole stream: %v", err)
	}
}

// TestProtocolErrors feeds Pull streams that break the protocol.
func TestProtocolErrors(t *testing.T) {
	size := 4 * mi
	emptySum := checksumOf(t, mkfile(t, t.TempDir(), "holes", size), size)
	data := func(off int64, n int64) frame {
		return frame{header{typ: frameData, off: off, length: uint32(n)}, random(n, 1)}
	}
	trailer := func(off int64, sum string) frame {
		return frame{header{typ: frameTrailer, off: off, length: uint32(len(sum))}, []byte(sum)}
	}
	tests := []struct {
		name    string
		body    []byte
		wantMsg string
	}{
		{"frames out of order", stream(data(2*mi, 10), data(mi, 10), trailer(size, emptySum)), "out of order"},
		{"overlapping frames", stream(data(0, 100), data(50, 10), trailer(size, emptySum)), "out of order"},
		{"frame beyond the volume", stream(data(size-5, 10), trailer(size, emptySum)), "beyond the volume"},
		{"empty data frame", stream(data(0, 0), trailer(size, emptySum)), "empty"},
		{"data frame larger than a chunk", stream(data(0, mi+1), trailer(size, emptySum)), "more than"},
		{"unknown frame type", stream(frame{header{typ: 'X'}, nil}, trailer(size, emptySum)), "unknown frame type"},
		{"trailer for another size", stream(trailer(size-1, emptySum)), "trailer for"},
		{"trailer without a checksum", stream(trailer(size, "md5:abc")), "trailer for"},
		{"bytes after the trailer", append(stream(trailer(size, emptySum)), 'D'), "after the trailer"},
		{"error frame", stream(data(0, 10), frame{header{typ: frameError, length: 4}, []byte("boom")}), "the source failed: boom"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := open(t, mkfile(t, t.TempDir(), "dst", size), os.O_RDWR)
			sum, err := Pull(context.Background(), storeOf(targetNode), craftedServer(t, size, tc.body), sourceNode, pool, "pvc-a", targetNode, dst, nil)
			if err == nil || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("Pull = %q, %v; want an error containing %q", sum, err, tc.wantMsg)
			}
		})
	}
}

// TestChecksumMismatch: a trailer that does not match what was received, and
// a target corrupted after it was written, are both detected by re-reading
// the target.
func TestChecksumMismatch(t *testing.T) {
	size := 4 * mi
	payload := random(mi, 1)
	dir := t.TempDir()
	realSum := checksumOf(t, mkfile(t, dir, "ref", size, extent{mi, payload}), size)
	otherSum := checksumOf(t, mkfile(t, dir, "other", size, extent{mi, random(mi, 2)}), size)
	good := stream(frame{header{typ: frameData, off: mi, length: uint32(mi)}, payload},
		frame{header{typ: frameTrailer, off: size, length: uint32(len(realSum))}, []byte(realSum)})
	lying := stream(frame{header{typ: frameData, off: mi, length: uint32(mi)}, payload},
		frame{header{typ: frameTrailer, off: size, length: uint32(len(otherSum))}, []byte(otherSum)})

	tests := []struct {
		name         string
		body         []byte
		beforeVerify func(*os.File) error
		wantErr      error
	}{
		{name: "consistent stream", body: good},
		{name: "trailer disagrees with the data", body: lying, wantErr: ErrChecksumMismatch},
		{
			name: "target corrupted after writing", body: good, wantErr: ErrChecksumMismatch,
			beforeVerify: func(f *os.File) error { _, err := f.WriteAt([]byte{1}, 3*mi+17); return err },
		},
		{
			name: "target data flipped after writing", body: good, wantErr: ErrChecksumMismatch,
			beforeVerify: func(f *os.File) error { _, err := f.WriteAt([]byte{^payload[5]}, mi+5); return err },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := open(t, garbageFile(t, t.TempDir(), "dst", size), os.O_RDWR)
			sum, err := pull(context.Background(), storeOf(targetNode), craftedServer(t, size, tc.body), sourceNode, pool, "pvc-a", targetNode, dst, nil,
				pullHooks{beforeVerify: tc.beforeVerify})
			if tc.wantErr == nil {
				if err != nil || sum != realSum {
					t.Fatalf("pull = %q, %v; want %s", sum, err, realSum)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) || sum != "" {
				t.Errorf("pull = %q, %v; want an error that Is %v", sum, err, tc.wantErr)
			}
		})
	}
}

// TestRateLimiter checks that the server consults its limiter for every
// payload byte it sends, in steps no larger than the burst, and fails the
// copy rather than exceed the limit. No timing is measured: the limiter
// refills so slowly that its remaining tokens count the bytes taken.
func TestRateLimiter(t *testing.T) {
	size := 8 * mi
	extents := []extent{{0, random(mi+5, 1)}, {3 * mi, zeros(2 * mi)}, {6*mi + 100, random(300, 2)}}
	// The payload bytes: the non-zero chunks, whole (chunks 0, 1 and 6).
	payload := 3 * mi
	const slack = 1000

	tests := []struct {
		name       string
		limiter    func() *rate.Limiter
		wantTokens float64 // after the copy; -1: not checked
		wantMsg    string
	}{
		{
			name: "every payload byte is taken from the bucket",
			// 0.001 token/s: the bucket refills by less than 0.1
			// during the test.
			limiter:    func() *rate.Limiter { return rate.NewLimiter(0.001, int(payload)+slack) },
			wantTokens: slack,
		},
		{
			name:       "a burst smaller than a chunk is honoured by steps",
			limiter:    func() *rate.Limiter { return rate.NewLimiter(rate.Limit(1<<40), 999) },
			wantTokens: -1,
		},
		{
			name:       "an exhausted limiter fails the copy instead of exceeding the limit",
			limiter:    func() *rate.Limiter { return rate.NewLimiter(0.001, 4096) },
			wantTokens: -1,
			wantMsg:    "copy rate limit",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t)
			src := fx.volume(t, "pvc-a", size, extents...)
			lim := tc.limiter()
			fx.srv.Limiter = lim
			// A deadline on the server's side, so that a wait
			// beyond it fails at once.
			endpoint := serveTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
				defer cancel()
				fx.srv.ServeHTTP(w, r.WithContext(ctx))
			}), storeOf(sourceNode))
			dst := open(t, mkfile(t, t.TempDir(), "dst", size), os.O_RDWR)
			sum, err := Pull(context.Background(), fx.client, endpoint, sourceNode, pool, "pvc-a", targetNode, dst, nil)
			if tc.wantMsg != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantMsg) {
					t.Fatalf("Pull = %q, %v; want an error containing %q", sum, err, tc.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if sum != checksumOf(t, src, size) {
				t.Error("the copy differs from the source")
			}
			if tc.wantTokens >= 0 {
				if got := lim.Tokens(); got < tc.wantTokens-0.5 || got > tc.wantTokens+0.5 {
					t.Errorf("%.1f tokens left, want %.0f: the limiter was consulted for %.0f bytes, %d were sent",
						got, tc.wantTokens, float64(payload)+slack-got, payload)
				}
			}
		})
	}
}

// TestPullBetweenEmulatedBackends wires the Server and Pull to two emulated
// backends through backend.DataOpener, as two node agents would.
func TestPullBetweenEmulatedBackends(t *testing.T) {
	ctx := context.Background()
	cfg := []emulated.PoolConfig{{Class: v1alpha1.PoolClassHDD, CapacityBytes: 64 * mi}}
	nodeA, err := emulated.New(t.TempDir(), cfg, emulated.WithoutLoop())
	if err != nil {
		t.Fatal(err)
	}
	nodeB, err := emulated.New(t.TempDir(), cfg, emulated.WithoutLoop())
	if err != nil {
		t.Fatal(err)
	}
	src, err := nodeA.CreateVolume(ctx, pool, "pvc-move", 10*mi, backend.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nodeB.CreateVolume(ctx, pool, "pvc-move", 10*mi, backend.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	w, err := nodeA.OpenData(ctx, pool, "pvc-move", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt(random(3*mi, 1), 2*mi+7); err != nil {
		t.Fatal(err)
	}
	w.Close()

	var opener backend.DataOpener = nodeA
	allow := func(context.Context, string, string, string) error { return nil }
	endpoint := serveTLS(t, &Server{Authorize: allow, Open: func(ctx context.Context, p, v, target string) (*os.File, int64, error) {
		if target != "node-b" {
			return nil, 0, fmt.Errorf("Open got target %q, want the request's node-b", target)
		}
		vol, err := nodeA.GetVolume(ctx, p, v)
		if err != nil {
			return nil, 0, err
		}
		f, err := opener.OpenData(ctx, p, v, false)
		return f, vol.SizeBytes, err
	}}, storeOf(sourceNode))

	dst, err := nodeB.OpenData(ctx, pool, "pvc-move", true)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	got, err := Pull(ctx, storeOf(targetNode), endpoint, sourceNode, pool, "pvc-move", targetNode, dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := nodeA.OpenData(ctx, pool, "pvc-move", false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if want, err := Checksum(r, src.SizeBytes); err != nil || got != want {
		t.Errorf("copy %s, source %s (%v)", got, want, err)
	}
	if _, err := Pull(ctx, storeOf(targetNode), endpoint, sourceNode, pool, "pvc-gone", targetNode, dst, nil); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("pull of a missing volume: %v, want ErrNotFound", err)
	}
}

func BenchmarkPull(b *testing.B) {
	fx := newFixture(b)
	size := 64 * mi
	fx.volume(b, "pvc-bench", size, extent{0, random(size, 1)})
	dst := open(b, mkfile(b, b.TempDir(), "dst", size), os.O_RDWR)
	ctx := context.Background()
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		if _, err := Pull(ctx, fx.client, fx.endpoint(), sourceNode, pool, "pvc-bench", targetNode, dst, nil); err != nil {
			b.Fatal(err)
		}
	}
}
