package blockdev

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const mi = int64(1 << 20)

// fill writes a recognisable non-zero pattern over [0, size).
func fill(t testing.TB, f *os.File, size int64) {
	t.Helper()
	chunk := bytes.Repeat([]byte("previous tenant "), int(mi)/16)
	for off := int64(0); off < size; off += mi {
		if _, err := f.WriteAt(chunk[:min(mi, size-off)], off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// checkZeroed reads f back whole (dropping its cached pages first, so the
// device is read) and checks that exactly [off, off+n) is zero.
func checkZeroed(t *testing.T, f *os.File, size, off, n int64) {
	t.Helper()
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { _ = unix.Fadvise(int(fd), 0, size, unix.FADV_DONTNEED) })
	}
	buf := make([]byte, 4096)
	for at := int64(0); at < size; at += int64(len(buf)) {
		if _, err := f.ReadAt(buf, at); err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		inside := at >= off && at < off+n
		if allZero := !bytes.ContainsFunc(buf, func(r rune) bool { return r != 0 }); allZero != inside {
			t.Fatalf("block at %d: all zero %v, want %v (zeroed range [%d, %d))", at, allZero, inside, off, off+n)
		}
	}
}

// TestZeroRegularFile: every method on a file, with ranges that are not
// aligned to blocks.
func TestZeroRegularFile(t *testing.T) {
	const size = 12 * mi
	for _, m := range []ZeroMethod{ZeroAuto, ZeroUnmap, ZeroOffload, ZeroWrite} {
		t.Run(m.String(), func(t *testing.T) {
			f, err := os.Create(filepath.Join(t.TempDir(), "vol"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fill(t, f, size)
			if err := ZeroWith(context.Background(), f, 3*mi, 5*mi, m); errors.Is(err, unix.EOPNOTSUPP) {
				t.Skipf("not supported on this file system: %v", err)
			} else if err != nil {
				t.Fatal(err)
			}
			checkZeroed(t, f, size, 3*mi, 5*mi)
			if st, _ := f.Stat(); st.Size() != size {
				t.Errorf("size %d, want %d (never changed)", st.Size(), size)
			}
		})
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "vol"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := Zero(context.Background(), f, -1, 5); err == nil {
		t.Error("a negative offset was accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Zero(ctx, f, 0, mi); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// TestRealZeroLoopDevice: the previous tenant's bytes on a real block
// device, a range zeroed with each method, read back from the device:
// zeros inside the range, the pattern outside.
func TestRealZeroLoopDevice(t *testing.T) {
	const size = 64 * mi
	for _, m := range []ZeroMethod{ZeroAuto, ZeroUnmap, ZeroOffload, ZeroWrite} {
		t.Run(m.String(), func(t *testing.T) {
			dev := loopDevice(t, size)
			f, err := OpenExclusive(dev, true)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fill(t, f, size)
			used, err := zero(context.Background(), f, 4*mi, 40*mi, m)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("zeroed with %s", used)
			checkZeroed(t, f, size, 4*mi, 40*mi)
		})
	}
}

// BenchmarkZero measures Zero per GiB (b.SetBytes: MB/s is the speed) with
// each method, on a loop device over a file in the test's temporary
// directory, or, destructively, on the device named by
// HWAMEISTOR_ZERO_BENCH_DEVICE (e.g. an LV made for it: every byte of it
// is overwritten). The device is filled with data once; later iterations
// zero what is already zero, which the unmap method may do faster, so
// measure with -benchtime 1x for the cost on a used device:
//
//	HWAMEISTOR_ZERO_BENCH_DEVICE=/dev/vg/bench go test -run '^$' -bench BenchmarkZero -benchtime 1x ./csidriver/blockdev/
func BenchmarkZero(b *testing.B) {
	const gib = int64(1 << 30)
	for _, m := range []ZeroMethod{ZeroAuto, ZeroUnmap, ZeroOffload, ZeroWrite} {
		b.Run(fmt.Sprintf("method=%s", m), func(b *testing.B) {
			dev := os.Getenv("HWAMEISTOR_ZERO_BENCH_DEVICE")
			if dev == "" {
				dev = loopDevice(b, gib)
			}
			f, err := OpenExclusive(dev, true)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			size, err := f.Seek(0, io.SeekEnd)
			if err != nil {
				b.Fatal(err)
			}
			size = min(size, 4*gib) / mi * mi
			fill(b, f, size)
			b.SetBytes(size)
			b.ResetTimer()
			start := time.Now()
			for b.Loop() {
				if err := ZeroWith(context.Background(), f, 0, size, m); errors.Is(err, unix.EOPNOTSUPP) {
					b.Skipf("%s is not supported by %s: %v", m, dev, err)
				} else if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(time.Since(start).Seconds()/float64(b.N)/(float64(size)/float64(gib)), "s/GiB")
		})
	}
}
