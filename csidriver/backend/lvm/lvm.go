// Package lvm is the backend that runs lvm2, and the only package that does:
// one volume group per pool class (named like the pool, LocalStorage_PoolHDD
// ...), thick logical volumes sized in whole extents, and an ownership tag on
// every LV it creates so that LVs of other users of the volume group are never
// listed or touched. Every byte of a new LV, and of the extents an expansion
// adds, is zeroed before the volume is handed out (a tag marks a zeroing not
// yet finished, so a crash cannot skip it). Reports are read with
// `--reportformat json --units b --nosuffix` and decoded into typed structs;
// failures become the backend package's typed errors with lvm's stderr in the
// message.
package lvm

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/backend"
	"hwameistor.io/local/csidriver/backend/command"
	"hwameistor.io/local/csidriver/blockdev"
)

// OwnerTagPrefix starts the LV tag that marks our LVs:
// hwameistor.io/owner=<Options.Owner>. LVM tags allow [A-Za-z0-9_+.-/=!:&#],
// so a label-like key=value fits as is.
const OwnerTagPrefix = "hwameistor.io/owner="

// ZeroTagPrefix starts the tag of an LV whose bytes from an offset on may
// still hold a previous tenant's data: hwameistor.io/zero-from=<bytes>.
// lvcreate adds it (offset 0), and lvchange before lvextend (the old size);
// it is removed once that range is zeroed. Every call that finds an LV with
// it (CreateVolume, ExpandVolume, GetVolume, OpenData) finishes the zeroing
// before it returns the volume, so a crash or a failure in between never
// hands out unzeroed bytes.
const ZeroTagPrefix = "hwameistor.io/zero-from="

// DefaultOwner is the owner tag value, the CSI driver's name.
const DefaultOwner = v1alpha1.DriverName

// MetadataOnlyConfig is an lvm --config value that disables activation:
// lvcreate/lvextend/lvremove then only write VG metadata and need no
// device-mapper. For tests on machines without device-mapper; LVs created
// this way have no device node.
const MetadataOnlyConfig = "global { activation=0 }"

// DRBDFilterConfig is an lvm --config value that keeps lvm from reading
// DRBD devices while it scans for physical volumes: the node agent's DRBD
// devices sit on top of its logical volumes and never hold one, and a
// Primary whose I/O is frozen (it lost its peer, csidriver/fence) would
// block every lvm command on the node, the agent's included. It replaces a
// global_filter of the host's lvm.conf. hwameistor-node --drbd sets it.
const DRBDFilterConfig = `devices { global_filter = [ "r|^/dev/drbd|" ] }`

// maxDMNameLen is device-mapper's name limit (DM_NAME_LEN 128 with the NUL).
const maxDMNameLen = 127

// Options configure a Backend. The zero value runs the real lvm with the real
// pool names.
type Options struct {
	// Runner executes lvm; the real one (command.Exec with LC_ALL=C) when
	// nil.
	Runner command.Runner
	// Binary is the lvm program; "lvm" (from PATH) when empty. Every
	// command runs as `lvm <subcommand>`, so one wrapper (e.g. nsenter
	// into the host) can stand in for all of them.
	Binary string
	// Config is passed as `--config <Config>` to every command, e.g.
	// `devices { use_devicesfile=0 }` in a container whose host uses a
	// devices file (README.md, "lvm in containers").
	Config string
	// VolumeGroups maps pool names to volume group names. Empty: the
	// three pools, each in the VG of the same name. Tests map pools to
	// VGs with a unique prefix so they never touch a real pool.
	VolumeGroups map[string]string
	// Owner is the value of the ownership tag; DefaultOwner when empty.
	Owner string
	// VolumeCountLimit caps the volumes per pool;
	// v1alpha1.DefaultVolumeCountLimit when zero.
	VolumeCountLimit int64
}

