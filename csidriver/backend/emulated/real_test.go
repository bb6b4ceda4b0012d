package emulated

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/backend"
	"hwameistor.io/local/csidriver/backend/loop"
	"hwameistor.io/local/internal/testenv"
)

func run(t *testing.T, argv ...string) {
	t.Helper()
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, out)
	}
}

// loopBytes is the size the kernel gives the loop device.
func loopBytes(t *testing.T, dev string) int64 {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("/sys/class/block", filepath.Base(dev), "size"))
	if err != nil {
		t.Fatal(err)
	}
	sectors, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return sectors * 512
}

func fsBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks) * st.Bsize
}

// TestRealLoopDeviceDataPath is the data path of a volume for real: attach
// as a loop device, mkfs.xfs, mount, write, unmount, expand (losetup -c),
// attach again from a new Backend (a restarted agent), mount, xfs_growfs,
// check the new size and the data, detach, delete. Root only; mounts and
// loop devices are cleaned up also when it fails.
func TestRealLoopDeviceDataPath(t *testing.T) {
	testenv.RequireRoot(t, "attaches loop devices and mounts file systems")
	testenv.RequireCommands(t, "losetup", "mkfs.xfs", "xfs_growfs", "mount", "umount")
	ctx := context.Background()
	root := t.TempDir()
	cfg := []PoolConfig{{Class: v1alpha1.PoolClassHDD, CapacityBytes: 4 << 30}}
	b, err := New(root, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// mkfs.xfs refuses file systems below 300 MiB.
	v, err := b.CreateVolume(ctx, hdd, "pvc-real", 512*mi, backend.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(b.root, hdd, volumesDir, "pvc-real.img")
	// Registered before any mount cleanup, so it runs after the unmount.
	t.Cleanup(func() {
		l := loop.New()
		devs, err := l.Find(ctx, file)
		if err != nil {
			t.Errorf("cleanup: %v", err)
		}
		for _, d := range devs {
			if err := l.Detach(ctx, d); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})

	dev, err := b.Attach(ctx, hdd, "pvc-real")
	if err != nil {
		t.Fatal(err)
	}
	if got := loopBytes(t, dev); got != v.SizeBytes {
		t.Fatalf("loop device has %d bytes, want %d", got, v.SizeBytes)
	}
	if again, err := b.Attach(ctx, hdd, "pvc-real"); err != nil || again != dev {
		t.Fatalf("second Attach = %q, %v; want %q", again, err, dev)
	}

	run(t, "mkfs.xfs", "-q", dev)
	mnt := t.TempDir()
	mounted := false
	mount := func() {
		t.Helper()
		run(t, "mount", "-t", "xfs", dev, mnt)
		mounted = true
	}
	umount := func() {
		t.Helper()
		run(t, "umount", mnt)
		mounted = false
	}
	t.Cleanup(func() {
		if mounted {
			if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
				t.Errorf("cleanup: umount %s: %v: %s", mnt, err, out)
			}
		}
	})

	mount()
	data := bytes.Repeat([]byte("hwameistor "), 100000)
	if err := os.WriteFile(filepath.Join(mnt, "data"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	before := fsBytes(t, mnt)
	umount()

	if v, err = b.ExpandVolume(ctx, hdd, "pvc-real", 1<<30); err != nil || v.SizeBytes != 1<<30 {
		t.Fatalf("ExpandVolume = %+v, %v", v, err)
	}
	if got := loopBytes(t, dev); got != 1<<30 {
		t.Fatalf("loop device has %d bytes after expansion, want %d (losetup -c)", got, 1<<30)
	}

	// A restarted agent finds the same loop device.
	b2, err := New(root, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := b2.Attach(ctx, hdd, "pvc-real"); err != nil || again != dev {
		t.Fatalf("Attach after restart = %q, %v; want %q", again, err, dev)
	}
	mount()
	run(t, "xfs_growfs", mnt)
	after := fsBytes(t, mnt)
	if after <= before || after < 900*mi {
		t.Errorf("file system has %d bytes after xfs_growfs, before %d; want about 1Gi", after, before)
	}
	if got, err := os.ReadFile(filepath.Join(mnt, "data")); err != nil || !bytes.Equal(got, data) {
		t.Errorf("data after expansion differs (err %v)", err)
	}
	umount()

	if err := b2.Detach(ctx, hdd, "pvc-real"); err != nil {
		t.Fatal(err)
	}
	if devs, err := loop.New().Find(ctx, file); err != nil || len(devs) != 0 {
		t.Errorf("after Detach, loop devices of the file: %v, %v", devs, err)
	}
	if err := b2.DeleteVolume(ctx, hdd, "pvc-real"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("volume file after DeleteVolume: %v", err)
	}
}
