package blockdev

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"k8s.io/mount-utils"

	"hwameistor.io/local/internal/testenv"
)

// needRoot skips (fails under CI=true) unless the test runs as root with
// the programs it needs.
func needRoot(t testing.TB, programs ...string) {
	t.Helper()
	testenv.RequireRoot(t, "creates loop devices, device nodes and mounts")
	testenv.RequireCommands(t, programs...)
}

func run(t testing.TB, argv ...string) string {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// loopDevice attaches a sparse file of size bytes as a loop device and
// detaches it (after the test's unmounts) when the test ends.
func loopDevice(t testing.TB, size int64) string {
	t.Helper()
	needRoot(t, "losetup")
	file := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(file, size); err != nil {
		t.Fatal(err)
	}
	dev := run(t, "losetup", "--find", "--show", file)
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "--detach", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup --detach %s: %v: %s", dev, err, out)
		}
	})
	return dev
}

// mountAt mounts (or bind-mounts) and unmounts when the test ends.
func mountAt(t testing.TB, target string, args ...string) {
	t.Helper()
	run(t, append(append([]string{"mount"}, args...), target)...)
	t.Cleanup(func() { _ = unix.Unmount(target, 0) })
}

func rdev(t testing.TB, path string) uint64 {
	t.Helper()
	dev, ok, err := DeviceNumber(path)
	if err != nil || !ok {
		t.Fatalf("DeviceNumber(%s) = %v, %v", path, ok, err)
	}
	return dev
}

