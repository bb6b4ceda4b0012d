//go:build vmguest

package guest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"

	"hwameistor.io/local/csidriver/backend"
	"hwameistor.io/local/csidriver/backend/lvm"
	"hwameistor.io/local/csidriver/driver"
)

// devices resolves volume IDs to the lvm backend's device paths, as the
// node agent's LocalVolumeReplica status does on a node.
type devices struct {
	be *lvm.Backend
}

func (d devices) DevicePath(ctx context.Context, id string) (string, error) {
	v, err := d.be.GetVolume(ctx, pool, id)
	return v.DevicePath, err
}

func (d devices) MarkStaged(context.Context, string) error { return nil }

func mountCap(fs string) *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: fs}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}
}

func blockCap() *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}
}

// TestFilesystemLifecycle runs a volume's whole life on an activated LV for
// each file system: create, stage (mkfs + mount), publish, write, grow the
// LV and then the mounted file system online, read back, unpublish,
// unstage, delete.
func TestFilesystemLifecycle(t *testing.T) {
	for _, fs := range []string{"xfs", "ext4"} {
		t.Run(fs, func(t *testing.T) {
			ctx := context.Background()
			be, vg := newVG(t)
			node := driver.NewNode("guest", devices{be})
			id := "pvc-fs-" + fs
			vol, err := be.CreateVolume(ctx, pool, id, 400*mi, backend.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if vol.DevicePath != "/dev/"+vg+"/"+id || !isBlockDevice(t, vol.DevicePath) {
				t.Fatalf("device path %q is not the activated LV /dev/%s/%s", vol.DevicePath, vg, id)
			}
			dir := t.TempDir()
			staging, target := filepath.Join(dir, "staging"), filepath.Join(dir, "target")
			if _, err := node.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: staging, VolumeCapability: mountCap(fs)}); err != nil {
				t.Fatal(err)
			}
			if got := strings.Fields(run(t, "findmnt", "-n", "-o", "FSTYPE", staging)); len(got) != 1 || got[0] != fs {
				t.Fatalf("staging path holds %v, want %s", got, fs)
			}
			if _, err := node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: id, StagingTargetPath: staging, TargetPath: target, VolumeCapability: mountCap(fs)}); err != nil {
				t.Fatal(err)
			}
			data := pattern(8 << 20)
			file := filepath.Join(target, "data")
			if err := os.WriteFile(file, data, 0o600); err != nil {
				t.Fatal(err)
			}
			run(t, "sync")
			before := statfsBytes(t, target)

			if _, err := be.ExpandVolume(ctx, pool, id, 800*mi); err != nil {
				t.Fatal(err)
			}
			resp, err := node.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: id, VolumePath: target, VolumeCapability: mountCap(fs)})
			if err != nil {
				t.Fatal(err)
			}
			if resp.CapacityBytes != 800*mi {
				t.Errorf("NodeExpandVolume capacity %d, want %d", resp.CapacityBytes, 800*mi)
			}
			after := statfsBytes(t, target)
			if after < before+350*mi {
				t.Errorf("file system grew from %d to %d bytes, want about 400MiB more", before, after)
			}
			got, err := os.ReadFile(file)
			if err != nil || string(got) != string(data) {
				t.Fatalf("data after growing: %d bytes, %v", len(got), err)
			}
			if _, err := node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target}); err != nil {
				t.Fatal(err)
			}
			if _, err := node.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: staging}); err != nil {
				t.Fatal(err)
			}
			// Staged again (a pod restarting): the file system is kept.
			if _, err := node.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: staging, VolumeCapability: mountCap(fs)}); err != nil {
				t.Fatal(err)
			}
			if got, err := os.ReadFile(filepath.Join(staging, "data")); err != nil || string(got) != string(data) {
				t.Fatalf("data after restaging: %d bytes, %v", len(got), err)
			}
			if _, err := node.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: staging}); err != nil {
				t.Fatal(err)
			}
			if err := be.DeleteVolume(ctx, pool, id); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(vol.DevicePath); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s after delete: %v", vol.DevicePath, err)
			}
		})
	}
}

func statfsBytes(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks) * int64(st.Bsize)
}

