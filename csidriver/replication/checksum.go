// Package replication is the data plane of volume migration: the node agent
// of the source node streams a volume's bytes over HTTP to the node agent of
// the target node, which writes them into the new replica and verifies a
// sparse-aware checksum of what it wrote against the source's. See README.md
// for the protocol.
package replication

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// ChunkSize is the unit of the checksum and of the stream: volumes are cut
// into aligned chunks of this size (the last one may be shorter).
const ChunkSize = 1 << 20

// ChecksumPrefix starts every checksum: "sha256:<64 hex digits>".
const ChecksumPrefix = "sha256:"

// zeroChunk is compared against, never written to.
var zeroChunk [ChunkSize]byte

// Checksum returns the sparse-aware checksum of the first size bytes of f:
// sha256 over (8-byte big-endian offset || chunk bytes) of every aligned
// ChunkSize chunk that is not entirely zero, in offset order; all-zero
// chunks and holes contribute nothing. Two files with the same logical
// content have the same checksum whatever their hole layout, and a file of
// zeros has the checksum of an empty input.
//
// On regular files holes are skipped with lseek(SEEK_DATA/SEEK_HOLE), so
// only chunks that touch data are read; other files (block devices) are read
// whole. f must hold at least size bytes. Reads use ReadAt; f's offset is
// changed by the hole search on regular files.
func Checksum(f *os.File, size int64) (string, error) {
	return checksum(context.Background(), f, size, true)
}

func checksum(ctx context.Context, f *os.File, size int64, seekHoles bool) (string, error) {
	h := sha256.New()
	buf := make([]byte, ChunkSize)
	err := walk(ctx, f, size, buf, seekHoles, func(off int64, chunk []byte, zero bool) error {
		if !zero {
			hashChunk(h, off, chunk)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return sum(h), nil
}

func hashChunk(h hash.Hash, off int64, chunk []byte) {
	var o [8]byte
	binary.BigEndian.PutUint64(o[:], uint64(off))
	h.Write(o[:])
	h.Write(chunk)
}

func sum(h hash.Hash) string { return ChecksumPrefix + hex.EncodeToString(h.Sum(nil)) }

// validChecksum reports whether s has the form Checksum returns.
func validChecksum(s string) bool {
	hexPart, ok := strings.CutPrefix(s, ChecksumPrefix)
	if !ok || len(hexPart) != 2*sha256.Size {
		return false
	}
	for _, c := range hexPart {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func isZero(b []byte) bool { return bytes.Equal(b, zeroChunk[:len(b)]) }

// walk calls fn, in offset order, for every aligned chunk of [0, size) that
// touches data: on a regular file with seekHoles, the chunks overlapping a
// data extent (SEEK_DATA/SEEK_HOLE); otherwise every chunk. A chunk is read
// whole into buf (parts in holes read as zeros) and zero says whether it is
// all zeros. Chunks fn is not called for are holes, hence zeros. chunk is
// only valid during the call.
func walk(ctx context.Context, f *os.File, size int64, buf []byte, seekHoles bool, fn func(off int64, chunk []byte, zero bool) error) error {
	if size < 0 {
		return fmt.Errorf("negative size %d", size)
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	regular := st.Mode().IsRegular()
	if regular && st.Size() < size {
		return fmt.Errorf("%s has %d bytes, fewer than the %d to read", f.Name(), st.Size(), size)
	}
	next := int64(0) // the first chunk not yet visited
	visit := func(start, end int64) error {
		c := start - start%ChunkSize
		if c < next {
			c = next
		}
		for ; c < end; c += ChunkSize {
			if err := ctx.Err(); err != nil {
				return err
			}
			chunk := buf[:min(ChunkSize, size-c)]
			if _, err := f.ReadAt(chunk, c); err != nil {
				if errors.Is(err, io.EOF) {
					return fmt.Errorf("%s: end of file at offset %d, before the %d bytes to read", f.Name(), c, size)
				}
				return err
			}
			if err := fn(c, chunk, isZero(chunk)); err != nil {
				return err
			}
		}
		next = c
		return nil
	}
	if regular && seekHoles {
		supported, err := dataExtents(f, size, visit)
		if supported || err != nil {
			return err
		}
	}
	return visit(0, size)
}

// dataExtents calls fn for every data extent [start, end) of f within
// [0, size), in order. supported is false when the file system does not
// know SEEK_DATA (nothing was visited then).
func dataExtents(f *os.File, size int64, fn func(start, end int64) error) (supported bool, err error) {
	for off := int64(0); off < size; {
		data, err := seek(f, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) { // no data at or after off
			return true, nil
		}
		if err != nil {
			if off == 0 && (errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS)) {
				return false, nil
			}
			return true, fmt.Errorf("%s: lseek SEEK_DATA at %d: %w", f.Name(), off, err)
		}
		if data >= size {
			return true, nil
		}
		hole, err := seek(f, data, unix.SEEK_HOLE)
		if err != nil {
			return true, fmt.Errorf("%s: lseek SEEK_HOLE at %d: %w", f.Name(), data, err)
		}
		hole = min(hole, size)
		if hole <= data { // cannot happen; never loop forever
			return true, fmt.Errorf("%s: lseek SEEK_HOLE at %d returned %d", f.Name(), data, hole)
		}
		if err := fn(data, hole); err != nil {
			return true, err
		}
		off = hole
	}
	return true, nil
}

func seek(f *os.File, off int64, whence int) (int64, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var pos int64
	var serr error
	if err := rc.Control(func(fd uintptr) { pos, serr = unix.Seek(int(fd), off, whence) }); err != nil {
		return 0, err
	}
	return pos, serr
}
