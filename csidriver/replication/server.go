package replication

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/time/rate"

	"hwameistor.io/local/csidriver/backend"
	"hwameistor.io/local/csidriver/blockdev"
)

// PathPrefix starts the path of a stream request:
// GET /v1/volumes/{pool}/{volume}?target=<node>.
const PathPrefix = "/v1/volumes/"

// SizeHeader carries the volume's size in bytes in a stream response.
const SizeHeader = "Hwameistor-Volume-Size"

// ContentType is the media type of a stream response.
const ContentType = "application/vnd.hwameistor.replication.v1"

// FlushInterval is the longest the server keeps what it has of a stream
// (frames in its buffers, a run of zero chunks not yet sent as a frame)
// while it goes on reading: the client's idle timeout (Timeouts.Idle) sees
// progress at least this often, also while the server reads a long range
// of zeros of a block device.
const FlushInterval = 5 * time.Second

// Server streams volumes to the node agents of other nodes; it is an
// http.Handler for GET PathPrefix{pool}/{volume}[?target=<node>], served
// over mutual TLS only (Serve, Store.ServerTLSConfig): the client is the
// node its verified certificate names, and Authorize decides whether that
// node may have the volume. The agent serves it on its own listener, with
// no write timeout (a stream lasts as long as the copy).
type Server struct {
	// Authorize allows a copy of pool/volume to the node client (the node
	// of the verified client certificate, never a query parameter): nil
	// when client is the target of a live copy of the volume from a node
	// this agent serves. An error that Is ErrForbidden refuses with 403
	// and its message; another error answers 500. Without Authorize every
	// request is refused.
	Authorize func(ctx context.Context, pool, volume, client string) error
	// Open opens a volume's data for reading and returns its size in
	// bytes (e.g. backend.DataOpener.OpenData and Volume.SizeBytes); an
	// error that Is backend.ErrNotFound (or fs.ErrNotExist) answers 404.
	// target is the authorized client node (an agent serving many nodes
	// finds the source through it). The server closes the file.
	Open func(ctx context.Context, pool, volume, target string) (*os.File, int64, error)
	// Busy, when set, is asked before streaming and again before the
	// trailer: a non-nil error (e.g. the volume is published) refuses the
	// request with 409, or ends a started stream with an error frame.
	Busy func(volume string) error
	// Limiter, when set, limits the copy rate in bytes per second: it is
	// consulted for every payload byte sent (in steps of at most its
	// burst), before the data frame is written.
	Limiter *rate.Limiter
	// Log receives one line per stream and the failures; discarded when
	// zero.
	Log logr.Logger

	// flushEvery replaces FlushInterval and afterChunk runs after each
	// chunk read (tests).
	flushEvery time.Duration
	afterChunk func()
}

var _ http.Handler = (*Server)(nil)

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		httpError(w, http.StatusMethodNotAllowed, "only GET %s{pool}/{volume}", PathPrefix)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, PathPrefix)
	pool, volume, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 || pool == "" || volume == "" || strings.Contains(volume, "/") {
		httpError(w, http.StatusNotFound, "no such resource %q: use GET %s{pool}/{volume}", r.URL.Path, PathPrefix)
		return
	}
	// Who asks is the node of the verified client certificate; the
	// handshake already refused a missing or foreign one.
	client, err := peerNode(r.TLS)
	if err != nil {
		httpError(w, http.StatusForbidden, "%v", err)
		return
	}
	target := r.URL.Query().Get("target")
	if target != "" && target != client {
		s.Log.Info("Refused a copy: the client asked for another node's copy", "client", client, "target", target, "path", r.URL.Path)
		httpError(w, http.StatusForbidden, "the client certificate is node %s's; it cannot receive a copy for node %s", client, target)
		return
	}
	target = client
	for _, n := range []string{pool, volume} {
		if err := backend.ValidateVolumeName(n); err != nil {
			httpError(w, http.StatusBadRequest, "%v", err)
			return
		}
	}
	log := s.Log.WithValues("pool", pool, "volume", volume, "target", target)
	if s.Authorize == nil {
		httpError(w, http.StatusInternalServerError, "no copy authorization configured on this node")
		return
	}
	if err := s.Authorize(r.Context(), pool, volume, target); err != nil {
		if errors.Is(err, ErrForbidden) {
			log.Info("Refused a copy", "reason", err.Error())
			httpError(w, http.StatusForbidden, "%v", err)
			return
		}
		log.Error(err, "Cannot authorize a copy")
		httpError(w, http.StatusInternalServerError, "authorizing the copy: %v", err)
		return
	}
	if s.Busy != nil {
		if err := s.Busy(volume); err != nil {
			httpError(w, http.StatusConflict, "volume %s is busy: %v", volume, err)
			return
		}
	}
	if s.Open == nil {
		httpError(w, http.StatusInternalServerError, "no volumes to serve on this node")
		return
	}
	f, size, err := s.Open(r.Context(), pool, volume, target)
	switch {
	case errors.Is(err, backend.ErrNotFound), errors.Is(err, backend.ErrPoolNotFound), errors.Is(err, fs.ErrNotExist):
		httpError(w, http.StatusNotFound, "pool %s: volume %s: %v", pool, volume, err)
		return
	case errors.Is(err, blockdev.ErrBusy), errors.Is(err, syscall.EBUSY):
		// The exclusive open of its device failed: mounted meanwhile,
		// or another copy holds it.
		httpError(w, http.StatusConflict, "volume %s is busy: %v", volume, err)
		return
	case errors.Is(err, backend.ErrInvalidArgument):
		httpError(w, http.StatusBadRequest, "%v", err)
		return
	case err != nil:
		log.Error(err, "Cannot open the volume to stream it")
		httpError(w, http.StatusInternalServerError, "open pool %s volume %s: %v", pool, volume, err)
		return
	}
	defer f.Close()

	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set(SizeHeader, strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	rc := http.NewResponseController(w)
	flush := func() error {
		if err := bw.Flush(); err != nil {
			return err
		}
		if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		return nil
	}
	start := time.Now()
	// The headers at once: the client's response-header timeout covers
	// the checks and the open, not the first frames.
	if err := flush(); err != nil {
		log.Error(err, "Cannot send the response headers")
		return
	}
	st, err := s.stream(r.Context(), bw, flush, f, size, volume)
	if err != nil {
		log.Error(err, "Stream failed", "sentBytes", st.sent)
		// Best effort: the client then reports the source's message
		// rather than a bare truncated stream.
		msg := []byte(err.Error())
		if len(msg) > maxTextFrame {
			msg = msg[:maxTextFrame]
		}
		_ = writeFrame(bw, header{typ: frameError, length: uint32(len(msg))}, msg)
		_ = bw.Flush()
		return
	}
	if err := bw.Flush(); err != nil {
		log.Error(err, "Stream failed at its end")
		return
	}
	log.Info("Streamed volume", "sizeBytes", size, "sentBytes", st.sent, "checksum", st.checksum, "duration", time.Since(start).Round(time.Millisecond))
}

