package replication

import (
	"encoding/binary"
	"io"
)

// The stream is a sequence of frames, each a 13-byte header (type, 8-byte
// big-endian offset, 4-byte big-endian length) and, for some types, length
// bytes of payload. See README.md.
const (
	// frameData: length bytes at offset; payload = the bytes.
	frameData byte = 'D'
	// frameZero: length zero bytes at offset; no payload.
	frameZero byte = 'Z'
	// frameTrailer: the end; offset = the volume's size, payload = the
	// source's checksum ("sha256:<hex>").
	frameTrailer byte = 'T'
	// frameError: the source failed; offset 0, payload = the message.
	frameError byte = 'E'

	headerLen = 13
	// maxZeroFrame bounds a zero frame, so that the length fits and a
	// client punches or writes in reasonable steps.
	maxZeroFrame = 1 << 30
	// maxTextFrame bounds trailer and error payloads.
	maxTextFrame = 64 << 10
)

type header struct {
	typ    byte
	off    int64
	length uint32
}

func putHeader(b []byte, h header) {
	b[0] = h.typ
	binary.BigEndian.PutUint64(b[1:9], uint64(h.off))
	binary.BigEndian.PutUint32(b[9:13], h.length)
}

func writeFrame(w io.Writer, h header, payload []byte) error {
	var b [headerLen]byte
	putHeader(b[:], h)
	if _, err := w.Write(b[:]); err != nil {
		return err
	}
	if len(payload) > 0 {
		_, err := w.Write(payload)
		return err
	}
	return nil
}

func readHeader(r io.Reader) (header, error) {
	var b [headerLen]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return header{}, err
	}
	return header{typ: b[0], off: int64(binary.BigEndian.Uint64(b[1:9])), length: binary.BigEndian.Uint32(b[9:13])}, nil
}