// TestRawBlock publishes an activated LV as a raw block device: the
// published path is the LV, data written through it is on the LV, and a
// grown LV shows its new size there.
func TestRawBlock(t *testing.T) {
	ctx := context.Background()
	be, _ := newVG(t)
	node := driver.NewNode("guest", devices{be})
	id := "pvc-block"
	vol, err := be.CreateVolume(ctx, pool, id, 64*mi, backend.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "dev")
	if _, err := node.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: t.TempDir(), VolumeCapability: blockCap()}); err != nil {
		t.Fatal(err)
	}
	if _, err := node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: id, TargetPath: target, VolumeCapability: blockCap()}); err != nil {
		t.Fatal(err)
	}
	if !isBlockDevice(t, target) {
		t.Fatalf("published path %s is not a block device", target)
	}
	data := pattern(4 << 20)
	f, err := os.OpenFile(target, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		t.Fatal(err)
	}
	if sum(t, vol.DevicePath, int64(len(data))) != sum(t, target, int64(len(data))) {
		t.Error("the LV does not hold what was written through the published device")
	}
	if _, err := be.ExpandVolume(ctx, pool, id, 128*mi); err != nil {
		t.Fatal(err)
	}
	resp, err := node.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: id, VolumePath: target, VolumeCapability: blockCap()})
	if err != nil || resp.CapacityBytes != 128*mi {
		t.Errorf("NodeExpandVolume of a block volume: %v, %v; want %d bytes", resp, err, 128*mi)
	}
	stats, err := node.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: id, VolumePath: target})
	if err != nil || stats.Usage[0].Total != 128*mi {
		t.Errorf("NodeGetVolumeStats: %v, %v; want %d bytes", stats, err, 128*mi)
	}
	if _, err := node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target}); err != nil {
		t.Fatal(err)
	}
	if err := be.DeleteVolume(ctx, pool, id); err != nil {
		t.Fatal(err)
	}
}

// TestPoolReportWhileCreating checks every pool report taken while volumes
// are created concurrently against itself: free space plus the listed
// volumes' sizes is the pool's total (nothing else lives in the VG).
func TestPoolReportWhileCreating(t *testing.T) {
	ctx := context.Background()
	be, _ := newVG(t)
	const n, size = 8, 32 * mi
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := be.CreateVolume(ctx, pool, "pvc-c"+string(rune('a'+i)), size, backend.CreateOptions{})
			errs <- err
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	reports := 0
	for stop := false; !stop; {
		select {
		case <-done:
			stop = true
		default:
		}
		pools, err := be.Pools(ctx)
		if err != nil {
			t.Fatal(err)
		}
		p := pools[0]
		if p.FreeBytes+int64(len(p.Volumes))*size != p.TotalBytes {
			t.Errorf("inconsistent report: total %d, free %d, %d volumes of %d", p.TotalBytes, p.FreeBytes, len(p.Volumes), size)
		}
		reports++
	}
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	t.Logf("%d consistent reports during %d concurrent creates", reports, n)
}

// TestLVMErrors makes lvm itself refuse and checks that its stderr reaches
// the error and that nothing is left half-created.
func TestLVMErrors(t *testing.T) {
	ctx := context.Background()

	t.Run("vg full", func(t *testing.T) {
		be, _ := newVG(t)
		pools, err := be.Pools(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, err = be.CreateVolume(ctx, pool, "pvc-huge", pools[0].TotalBytes+4*mi, backend.CreateOptions{})
		if !errors.Is(err, backend.ErrInsufficientCapacity) {
			t.Fatalf("a volume larger than the VG: %v, want ErrInsufficientCapacity", err)
		}
		assertNoVolumes(t, be)
	})

	t.Run("missing pv", func(t *testing.T) {
		be, vg := newVG(t)
		// The second disk loses its PV label: the VG is incomplete.
		run(t, "dd", "if=/dev/zero", "of="+disks(t)[1], "bs=1M", "count=2", "conv=fsync", "status=none")
		_, err := be.CreateVolume(ctx, pool, "pvc-missing", 8*mi, backend.CreateOptions{})
		if err == nil {
			t.Fatal("created a volume in a VG with a missing PV")
		}
		if !strings.Contains(err.Error(), "missing") && !strings.Contains(err.Error(), "Couldn't find device") {
			t.Errorf("the error does not carry lvm's words about the missing PV: %v", err)
		}
		out := run(t, "lvm", "lvs", "--noheadings", vg)
		if strings.Contains(out, "pvc-missing") {
			t.Errorf("half-created volume left behind: %s", out)
		}
		// The VG cannot be removed normally any more; newVG's cleanup
		// forces it, after the PV is restored to nothing.
		run(t, "lvm", "vgreduce", "--removemissing", "--force", vg)
	})

	t.Run("lock held", func(t *testing.T) {
		be, vg := newVG(t)
		lock := "/run/lock/lvm/V_" + vg
		holder := exec.Command("flock", "-x", lock, "sleep", "30")
		if err := holder.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = holder.Process.Kill(); _ = holder.Wait() }()
		time.Sleep(time.Second)
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := be.CreateVolume(cctx, pool, "pvc-locked", 8*mi, backend.CreateOptions{})
		if err == nil {
			t.Fatal("created a volume while another process held the VG lock")
		}
		t.Logf("with the VG lock held: %v", err)
		_ = holder.Process.Kill()
		_ = holder.Wait()
		assertNoVolumes(t, be)
	})
}

func assertNoVolumes(t *testing.T, be *lvm.Backend) {
	t.Helper()
	vols, err := be.ListVolumes(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(vols) != 0 {
		t.Errorf("volumes left behind: %+v", vols)
	}
}