// Backend manages logical volumes with lvm2.
type Backend struct {
	run      command.Runner
	bin      string
	config   string
	vgOf     map[string]string // pool name -> VG name
	pools    []string          // configured pool names, HDD, SSD, NVMe order
	ownerTag string
	limit    int64

	// mu serialises changes, so that "look, then lvcreate" is atomic
	// within this process; lvm's own VG lock covers other processes.
	// Zeroing runs outside it.
	mu sync.Mutex
	// volumeLocks (VG/LV -> *sync.Mutex) serialise the calls on one
	// volume, so that nothing sees or removes a volume while it is being
	// zeroed. Taken before mu.
	volumeLocks sync.Map

	// openFile opens device nodes; os.OpenFile except in tests.
	openFile func(name string, flag int, perm os.FileMode) (*os.File, error)
	// zero makes [off, off+n) of the device at path read as zeros;
	// zeroDevice except in tests.
	zero func(ctx context.Context, path string, off, n int64, exclusive bool) error
	// exists says whether a device node exists; os.Stat except in tests.
	exists func(path string) bool
}

var (
	_ backend.Backend      = (*Backend)(nil)
	_ backend.DataOpener   = (*Backend)(nil)
	_ backend.BlockDevicer = (*Backend)(nil)
	_ backend.Attacher     = (*Backend)(nil)
)

// New validates the options and returns a Backend. It runs no command.
func New(o Options) (*Backend, error) {
	b := &Backend{run: o.Runner, bin: o.Binary, config: o.Config, limit: o.VolumeCountLimit, vgOf: map[string]string{}, openFile: os.OpenFile, zero: zeroDevice,
		exists: func(path string) bool { _, err := os.Stat(path); return err == nil }}
	if b.run == nil {
		b.run = command.Exec{Env: []string{"LC_ALL=C", "LVM_SUPPRESS_FD_WARNINGS=1"}}
	}
	if b.bin == "" {
		b.bin = "lvm"
	}
	if b.limit <= 0 {
		b.limit = v1alpha1.DefaultVolumeCountLimit
	}
	owner := o.Owner
	if owner == "" {
		owner = DefaultOwner
	}
	b.ownerTag = OwnerTagPrefix + owner
	if err := backend.ValidateTag(b.ownerTag); err != nil {
		return nil, fmt.Errorf("owner: %w", err)
	}
	vgs := o.VolumeGroups
	if len(vgs) == 0 {
		vgs = map[string]string{}
		for _, c := range v1alpha1.PoolClasses {
			vgs[c.PoolName()] = c.PoolName()
		}
	}
	for pool, vg := range vgs {
		if _, err := v1alpha1.PoolClassOf(pool); err != nil {
			return nil, err
		}
		if err := backend.ValidateVolumeName(vg); err != nil {
			return nil, fmt.Errorf("volume group of pool %s: %w", pool, err)
		}
		b.vgOf[pool] = vg
	}
	for _, c := range v1alpha1.PoolClasses {
		if _, ok := b.vgOf[c.PoolName()]; ok {
			b.pools = append(b.pools, c.PoolName())
		}
	}
	return b, nil
}

