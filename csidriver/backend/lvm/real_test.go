package lvm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	"hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/backend"
	"hwameistor.io/local/csidriver/backend/command"
	"hwameistor.io/local/internal/testenv"
)

// These tests run the real lvm2 on sparse files attached as loop devices.
// They need root, lvm and losetup, and skip with the reason otherwise. The
// volume groups get a unique hwtest prefix, never a real pool's name.

var vgCounter atomic.Int64

// sh runs a setup command, failing the test with its stderr.
func sh(t *testing.T, argv ...string) string {
	t.Helper()
	out, err := command.Exec{Env: []string{"LC_ALL=C", "LVM_SUPPRESS_FD_WARNINGS=1"}}.Run(context.Background(), argv[0], argv[1:]...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// cleanup runs a teardown command and reports (does not stop on) failure.
func cleanup(t *testing.T, argv ...string) {
	t.Helper()
	t.Cleanup(func() {
		if _, err := (command.Exec{Env: []string{"LVM_SUPPRESS_FD_WARNINGS=1"}}).Run(context.Background(), argv[0], argv[1:]...); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
}

// realVG creates a VG on one loop device per size (MiB) with the given
// extent size, and removes VG, PVs and loop devices when the test ends, also
// when it fails.
func realVG(t *testing.T, extent string, sizesMiB ...int64) (vg string, devs []string) {
	t.Helper()
	testenv.RequireRoot(t, "creates loop devices and LVM physical volumes")
	testenv.RequireCommands(t, "lvm", "losetup")
	dir := t.TempDir()
	for i, s := range sizesMiB {
		f := filepath.Join(dir, fmt.Sprintf("pv%d.img", i))
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(f, s<<20); err != nil {
			t.Fatal(err)
		}
		dev := sh(t, "losetup", "--find", "--show", f)
		cleanup(t, "losetup", "--detach", dev)
		devs = append(devs, dev)
	}
	sh(t, append([]string{"lvm", "pvcreate", "-q"}, devs...)...)
	cleanup(t, append([]string{"lvm", "pvremove", "-q", "-y"}, devs...)...)
	vg = fmt.Sprintf("hwtest%d_%d_HDD", os.Getpid(), vgCounter.Add(1))
	sh(t, append([]string{"lvm", "vgcreate", "-q", "-s", extent, vg}, devs...)...)
	cleanup(t, "lvm", "vgremove", "-q", "-f", vg)
	return vg, devs
}

// TestRealVGsOnLoopDevices checks that Pools() reports what the real vgs and
// pvs say about a VG of two PVs. With 1 MiB extents and lvm's default data
// offset of 1 MiB, a PV on an N MiB device holds N-1 MiB.
func TestRealVGsOnLoopDevices(t *testing.T) {
	vg, devs := realVG(t, "1m", 64, 96)
	b, err := New(Options{VolumeGroups: map[string]string{v1alpha1.PoolNameHDD: vg}})
	if err != nil {
		t.Fatal(err)
	}
	pools, err := b.Pools(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []backend.Pool{{
		Name: v1alpha1.PoolNameHDD, Class: v1alpha1.PoolClassHDD,
		TotalBytes: (63 + 95) * mi, FreeBytes: (63 + 95) * mi, ExtentSizeBytes: mi,
		VolumeCountLimit: v1alpha1.DefaultVolumeCountLimit,
		Disks:            []backend.Disk{{DevPath: devs[0], CapacityBytes: 63 * mi}, {DevPath: devs[1], CapacityBytes: 95 * mi}},
	}}
	// Pools() sorts disks by path (/dev/loop10 before /dev/loop9).
	sort.Slice(want[0].Disks, func(i, j int) bool { return want[0].Disks[i].DevPath < want[0].Disks[j].DevPath })
	if !reflect.DeepEqual(pools, want) {
		t.Errorf("Pools() =\n%+v\nwant\n%+v", pools, want)
	}
}

// TestRealLVMetadataOnLoopDevices runs every command the backend builds
// against the real lvm2. Device-mapper is missing on the build machines, so
// plain lvcreate fails there; with activation disabled (MetadataOnlyConfig)
// lvcreate, lvextend and lvremove write the VG metadata only, which checks
// our argv, rounding, tags and error mapping against lvm itself. The LVs get
// no device node, so nothing here formats them (the emulated backend's
// tests do that on loop devices).
func TestRealLVMetadataOnLoopDevices(t *testing.T) {
	vg, devs := realVG(t, "4m", 64, 64)
	ctx := context.Background()
	pool := v1alpha1.PoolNameHDD
	b, err := New(Options{Config: MetadataOnlyConfig, VolumeGroups: map[string]string{pool: vg}})
	if err != nil {
		t.Fatal(err)
	}
	// No device node to zero: record the ranges; the zero-from tags are
	// added and removed by the real lvcreate and lvchange.
	var zeroed []string
	b.zero = func(_ context.Context, path string, off, n int64, exclusive bool) error {
		zeroed = append(zeroed, fmt.Sprintf("%s [%d, %d) exclusive=%v", path, off, off+n, exclusive))
		return nil
	}
	noZeroTags := func(step string) {
		t.Helper()
		if out := sh(t, "lvm", "lvs", "--noheadings", "-o", "lv_name,lv_tags", vg); strings.Contains(out, ZeroTagPrefix) {
			t.Errorf("%s: an LV kept its zeroing tag:\n%s", step, out)
		}
	}

	a, err := b.CreateVolume(ctx, pool, "pvc-a", 5*mi, backend.CreateOptions{Tags: []string{"hwameistor.io/volume=pvc-a"}})
	if err != nil {
		t.Fatal(err)
	}
	wantA := backend.Volume{Name: "pvc-a", Pool: pool, SizeBytes: 8 * mi, DevicePath: "/dev/" + vg + "/pvc-a", Tags: []string{"hwameistor.io/volume=pvc-a"}}
	if !reflect.DeepEqual(a, wantA) {
		t.Errorf("CreateVolume = %+v, want %+v", a, wantA)
	}
	if got, err := b.GetVolume(ctx, pool, "pvc-a"); err != nil || !reflect.DeepEqual(got, wantA) {
		t.Errorf("GetVolume = %+v, %v; want %+v", got, err, wantA)
	}
	if got, err := b.CreateVolume(ctx, pool, "pvc-a", 8*mi, backend.CreateOptions{}); err != nil || got.SizeBytes != 8*mi {
		t.Errorf("CreateVolume again = %+v, %v; want the same volume", got, err)
	}
	if _, err := b.CreateVolume(ctx, pool, "pvc-a", 16*mi, backend.CreateOptions{}); !errors.Is(err, backend.ErrAlreadyExists) {
		t.Errorf("CreateVolume with another size: %v, want ErrAlreadyExists", err)
	}

	// Our rounding to whole stripes must agree with lvm's, or a retry
	// would see a size mismatch.
	s, err := b.CreateVolume(ctx, pool, "pvc-s", 10*mi, backend.CreateOptions{Striped: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.GetVolume(ctx, pool, "pvc-s"); err != nil || got.SizeBytes != 16*mi || s.SizeBytes != 16*mi {
		t.Errorf("striped volume: created %d, lvs says %+v, %v; want 16Mi", s.SizeBytes, got, err)
	}

	if got, err := b.ExpandVolume(ctx, pool, "pvc-a", 9*mi); err != nil || got.SizeBytes != 12*mi {
		t.Errorf("ExpandVolume = %+v, %v; want 12Mi", got, err)
	}
	if got, err := b.ExpandVolume(ctx, pool, "pvc-a", 4*mi); err != nil || got.SizeBytes != 12*mi {
		t.Errorf("ExpandVolume smaller = %+v, %v; want 12Mi unchanged", got, err)
	}
	noZeroTags("after creating and expanding")
	wantZeroed := []string{
		"/dev/" + vg + "/pvc-a [0, 8388608) exclusive=true",
		"/dev/" + vg + "/pvc-s [0, 16777216) exclusive=true",
		"/dev/" + vg + "/pvc-a [8388608, 12582912) exclusive=false",
	}
	if !reflect.DeepEqual(zeroed, wantZeroed) {
		t.Errorf("zeroed\n%s\nwant\n%s", strings.Join(zeroed, "\n"), strings.Join(wantZeroed, "\n"))
	}
	// A zeroing a crash interrupted: the tag as lvcreate leaves it, then
	// GetVolume zeroes and removes it.
	sh(t, "lvm", "lvchange", "--config", MetadataOnlyConfig, "--addtag", ZeroTagPrefix+"0", vg+"/pvc-s")
	zeroed = nil
	if got, err := b.GetVolume(ctx, pool, "pvc-s"); err != nil || got.SizeBytes != 16*mi || len(got.Tags) != 0 {
		t.Errorf("GetVolume of an interrupted zeroing = %+v, %v", got, err)
	}
	if want := []string{"/dev/" + vg + "/pvc-s [0, 16777216) exclusive=true"}; !reflect.DeepEqual(zeroed, want) {
		t.Errorf("zeroed %v, want %v", zeroed, want)
	}
	noZeroTags("after GetVolume")

	// An LV of someone else: counted in used bytes, never listed.
	sh(t, "lvm", "lvcreate", "--config", MetadataOnlyConfig, "-q", "-y", "-Wy", "-Zy", "-L", "4m", "-n", "foreign", vg)
	if err := b.DeleteVolume(ctx, pool, "foreign"); !errors.Is(err, backend.ErrNotOwned) {
		t.Errorf("DeleteVolume of a foreign LV: %v, want ErrNotOwned", err)
	}

	pools, err := b.Pools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Two PVs of 64 MiB: 15 extents of 4 MiB each after the 1 MiB offset.
	total := 2 * 15 * 4 * mi
	if len(pools) != 1 || pools[0].TotalBytes != total || pools[0].FreeBytes != total-(12+16+4)*mi ||
		!reflect.DeepEqual(pools[0].Volumes, []string{"pvc-a", "pvc-s"}) || len(pools[0].Disks) != 2 {
		t.Errorf("Pools() = %+v; want total %d, free %d, volumes pvc-a pvc-s", pools, total, total-(12+16+4)*mi)
	}

	if _, err := b.CreateVolume(ctx, pool, "pvc-big", 1<<30, backend.CreateOptions{}); !errors.Is(err, backend.ErrInsufficientCapacity) {
		t.Errorf("CreateVolume beyond vg_free: %v, want ErrInsufficientCapacity", err)
	}
	// Fill the first PV: a striped LV then fails inside lvm (free extents
	// exist, but not on every PV), and that message maps to capacity too.
	sh(t, "lvm", "lvcreate", "--config", MetadataOnlyConfig, "-q", "-y", "-Wy", "-Zy", "-l", "100%PVS", "-n", "fill", vg, devs[0])
	if _, err := b.CreateVolume(ctx, pool, "pvc-s2", 8*mi, backend.CreateOptions{Striped: true}); !errors.Is(err, backend.ErrInsufficientCapacity) ||
		!strings.Contains(err.Error(), "Insufficient suitable allocatable extents") {
		t.Errorf("striped CreateVolume with one full PV: %v, want ErrInsufficientCapacity from lvm", err)
	}

	for _, name := range []string{"pvc-a", "pvc-s", "pvc-a"} {
		if err := b.DeleteVolume(ctx, pool, name); err != nil {
			t.Errorf("DeleteVolume(%s) = %v", name, err)
		}
	}
	if vols, err := b.ListVolumes(ctx, pool); err != nil || len(vols) != 0 {
		t.Errorf("ListVolumes after delete = %+v, %v", vols, err)
	}
	if _, err := b.GetVolume(ctx, pool, "pvc-a"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("GetVolume after delete: %v, want ErrNotFound", err)
	}
}