// TestFind checks the device-number logic on a synthetic mount table: a
// filesystem by its major:minor, a filesystem by its source's device node
// (anonymous st_dev), a bind-mounted device node (stat of the mount
// point), and what must not match or never be stat'ed.
func TestFind(t *testing.T) {
	dir := t.TempDir()
	const major, minor = 7, 42
	dev := unix.Mkdev(major, minor)
	devs := map[uint64]string{dev: "/dev/VG/LV"}

	// A regular file at a "mount point" is no device node.
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	mounts := []mount.MountInfo{
		{Major: major, Minor: minor, Root: "/", MountPoint: `/var/lib/kubelet/pods/p/volumes/kubernetes.io~csi/pvc\0401/mount`, FsType: "xfs", Source: "/dev/mapper/VG-LV"},
		{Major: major, Minor: minor + 1, Root: "/", MountPoint: "/mnt/other", FsType: "xfs", Source: "/dev/mapper/VG-other"},
		{Major: 0, Minor: 5, Root: "/loop9", MountPoint: plain, FsType: "devtmpfs", Source: "udev"},
		{Major: 0, Minor: 50, Root: "/x", MountPoint: "/net/share", FsType: "nfs4", Source: "server:/x"},
	}
	want := []Use{{Device: "/dev/VG/LV", Kind: Mounted, Where: "/var/lib/kubelet/pods/p/volumes/kubernetes.io~csi/pvc 1/mount", FsType: "xfs"}}
	if got := Find(mounts, devs); !reflect.DeepEqual(got, want) {
		t.Errorf("Find = %+v, want %+v", got, want)
	}
	if got := Find(mounts, map[uint64]string{unix.Mkdev(1, 1): "/dev/x"}); len(got) != 0 {
		t.Errorf("Find of an unused device = %+v, want nothing", got)
	}

	needRoot(t) // mknod
	// A node of the device where a bind mount would put it, and a
	// filesystem whose st_dev is anonymous but whose source is the device.
	node := filepath.Join(dir, "publish")
	if err := unix.Mknod(node, unix.S_IFBLK|0o600, int(dev)); err != nil {
		t.Fatal(err)
	}
	source := filepath.Join("/dev", "hwtest-blockdev-"+filepath.Base(dir))
	if err := unix.Mknod(source, unix.S_IFBLK|0o600, int(dev)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(source) })
	mounts = []mount.MountInfo{
		{Major: 0, Minor: 5, Root: "/dm-3", MountPoint: node, FsType: "devtmpfs", Source: "udev"},
		{Major: 0, Minor: 5, Root: "/", MountPoint: node, FsType: "devtmpfs", Source: "udev"}, // root "/": never a device node
		{Major: 0, Minor: 77, Root: "/", MountPoint: "/srv/btrfs", FsType: "btrfs", Source: source},
		{Major: 0, Minor: 50, Root: "/dm-3", MountPoint: node, FsType: "fuse.sshfs", Source: "host:/"}, // never stat'ed
	}
	want = []Use{
		{Device: "/dev/VG/LV", Kind: Mounted, Where: "/srv/btrfs", FsType: "btrfs"}, // sorted by place
		{Device: "/dev/VG/LV", Kind: BindMounted, Where: node, FsType: "devtmpfs"},
	}
	if got := Find(mounts, devs); !reflect.DeepEqual(got, want) {
		t.Errorf("Find = %+v, want %+v", got, want)
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`/a\040b`: "/a b", `/tab\011x`: "/tab\tx", `/back\134slash`: `/back\slash`, `/plain`: "/plain", `/trailing\04`: `/trailing\04`, `/bad\999`: `/bad\999`,
	} {
		if got := unescape(in); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDeviceNumber(t *testing.T) {
	if _, ok, err := DeviceNumber(filepath.Join(t.TempDir(), "none")); ok || err != nil {
		t.Errorf("missing path: %v, %v; want not ok, no error", ok, err)
	}
	dir := t.TempDir()
	if _, _, err := DeviceNumber(dir); !errors.Is(err, ErrNotBlockDevice) {
		t.Errorf("a directory: %v, want ErrNotBlockDevice", err)
	}
	if uses, err := Uses(dir, filepath.Join(dir, "none")); err != nil || len(uses) != 0 {
		t.Errorf("Uses of no block device = %v, %v; want nothing", uses, err)
	}
}

// TestRealUses runs Uses on a real loop device: unused; an xfs filesystem
// on it mounted (found whether it is asked about by its node or by a
// symlink to it, as /dev/VG/LV is to /dev/dm-N); its node bind-mounted onto
// a file (a raw block publish, the mount's source is devtmpfs); unused
// again after the unmounts.
func TestRealUses(t *testing.T) {
	needRoot(t, "losetup", "mkfs.xfs", "mount")
	dev := loopDevice(t, 300<<20)
	dir := t.TempDir()
	link := filepath.Join(dir, "lv")
	if err := os.Symlink(dev, link); err != nil {
		t.Fatal(err)
	}
	// Another loop device's mounts are no use of this one.
	other := loopDevice(t, 300<<20)
	run(t, "mkfs.xfs", "-q", other)
	otherMnt := filepath.Join(dir, "other")
	if err := os.Mkdir(otherMnt, 0o755); err != nil {
		t.Fatal(err)
	}
	mountAt(t, otherMnt, other)

	check := func(step string, want ...Use) {
		t.Helper()
		got, err := Uses(link, "", filepath.Join(dir, "no-such-device"))
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: Uses = %+v, want %+v", step, got, want)
		}
	}
	check("unused")

	run(t, "mkfs.xfs", "-q", dev)
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	mountAt(t, mnt, dev)
	check("mounted", Use{Device: link, Kind: Mounted, Where: mnt, FsType: "xfs"})
	if err := unix.Unmount(mnt, 0); err != nil {
		t.Fatal(err)
	}
	check("unmounted")

	publish := filepath.Join(dir, "publish")
	if err := os.WriteFile(publish, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	mountAt(t, publish, "--bind", dev)
	got, err := Uses(link)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Kind != BindMounted || got[0].Where != publish {
		t.Errorf("bind-mounted: Uses = %+v, want one bind mount at %s", got, publish)
	} else if !strings.Contains(got[0].String(), "is bind-mounted at "+publish) {
		t.Errorf("message %q", got[0].String())
	}
	if err := unix.Unmount(publish, 0); err != nil {
		t.Fatal(err)
	}
	check("unpublished")
}

// TestRealOpenExclusive: an exclusive open fails while the device is
// mounted, works once it is not, and while held makes a mount fail.
func TestRealOpenExclusive(t *testing.T) {
	needRoot(t, "losetup", "mkfs.xfs", "mount")
	dev := loopDevice(t, 300<<20)
	run(t, "mkfs.xfs", "-q", dev)
	mnt := t.TempDir()
	mountAt(t, mnt, dev)
	if f, err := OpenExclusive(dev, false); !errors.Is(err, ErrBusy) || !errors.Is(err, unix.EBUSY) {
		if f != nil {
			f.Close()
		}
		t.Fatalf("OpenExclusive of a mounted device: %v, want ErrBusy", err)
	}
	if err := unix.Unmount(mnt, 0); err != nil {
		t.Fatal(err)
	}
	f, err := OpenExclusive(dev, false)
	if err != nil {
		t.Fatalf("OpenExclusive of an unmounted device: %v", err)
	}
	out, err := exec.Command("mount", dev, mnt).CombinedOutput()
	if err == nil {
		_ = unix.Unmount(mnt, 0)
		t.Errorf("mount succeeded while the device was held exclusively")
	} else if !strings.Contains(strings.ToLower(string(out)), "busy") {
		t.Logf("mount failed as wanted, with: %s", out)
	}
	f.Close()
	mountAt(t, mnt, dev) // released: mounts again
	if err := unix.Unmount(mnt, 0); err != nil {
		t.Fatal(err)
	}
}
