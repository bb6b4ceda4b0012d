package emulated

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// backingFile is the regular file a resource file's disk is: the file
// itself (the emulated backend's volume file, see FileDevices) or, for a
// loop device (emulated volumes attached with --emulated-attach), the file
// the kernel reports behind it.
func backingFile(disk string) (string, error) {
	if strings.HasPrefix(disk, "/dev/loop") {
		b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(disk), "loop", "backing_file"))
		if err != nil {
			return "", fmt.Errorf("%s: no backing file: %w", disk, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	fi, err := os.Stat(disk)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is neither a regular file nor a loop device: the emulated DRBD replicates files", disk)
	}
	return disk, nil
}

// copyData makes dst's content src's, in place (a loop device attached to
// dst keeps seeing it) and sparse: dst is emptied (holes punched) and only
// src's data extents are copied, so a resync of a mostly empty volume costs
// what it holds. The sizes stay; the smaller one bounds the copy.
func copyData(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer out.Close()
	si, err := in.Stat()
	if err != nil {
		return err
	}
	di, err := out.Stat()
	if err != nil {
		return err
	}
	size := min(si.Size(), di.Size())
	if size == 0 {
		return nil
	}
	copyRange := func(start, end int64) error {
		_, err := io.Copy(io.NewOffsetWriter(out, start), io.NewSectionReader(in, start, end-start))
		return err
	}
	if err := unix.Fallocate(int(out.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, size); err != nil {
		// No holes here: copy every byte.
		if err := copyRange(0, size); err != nil {
			return err
		}
		return out.Close()
	}
	for off := int64(0); off < size; {
		data, err := unix.Seek(int(in.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break
		}
		if err != nil {
			// No SEEK_DATA: copy the rest whole.
			if err := copyRange(off, size); err != nil {
				return err
			}
			break
		}
		if data >= size {
			break
		}
		hole, err := unix.Seek(int(in.Fd()), data, unix.SEEK_HOLE)
		if err != nil || hole <= data {
			hole = size
		}
		hole = min(hole, size)
		if err := copyRange(data, hole); err != nil {
			return err
		}
		off = hole
	}
	return out.Close()
}
