package emulated

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/backend"
	"hwameistor.io/local/csidriver/blockdev"
	"hwameistor.io/local/internal/testenv"
)

// readAll reads the volume's data whole through OpenData.
func readAll(t *testing.T, b *Backend, name string) []byte {
	t.Helper()
	f, err := b.OpenData(context.Background(), hdd, name, false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func writeData(t *testing.T, b *Backend, name string, data []byte, at int64) {
	t.Helper()
	f, err := b.OpenData(context.Background(), hdd, name, true)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(data, at); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

func allZero(b []byte) bool { return !bytes.ContainsFunc(b, func(r rune) bool { return r != 0 }) }

// TestNoPreviousTenantData: a volume created after another was deleted, a
// volume of the same name again, and the bytes an expansion adds all read
// as zeros (each volume is a new sparse file; growing it adds a hole).
func TestNoPreviousTenantData(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t, t.TempDir(), WithoutLoop())
	secret := bytes.Repeat([]byte("previous tenant "), 1<<16) // 1 MiB
	for _, n := range []string{"pvc-old", "pvc-other"} {
		if _, err := b.CreateVolume(ctx, hdd, n, 8*mi, backend.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		writeData(t, b, n, secret, 0)
		writeData(t, b, n, secret, 7*mi)
	}
	if err := b.DeleteVolume(ctx, hdd, "pvc-old"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"pvc-old", "pvc-new"} {
		if _, err := b.CreateVolume(ctx, hdd, n, 8*mi, backend.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if data := readAll(t, b, n); int64(len(data)) != 8*mi || !allZero(data) {
			t.Errorf("new volume %s: %d bytes, all zero %v", n, len(data), allZero(data))
		}
	}
	// Grown: the old bytes stay, the new ones are zero.
	if _, err := b.ExpandVolume(ctx, hdd, "pvc-other", 16*mi); err != nil {
		t.Fatal(err)
	}
	data := readAll(t, b, "pvc-other")
	if int64(len(data)) != 16*mi || !bytes.Equal(data[7*mi:8*mi], secret) || !allZero(data[8*mi:]) {
		t.Errorf("grown volume: %d bytes, its data kept %v, the new range all zero %v", len(data), bytes.Equal(data[7*mi:8*mi], secret), allZero(data[8*mi:]))
	}
}

func realBackend(t *testing.T) *Backend {
	t.Helper()
	testenv.RequireRoot(t, "attaches loop devices and mounts file systems")
	testenv.RequireCommands(t, "losetup", "mkfs.xfs", "mount")
	b, err := New(t.TempDir(), []PoolConfig{{Class: v1alpha1.PoolClassHDD, CapacityBytes: 2 << 30}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.DetachAll(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return b
}

func mount(t *testing.T, dev, dir string) error {
	t.Helper()
	if out, err := exec.Command("mount", dev, dir).CombinedOutput(); err != nil {
		return errors.New(strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, 0) })
	return nil
}

// TestRealOpenDataHoldsTheLoopDevice: an attached volume's data is its loop
// device, opened exclusively: refused while the volume is mounted, and a
// mount fails while it is open; BlockDevices names the device. Detached,
// the data is the file again and there is no device.
func TestRealOpenDataHoldsTheLoopDevice(t *testing.T) {
	ctx := context.Background()
	b := realBackend(t)
	if _, err := b.CreateVolume(ctx, hdd, "pvc-held", 300*mi, backend.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dev, err := b.Attach(ctx, hdd, "pvc-held")
	if err != nil {
		t.Fatal(err)
	}
	if devs, err := b.BlockDevices(ctx, hdd, "pvc-held"); err != nil || len(devs) != 1 || devs[0] != dev {
		t.Errorf("BlockDevices = %v, %v; want [%s]", devs, err, dev)
	}
	run(t, "mkfs.xfs", "-q", dev)
	dir := t.TempDir()

	f, err := b.OpenData(ctx, hdd, "pvc-held", false)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := f.Stat(); err != nil || st.Mode()&os.ModeDevice == 0 {
		t.Errorf("OpenData of an attached volume: %v, %v; want its loop device", st.Mode(), err)
	}
	if err := mount(t, dev, dir); err == nil {
		t.Error("mounted the volume while a copy held it")
	}
	f.Close()

	if err := mount(t, dev, dir); err != nil {
		t.Fatal(err)
	}
	for _, write := range []bool{false, true} {
		if f, err := b.OpenData(ctx, hdd, "pvc-held", write); !errors.Is(err, blockdev.ErrBusy) {
			if f != nil {
				f.Close()
			}
			t.Errorf("OpenData(write=%v) of a mounted volume: %v, want ErrBusy", write, err)
		}
	}
	if err := unix.Unmount(dir, 0); err != nil {
		t.Fatal(err)
	}

	if err := b.Detach(ctx, hdd, "pvc-held"); err != nil {
		t.Fatal(err)
	}
	if devs, err := b.BlockDevices(ctx, hdd, "pvc-held"); err != nil || len(devs) != 0 {
		t.Errorf("BlockDevices of a detached volume = %v, %v; want none", devs, err)
	}
	f, err = b.OpenData(ctx, hdd, "pvc-held", false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		t.Errorf("OpenData of a detached volume: %v, %v; want its file", st.Mode(), err)
	}
}

// TestRealNoPreviousTenantDataOnLoopDevice: bytes written through a loop
// device, the volume deleted, a new one of the same size attached (to the
// same loop device, the first free one): it reads zeros through its loop
// device; nothing of the old file or the old device's cache shows.
func TestRealNoPreviousTenantDataOnLoopDevice(t *testing.T) {
	ctx := context.Background()
	b := realBackend(t)
	if _, err := b.CreateVolume(ctx, hdd, "pvc-old", 64*mi, backend.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	oldDev, err := b.Attach(ctx, hdd, "pvc-old")
	if err != nil {
		t.Fatal(err)
	}
	writeData(t, b, "pvc-old", bytes.Repeat([]byte("previous tenant "), 4<<20), 0) // all 64 MiB
	if data := readAll(t, b, "pvc-old"); allZero(data[:mi]) {
		t.Fatal("the pattern did not reach the volume")
	}
	if err := b.DeleteVolume(ctx, hdd, "pvc-old"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateVolume(ctx, hdd, "pvc-new", 64*mi, backend.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dev, err := b.Attach(ctx, hdd, "pvc-new")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("old volume on %s, new one on %s", oldDev, dev)
	if data := readAll(t, b, "pvc-new"); int64(len(data)) != 64*mi || !allZero(data) {
		t.Errorf("the new volume on %s: %d bytes, all zero %v", dev, len(data), allZero(data))
	}
	if _, err := os.Stat(filepath.Join(b.root, hdd, volumesDir, "pvc-old"+imgSuffix)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the deleted volume's file: %v", err)
	}
}
