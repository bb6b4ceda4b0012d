package blockdev

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ZeroMethod is how Zero clears a range.
type ZeroMethod int

const (
	// ZeroAuto tries ZeroUnmap, then ZeroOffload, then ZeroWrite.
	ZeroAuto ZeroMethod = iota
	// ZeroUnmap is fallocate(PUNCH_HOLE|KEEP_SIZE). On a block device the
	// kernel issues WRITE ZEROES allowing the device to deallocate
	// (BLKDEV_ZERO_NOFALLBACK: never writes zero pages itself, fails with
	// EOPNOTSUPP when the device cannot); on a file it punches a hole.
	// Fast where supported (NVMe deallocate, SCSI WRITE SAME with UNMAP,
	// thin devices, loop devices over a file that punches).
	ZeroUnmap
	// ZeroOffload is fallocate(ZERO_RANGE|KEEP_SIZE), the kernel's
	// BLKZEROOUT: WRITE ZEROES without deallocation where the device has
	// it, else the kernel writes zero pages (the cost of writing the range).
	ZeroOffload
	// ZeroWrite writes zeros from Go (pwrite of a zero buffer), for files
	// and kernels where fallocate is not supported.
	ZeroWrite
)

func (m ZeroMethod) String() string {
	switch m {
	case ZeroAuto:
		return "auto"
	case ZeroUnmap:
		return "unmap"
	case ZeroOffload:
		return "offload"
	case ZeroWrite:
		return "write"
	}
	return fmt.Sprintf("ZeroMethod(%d)", int(m))
}

// zeroStep is how much one fallocate or write loop covers, so a long
// zeroing notices a cancelled context.
const zeroStep = 256 << 20

// Zero makes [off, off+n) of f (a block device or a regular file, opened
// for writing) read as zeros, then fsyncs f (a flush of the device's write
// cache), and returns the method that worked. BLKDISCARD is never used: a
// discard does not guarantee that the range reads back as zeros.
//
// On a block device the range must be aligned to its logical block size
// (512 or 4096 bytes) for the fallocate methods; an unaligned range is
// written. A cancelled ctx stops it between steps of 256 MiB.
func Zero(ctx context.Context, f *os.File, off, n int64) (ZeroMethod, error) {
	return zero(ctx, f, off, n, ZeroAuto)
}

// ZeroWith is Zero with one method only (benchmarks, tests); ZeroAuto is
// Zero. A method the device or file does not support fails with its errno
// (EOPNOTSUPP).
func ZeroWith(ctx context.Context, f *os.File, off, n int64, m ZeroMethod) error {
	_, err := zero(ctx, f, off, n, m)
	return err
}

func zero(ctx context.Context, f *os.File, off, n int64, m ZeroMethod) (ZeroMethod, error) {
	if off < 0 || n < 0 {
		return m, fmt.Errorf("zero %s: invalid range [%d, %d)", f.Name(), off, off+n)
	}
	candidates := []ZeroMethod{m}
	if m == ZeroAuto {
		candidates = []ZeroMethod{ZeroUnmap, ZeroOffload, ZeroWrite}
	}
	used := candidates[0]
	for n > 0 {
		if err := ctx.Err(); err != nil {
			return used, err
		}
		step := min(n, zeroStep)
		var err error
		for {
			used = candidates[0]
			if err = zeroOnce(f, off, step, used); err == nil || len(candidates) == 1 || !unsupported(err) {
				break
			}
			// Not supported here: the next method, for the rest too
			// (except an unaligned range, which only this step is).
			if !errors.Is(err, unix.EINVAL) {
				candidates = candidates[1:]
				continue
			}
			if err = zeroOnce(f, off, step, ZeroWrite); err == nil {
				break
			}
		}
		if err != nil {
			return used, fmt.Errorf("zero %s [%d, %d) (%s): %w", f.Name(), off, off+step, used, err)
		}
		off, n = off+step, n-step
	}
	if err := f.Sync(); err != nil {
		return used, fmt.Errorf("zero %s: fsync: %w", f.Name(), err)
	}
	return used, nil
}

func unsupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENODEV)
}

func zeroOnce(f *os.File, off, n int64, m ZeroMethod) error {
	switch m {
	case ZeroUnmap:
		return fallocate(f, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	case ZeroOffload:
		return fallocate(f, unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	case ZeroWrite:
		buf := make([]byte, min(n, 1<<20))
		for n > 0 {
			w := min(n, int64(len(buf)))
			if _, err := f.WriteAt(buf[:w], off); err != nil {
				return err
			}
			off, n = off+w, n-w
		}
		return nil
	}
	return fmt.Errorf("unknown zero method %d", int(m))
}

func fallocate(f *os.File, mode uint32, off, n int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			ferr = unix.Fallocate(int(fd), mode, off, n)
			if ferr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return ferr
}
