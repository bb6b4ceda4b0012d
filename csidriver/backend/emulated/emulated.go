// Package emulated is the backend without disks: a pool is a directory of
// sparse files with a capacity limit and an extent size, and a volume becomes
// a real block device on demand by attaching its file as a loop device. The
// simulator serves thousands of fake nodes from one process with it (one
// Backend per node, each with its own root directory), and the data path
// (format, mount, expand, copy) is tested for real on it where device-mapper
// is missing.
//
// Layout under root, one directory per pool:
//
//	LocalStorage_PoolHDD/pool.json              the pool's configuration
//	LocalStorage_PoolHDD/volumes/<name>.img     a volume: a sparse file of its size
//	LocalStorage_PoolHDD/volumes/<name>.tags.json  its tags, when it has any
//
// Everything else (allocation, counts) is derived from the files when a
// Backend opens the root, so state survives restarts. Files are written to a
// temporary name and renamed, so a crash never leaves a half-made volume.
// One Backend owns a root at a time.
package emulated

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/backend"
	"hwameistor.io/local/csidriver/backend/loop"
	"hwameistor.io/local/csidriver/blockdev"
)

// DefaultExtentSize is LVM's default extent size, so emulated pools round
// like real ones.
const DefaultExtentSize = 4 << 20

const (
	poolFile   = "pool.json"
	volumesDir = "volumes"
	imgSuffix  = ".img"
	tagsSuffix = ".tags.json"
)

// PoolConfig describes one emulated pool; it is stored as pool.json.
type PoolConfig struct {
	Class v1alpha1.PoolClass `json:"class"`
	// CapacityBytes is the pool's size, rounded down to whole extents.
	CapacityBytes int64 `json:"capacityBytes"`
	// ExtentSizeBytes, a multiple of 512; DefaultExtentSize when zero.
	ExtentSizeBytes int64 `json:"extentSizeBytes,omitempty"`
	// VolumeCountLimit; v1alpha1.DefaultVolumeCountLimit when zero.
	VolumeCountLimit int64 `json:"volumeCountLimit,omitempty"`
	// Disks are reported as the pool's disks (a simulated node may want
	// /dev/sdb); the pool's directory when empty.
	Disks []backend.Disk `json:"disks,omitempty"`
}

// Loop attaches files as block devices; *loop.Losetup is the real one.
type Loop interface {
	Find(ctx context.Context, file string) ([]string, error)
	Attach(ctx context.Context, file string) (string, error)
	Refresh(ctx context.Context, dev string) error
	Detach(ctx context.Context, dev string) error
}

var _ Loop = (*loop.Losetup)(nil)

// Option changes how New builds a Backend.
type Option func(*Backend)

// WithLoop replaces the loop device driver (tests use a fake).
func WithLoop(l Loop) Option { return func(b *Backend) { b.loop = l } }

// WithoutLoop builds a capacity-only backend that never runs losetup: Attach
// fails with ErrAttachUnsupported. For simulated nodes whose volumes are
// never mounted.
func WithoutLoop() Option { return func(b *Backend) { b.loop = nil } }

// Backend is the emulated backend of one node.
type Backend struct {
	root  string
	loop  Loop
	pools map[string]*pool
	order []string // pool names, HDD, SSD, NVMe order
}

var (
	_ backend.Backend      = (*Backend)(nil)
	_ backend.Attacher     = (*Backend)(nil)
	_ backend.DataOpener   = (*Backend)(nil)
	_ backend.BlockDevicer = (*Backend)(nil)
)

// pool is one pool's state; mu guards it and serialises its file changes.
type pool struct {
	mu        sync.Mutex
	name      string
	cfg       PoolConfig
	total     int64
	dir       string // the pool's directory
	vols      map[string]*volume
	allocated int64
}

type volume struct {
	size int64
	tags []string
	dev  string // loop device while attached through this Backend
}

