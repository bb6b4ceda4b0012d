//go:build vmguest

package guest

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"hwameistor.io/local/csidriver/backend"
	"hwameistor.io/local/csidriver/backend/lvm"
	"hwameistor.io/local/csidriver/blockdev"
)

// TestNoPreviousTenantData writes a pattern over a whole LV, deletes it,
// and checks that a new LV on the same extents, and the range an expansion
// adds over them, read as zeros.
func TestNoPreviousTenantData(t *testing.T) {
	ctx := context.Background()
	be, vg := newVG(t)
	const size = 256 * mi

	old, err := be.CreateVolume(ctx, pool, "pvc-old", size, backend.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	writePattern(t, old.DevicePath, size)
	oldExtents := extents(t, vg, "pvc-old")
	if err := be.DeleteVolume(ctx, pool, "pvc-old"); err != nil {
		t.Fatal(err)
	}

	fresh, err := be.CreateVolume(ctx, pool, "pvc-new", size, backend.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := extents(t, vg, "pvc-new"); got != oldExtents {
		t.Fatalf("the new LV got extents %s, the old had %s: the test would prove nothing", got, oldExtents)
	}
	assertZeros(t, fresh.DevicePath, size)
	if err := be.DeleteVolume(ctx, pool, "pvc-new"); err != nil {
		t.Fatal(err)
	}

	// Growth: a small LV over the start of the old extents, grown over
	// the rest.
	writePatternVolume(t, be, "pvc-old2", size)
	small, err := be.CreateVolume(ctx, pool, "pvc-grow", size/2, backend.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := be.ExpandVolume(ctx, pool, "pvc-grow", size); err != nil {
		t.Fatal(err)
	}
	if got := extents(t, vg, "pvc-grow"); got != oldExtents {
		t.Fatalf("the grown LV has extents %s, the old had %s", got, oldExtents)
	}
	assertZeros(t, small.DevicePath, size)
}

// TestZeroCost measures what zeroing a new LV costs per GiB with each
// method, against writing the same bytes, on the guest's virtual disk (so
// the figures are ratios: the guest runs under emulation).
func TestZeroCost(t *testing.T) {
	ctx := context.Background()
	be, _ := newVG(t)
	const size = 512 * mi
	vol, err := be.CreateVolume(ctx, pool, "pvc-cost", size, backend.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	writePattern(t, vol.DevicePath, size)
	write := time.Since(start)
	f, err := os.OpenFile(vol.DevicePath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	perGiB := func(d time.Duration) time.Duration { return d * time.Duration((1<<30)/size) }
	t.Logf("writing: %s per GiB", perGiB(write).Round(time.Millisecond))
	for _, m := range []blockdev.ZeroMethod{blockdev.ZeroUnmap, blockdev.ZeroOffload, blockdev.ZeroWrite} {
		start := time.Now()
		if err := blockdev.ZeroWith(ctx, f, 0, size, m); err != nil {
			t.Logf("zero %s: not supported here: %v", m, err)
			continue
		}
		d := time.Since(start)
		t.Logf("zero %s: %s per GiB, %.2fx the write", m, perGiB(d).Round(time.Millisecond), float64(d)/float64(write))
	}
	start = time.Now()
	if _, err := be.CreateVolume(ctx, pool, "pvc-cost2", size, backend.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("CreateVolume (lvcreate and zeroing): %s per GiB, %.2fx the write", perGiB(time.Since(start)).Round(time.Millisecond), float64(time.Since(start))/float64(write))
}

// writePatternVolume leaves a pattern on the extents a volume of size
// takes: it creates the volume, fills it and deletes it.
func writePatternVolume(t *testing.T, be *lvm.Backend, name string, size int64) {
	t.Helper()
	v, err := be.CreateVolume(context.Background(), pool, name, size, backend.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	writePattern(t, v.DevicePath, size)
	if err := be.DeleteVolume(context.Background(), pool, name); err != nil {
		t.Fatal(err)
	}
}

// writePattern fills the first size bytes of a device with pattern data.
func writePattern(t *testing.T, dev string, size int64) {
	t.Helper()
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := pattern(4 << 20)
	for off := int64(0); off < size; off += int64(len(p)) {
		if _, err := f.WriteAt(p, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// assertZeros fails unless the first size bytes of dev are all zero. A new
// LV is a new block device with an empty page cache, so this reads the
// disk.
func assertZeros(t *testing.T, dev string, size int64) {
	t.Helper()
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4<<20)
	zero := make([]byte, len(buf))
	for off := int64(0); off < size; {
		n, err := f.ReadAt(buf, off)
		if n > 0 && !bytes.Equal(buf[:n], zero[:n]) {
			i := bytes.IndexFunc(buf[:n], func(r rune) bool { return r != 0 })
			t.Fatalf("%s holds the previous tenant's data at byte %d", dev, off+int64(i))
		}
		off += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// extents is the LV's physical extent ranges (lvs seg_pe_ranges).
func extents(t *testing.T, vg, lv string) string {
	t.Helper()
	return strings.Join(strings.Fields(run(t, "lvm", "lvs", "--noheadings", "-o", "seg_pe_ranges", vg+"/"+lv)), " ")
}