// Pools implements backend.Backend with one `lvm fullreport` for all volume
// groups: lvm reports each VG (its size and free space, its PVs and LVs)
// under that VG's lock, so a report never lists a volume beside a free size
// measured before it existed, whoever creates volumes meanwhile. No lock of
// the Backend is taken: a report does not wait for a zeroing.
func (b *Backend) Pools(ctx context.Context) ([]backend.Pool, error) {
	out, err := b.lvm(ctx, "fullreport", fullreportArgs()...)
	if err != nil {
		return nil, classify(err)
	}
	r, err := decodeReport(out)
	if err != nil {
		return nil, err
	}
	vgByName := map[string]vg{}
	for _, g := range r.vgs() {
		vgByName[g.Name] = g
	}
	var pools []backend.Pool
	for _, name := range b.pools {
		g, ok := vgByName[b.vgOf[name]]
		if !ok {
			continue
		}
		class, _ := v1alpha1.PoolClassOf(name)
		p := backend.Pool{
			Name: name, Class: class,
			TotalBytes: int64(g.Size), FreeBytes: int64(g.Free), ExtentSizeBytes: int64(g.ExtentSize),
			VolumeCountLimit: b.limit,
		}
		for _, v := range r.pvs() {
			if v.VGName == g.Name {
				p.Disks = append(p.Disks, backend.Disk{DevPath: v.Name, CapacityBytes: int64(v.Size)})
			}
		}
		for _, l := range r.lvs() {
			if l.VGName == g.Name && b.owned(l) {
				p.Volumes = append(p.Volumes, l.Name)
			}
		}
		sort.Strings(p.Volumes)
		// pvs lists devices in its own order (loop10 before loop9); sorted,
		// the node's status does not change when that order does.
		sort.Slice(p.Disks, func(i, j int) bool { return p.Disks[i].DevPath < p.Disks[j].DevPath })
		p.VolumeCount = int64(len(p.Volumes))
		pools = append(pools, p)
	}
	return pools, nil
}

// CreateVolume implements backend.Backend: lvcreate -L <bytes>b rounded to
// extents (to extents x stripes when striped), after checking vg_free and the
// volume count so that a short pool fails before lvm runs. The new LV carries
// the tag hwameistor.io/zero-from=0 until every byte of it is zeroed
// (blockdev.Zero on its device, outside the Backend's lock); only then is it
// returned. lvremove wipes nothing and lvcreate -Zy clears only the first
// 4 KiB, so without this a new volume could read a previous tenant's data.
func (b *Backend) CreateVolume(ctx context.Context, pool, name string, bytes int64, opts backend.CreateOptions) (backend.Volume, error) {
	vgName, err := b.checkArgs(pool, name)
	if err != nil {
		return backend.Volume{}, err
	}
	if err := backend.ValidateTags(opts.Tags); err != nil {
		return backend.Volume{}, err
	}
	for _, t := range opts.Tags {
		if strings.HasPrefix(t, OwnerTagPrefix) || strings.HasPrefix(t, ZeroTagPrefix) {
			return backend.Volume{}, fmt.Errorf("%w: tag %q: %s and %s are reserved for the backend's own tags", backend.ErrInvalidArgument, t, OwnerTagPrefix, ZeroTagPrefix)
		}
	}
	if bytes <= 0 {
		return backend.Volume{}, fmt.Errorf("%w: size %d must be positive", backend.ErrInvalidArgument, bytes)
	}
	defer b.lockVolume(vgName, name)()
	l, err := b.create(ctx, pool, vgName, name, bytes, opts)
	if err != nil {
		return backend.Volume{}, err
	}
	return b.finishZeroing(ctx, pool, l)
}