// New opens (creating when needed) the pools under root. Each configured
// pool's pool.json is written; pools already under root that are not in
// pools are opened with their stored configuration, so New(root, nil)
// reopens a node. It fails when a pool's volumes exceed its capacity.
func New(root string, pools []PoolConfig, opts ...Option) (*Backend, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	// losetup -j compares the canonical path the kernel records.
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if abs, err = filepath.EvalSymlinks(abs); err != nil {
		return nil, err
	}
	b := &Backend{root: abs, loop: loop.New(), pools: map[string]*pool{}}
	for _, o := range opts {
		o(b)
	}
	seen := map[v1alpha1.PoolClass]bool{}
	for _, cfg := range pools {
		cfg, err := normalize(cfg)
		if err != nil {
			return nil, err
		}
		if seen[cfg.Class] {
			return nil, fmt.Errorf("pool class %s is configured twice", cfg.Class)
		}
		seen[cfg.Class] = true
		dir := filepath.Join(b.root, cfg.Class.PoolName())
		if err := os.MkdirAll(filepath.Join(dir, volumesDir), 0o755); err != nil {
			return nil, err
		}
		data, err := json.MarshalIndent(cfg, "", "  ")
		if err != nil {
			return nil, err
		}
		if err := writeFileAtomic(filepath.Join(dir, poolFile), append(data, '\n'), true); err != nil {
			return nil, err
		}
	}
	for _, c := range v1alpha1.PoolClasses {
		p, err := openPool(filepath.Join(b.root, c.PoolName()))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if p.cfg.Class != c {
			return nil, fmt.Errorf("%s: class %q does not match the directory", filepath.Join(p.dir, poolFile), p.cfg.Class)
		}
		b.pools[p.name] = p
		b.order = append(b.order, p.name)
	}
	return b, nil
}

func normalize(cfg PoolConfig) (PoolConfig, error) {
	if _, err := v1alpha1.ParsePoolClass(string(cfg.Class)); err != nil {
		return cfg, err
	}
	if cfg.ExtentSizeBytes == 0 {
		cfg.ExtentSizeBytes = DefaultExtentSize
	}
	if cfg.ExtentSizeBytes < 0 || cfg.ExtentSizeBytes%512 != 0 {
		return cfg, fmt.Errorf("pool %s: extent size %d must be a positive multiple of 512 (loop devices have 512-byte sectors)", cfg.Class.PoolName(), cfg.ExtentSizeBytes)
	}
	if cfg.VolumeCountLimit == 0 {
		cfg.VolumeCountLimit = v1alpha1.DefaultVolumeCountLimit
	}
	if cfg.VolumeCountLimit < 0 {
		return cfg, fmt.Errorf("pool %s: volume count limit %d is negative", cfg.Class.PoolName(), cfg.VolumeCountLimit)
	}
	if cfg.CapacityBytes < cfg.ExtentSizeBytes {
		return cfg, fmt.Errorf("pool %s: capacity %d is less than one extent (%d)", cfg.Class.PoolName(), cfg.CapacityBytes, cfg.ExtentSizeBytes)
	}
	return cfg, nil
}

