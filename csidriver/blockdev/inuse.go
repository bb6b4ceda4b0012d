// Package blockdev answers two questions the node agent asks about a
// volume's block device on this host: is it in use (a filesystem on it is
// mounted, its device node is bind-mounted as a raw block volume, or a
// device is stacked on it), and how to make a range of it read as zeros.
//
// Devices are compared by device number, never by path: the kernel lists an
// activated LV as /dev/mapper/VG-LV (or dm-N) and a raw block publish as a
// bind mount whose source is "udev" or "devtmpfs", while the volume is
// known as /dev/VG/LV.
package blockdev

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	"k8s.io/mount-utils"
)

var (
	// ErrBusy is the error (with EBUSY) of an exclusive open of a device
	// that is in use: mounted, held by a stacked device or opened
	// exclusively by someone else.
	ErrBusy = errors.New("block device is in use")
	// ErrNotBlockDevice: the path exists but is no block device.
	ErrNotBlockDevice = errors.New("not a block device")
)

// DeviceNumber returns the device number (st_rdev) of the block device at
// path, following symlinks (/dev/VG/LV -> /dev/dm-3). ok is false when
// nothing exists at path; something that is not a block device is an
// error that Is ErrNotBlockDevice.
func DeviceNumber(path string) (dev uint64, ok bool, err error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return 0, false, nil
		}
		return 0, false, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return 0, false, fmt.Errorf("%s: %w", path, ErrNotBlockDevice)
	}
	return st.Rdev, true, nil
}

// Kind is how a device is in use.
type Kind string

const (
	// Mounted: a filesystem on the device is mounted.
	Mounted Kind = "mounted"
	// BindMounted: the device node itself is bind-mounted somewhere (a
	// CSI raw block publish, kubelet's volumeDevices).
	BindMounted Kind = "bind-mounted"
	// Held: another block device is stacked on it (sysfs holders:
	// device-mapper, md, ...).
	Held Kind = "held"
)

// Use is one way a block device is in use.
type Use struct {
	// Device is the path the device was asked about.
	Device string
	Kind   Kind
	// Where is the mount point, or the holder's sysfs name (dm-3).
	Where string
	// FsType is the mount's filesystem type (for a bind mount, the type
	// of the filesystem holding the device node, e.g. devtmpfs).
	FsType string
}

func (u Use) String() string {
	switch u.Kind {
	case Mounted:
		return fmt.Sprintf("%s is mounted at %s (%s)", u.Device, u.Where, u.FsType)
	case BindMounted:
		return fmt.Sprintf("%s is bind-mounted at %s (a raw block volume)", u.Device, u.Where)
	default:
		return fmt.Sprintf("%s is held by %s", u.Device, u.Where)
	}
}

// Checker finds the uses of block devices; the zero value reads this
// process's mount table and /sys.
type Checker struct {
	// MountInfo is the mount table, in /proc/<pid>/mountinfo format;
	// /proc/self/mountinfo when empty.
	MountInfo string
	// SysFS is where sysfs is mounted; /sys when empty.
	SysFS string
}

// Uses reports every use of the block devices at paths: see Find for the
// mounts, plus the devices stacked on them (/sys/dev/block/M:m/holders).
// Paths where nothing exists are skipped (an LV that is not active, a loop
// device that went away), and so are paths that are no block device (a
// stale device path now naming something else): they cannot be in use as
// a block device.
func Uses(paths ...string) ([]Use, error) { return Checker{}.Uses(paths...) }

