package replication

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"hwameistor.io/local/csidriver/backend"
)

var (
	// ErrChecksumMismatch: the target's checksum, re-read after the copy,
	// differs from the source's.
	ErrChecksumMismatch = errors.New("replication: checksum of the copy does not match the source")
	// ErrTruncated: the stream ended (or broke) before its trailer.
	ErrTruncated = errors.New("replication: stream ended before its trailer")
	// ErrBusy: the source refused because the volume is in use (409).
	ErrBusy = errors.New("replication: volume is busy on the source")
	// ErrTimeout: the source did not answer in time (Timeouts).
	ErrTimeout = errors.New("replication: the source did not answer in time")
)

// Defaults of Timeouts.
const (
	DefaultDialTimeout           = 10 * time.Second
	DefaultResponseHeaderTimeout = 30 * time.Second
	DefaultIdleTimeout           = 60 * time.Second
)

// Timeouts bound the phases of a Pull, so that a source that stopped
// answering fails the copy (it is retried) rather than holding one of the
// agent's few copy workers forever. A zero field takes its default; none
// bounds the whole copy, which lasts as long as the volume needs (ctx can).
type Timeouts struct {
	// Dial bounds the TCP connect to the source (DefaultDialTimeout).
	Dial time.Duration
	// ResponseHeader bounds the time from sending the request to the
	// response's headers (DefaultResponseHeaderTimeout), the connect and
	// the TLS handshake included: the source checks the request, that the
	// volume is not in use and opens it first.
	ResponseHeader time.Duration
	// Idle aborts the copy when no byte of the stream arrives for this
	// long (DefaultIdleTimeout), counted only while Pull waits for the
	// stream (not while it writes to the target). The source flushes what
	// it has at least every few seconds (Server), also during long runs of
	// zeros; a rate limit slower than ChunkSize per Idle (17 KiB/s at the
	// default) trips it.
	Idle time.Duration
}

func (t Timeouts) withDefaults() Timeouts {
	if t.Dial <= 0 {
		t.Dial = DefaultDialTimeout
	}
	if t.ResponseHeader <= 0 {
		t.ResponseHeader = DefaultResponseHeaderTimeout
	}
	if t.Idle <= 0 {
		t.Idle = DefaultIdleTimeout
	}
	return t
}