// create looks the volume up and runs lvcreate when it does not exist, under
// b.mu; it returns the LV as lvs would report it.
func (b *Backend) create(ctx context.Context, pool, vgName, name string, bytes int64, opts backend.CreateOptions) (lv, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	g, err := b.vg(ctx, pool, vgName)
	if err != nil {
		return lv{}, err
	}
	stripes := int64(1)
	if opts.Striped && g.PVCount >= 2 {
		stripes = int64(g.PVCount)
	}
	size, err := backend.RoundUp(bytes, int64(g.ExtentSize)*stripes)
	if err != nil {
		return lv{}, err
	}
	lvs, err := b.lvsOf(ctx, pool, vgName)
	if err != nil {
		return lv{}, err
	}
	owned := 0
	for _, l := range lvs {
		if l.Name == name {
			if !b.owned(l) {
				return lv{}, fmt.Errorf("%w: pool %s: %s/%s has no tag %s", backend.ErrNotOwned, pool, vgName, name, b.ownerTag)
			}
			// The size a retry asks for, rounded as before; a
			// striped LV may be rounded to extents only when the VG
			// had one PV at creation.
			plain, _ := backend.RoundUp(bytes, int64(g.ExtentSize))
			if int64(l.Size) == size || int64(l.Size) == plain {
				return l, nil
			}
			return lv{}, fmt.Errorf("%w: pool %s: volume %s has %s, requested %s",
				backend.ErrAlreadyExists, pool, name, v1alpha1.FormatBytes(int64(l.Size)), v1alpha1.FormatBytes(size))
		}
		if b.owned(l) {
			owned++
		}
	}
	if int64(owned) >= b.limit {
		return lv{}, &backend.CapacityError{Pool: pool, VolumeCountLimit: b.limit}
	}
	if size > int64(g.Free) {
		return lv{}, &backend.CapacityError{Pool: pool, NeedBytes: size, FreeBytes: int64(g.Free)}
	}

	zeroTag := ZeroTagPrefix + "0"
	args := []string{"-y", "-Wy", "-Zy", "-L", strconv.FormatInt(size, 10) + "b", "-n", name}
	if stripes > 1 {
		args = append(args, "-i", strconv.FormatInt(stripes, 10))
	}
	args = append(args, "--addtag", b.ownerTag, "--addtag", zeroTag)
	tags := backend.NormalizeTags(opts.Tags)
	for _, t := range tags {
		args = append(args, "--addtag", t)
	}
	args = append(args, vgName)
	if _, err := b.lvm(ctx, "lvcreate", args...); err != nil {
		if isCapacity(err) {
			return lv{}, fmt.Errorf("%w: %w", &backend.CapacityError{Pool: pool, NeedBytes: size, FreeBytes: int64(g.Free)}, err)
		}
		return lv{}, fmt.Errorf("pool %s: create volume %s: %w", pool, name, classify(err))
	}
	return lv{Name: name, VGName: vgName, Size: num(size), Tags: append([]string{b.ownerTag, zeroTag}, tags...), Path: devicePath(vgName, name)}, nil
}

// ExpandVolume implements backend.Backend with lvextend -L <bytes>b, after
// checking vg_free for the difference. It re-reads the LV because lvm rounds
// a striped LV further, to whole stripes. The added extents may hold a
// previous tenant's data: the LV is tagged hwameistor.io/zero-from=<old size>
// (lvchange) before lvextend and the new range zeroed after it, before the
// volume is returned. The device is not opened exclusively for this: the
// volume may be mounted, and its filesystem only grows into the new range
// afterwards (NodeExpandVolume).
func (b *Backend) ExpandVolume(ctx context.Context, pool, name string, bytes int64) (backend.Volume, error) {
	vgName, err := b.checkArgs(pool, name)
	if err != nil {
		return backend.Volume{}, err
	}
	defer b.lockVolume(vgName, name)()
	l, err := b.expand(ctx, pool, vgName, name, bytes)
	if err != nil {
		return backend.Volume{}, err
	}
	return b.finishZeroing(ctx, pool, l)
}

// expand runs lvextend when the LV is smaller than bytes, under b.mu, and
// returns the LV as lvs reports it afterwards.
func (b *Backend) expand(ctx context.Context, pool, vgName, name string, bytes int64) (lv, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	g, err := b.vg(ctx, pool, vgName)
	if err != nil {
		return lv{}, err
	}
	size, err := backend.RoundUp(bytes, int64(g.ExtentSize))
	if err != nil {
		return lv{}, err
	}
	cur, err := b.findLV(ctx, pool, vgName, name)
	if err != nil {
		return lv{}, err
	}
	if size <= int64(cur.Size) {
		return cur, nil
	}
	if need := size - int64(cur.Size); need > int64(g.Free) {
		return lv{}, &backend.CapacityError{Pool: pool, NeedBytes: need, FreeBytes: int64(g.Free)}
	}
	// A pending zeroing from at or below the current size covers the new
	// range already.
	if from, pending := b.zeroFrom(cur); !pending || from > int64(cur.Size) {
		if _, err := b.lvm(ctx, "lvchange", "--addtag", ZeroTagPrefix+strconv.FormatInt(int64(cur.Size), 10), vgName+"/"+name); err != nil {
			return lv{}, fmt.Errorf("pool %s: expand volume %s: marking the new extents for zeroing: %w", pool, name, classify(err))
		}
	}
	if _, err := b.lvm(ctx, "lvextend", "-L", strconv.FormatInt(size, 10)+"b", vgName+"/"+name); err != nil {
		switch {
		case isCapacity(err):
			return lv{}, fmt.Errorf("%w: %w", &backend.CapacityError{Pool: pool, NeedBytes: size - int64(cur.Size), FreeBytes: int64(g.Free)}, err)
		case !strings.Contains(err.Error(), "matches existing size"):
			return lv{}, fmt.Errorf("pool %s: expand volume %s: %w", pool, name, classify(err))
		}
	}
	return b.findLV(ctx, pool, vgName, name)
}