// Uses is the package's Uses with c's mount table and sysfs.
func (c Checker) Uses(paths ...string) ([]Use, error) {
	devs := map[uint64]string{}
	for _, p := range paths {
		if p == "" {
			continue
		}
		dev, ok, err := DeviceNumber(p)
		if errors.Is(err, ErrNotBlockDevice) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if ok {
			if _, seen := devs[dev]; !seen {
				devs[dev] = p
			}
		}
	}
	if len(devs) == 0 {
		return nil, nil
	}
	file := c.MountInfo
	if file == "" {
		file = "/proc/self/mountinfo"
	}
	mounts, err := mount.ParseMountInfo(file)
	if err != nil {
		return nil, fmt.Errorf("reading the mount table %s: %w", file, err)
	}
	uses := Find(mounts, devs)
	sysfs := c.SysFS
	if sysfs == "" {
		sysfs = "/sys"
	}
	for dev, path := range devs {
		dir := filepath.Join(sysfs, "dev", "block", fmt.Sprintf("%d:%d", unix.Major(dev), unix.Minor(dev)), "holders")
		entries, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("reading %s: %w", dir, err)
		}
		for _, e := range entries {
			uses = append(uses, Use{Device: path, Kind: Held, Where: e.Name()})
		}
	}
	sortUses(uses)
	return uses, nil
}

// Find returns the mounts that use one of devs (device number -> the path
// it is known by):
//
//   - a filesystem on the device: the mount's major:minor (the st_dev of
//     its files, as stat(mount point).Dev) is the device's number;
//   - a filesystem whose source is a device node with that number
//     (filesystems such as btrfs report an anonymous st_dev);
//   - the device node bind-mounted (a raw block publish): the mount point
//     is a block device node with that number. Only mounts of a
//     subdirectory or file of their filesystem (root other than "/") can be
//     such a bind mount, and only those are stat'ed, never a network or FUSE
//     filesystem's (a stat there can hang).
func Find(mounts []mount.MountInfo, devs map[uint64]string) []Use {
	var uses []Use
	for _, m := range mounts {
		mp := unescape(m.MountPoint)
		if path, ok := devs[unix.Mkdev(uint32(m.Major), uint32(m.Minor))]; ok {
			uses = append(uses, Use{Device: path, Kind: Mounted, Where: mp, FsType: m.FsType})
			continue
		}
		if src := unescape(m.Source); strings.HasPrefix(src, "/dev/") {
			if dev, ok, _ := DeviceNumber(src); ok {
				if path, ok := devs[dev]; ok {
					uses = append(uses, Use{Device: path, Kind: Mounted, Where: mp, FsType: m.FsType})
					continue
				}
			}
		}
		if m.Root == "/" || remote(m.FsType) {
			continue
		}
		var st unix.Stat_t
		if err := unix.Stat(mp, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK {
			continue
		}
		if path, ok := devs[st.Rdev]; ok {
			uses = append(uses, Use{Device: path, Kind: BindMounted, Where: mp, FsType: m.FsType})
		}
	}
	sortUses(uses)
	return uses
}

// remote says whether a stat of a mount point of this type may hang (the
// server is gone) or is slow: network and FUSE filesystems, where a raw
// block device node never lives.
func remote(fsType string) bool {
	t, _, _ := strings.Cut(fsType, ".")
	switch t {
	case "nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "lustre", "afs", "9p", "fuse", "fuseblk", "gpfs", "beegfs":
		return true
	}
	return false
}

// unescape undoes the octal escapes of the mount table (\040 for a space,
// \011, \012, \134).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func sortUses(uses []Use) {
	sort.SliceStable(uses, func(i, j int) bool {
		if uses[i].Device != uses[j].Device {
			return uses[i].Device < uses[j].Device
		}
		return uses[i].Where < uses[j].Where
	})
}

// Describe joins uses into one sentence for an error message.
func Describe(uses []Use) string {
	parts := make([]string, len(uses))
	for i, u := range uses {
		parts[i] = u.String()
	}
	return strings.Join(parts, "; ")
}

// OpenExclusive opens the block device at path with O_EXCL, read-only or
// read-write: the kernel refuses (EBUSY, an error that Is ErrBusy) while
// the device is mounted or held by a stacked device or another exclusive
// opener, and, while the returned file is open, refuses to mount it. A
// bind mount of the device node, or a plain open, is not refused: Uses
// finds those.
func OpenExclusive(path string, write bool) (*os.File, error) {
	flag := os.O_RDONLY
	if write {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(path, flag|os.O_EXCL, 0)
	if errors.Is(err, unix.EBUSY) {
		return nil, fmt.Errorf("%w: %w", ErrBusy, err)
	}
	return f, err
}
