package replication

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fullListener is a TCP address whose accept queue is full and never
// drained: a connect to it hangs (the kernel drops the SYN), as to a peer
// that is gone.
func fullListener(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	// Fill the queue.
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return addr
}

// silentPeer accepts connections and reads the requests, but never
// answers.
func silentPeer(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c) }()
			t.Cleanup(func() { c.Close() })
		}
	}()
	return lis.Addr().String()
}

// stallingPeer answers with the headers and sends frames, then stops
// sending without closing the connection, until the test ends.
func stallingPeer(t *testing.T, size int64, frames ...frame) string {
	t.Helper()
	done := make(chan struct{})
	t.Cleanup(func() { close(done) }) // runs before serveTLS's cleanup
	return serveTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(SizeHeader, strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(stream(frames...))
		_ = http.NewResponseController(w).Flush()
		select {
		case <-done:
		case <-r.Context().Done():
		}
	}), storeOf(sourceNode))
}

// TestPullTimeouts: a source that cannot be reached, that accepts but
// never answers, or that answers and then stops sending fails the copy
// within its timeout, with an error that Is ErrTimeout and says what
// happened; the caller's own cancellation is not reported as a timeout.
func TestPullTimeouts(t *testing.T) {
	const size = 4 * mi
	data := random(mi, 7)
	short := Timeouts{Dial: 200 * time.Millisecond, ResponseHeader: 300 * time.Millisecond, Idle: 300 * time.Millisecond}
	tests := []struct {
		name     string
		endpoint func(t *testing.T) string
		timeouts Timeouts
		wantMsg  string
	}{
		{
			name:     "connect hangs",
			endpoint: fullListener,
			timeouts: Timeouts{Dial: 200 * time.Millisecond, ResponseHeader: time.Minute, Idle: time.Minute},
			wantMsg:  "i/o timeout",
		},
		{
			name:     "accepts, never answers",
			endpoint: silentPeer,
			timeouts: short,
			wantMsg:  "within 300ms (the source is unreachable or stalled)",
		},
		{
			name:     "headers, then nothing",
			endpoint: func(t *testing.T) string { return stallingPeer(t, size) },
			timeouts: short,
			wantMsg:  "for 300ms (the source stalled)",
		},
		{
			name: "a frame, then nothing",
			endpoint: func(t *testing.T) string {
				return stallingPeer(t, size, frame{header{typ: frameData, off: 0, length: uint32(mi)}, data})
			},
			timeouts: short,
			wantMsg:  "for 300ms (the source stalled)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			endpoint := tc.endpoint(t)
			dst := open(t, garbageFile(t, t.TempDir(), "dst", size), os.O_RDWR)
			start := time.Now()
			_, err := Puller{TLS: storeOf(targetNode), Timeouts: tc.timeouts}.Pull(context.Background(), endpoint, sourceNode, pool, "pvc-a", targetNode, dst, nil)
			took := time.Since(start)
			if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), tc.wantMsg) || !strings.Contains(err.Error(), endpoint) {
				t.Errorf("err = %v; want ErrTimeout naming %s and %q", err, endpoint, tc.wantMsg)
			}
			if took > 5*time.Second {
				t.Errorf("the pull took %v to fail", took)
			}
		})
	}

	// The caller's deadline is the caller's, not a stalled source.
	endpoint := silentPeer(t)
	dst := open(t, garbageFile(t, t.TempDir(), "dst", size), os.O_RDWR)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := Puller{TLS: storeOf(targetNode), Timeouts: Timeouts{ResponseHeader: time.Minute}}.Pull(ctx, endpoint, sourceNode, pool, "pvc-a", targetNode, dst, nil)
	if errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled by the caller: %v; want context.DeadlineExceeded, not ErrTimeout", err)
	}
}

// TestIdleTimeoutCountsOnlyWaiting: a copy slower than the idle timeout in
// total, whose source keeps sending (it flushes at least every
// FlushInterval, also while it reads a long run of zeros that makes a
// single frame), completes; the same source without its periodic flush
// leaves the client waiting longer than the timeout and the copy fails.
func TestIdleTimeoutCountsOnlyWaiting(t *testing.T) {
	const size = 24 * mi
	for _, tc := range []struct {
		name    string
		flush   time.Duration
		wantErr error
	}{
		{name: "source flushes every 50ms", flush: 50 * time.Millisecond},
		{name: "source flushes every 5s", flush: 5 * time.Second, wantErr: ErrTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t)
			// Allocated zeros: every chunk is read, all become one
			// zero frame unless flushed.
			fx.volume(t, "pvc-a", size, extent{0, zeros(size)})
			fx.srv.flushEvery = tc.flush
			fx.srv.afterChunk = func() { time.Sleep(25 * time.Millisecond) } // 24 chunks: 600ms
			dst := open(t, garbageFile(t, t.TempDir(), "dst", size), os.O_RDWR)
			_, err := Puller{TLS: fx.client, Timeouts: Timeouts{Idle: 250 * time.Millisecond}}.Pull(
				context.Background(), fx.endpoint(), sourceNode, pool, "pvc-a", targetNode, dst, nil)
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestTimeoutDefaults(t *testing.T) {
	got := Timeouts{Idle: time.Second}.withDefaults()
	if want := (Timeouts{Dial: DefaultDialTimeout, ResponseHeader: DefaultResponseHeaderTimeout, Idle: time.Second}); got != want {
		t.Errorf("withDefaults = %+v, want %+v", got, want)
	}
	tr := newTransport(&tls.Config{}, DefaultDialTimeout)
	if tr.Proxy != nil || !tr.DisableKeepAlives || tr.ForceAttemptHTTP2 || tr.TLSClientConfig == nil {
		t.Errorf("transport: proxy set %v, keep-alives off %v, HTTP/2 forced %v, TLS %v", tr.Proxy != nil, tr.DisableKeepAlives, tr.ForceAttemptHTTP2, tr.TLSClientConfig)
	}
}