// DeleteVolume implements backend.Backend with lvremove -y. A volume group
// that does not exist holds no volume of ours, so deleting from it succeeds.
// Nothing is wiped here: new and grown volumes are zeroed instead
// (README.md, "No data from a previous tenant").
func (b *Backend) DeleteVolume(ctx context.Context, pool, name string) error {
	vgName, err := b.checkArgs(pool, name)
	if err != nil {
		return err
	}
	defer b.lockVolume(vgName, name)()
	b.mu.Lock()
	defer b.mu.Unlock()
	_, err = b.find(ctx, pool, vgName, name)
	switch {
	case errors.Is(err, backend.ErrNotFound), errors.Is(err, backend.ErrPoolNotFound):
		return nil
	case err != nil:
		return err
	}
	if _, err := b.lvm(ctx, "lvremove", "-y", vgName+"/"+name); err != nil {
		if err = classify(err); errors.Is(err, backend.ErrNotFound) {
			return nil
		}
		return fmt.Errorf("pool %s: delete volume %s: %w", pool, name, err)
	}
	return nil
}

// GetVolume implements backend.Backend. An LV without our tag is ErrNotOwned.
// An LV whose zeroing was interrupted (it still has a zero-from tag) is
// zeroed first.
func (b *Backend) GetVolume(ctx context.Context, pool, name string) (backend.Volume, error) {
	vgName, err := b.checkArgs(pool, name)
	if err != nil {
		return backend.Volume{}, err
	}
	defer b.lockVolume(vgName, name)()
	l, err := b.findLV(ctx, pool, vgName, name)
	if err != nil {
		return backend.Volume{}, err
	}
	return b.finishZeroing(ctx, pool, l)
}

