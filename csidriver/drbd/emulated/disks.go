package emulated

import (
	"context"

	"hwameistor.io/local/csidriver/backend"
	bemulated "hwameistor.io/local/csidriver/backend/emulated"
)

// FileDevices is the emulated backend b with each volume's file as its
// device path where it has none. The node agent names a replica's device
// path as its DRBD disk (csidriver/agent/replicate.go), and an emulated
// volume has one only while attached as a loop device: the simulator's
// capacity-only nodes (no loop devices) would wait forever for it. The
// emulated DRBD replicates the file itself; attached volumes keep their
// loop device, whose backing file it finds.
func FileDevices(b *bemulated.Backend) backend.Backend { return fileDevices{b} }

type fileDevices struct{ *bemulated.Backend }

var (
	_ backend.Backend      = fileDevices{}
	_ backend.Attacher     = fileDevices{}
	_ backend.DataOpener   = fileDevices{}
	_ backend.BlockDevicer = fileDevices{}
)

// withFile names v's file (the one OpenData opens while no loop device is
// attached) as its device path.
func (f fileDevices) withFile(ctx context.Context, v backend.Volume, err error) (backend.Volume, error) {
	if err != nil || v.DevicePath != "" {
		return v, err
	}
	file, oerr := f.OpenData(ctx, v.Pool, v.Name, false)
	if oerr != nil {
		return v, nil
	}
	v.DevicePath = file.Name()
	file.Close()
	return v, nil
}

// CreateVolume implements backend.Backend.
func (f fileDevices) CreateVolume(ctx context.Context, pool, name string, bytes int64, opts backend.CreateOptions) (backend.Volume, error) {
	v, err := f.Backend.CreateVolume(ctx, pool, name, bytes, opts)
	return f.withFile(ctx, v, err)
}

// ExpandVolume implements backend.Backend.
func (f fileDevices) ExpandVolume(ctx context.Context, pool, name string, bytes int64) (backend.Volume, error) {
	v, err := f.Backend.ExpandVolume(ctx, pool, name, bytes)
	return f.withFile(ctx, v, err)
}

// GetVolume implements backend.Backend.
func (f fileDevices) GetVolume(ctx context.Context, pool, name string) (backend.Volume, error) {
	v, err := f.Backend.GetVolume(ctx, pool, name)
	return f.withFile(ctx, v, err)
}
