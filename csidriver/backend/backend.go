// Package backend is the seam between the node agent and a node's storage: the
// Backend interface manages the logical volumes of a node's pools, one pool
// per class (LocalStorage_PoolHDD, _PoolSSD, _PoolNVMe). Two implementations
// live below it: lvm (lvm2 volume groups) and emulated (directories of sparse
// files attached as loop devices), so the node agent, the CSI node service and
// the simulator are written once against this interface.
package backend

import (
	"context"
	"os"

	"hwameistor.io/local/api/v1alpha1"
)

// Backend manages the logical volumes of one node's pools. Every method is
// safe for concurrent use and idempotent where the CSI spec asks for it, so
// the node agent can retry after a crash without bookkeeping of its own.
type Backend interface {
	// Pools reports every pool that exists on the node, in the order HDD,
	// SSD, NVMe. A configured pool whose storage is missing is left out.
	Pools(ctx context.Context) ([]Pool, error)

	// CreateVolume creates a volume of bytes rounded up to the pool's
	// extent size. When a volume of that name and (rounded) size exists it
	// is returned unchanged; with another size the error is ErrAlreadyExists.
	// A short pool fails with an error that Is ErrInsufficientCapacity
	// before anything is created.
	CreateVolume(ctx context.Context, pool, name string, bytes int64, opts CreateOptions) (Volume, error)

	// ExpandVolume grows a volume to bytes rounded up to the pool's extent
	// size. It never shrinks: a smaller request returns the volume as is.
	ExpandVolume(ctx context.Context, pool, name string, bytes int64) (Volume, error)

	// DeleteVolume removes a volume; a missing volume is not an error.
	DeleteVolume(ctx context.Context, pool, name string) error

	// GetVolume returns one volume, or an error that Is ErrNotFound.
	GetVolume(ctx context.Context, pool, name string) (Volume, error)

	// ListVolumes returns the pool's volumes sorted by name.
	ListVolumes(ctx context.Context, pool string) ([]Volume, error)
}

// Attacher is implemented by backends whose volumes only become block devices
// on demand (emulated: a loop device over a file). The node service calls
// Attach before it formats or publishes a volume and Detach after unstaging.
// Both are idempotent, also across restarts of the process.
type Attacher interface {
	Attach(ctx context.Context, pool, name string) (devicePath string, err error)
	Detach(ctx context.Context, pool, name string) error
}

// DataOpener gives raw access to a volume's bytes, for replication between
// nodes (csidriver/replication streams them from the source node's agent to
// the target node's agent). Both backends implement it.
type DataOpener interface {
	// OpenData opens the volume's data (emulated: the backing file, or
	// the loop device attached to it; lvm: the LV's block device
	// /dev/<vg>/<lv>) for reading, or for writing when write is true. A
	// block device is opened exclusively (O_EXCL): it fails with an error
	// that Is blockdev.ErrBusy while the volume is mounted, and nothing
	// can mount it while the file is open. A file opened for writing is
	// also readable, so the copy can be verified through it; it is never
	// truncated or grown. A missing volume is an error that Is
	// ErrNotFound. The caller closes the file.
	OpenData(ctx context.Context, pool, name string, write bool) (*os.File, error)
}

// BlockDevicer names the block devices through which a volume's data is
// reachable on this host right now (lvm: /dev/<vg>/<lv>, which exists while
// the LV is active; emulated: the loop devices attached to its file, none
// when detached), for the check that the volume is not in use
// (blockdev.Uses) before it is copied. Both backends implement it.
type BlockDevicer interface {
	BlockDevices(ctx context.Context, pool, name string) ([]string, error)
}

// CreateOptions are the StorageClass choices a backend honours.
type CreateOptions struct {
	// Striped spreads the volume over every disk of the pool (lvcreate -i)
	// when the pool has two or more; backends with one disk ignore it.
	Striped bool
	// Tags are stored with the volume (LV tags in lvm) and returned in
	// Volume.Tags, e.g. "hwameistor.io/volume=pvc-1". See ValidateTag.
	Tags []string
}

// Volume is one logical volume in a pool.
type Volume struct {
	Name string
	Pool string
	// SizeBytes is the allocated size, a multiple of the pool's extent size.
	SizeBytes int64
	// DevicePath is the block device to format and mount. Backends that
	// implement Attacher leave it empty until the volume is attached.
	DevicePath string
	// Tags are the tags given at creation (the backend's own ownership
	// marker is not included).
	Tags []string
}

// Pool is one pool of a node as the backend sees it. Used bytes include
// space the backend does not manage (e.g. foreign LVs in the volume group).
type Pool struct {
	Name  string
	Class v1alpha1.PoolClass

	TotalBytes      int64
	FreeBytes       int64
	ExtentSizeBytes int64

	// VolumeCount counts the volumes this backend manages; CreateVolume
	// refuses a new one when it reaches VolumeCountLimit.
	VolumeCount      int64
	VolumeCountLimit int64

	Disks []Disk
	// Volumes are the names of the managed volumes, sorted.
	Volumes []string
}

// Disk is a physical volume of a pool (or, emulated, its backing directory).
type Disk struct {
	DevPath       string `json:"devPath"`
	CapacityBytes int64  `json:"capacityBytes"`
}

// DiskStateInUse is the state reported for a disk that backs a pool.
const DiskStateInUse = "InUse"

// LocalPool converts the pool into the LocalStorageNode status form
// (HwameiStor's field names, docs/api.md), so every backend reports pools the same way.
func (p Pool) LocalPool() v1alpha1.LocalPool {
	used := p.TotalBytes - p.FreeBytes
	if used < 0 {
		used = 0
	}
	freeCount := p.VolumeCountLimit - p.VolumeCount
	if freeCount < 0 {
		freeCount = 0
	}
	lp := v1alpha1.LocalPool{
		Name:                     p.Name,
		Class:                    p.Class,
		Type:                     v1alpha1.PoolTypeRegular,
		TotalCapacityBytes:       p.TotalBytes,
		UsedCapacityBytes:        used,
		FreeCapacityBytes:        p.TotalBytes - used,
		VolumeCapacityBytesLimit: p.TotalBytes,
		TotalVolumeCount:         p.VolumeCountLimit,
		UsedVolumeCount:          p.VolumeCount,
		FreeVolumeCount:          freeCount,
		ExtentSizeBytes:          p.ExtentSizeBytes,
	}
	for _, d := range p.Disks {
		lp.Disks = append(lp.Disks, v1alpha1.LocalDevice{
			DevPath:       d.DevPath,
			CapacityBytes: d.CapacityBytes,
			Type:          string(p.Class),
			State:         DiskStateInUse,
		})
	}
	if len(p.Volumes) > 0 {
		lp.Volumes = append([]string(nil), p.Volumes...)
	}
	return lp
}