// ListVolumes implements backend.Backend: the LVs with our tag, by name. It
// reports them as they are and finishes no zeroing (GetVolume does).
func (b *Backend) ListVolumes(ctx context.Context, pool string) ([]backend.Volume, error) {
	vgName, err := b.vgName(pool)
	if err != nil {
		return nil, err
	}
	lvs, err := b.lvsOf(ctx, pool, vgName)
	if err != nil {
		return nil, err
	}
	var out []backend.Volume
	for _, l := range lvs {
		if b.owned(l) {
			out = append(out, b.volume(pool, l))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// OpenData implements backend.DataOpener: it looks the LV up (lvs VG, so a
// missing volume is ErrNotFound and a foreign LV ErrNotOwned; an interrupted
// zeroing is finished first) and opens the device node lvs reports (lv_path,
// /dev/<vg>/<lv>) exclusively (O_EXCL on a block device), read-only or
// read-write: the kernel refuses while the LV is mounted or held by a
// stacked device (an error that Is blockdev.ErrBusy), and, while the file is
// open, refuses to mount it, so neither the copy's source nor its target can
// be mounted during the copy. One copy at a time: a second exclusive open
// fails the same way.
func (b *Backend) OpenData(ctx context.Context, pool, name string, write bool) (*os.File, error) {
	vgName, err := b.checkArgs(pool, name)
	if err != nil {
		return nil, err
	}
	v, err := b.GetVolume(ctx, pool, name)
	if err != nil {
		return nil, err
	}
	flag := os.O_RDONLY | os.O_EXCL
	if write {
		flag = os.O_RDWR | os.O_EXCL
	}
	f, err := b.openFile(v.DevicePath, flag, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("pool %s: volume %s: device %s does not exist (is the LV active?): %w", pool, name, v.DevicePath, err)
	case errors.Is(err, syscall.EBUSY):
		return nil, fmt.Errorf("%w: pool %s: volume %s: device %s is in use (mounted, or being copied): %w", blockdev.ErrBusy, pool, name, v.DevicePath, err)
	case err != nil:
		return nil, fmt.Errorf("pool %s: open volume %s in %s: %w", pool, name, vgName, err)
	}
	return f, nil
}

// BlockDevices implements backend.BlockDevicer: the LV's device node,
// /dev/<vg>/<lv> (it exists only while the LV is active). No command runs.
func (b *Backend) BlockDevices(_ context.Context, pool, name string) ([]string, error) {
	vgName, err := b.checkArgs(pool, name)
	if err != nil {
		return nil, err
	}
	return []string{devicePath(vgName, name)}, nil
}

// Attach implements backend.Attacher: the LV's device node, activating
// the LV first when the node is missing. lvcreate activates a new LV, but
// after a reboot only a host whose boot activates volume groups has them
// active, and DRBD, a copy or a mount needs the device. Nothing runs while
// the node exists.
func (b *Backend) Attach(ctx context.Context, pool, name string) (string, error) {
	vgName, err := b.checkArgs(pool, name)
	if err != nil {
		return "", err
	}
	dev := devicePath(vgName, name)
	if b.exists(dev) {
		return dev, nil
	}
	if _, err := b.findLV(ctx, pool, vgName, name); err != nil {
		return "", err
	}
	if _, err := b.lvm(ctx, "lvchange", "--activate", "y", vgName+"/"+name); err != nil {
		return "", fmt.Errorf("pool %s: activating volume %s: %w", pool, name, err)
	}
	return dev, nil
}

// Detach implements backend.Attacher: nothing. An active LV costs
// nothing, DeleteVolume removes it active, and deactivating one that DRBD
// or a mount still holds would fail.
func (b *Backend) Detach(context.Context, string, string) error { return nil }

// lockVolume takes the volume's lock and returns its release.
func (b *Backend) lockVolume(vgName, name string) func() {
	m, _ := b.volumeLocks.LoadOrStore(vgName+"/"+name, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// zeroFrom returns the lowest offset of the LV's zero-from tags.
func (b *Backend) zeroFrom(l lv) (from int64, pending bool) {
	for _, t := range l.Tags {
		v, ok := strings.CutPrefix(t, ZeroTagPrefix)
		if !ok {
			continue
		}
		off, err := strconv.ParseInt(v, 10, 64)
		if err != nil || off < 0 {
			off = 0 // unreadable: zero it all
		}
		if !pending || off < from {
			from = off
		}
		pending = true
	}
	return from, pending
}

// finishZeroing zeroes the LV from its lowest zero-from tag to its end and
// then removes the tags (lvchange --deltag), and returns the volume; an LV
// without the tag is returned as is. The volume's lock is held, b.mu is not.
func (b *Backend) finishZeroing(ctx context.Context, pool string, l lv) (backend.Volume, error) {
	from, pending := b.zeroFrom(l)
	if !pending {
		return b.volume(pool, l), nil
	}
	v := b.volume(pool, l)
	if n := v.SizeBytes - from; n > 0 {
		// A whole new LV is nobody's yet: exclusively, so a stray mount
		// fails. A grown one may be mounted.
		if err := b.zero(ctx, v.DevicePath, from, n, from == 0); err != nil {
			return backend.Volume{}, fmt.Errorf("pool %s: volume %s: zeroing bytes [%d, %d) of %s, which may hold a previous tenant's data: %w",
				pool, v.Name, from, v.SizeBytes, v.DevicePath, err)
		}
	}
	args := []string{}
	for _, t := range l.Tags {
		if strings.HasPrefix(t, ZeroTagPrefix) {
			args = append(args, "--deltag", t)
		}
	}
	args = append(args, l.VGName+"/"+l.Name)
	if _, err := b.lvm(ctx, "lvchange", args...); err != nil {
		return backend.Volume{}, fmt.Errorf("pool %s: volume %s: zeroed, but removing its %s tag failed: %w", pool, v.Name, ZeroTagPrefix, classify(err))
	}
	return v, nil
}

// zeroDevice is Backend.zero: it opens the device read-write (exclusively
// when asked) and zeroes the range with blockdev.Zero.
func zeroDevice(ctx context.Context, path string, off, n int64, exclusive bool) error {
	var f *os.File
	var err error
	if exclusive {
		f, err = blockdev.OpenExclusive(path, true)
	} else {
		f, err = os.OpenFile(path, os.O_RDWR, 0)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("device %s does not exist (is the LV active?): %w", path, err)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = blockdev.Zero(ctx, f, off, n)
	return err
}

func (b *Backend) vgName(pool string) (string, error) {
	vg, ok := b.vgOf[pool]
	if !ok {
		return "", fmt.Errorf("%w: %q is not configured on this node (pools: %s)", backend.ErrPoolNotFound, pool, strings.Join(b.pools, ", "))
	}
	return vg, nil
}

// checkArgs validates a volume name, including device-mapper's limit on
// "<vg>-<lv>" (with '-' doubled), and returns the pool's VG.
func (b *Backend) checkArgs(pool, name string) (string, error) {
	vgName, err := b.vgName(pool)
	if err != nil {
		return "", err
	}
	if err := backend.ValidateVolumeName(name); err != nil {
		return "", err
	}
	dm := strings.ReplaceAll(vgName, "-", "--") + "-" + strings.ReplaceAll(name, "-", "--")
	if len(dm) > maxDMNameLen {
		return "", fmt.Errorf("%w: volume name %q is too long for volume group %s (device-mapper name %d > %d characters)",
			backend.ErrInvalidArgument, name, vgName, len(dm), maxDMNameLen)
	}
	return vgName, nil
}

// find returns our LV name in vgName, ErrNotFound or ErrNotOwned.
func (b *Backend) find(ctx context.Context, pool, vgName, name string) (backend.Volume, error) {
	l, err := b.findLV(ctx, pool, vgName, name)
	if err != nil {
		return backend.Volume{}, err
	}
	return b.volume(pool, l), nil
}

// findLV is find's LV as lvs reports it.
func (b *Backend) findLV(ctx context.Context, pool, vgName, name string) (lv, error) {
	lvs, err := b.lvsOf(ctx, pool, vgName)
	if err != nil {
		return lv{}, err
	}
	for _, l := range lvs {
		if l.Name != name {
			continue
		}
		if !b.owned(l) {
			return lv{}, fmt.Errorf("%w: pool %s: %s/%s has no tag %s", backend.ErrNotOwned, pool, vgName, name, b.ownerTag)
		}
		return l, nil
	}
	return lv{}, fmt.Errorf("%w: pool %s: volume %s", backend.ErrNotFound, pool, name)
}

func (b *Backend) vg(ctx context.Context, pool, vgName string) (vg, error) {
	r, err := b.report(ctx, "vgs", vgFields, vgName)
	if err != nil {
		return vg{}, poolErr(pool, vgName, err)
	}
	for _, g := range r.vgs() {
		if g.Name == vgName {
			if g.ExtentSize <= 0 {
				return vg{}, fmt.Errorf("pool %s: volume group %s reports extent size %d", pool, vgName, g.ExtentSize)
			}
			return g, nil
		}
	}
	return vg{}, fmt.Errorf("%w: pool %s: volume group %s does not exist", backend.ErrPoolNotFound, pool, vgName)
}

func (b *Backend) lvsOf(ctx context.Context, pool, vgName string) ([]lv, error) {
	r, err := b.report(ctx, "lvs", lvFields, vgName)
	if err != nil {
		return nil, poolErr(pool, vgName, err)
	}
	return r.lvs(), nil
}

// report runs a reporting command (vgs, pvs, lvs) and decodes its JSON.
func (b *Backend) report(ctx context.Context, sub, fields string, args ...string) (report, error) {
	all := append(append(slices.Clone(reportArgs), "-o", fields), args...)
	out, err := b.lvm(ctx, sub, all...)
	if err != nil {
		return report{}, classify(err)
	}
	return decodeReport(out)
}

// lvm runs `lvm <sub> [--config C] args...`: the one place lvm runs, so
// the one place it is timed (metrics.go).
func (b *Backend) lvm(ctx context.Context, sub string, args ...string) (_ []byte, err error) {
	defer observeCommand(sub, time.Now(), &err)
	argv := []string{sub}
	if b.config != "" {
		argv = append(argv, "--config", b.config)
	}
	return b.run.Run(ctx, b.bin, append(argv, args...)...)
}

func (b *Backend) owned(l lv) bool { return slices.Contains(l.Tags, b.ownerTag) }

func (b *Backend) volume(pool string, l lv) backend.Volume {
	v := backend.Volume{Name: l.Name, Pool: pool, SizeBytes: int64(l.Size), DevicePath: l.Path}
	if v.DevicePath == "" {
		v.DevicePath = devicePath(l.VGName, l.Name)
	}
	for _, t := range l.Tags {
		if t != b.ownerTag && !strings.HasPrefix(t, ZeroTagPrefix) {
			v.Tags = append(v.Tags, t)
		}
	}
	v.Tags = backend.NormalizeTags(v.Tags)
	return v
}

func devicePath(vgName, name string) string { return "/dev/" + vgName + "/" + name }

// poolErr names the pool in a report failure.
func poolErr(pool, vgName string, err error) error {
	if errors.Is(err, backend.ErrPoolNotFound) {
		return fmt.Errorf("%w: pool %s: volume group %s does not exist", backend.ErrPoolNotFound, pool, vgName)
	}
	return fmt.Errorf("pool %s: %w", pool, err)
}

// Messages of lvm2 (2.03, LC_ALL=C) that map to typed errors; recorded in
// testdata/*.stderr.
var (
	capacityMessages = []string{
		"insufficient free space",                   // lvcreate: Volume group "vg" has insufficient free space (N extents): M required.
		"insufficient suitable allocatable extents", // lvcreate -i: not enough PVs with free extents
	}
	notFoundMessages = []string{"failed to find logical volume"}
	existsMessages   = []string{"already exists in volume group"}
)

func isCapacity(err error) bool { return stderrHas(err, capacityMessages) }

// classify wraps a command error with the backend error it means, keeping
// the command and its stderr in the message.
func classify(err error) error {
	var cerr *command.Error
	if !errors.As(err, &cerr) {
		return err
	}
	switch {
	case stderrHas(err, notFoundMessages):
		return fmt.Errorf("%w: %w", backend.ErrNotFound, err)
	case stderrHas(err, existsMessages):
		return fmt.Errorf("%w: %w", backend.ErrAlreadyExists, err)
	case strings.Contains(cerr.Stderr, "Volume group \"") && strings.Contains(cerr.Stderr, "\" not found"):
		return fmt.Errorf("%w: %w", backend.ErrPoolNotFound, err)
	}
	return err
}

func stderrHas(err error, msgs []string) bool {
	var cerr *command.Error
	if !errors.As(err, &cerr) {
		return false
	}
	s := strings.ToLower(cerr.Stderr)
	for _, m := range msgs {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}
