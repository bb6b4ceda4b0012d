package backend

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"hwameistor.io/local/api/v1alpha1"
)

func TestValidateVolumeName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"pvc-0b5a6f2e-4a6e-4d5c-9a55-0c7a2f3e9d10", true},
		{"data_vol.1+x", true},
		{"a", true},
		{strings.Repeat("a", MaxVolumeNameLen), true},
		{strings.Repeat("a", MaxVolumeNameLen+1), false},
		{"", false},
		{"-y", false},                  // would read as an option
		{"--config=devices{}", false},  // option injection
		{".", false},                   // relative path
		{"..", false},                  // path traversal
		{".hidden", false},             // hidden file in emulated pools
		{"a/b", false},                 // path separator
		{"../etc/passwd", false},       // path traversal
		{"has space", false},           // argv splitting
		{"semi;colon", false},          // shell metacharacter
		{"tag@x", false},               // LVM tag selector
		{"snapshot1", false},           // LVM reserved prefix
		{"pvmove0", false},             // LVM reserved prefix
		{"x_tmeta", false},             // LVM reserved suffix
		{"vol_rimage_0", false},        // LVM reserved suffix
		{"ünïcode", false},             // outside LVM's set
		{"name\x00with\x00nul", false}, // NUL
	}
	for _, tc := range tests {
		err := ValidateVolumeName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateVolumeName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("ValidateVolumeName(%q) = %v, want ErrInvalidArgument", tc.name, err)
		}
	}
}

func TestValidateTag(t *testing.T) {
	tests := []struct {
		tag string
		ok  bool
	}{
		{"hwameistor.io/owner=lvm.hwameistor.io", true},
		{"hwameistor.io/volume=pvc-1", true},
		{"a+b_c.d-e/f=g!h:i&j#k", true},
		{strings.Repeat("t", MaxTagLen), true},
		{strings.Repeat("t", MaxTagLen+1), false},
		{"", false},
		{"-x", false},
		{"a b", false},
		{"a,b", false}, // lvs joins tags with commas
		{"@tag", false},
		{"a$b", false},
	}
	for _, tc := range tests {
		err := ValidateTag(tc.tag)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateTag(%q) = %v, want ok=%v", tc.tag, err, tc.ok)
		}
	}
	if err := ValidateTags([]string{"ok", "not ok"}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("ValidateTags = %v, want ErrInvalidArgument", err)
	}
}

func TestNormalizeTags(t *testing.T) {
	if got := NormalizeTags([]string{"b", "a", "b"}); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("NormalizeTags = %q", got)
	}
	if got := NormalizeTags(nil); got != nil {
		t.Errorf("NormalizeTags(nil) = %q, want nil", got)
	}
}

func TestRoundUp(t *testing.T) {
	const mi = 1 << 20
	tests := []struct {
		bytes, unit, want int64
		wantErr           bool
	}{
		{1, 4 * mi, 4 * mi, false},
		{4 * mi, 4 * mi, 4 * mi, false},
		{4*mi + 1, 4 * mi, 8 * mi, false},
		{12 * mi, 8 * mi, 16 * mi, false}, // two stripes of 4Mi extents
		{7, 1, 7, false},
		{7, 0, 7, false},
		{0, 4 * mi, 0, true},
		{-1, 4 * mi, 0, true},
		{math.MaxInt64, 4 * mi, 0, true},
	}
	for _, tc := range tests {
		got, err := RoundUp(tc.bytes, tc.unit)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("RoundUp(%d, %d) = %d, %v; want %d, err=%v", tc.bytes, tc.unit, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestCapacityError(t *testing.T) {
	tests := []struct {
		err  *CapacityError
		want string
	}{
		{&CapacityError{Pool: v1alpha1.PoolNameHDD, NeedBytes: 6 << 30, FreeBytes: 4 << 30},
			"pool LocalStorage_PoolHDD: insufficient capacity: need 6Gi, free 4Gi"},
		{&CapacityError{Pool: v1alpha1.PoolNameSSD, VolumeCountLimit: 1000},
			"pool LocalStorage_PoolSSD: insufficient capacity: volume count limit 1000 reached"},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
		wrapped := fmt.Errorf("create pvc-1: %w", tc.err)
		if !errors.Is(wrapped, ErrInsufficientCapacity) {
			t.Errorf("errors.Is(%v, ErrInsufficientCapacity) = false", wrapped)
		}
		var ce *CapacityError
		if !errors.As(wrapped, &ce) || ce != tc.err {
			t.Errorf("errors.As did not find the *CapacityError")
		}
	}
}

func TestPoolLocalPool(t *testing.T) {
	p := Pool{
		Name: v1alpha1.PoolNameHDD, Class: v1alpha1.PoolClassHDD,
		TotalBytes: 100 << 20, FreeBytes: 60 << 20, ExtentSizeBytes: 4 << 20,
		VolumeCount: 2, VolumeCountLimit: 1000,
		Disks:   []Disk{{DevPath: "/dev/sdb", CapacityBytes: 50 << 20}, {DevPath: "/dev/sdc", CapacityBytes: 50 << 20}},
		Volumes: []string{"pvc-a", "pvc-b"},
	}
	want := v1alpha1.LocalPool{
		Name: v1alpha1.PoolNameHDD, Class: v1alpha1.PoolClassHDD, Type: v1alpha1.PoolTypeRegular,
		TotalCapacityBytes: 100 << 20, UsedCapacityBytes: 40 << 20, FreeCapacityBytes: 60 << 20,
		VolumeCapacityBytesLimit: 100 << 20,
		TotalVolumeCount:         1000, UsedVolumeCount: 2, FreeVolumeCount: 998,
		ExtentSizeBytes: 4 << 20,
		Disks: []v1alpha1.LocalDevice{
			{DevPath: "/dev/sdb", CapacityBytes: 50 << 20, Type: "HDD", State: DiskStateInUse},
			{DevPath: "/dev/sdc", CapacityBytes: 50 << 20, Type: "HDD", State: DiskStateInUse},
		},
		Volumes: []string{"pvc-a", "pvc-b"},
	}
	if got := p.LocalPool(); !reflect.DeepEqual(got, want) {
		t.Errorf("LocalPool() =\n%+v\nwant\n%+v", got, want)
	}

	// Free above total (never from a backend, but the CRD rejects
	// used > total, so clamp) and a count above the limit.
	odd := Pool{Name: v1alpha1.PoolNameSSD, Class: v1alpha1.PoolClassSSD, TotalBytes: 10, FreeBytes: 20, VolumeCount: 5, VolumeCountLimit: 3}
	got := odd.LocalPool()
	if got.UsedCapacityBytes != 0 || got.FreeCapacityBytes != 10 || got.FreeVolumeCount != 0 {
		t.Errorf("LocalPool() of an odd pool = %+v", got)
	}
}