// openPool reads pool.json and derives the volumes from the files, removing
// what an interrupted change left behind (temporary files, tags without a
// volume).
func openPool(dir string) (*pool, error) {
	data, err := os.ReadFile(filepath.Join(dir, poolFile))
	if err != nil {
		return nil, err
	}
	var cfg PoolConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, poolFile), err)
	}
	if cfg, err = normalize(cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, poolFile), err)
	}
	if err := removeTempFiles(dir); err != nil {
		return nil, err
	}
	p := &pool{name: cfg.Class.PoolName(), cfg: cfg, dir: dir, vols: map[string]*volume{}}
	p.total = cfg.CapacityBytes / cfg.ExtentSizeBytes * cfg.ExtentSizeBytes
	vdir := filepath.Join(dir, volumesDir)
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(vdir)
	if err != nil {
		return nil, err
	}
	var tagFiles []string
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, "."): // volume names never start with '.'
			if err := os.Remove(filepath.Join(vdir, name)); err != nil {
				return nil, err
			}
		case strings.HasSuffix(name, tagsSuffix):
			tagFiles = append(tagFiles, name)
		case strings.HasSuffix(name, imgSuffix) && e.Type().IsRegular():
			vname := strings.TrimSuffix(name, imgSuffix)
			if backend.ValidateVolumeName(vname) != nil {
				continue
			}
			info, err := e.Info()
			if err != nil {
				return nil, err
			}
			p.vols[vname] = &volume{size: info.Size()}
			p.allocated += info.Size()
		}
	}
	for _, name := range tagFiles {
		v, ok := p.vols[strings.TrimSuffix(name, tagsSuffix)]
		path := filepath.Join(vdir, name)
		if !ok {
			if err := os.Remove(path); err != nil {
				return nil, err
			}
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(data, &v.tags); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	if p.allocated > p.total {
		return nil, fmt.Errorf("pool %s: volumes use %d bytes, more than its capacity of %d", p.name, p.allocated, p.total)
	}
	return p, nil
}

// Pools implements backend.Backend.
func (b *Backend) Pools(_ context.Context) ([]backend.Pool, error) {
	out := make([]backend.Pool, 0, len(b.order))
	for _, name := range b.order {
		p := b.pools[name]
		p.mu.Lock()
		bp := backend.Pool{
			Name: p.name, Class: p.cfg.Class,
			TotalBytes: p.total, FreeBytes: p.total - p.allocated, ExtentSizeBytes: p.cfg.ExtentSizeBytes,
			VolumeCount: int64(len(p.vols)), VolumeCountLimit: p.cfg.VolumeCountLimit,
			Disks: slices.Clone(p.cfg.Disks),
		}
		for v := range p.vols {
			bp.Volumes = append(bp.Volumes, v)
		}
		p.mu.Unlock()
		if len(bp.Disks) == 0 {
			bp.Disks = []backend.Disk{{DevPath: p.dir, CapacityBytes: p.total}}
		}
		sort.Strings(bp.Volumes)
		out = append(out, bp)
	}
	return out, nil
}

// CreateVolume implements backend.Backend: a sparse file of the rounded
// size, refused when the pool's allocated bytes would exceed its capacity.
// Striped is ignored: an emulated pool has one disk.
func (b *Backend) CreateVolume(_ context.Context, poolName, name string, bytes int64, opts backend.CreateOptions) (backend.Volume, error) {
	p, err := b.pool(poolName, name)
	if err != nil {
		return backend.Volume{}, err
	}
	if err := backend.ValidateTags(opts.Tags); err != nil {
		return backend.Volume{}, err
	}
	size, err := backend.RoundUp(bytes, p.cfg.ExtentSizeBytes)
	if err != nil {
		return backend.Volume{}, err
	}
	tags := backend.NormalizeTags(opts.Tags)

	p.mu.Lock()
	defer p.mu.Unlock()
	if v, ok := p.vols[name]; ok {
		if v.size == size {
			return p.volume(name, v), nil
		}
		return backend.Volume{}, fmt.Errorf("%w: pool %s: volume %s has %s, requested %s",
			backend.ErrAlreadyExists, p.name, name, v1alpha1.FormatBytes(v.size), v1alpha1.FormatBytes(size))
	}
	if int64(len(p.vols)) >= p.cfg.VolumeCountLimit {
		return backend.Volume{}, &backend.CapacityError{Pool: p.name, VolumeCountLimit: p.cfg.VolumeCountLimit}
	}
	if free := p.total - p.allocated; size > free {
		return backend.Volume{}, &backend.CapacityError{Pool: p.name, NeedBytes: size, FreeBytes: free}
	}
	// Tags first: tags without an image are dropped on open, an image
	// without its tags would be a volume that lost them.
	if len(tags) > 0 {
		data, err := json.Marshal(tags)
		if err != nil {
			return backend.Volume{}, err
		}
		if err := writeFileAtomic(p.tagsPath(name), data, false); err != nil {
			return backend.Volume{}, fmt.Errorf("pool %s: create volume %s: %w", p.name, name, err)
		}
	}
	if err := createSparse(p.imgPath(name), size); err != nil {
		_ = os.Remove(p.tagsPath(name))
		return backend.Volume{}, fmt.Errorf("pool %s: create volume %s: %w", p.name, name, err)
	}
	v := &volume{size: size, tags: tags}
	p.vols[name] = v
	p.allocated += size
	return p.volume(name, v), nil
}

// ExpandVolume implements backend.Backend: the file grows (sparse), and a loop
// device attached to it is told the new size (losetup -c).
func (b *Backend) ExpandVolume(ctx context.Context, poolName, name string, bytes int64) (backend.Volume, error) {
	p, err := b.pool(poolName, name)
	if err != nil {
		return backend.Volume{}, err
	}
	size, err := backend.RoundUp(bytes, p.cfg.ExtentSizeBytes)
	if err != nil {
		return backend.Volume{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.vols[name]
	if !ok {
		return backend.Volume{}, fmt.Errorf("%w: pool %s: volume %s", backend.ErrNotFound, p.name, name)
	}
	if size <= v.size {
		return p.volume(name, v), nil
	}
	need, free := size-v.size, p.total-p.allocated
	if need > free {
		return backend.Volume{}, &backend.CapacityError{Pool: p.name, NeedBytes: need, FreeBytes: free}
	}
	if err := os.Truncate(p.imgPath(name), size); err != nil {
		return backend.Volume{}, fmt.Errorf("pool %s: expand volume %s: %w", p.name, name, err)
	}
	p.allocated += need
	v.size = size
	if b.loop != nil {
		devs, err := b.loop.Find(ctx, p.imgPath(name))
		if err != nil {
			return backend.Volume{}, fmt.Errorf("pool %s: expand volume %s: %w", p.name, name, err)
		}
		for _, dev := range devs {
			if err := b.loop.Refresh(ctx, dev); err != nil {
				return backend.Volume{}, fmt.Errorf("pool %s: expand volume %s: %w", p.name, name, err)
			}
		}
	}
	return p.volume(name, v), nil
}

// DeleteVolume implements backend.Backend. Loop devices still attached to
// the file are detached first, or they would keep the deleted file's space.
func (b *Backend) DeleteVolume(ctx context.Context, poolName, name string) error {
	p, err := b.pool(poolName, name)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.vols[name]
	if !ok {
		return nil
	}
	if err := b.detach(ctx, p, name, v); err != nil {
		return fmt.Errorf("pool %s: delete volume %s: %w", p.name, name, err)
	}
	if err := os.Remove(p.imgPath(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pool %s: delete volume %s: %w", p.name, name, err)
	}
	delete(p.vols, name)
	p.allocated -= v.size
	if err := os.Remove(p.tagsPath(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pool %s: delete tags of volume %s: %w", p.name, name, err)
	}
	return nil
}

// GetVolume implements backend.Backend.
func (b *Backend) GetVolume(_ context.Context, poolName, name string) (backend.Volume, error) {
	p, err := b.pool(poolName, name)
	if err != nil {
		return backend.Volume{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.vols[name]
	if !ok {
		return backend.Volume{}, fmt.Errorf("%w: pool %s: volume %s", backend.ErrNotFound, p.name, name)
	}
	return p.volume(name, v), nil
}

// ListVolumes implements backend.Backend.
func (b *Backend) ListVolumes(_ context.Context, poolName string) ([]backend.Volume, error) {
	p, err := b.pool(poolName, "")
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]backend.Volume, 0, len(p.vols))
	for name, v := range p.vols {
		out = append(out, p.volume(name, v))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Attach implements backend.Attacher: it returns the loop device already
// attached to the volume's file (also by an earlier process, found with
// losetup -j; its size is refreshed in case an expansion was interrupted),
// or attaches a free one.
func (b *Backend) Attach(ctx context.Context, poolName, name string) (string, error) {
	if b.loop == nil {
		return "", backend.ErrAttachUnsupported
	}
	p, err := b.pool(poolName, name)
	if err != nil {
		return "", err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.vols[name]
	if !ok {
		return "", fmt.Errorf("%w: pool %s: volume %s", backend.ErrNotFound, p.name, name)
	}
	file := p.imgPath(name)
	devs, err := b.loop.Find(ctx, file)
	if err != nil {
		return "", fmt.Errorf("pool %s: attach volume %s: %w", p.name, name, err)
	}
	if len(devs) > 0 {
		if err := b.loop.Refresh(ctx, devs[0]); err != nil {
			return "", fmt.Errorf("pool %s: attach volume %s: %w", p.name, name, err)
		}
		v.dev = devs[0]
		return v.dev, nil
	}
	dev, err := b.loop.Attach(ctx, file)
	if err != nil {
		return "", fmt.Errorf("pool %s: attach volume %s: %w", p.name, name, err)
	}
	v.dev = dev
	return dev, nil
}

// OpenData implements backend.DataOpener. While the volume's file is attached
// to a loop device, that device is what it opens, exclusively (O_EXCL), as
// the lvm backend opens an LV: the kernel refuses while the volume is mounted
// (an error that Is blockdev.ErrBusy) and, while the file is open, refuses to
// mount it; other loop devices of the same file (Attach reuses one, so
// normally there are none) are checked the same way and closed. A detached
// volume has no device to hold: its backing file is opened, and a mount
// would need an Attach first (the replication server asks again before it
// completes a copy). Read-only or, when write is true, read-write; never
// truncated, created or grown, so the volume keeps its size and the pool its
// accounting. A loop device has no holes to skip: reading a sparse volume
// through it reads every byte (zeros included).
func (b *Backend) OpenData(ctx context.Context, poolName, name string, write bool) (*os.File, error) {
	p, err := b.pool(poolName, name)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.vols[name]; !ok {
		return nil, fmt.Errorf("%w: pool %s: volume %s", backend.ErrNotFound, p.name, name)
	}
	if b.loop != nil {
		devs, err := b.loop.Find(ctx, p.imgPath(name))
		if err != nil {
			return nil, fmt.Errorf("pool %s: open volume %s: %w", p.name, name, err)
		}
		if len(devs) > 0 {
			return openLoops(p.name, name, devs, write)
		}
	}
	flag := os.O_RDONLY
	if write {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(p.imgPath(name), flag, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: pool %s: volume %s: %w", backend.ErrNotFound, p.name, name, err)
	}
	if err != nil {
		return nil, fmt.Errorf("pool %s: open volume %s: %w", p.name, name, err)
	}
	return f, nil
}

// openLoops opens devs[0] exclusively and returns it, after checking that
// none of the others is in use.
func openLoops(pool, name string, devs []string, write bool) (*os.File, error) {
	for _, dev := range devs[1:] {
		f, err := blockdev.OpenExclusive(dev, false)
		if err != nil {
			return nil, fmt.Errorf("pool %s: volume %s: loop device %s is in use (mounted, or being copied): %w", pool, name, dev, err)
		}
		f.Close()
	}
	f, err := blockdev.OpenExclusive(devs[0], write)
	if err != nil {
		return nil, fmt.Errorf("pool %s: volume %s: loop device %s is in use (mounted, or being copied): %w", pool, name, devs[0], err)
	}
	return f, nil
}

// BlockDevices implements backend.BlockDevicer: the loop devices attached to
// the volume's file (losetup -j), none when it is detached or the backend
// has no loop devices.
func (b *Backend) BlockDevices(ctx context.Context, poolName, name string) ([]string, error) {
	p, err := b.pool(poolName, name)
	if err != nil {
		return nil, err
	}
	if b.loop == nil {
		return nil, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.vols[name]; !ok {
		return nil, nil
	}
	devs, err := b.loop.Find(ctx, p.imgPath(name))
	if err != nil {
		return nil, fmt.Errorf("pool %s: volume %s: %w", p.name, name, err)
	}
	return devs, nil
}

// DetachAll detaches every volume of every pool: what a test or a process
// shutting down calls so no loop device outlives the files under root.
func (b *Backend) DetachAll(ctx context.Context) error {
	var errs []error
	for _, pool := range b.order {
		vols, err := b.ListVolumes(ctx, pool)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, v := range vols {
			errs = append(errs, b.Detach(ctx, pool, v.Name))
		}
	}
	return errors.Join(errs...)
}

// Detach implements backend.Attacher: every loop device of the volume's file
// is detached. A missing volume, or a backend without loop devices, has
// nothing attached.
func (b *Backend) Detach(ctx context.Context, poolName, name string) error {
	p, err := b.pool(poolName, name)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.vols[name]
	if !ok {
		return nil
	}
	if err := b.detach(ctx, p, name, v); err != nil {
		return fmt.Errorf("pool %s: detach volume %s: %w", p.name, name, err)
	}
	return nil
}

// detach detaches every loop device of a volume; p.mu is held.
func (b *Backend) detach(ctx context.Context, p *pool, name string, v *volume) error {
	if b.loop == nil {
		return nil
	}
	devs, err := b.loop.Find(ctx, p.imgPath(name))
	if err != nil {
		return err
	}
	for _, dev := range devs {
		if err := b.loop.Detach(ctx, dev); err != nil {
			return err
		}
	}
	v.dev = ""
	return nil
}

// pool returns a configured pool, validating the volume name when given.
func (b *Backend) pool(poolName, volumeName string) (*pool, error) {
	p, ok := b.pools[poolName]
	if !ok {
		return nil, fmt.Errorf("%w: %q is not configured on this node (pools: %s)", backend.ErrPoolNotFound, poolName, strings.Join(b.order, ", "))
	}
	if volumeName != "" {
		if err := backend.ValidateVolumeName(volumeName); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (p *pool) imgPath(name string) string {
	return filepath.Join(p.dir, volumesDir, name+imgSuffix)
}

func (p *pool) tagsPath(name string) string {
	return filepath.Join(p.dir, volumesDir, name+tagsSuffix)
}

func (p *pool) volume(name string, v *volume) backend.Volume {
	return backend.Volume{Name: name, Pool: p.name, SizeBytes: v.size, DevicePath: v.dev, Tags: slices.Clone(v.tags)}
}

// removeTempFiles removes what an interrupted writeFileAtomic left in dir
// (our temporary files start with '.').
func removeTempFiles(dir string) error {
	tmps, err := filepath.Glob(filepath.Join(dir, ".*.tmp"))
	if err != nil {
		return err
	}
	for _, f := range tmps {
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	return nil
}

// createSparse makes a sparse file of size bytes under a temporary name and
// renames it into place, so the volume appears whole or not at all.
func createSparse(path string, size int64) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// writeFileAtomic writes data to a temporary file and renames it over path.
// The rename makes it safe against a crash of this process; sync (fsync)
// makes it safe against a crash of the machine, and is used for pool.json
// only: volumes are simulation or test artefacts, and an fsync per volume
// would slow a simulator creating thousands of them.
func writeFileAtomic(path string, data []byte, sync bool) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}
