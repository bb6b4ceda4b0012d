package replication

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"os"
	"testing"
	"time"
)

// TestChecksum compares the checksums of pairs of files: equal logical
// content must give equal checksums whatever the hole layout, and the
// read-everything path (block devices) must agree with the hole-skipping one.
func TestChecksum(t *testing.T) {
	data := random(300*ki, 1)
	tests := []struct {
		name      string
		size      int64
		a, b      []extent
		wantEqual bool
	}{
		{
			name:      "sparse file and dense file with the same bytes",
			size:      8 * mi,
			a:         []extent{{3*mi + 5, data}},
			b:         []extent{{0, concat(zeros(3*mi+5), data, zeros(8*mi-3*mi-5-int64(len(data))))}},
			wantEqual: true,
		},
		{
			name:      "all holes and all written zeros",
			size:      4*mi + 77,
			a:         nil,
			b:         []extent{{0, zeros(4*mi + 77)}},
			wantEqual: true,
		},
		{
			name:      "zero chunks written or left as holes between data",
			size:      6 * mi,
			a:         []extent{{0, data}, {5 * mi, data}},
			b:         []extent{{0, concat(data, zeros(5*mi-int64(len(data))), data)}},
			wantEqual: true,
		},
		{
			name:      "data crossing a chunk boundary, unaligned size",
			size:      3*mi + 1,
			a:         []extent{{mi - 10, data}, {3 * mi, []byte{7}}},
			b:         []extent{{0, zeros(mi - 10)}, {mi - 10, data}, {mi - 10 + int64(len(data)), zeros(2*mi + 11 - int64(len(data)))}, {3 * mi, []byte{7}}},
			wantEqual: true,
		},
		{
			name: "same bytes at another offset",
			size: 8 * mi,
			a:    []extent{{mi, data}},
			b:    []extent{{2 * mi, data}},
		},
		{
			name: "one byte differs",
			size: 2 * mi,
			a:    []extent{{100, data}},
			b:    []extent{{100, data}, {100 + 4096, []byte{^data[4096]}}},
		},
		{
			name: "a byte beyond the last data extent",
			size: 2 * mi,
			a:    []extent{{100, data}},
			b:    []extent{{100, data}, {2*mi - 1, []byte{1}}},
		},
	}
	dir := t.TempDir()
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var sums []string
			for j, ext := range [][]extent{tc.a, tc.b} {
				path := mkfile(t, dir, string(rune('a'+j))+string(rune('0'+i)), tc.size, ext...)
				f := open(t, path, os.O_RDONLY)
				seek, err := checksum(context.Background(), f, tc.size, true)
				if err != nil {
					t.Fatal(err)
				}
				read, err := checksum(context.Background(), f, tc.size, false)
				if err != nil {
					t.Fatal(err)
				}
				if seek != read {
					t.Errorf("file %d: skipping holes gives %s, reading everything %s", j, seek, read)
				}
				if !validChecksum(seek) {
					t.Errorf("checksum %q is not of the form sha256:<hex>", seek)
				}
				sums = append(sums, seek)
			}
			if got := sums[0] == sums[1]; got != tc.wantEqual {
				t.Errorf("checksums %s and %s: equal %v, want %v", sums[0], sums[1], got, tc.wantEqual)
			}
		})
	}
}

// TestChecksumDefinition pins the algorithm: sha256 over offset || chunk of
// the non-zero chunks only.
func TestChecksumDefinition(t *testing.T) {
	dir := t.TempDir()
	size := 3*mi + 10
	path := mkfile(t, dir, "f", size, extent{mi + 5, []byte("abc")}, extent{3 * mi, []byte("tail")})

	h := sha256.New()
	for _, c := range []struct {
		off int64
		n   int64
		at  int64
		b   string
	}{{mi, mi, 5, "abc"}, {3 * mi, 10, 0, "tail"}} {
		var o [8]byte
		binary.BigEndian.PutUint64(o[:], uint64(c.off))
		chunk := make([]byte, c.n)
		copy(chunk[c.at:], c.b)
		h.Write(o[:])
		h.Write(chunk)
	}
	want := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if got := checksumOf(t, path, size); got != want {
		t.Errorf("Checksum = %s, want %s", got, want)
	}
	empty := sha256.Sum256(nil)
	if got := checksumOf(t, mkfile(t, dir, "holes", 5*mi), 5*mi); got != "sha256:"+hex.EncodeToString(empty[:]) {
		t.Errorf("Checksum of holes = %s, want the hash of nothing", got)
	}
}

func TestChecksumErrors(t *testing.T) {
	dir := t.TempDir()
	path := mkfile(t, dir, "f", 2*mi, extent{0, []byte("x")})
	tests := []struct {
		name string
		size int64
	}{
		{name: "file shorter than the size", size: 2*mi + 1},
		{name: "negative size", size: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, seek := range []bool{true, false} {
				if sum, err := checksum(context.Background(), open(t, path, os.O_RDONLY), tc.size, seek); err == nil {
					t.Errorf("seekHoles=%v: checksum %s, want an error", seek, sum)
				}
			}
		})
	}
}

// TestChecksumSkipsHoles checks on a 20 GiB file with 64 MiB of data that
// only the chunks holding data are read (the benchmark times it).
func TestChecksumSkipsHoles(t *testing.T) {
	path, size, dataBytes := sparse20G(t)
	f := open(t, path, os.O_RDONLY)
	var chunks, read int64
	start := time.Now()
	err := walk(context.Background(), f, size, make([]byte, ChunkSize), true, func(_ int64, chunk []byte, _ bool) error {
		chunks++
		read += int64(len(chunk))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if read != dataBytes || chunks != dataBytes/ChunkSize {
		t.Errorf("read %d bytes in %d chunks, want only the %d bytes of data", read, chunks, dataBytes)
	}
	if _, err := Checksum(f, size); err != nil {
		t.Fatal(err)
	}
	t.Logf("walk and checksum of %d GiB with %d MiB of data: %s", size>>30, dataBytes>>20, time.Since(start))
}

// sparse20G makes a 20 GiB sparse file with 64 MiB of data in 64 extents of
// 1 MiB spread over it, the last one at the very end.
func sparse20G(t testing.TB) (path string, size, dataBytes int64) {
	t.Helper()
	size = 20 * gi
	var exts []extent
	for i := int64(0); i < 64; i++ {
		off := i * (size / 64)
		if i == 63 {
			off = size - mi
		}
		exts = append(exts, extent{off, random(mi, uint64(i+1))})
	}
	return mkfile(t, t.TempDir(), "sparse", size, exts...), size, 64 * mi
}

func BenchmarkChecksumSparse(b *testing.B) {
	path, size, _ := sparse20G(b)
	f := open(b, path, os.O_RDONLY)
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		if _, err := Checksum(f, size); err != nil {
			b.Fatal(err)
		}
	}
}
