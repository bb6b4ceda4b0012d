package emulated

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"hwameistor.io/local/csidriver/backend"
)

// TestOpenData writes bytes through a writable handle, reopens the volume
// and reads them back, and checks the refusals.
func TestOpenData(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t, t.TempDir(), WithoutLoop())
	v, err := b.CreateVolume(ctx, hdd, "pvc-data", 8*mi, backend.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte("hello, replica")
	const at = 3*mi + 17

	w, err := b.OpenData(ctx, hdd, "pvc-data", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt(payload, at); err != nil {
		t.Fatal(err)
	}
	// Readable too, so a copy can be verified through the same handle.
	back := make([]byte, len(payload))
	if _, err := w.ReadAt(back, at); err != nil || !bytes.Equal(back, payload) {
		t.Errorf("read through the writable handle: %q, %v", back, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		pool    string
		volume  string
		write   bool
		wantErr error
	}{
		{name: "read back", pool: hdd, volume: "pvc-data"},
		{name: "read back through a writable handle", pool: hdd, volume: "pvc-data", write: true},
		{name: "missing volume", pool: hdd, volume: "pvc-none", wantErr: backend.ErrNotFound},
		{name: "missing volume, for writing", pool: hdd, volume: "pvc-none", write: true, wantErr: backend.ErrNotFound},
		{name: "pool not configured", pool: ssd, volume: "pvc-data", wantErr: backend.ErrPoolNotFound},
		{name: "invalid name", pool: hdd, volume: "../pool.json", wantErr: backend.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := b.OpenData(ctx, tc.pool, tc.volume, tc.write)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want errors.Is %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got := make([]byte, len(payload))
			if _, err := f.ReadAt(got, at); err != nil || !bytes.Equal(got, payload) {
				t.Errorf("ReadAt = %q, %v; want %q", got, err, payload)
			}
			end, err := f.Seek(0, io.SeekEnd)
			if err != nil || end != v.SizeBytes {
				t.Errorf("size %d, %v; want %d (never grown or truncated)", end, err, v.SizeBytes)
			}
			if !tc.write {
				if _, err := f.WriteAt([]byte("x"), 0); err == nil {
					t.Error("a read-only handle accepted a write")
				}
			}
		})
	}

	// Opening never changes the pool's accounting.
	checkPool(t, b, 40*mi-8*mi, "pvc-data")
}