type streamStats struct {
	sent     int64 // payload bytes of data frames
	checksum string
}

// stream writes the frames of f's first size bytes and the trailer; flush
// sends what w holds to the client, at least every FlushInterval.
func (s *Server) stream(ctx context.Context, w *bufio.Writer, flush func() error, f *os.File, size int64, volume string) (streamStats, error) {
	var st streamStats
	h := sha256.New()
	var zeroStart, zeroEnd int64 // pending zero frame [zeroStart, zeroEnd)
	flushZero := func() error {
		if zeroEnd == zeroStart {
			return nil
		}
		err := writeFrame(w, header{typ: frameZero, off: zeroStart, length: uint32(zeroEnd - zeroStart)}, nil)
		zeroStart = zeroEnd
		return err
	}
	every := s.flushEvery
	if every <= 0 {
		every = FlushInterval
	}
	lastFlush := time.Now()
	buf := make([]byte, ChunkSize)
	err := walk(ctx, f, size, buf, true, func(off int64, chunk []byte, zero bool) error {
		if s.afterChunk != nil {
			s.afterChunk()
		}
		// Keep the client's idle timeout fed: send what is pending
		// (also before a wait for the rate limiter).
		if time.Since(lastFlush) >= every {
			if err := flushZero(); err != nil {
				return err
			}
			if err := flush(); err != nil {
				return err
			}
			lastFlush = time.Now()
		}
		n := int64(len(chunk))
		if zero {
			if off == zeroEnd && zeroEnd-zeroStart+n <= maxZeroFrame {
				zeroEnd += n
				return nil
			}
			if err := flushZero(); err != nil {
				return err
			}
			zeroStart, zeroEnd = off, off+n
			return nil
		}
		if err := flushZero(); err != nil {
			return err
		}
		// Tokens first, so that a limiter failure never leaves half a
		// frame before the error frame.
		if err := s.wait(ctx, len(chunk)); err != nil {
			return err
		}
		hashChunk(h, off, chunk)
		if err := writeFrame(w, header{typ: frameData, off: off, length: uint32(n)}, chunk); err != nil {
			return err
		}
		st.sent += n
		return nil
	})
	if err == nil {
		err = flushZero()
	}
	if err != nil {
		return st, err
	}
	// The volume may have been published while it was read: then the
	// copy may be inconsistent and must not be completed.
	if s.Busy != nil {
		if err := s.Busy(volume); err != nil {
			return st, fmt.Errorf("volume %s became busy during the copy: %w", volume, err)
		}
	}
	st.checksum = sum(h)
	return st, writeFrame(w, header{typ: frameTrailer, off: size, length: uint32(len(st.checksum))}, []byte(st.checksum))
}

// wait takes n bytes' worth of tokens from the limiter, in steps of at most
// its burst.
func (s *Server) wait(ctx context.Context, n int) error {
	if s.Limiter == nil {
		return nil
	}
	for n > 0 {
		step := n
		if s.Limiter.Limit() != rate.Inf {
			b := s.Limiter.Burst()
			if b <= 0 {
				return errors.New("copy rate limit: the limiter has a burst of 0, nothing may be sent")
			}
			step = min(step, b)
		}
		if err := s.Limiter.WaitN(ctx, step); err != nil {
			return fmt.Errorf("copy rate limit: %w", err)
		}
		n -= step
	}
	return nil
}

func httpError(w http.ResponseWriter, code int, format string, args ...any) {
	http.Error(w, fmt.Sprintf(format, args...), code)
}