// newTransport is the HTTP transport of one pull: cfg's mutual TLS, a
// connect bounded by dial, no proxy (agents talk to each other directly),
// HTTP/1.1, and no connection kept for another pull (the next one may be
// for another target node, i.e. another client certificate). The response
// header timeout, handshake included, is Pull's own (Timeouts).
func newTransport(cfg *tls.Config, dial time.Duration) *http.Transport {
	return &http.Transport{
		DialContext:       (&net.Dialer{Timeout: dial, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:   cfg,
		DisableKeepAlives: true,
		ForceAttemptHTTP2: false,
	}
}

// StatusError is a refusal of the source (a response other than 200). It Is
// ErrBusy for 409, ErrForbidden for 403 and backend.ErrNotFound for 404.
type StatusError struct {
	StatusCode int
	// Message is the server's explanation (the response body).
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("replication: source answered %d %s: %s", e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}

// Is maps 409 to ErrBusy, 403 to ErrForbidden and 404 to
// backend.ErrNotFound.
func (e *StatusError) Is(target error) bool {
	return (target == ErrBusy && e.StatusCode == http.StatusConflict) ||
		(target == ErrForbidden && e.StatusCode == http.StatusForbidden) ||
		(target == backend.ErrNotFound && e.StatusCode == http.StatusNotFound)
}

// Pull copies a volume from the node agent of node source at endpoint
// (host:port) into dst and verifies it. It requests
// PathPrefix{pool}/{volume}?target=<target> over mutual TLS (creds:
// target's certificate as the client's, and only source's accepted from
// the server), writes data frames at their offsets, and makes every other
// byte of [0, size) zero: ranges of zero frames and the holes between
// frames are punched out of a regular file (written as zeros where
// punching is not supported) and zeroed on a block device (fallocate
// ZERO_RANGE, else written as zeros), so garbage in a reused target cannot
// survive. Then it fsyncs dst, drops its cached pages, re-reads it with
// Checksum and returns the checksum, or an error that Is
// ErrChecksumMismatch when it differs from the source's trailer. A stream
// without its trailer is an error that Is ErrTruncated; a refusal is a
// *StatusError.
//
// dst is a regular file or a block device opened read-write (as
// backend.DataOpener opens it for writing) of at least the volume's size;
// bytes beyond the volume's size are left alone. progress, when set, is
// called with the bytes of the volume handled so far (written, zeroed or
// skipped as holes) and the volume's size. ctx bounds the whole copy, and
// the default Timeouts its phases: a source that stalls fails the copy
// with an error that Is ErrTimeout.
func Pull(ctx context.Context, creds ClientTLS, endpoint, source, pool, volume, target string, dst *os.File, progress func(copied, total int64)) (checksum string, err error) {
	return Puller{TLS: creds}.Pull(ctx, endpoint, source, pool, volume, target, dst, progress)
}

// Puller is Pull with its credentials and timeouts chosen.
type Puller struct {
	// TLS gives each pull its mutual TLS (a *Store).
	TLS ClientTLS
	// Timeouts bound the phases of each Pull (zero fields: defaults).
	Timeouts Timeouts
}

// Pull is the package's Pull with p's credentials and timeouts.
func (p Puller) Pull(ctx context.Context, endpoint, source, pool, volume, target string, dst *os.File, progress func(copied, total int64)) (checksum string, err error) {
	return pull(ctx, p.TLS, endpoint, source, pool, volume, target, dst, progress, pullHooks{timeouts: p.Timeouts})
}

// pullHooks let tests reach inside a Pull.
type pullHooks struct {
	// beforeVerify runs after the copy is written and synced.
	beforeVerify func(dst *os.File) error
	// noFallocate makes the zeroer write zeros.
	noFallocate bool
	// timeouts of the phases (zero fields: defaults).
	timeouts Timeouts
}

func pull(ctx context.Context, creds ClientTLS, endpoint, source, pool, volume, target string, dst *os.File, progress func(copied, total int64), hooks pullHooks) (string, error) {
	if creds == nil {
		return "", fmt.Errorf("%w: no replication certificates configured", ErrNoCertificate)
	}
	if target == "" || source == "" {
		return "", errors.New("replication: no source or target node")
	}
	for _, n := range []string{pool, volume} {
		if err := backend.ValidateVolumeName(n); err != nil {
			return "", err
		}
	}
	to := hooks.timeouts.withDefaults()
	cfg, err := creds.ClientTLSConfig(source, target)
	if err != nil {
		return "", fmt.Errorf("replication: pull %s/%s from %s: %w", pool, volume, source, err)
	}
	tr := newTransport(cfg, to.Dial)
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	z, dstSize, err := newZeroer(dst)
	if err != nil {
		return "", err
	}
	if hooks.noFallocate {
		z.mode = 0
	}

	// The phases' timeouts cancel the request with their reason; the
	// caller's ctx stays what it was.
	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	explain := func(err error) error {
		if cause := context.Cause(ctx); parent.Err() == nil && cause != nil && errors.Is(cause, ErrTimeout) {
			return cause
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && parent.Err() == nil { // the client's dial timeout
			return fmt.Errorf("%w: %w", ErrTimeout, err)
		}
		return err
	}

	path := PathPrefix + pool + "/" + volume
	u := url.URL{Scheme: "https", Host: endpoint, Path: path, RawQuery: url.Values{"target": {target}}.Encode()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", fmt.Errorf("replication: %w", err)
	}
	req.Header.Set("Accept", ContentType)
	headerTimer := time.AfterFunc(to.ResponseHeader, func() {
		cancel(fmt.Errorf("%w: no response from %s within %v (the source is unreachable or stalled)", ErrTimeout, endpoint, to.ResponseHeader))
	})
	resp, err := c.Do(req)
	headerTimer.Stop()
	if err != nil {
		return "", fmt.Errorf("replication: pull %s/%s from %s (%s): %w", pool, volume, source, endpoint, explain(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return "", &StatusError{StatusCode: resp.StatusCode, Message: strings.TrimSpace(string(msg))}
	}
	size, err := strconv.ParseInt(resp.Header.Get(SizeHeader), 10, 64)
	if err != nil || size < 0 {
		return "", fmt.Errorf("replication: source sent no valid %s header (%q)", SizeHeader, resp.Header.Get(SizeHeader))
	}
	if dstSize < size {
		return "", fmt.Errorf("replication: target %s has %d bytes, fewer than the source volume's %d", dst.Name(), dstSize, size)
	}
	if progress == nil {
		progress = func(int64, int64) {}
	}
	progress(0, size)

	body := &idleReader{r: resp.Body, d: to.Idle, stalled: func() {
		cancel(fmt.Errorf("%w: no data from %s for %v (the source stalled)", ErrTimeout, endpoint, to.Idle))
	}}
	want, err := receive(ctx, bufio.NewReaderSize(body, 256<<10), dst, z, size, progress)
	body.stop()
	if err != nil {
		return "", fmt.Errorf("replication: pull %s/%s from %s (%s): %w", pool, volume, source, endpoint, explain(err))
	}
	if err := dst.Sync(); err != nil {
		return "", fmt.Errorf("replication: fsync %s: %w", dst.Name(), err)
	}
	if hooks.beforeVerify != nil {
		if err := hooks.beforeVerify(dst); err != nil {
			return "", err
		}
	}
	// Verify what the device holds, not what the page cache remembers
	// (clean pages are dropped after the fsync; best effort).
	_ = fadviseDontNeed(dst, size)
	got, err := checksum(ctx, dst, size, true)
	if err != nil {
		return "", fmt.Errorf("replication: verify %s: %w", dst.Name(), err)
	}
	if got != want {
		return "", fmt.Errorf("%w: %s/%s: source %s, target %s (%s)", ErrChecksumMismatch, pool, volume, want, got, dst.Name())
	}
	return got, nil
}

// idleReader calls stalled when one Read waits longer than d: only the time
// spent waiting for the source counts, not the time the caller spends
// between reads (writing and zeroing the target).
type idleReader struct {
	r       io.Reader
	d       time.Duration
	stalled func()
	timer   *time.Timer
}

func (ir *idleReader) Read(p []byte) (int, error) {
	if ir.timer == nil {
		ir.timer = time.AfterFunc(ir.d, ir.stalled)
	} else {
		ir.timer.Reset(ir.d)
	}
	n, err := ir.r.Read(p)
	ir.timer.Stop()
	return n, err
}

func (ir *idleReader) stop() {
	if ir.timer != nil {
		ir.timer.Stop()
	}
}

// receive applies the frames to dst and returns the trailer's checksum.
// Frames must come in offset order without overlap; the gaps between them
// (the source's holes) and the ranges of zero frames are zeroed.
func receive(ctx context.Context, r *bufio.Reader, dst *os.File, z *zeroer, size int64, progress func(int64, int64)) (string, error) {
	buf := make([]byte, ChunkSize)
	var next int64 // the first byte not yet handled
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		h, err := readHeader(r)
		if err != nil {
			return "", truncated(ctx, err)
		}
		end := h.off + int64(h.length)
		switch h.typ {
		case frameData, frameZero:
			if h.length == 0 || h.off < next || end > size {
				return "", fmt.Errorf("protocol error: frame %c [%d, %d) is empty, out of order (next %d) or beyond the volume's %d bytes", h.typ, h.off, end, next, size)
			}
			if err := z.zero(next, h.off-next); err != nil {
				return "", err
			}
			if h.typ == frameZero {
				if err := z.zero(h.off, int64(h.length)); err != nil {
					return "", err
				}
				break
			}
			if h.length > ChunkSize {
				return "", fmt.Errorf("protocol error: data frame of %d bytes, more than %d", h.length, ChunkSize)
			}
			p := buf[:h.length]
			if _, err := io.ReadFull(r, p); err != nil {
				return "", truncated(ctx, err)
			}
			if _, err := dst.WriteAt(p, h.off); err != nil {
				return "", fmt.Errorf("write %s at %d: %w", dst.Name(), h.off, err)
			}
		case frameTrailer, frameError:
			if h.length > maxTextFrame {
				return "", fmt.Errorf("protocol error: frame %c of %d bytes", h.typ, h.length)
			}
			text := make([]byte, h.length)
			if _, err := io.ReadFull(r, text); err != nil {
				return "", truncated(ctx, err)
			}
			if h.typ == frameError {
				return "", fmt.Errorf("the source failed: %s", text)
			}
			if h.off != size || !validChecksum(string(text)) {
				return "", fmt.Errorf("protocol error: trailer for %d bytes with checksum %q", h.off, text)
			}
			if _, err := r.ReadByte(); err != io.EOF {
				return "", fmt.Errorf("protocol error: data after the trailer (%v)", err)
			}
			if err := z.zero(next, size-next); err != nil {
				return "", err
			}
			progress(size, size)
			return string(text), nil
		default:
			return "", fmt.Errorf("protocol error: unknown frame type %#x", h.typ)
		}
		next = end
		progress(next, size)
	}
}

// truncated explains a failed read of the stream.
func truncated(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("%w: %w", ErrTruncated, err)
}

// zeroer makes ranges of a file read as zeros.
type zeroer struct {
	f     *os.File
	block bool
	// mode is the fallocate mode tried first (punch hole in a regular
	// file, zero range on a block device); 0 once it failed as
	// unsupported.
	mode int
	buf  []byte
}

// newZeroer checks that f is a regular file or a block device and returns
// its size.
func newZeroer(f *os.File) (*zeroer, int64, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("replication: target: %w", err)
	}
	switch m := st.Mode(); {
	case m.IsRegular():
		return &zeroer{f: f, mode: unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE}, st.Size(), nil
	case m&os.ModeDevice != 0 && m&os.ModeCharDevice == 0:
		size, err := f.Seek(0, io.SeekEnd)
		if err != nil {
			return nil, 0, fmt.Errorf("replication: size of %s: %w", f.Name(), err)
		}
		return &zeroer{f: f, block: true, mode: unix.FALLOC_FL_ZERO_RANGE | unix.FALLOC_FL_KEEP_SIZE}, size, nil
	default:
		return nil, 0, fmt.Errorf("replication: target %s is neither a regular file nor a block device (%s)", f.Name(), m)
	}
}

func (z *zeroer) zero(off, n int64) error {
	if n <= 0 {
		return nil
	}
	if z.mode != 0 {
		err := fallocate(z.f, z.mode, off, n)
		if err == nil {
			return nil
		}
		// Not supported here (file system, device, alignment): write.
		if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("fallocate %s [%d, %d): %w", z.f.Name(), off, off+n, err)
		}
		if !errors.Is(err, unix.EINVAL) { // EINVAL may be one unaligned range only
			z.mode = 0
		}
	}
	if z.buf == nil {
		z.buf = make([]byte, ChunkSize)
	}
	for n > 0 {
		w := min(n, int64(len(z.buf)))
		if _, err := z.f.WriteAt(z.buf[:w], off); err != nil {
			return fmt.Errorf("write zeros to %s at %d: %w", z.f.Name(), off, err)
		}
		off, n = off+w, n-w
	}
	return nil
}

func fallocate(f *os.File, mode int, off, n int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = unix.Fallocate(int(fd), uint32(mode), off, n) }); err != nil {
		return err
	}
	return ferr
}

func fadviseDontNeed(f *os.File, size int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = unix.Fadvise(int(fd), 0, size, unix.FADV_DONTNEED) }); err != nil {
		return err
	}
	return ferr
}
