package replication

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"hwameistor.io/local/csidriver/backend/loop"
	"hwameistor.io/local/internal/testenv"
)

// TestZeroer zeroes ranges of a garbage file by punching holes and, where
// punching is unsupported, by writing zeros.
func TestZeroer(t *testing.T) {
	size := 6 * mi
	tests := []struct {
		name        string
		punch       bool
		off, n      int64
		wantPunched bool // the range's blocks are freed
	}{
		{name: "punch aligned chunks", punch: true, off: mi, n: 2 * mi, wantPunched: true},
		{name: "punch an unaligned range", punch: true, off: mi + 100, n: mi, wantPunched: true},
		{name: "write zeros", off: mi, n: 2*mi + 5},
		{name: "write zeros to the end", off: 5 * mi, n: mi},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := garbageFile(t, t.TempDir(), "f", size)
			f := open(t, path, os.O_RDWR)
			z, n, err := newZeroer(f)
			if err != nil || n != size {
				t.Fatalf("newZeroer: size %d, %v", n, err)
			}
			if !tc.punch {
				z.mode = 0
			}
			before := allocated(t, path)
			if err := z.zero(tc.off, tc.n); err != nil {
				t.Fatal(err)
			}
			got := readAll(t, path, size)
			want := bytes.Repeat([]byte{0xAB}, int(size))
			copy(want[tc.off:tc.off+tc.n], zeros(tc.n))
			if !bytes.Equal(got, want) {
				t.Error("wrong bytes after zeroing")
			}
			if freed := before - allocated(t, path); (freed > 0) != tc.wantPunched {
				t.Errorf("%d bytes freed; want punched %v", freed, tc.wantPunched)
			}
		})
	}
}

// TestRealPullToLoopDevice copies a sparse volume into a block device full
// of garbage (a loop device): zero ranges go through fallocate ZERO_RANGE on
// the device or written zeros, and the copy is verified by reading the
// device whole. Root only.
func TestRealPullToLoopDevice(t *testing.T) {
	testenv.RequireRoot(t, "attaches a loop device")
	testenv.RequireCommands(t, "losetup")
	ctx := context.Background()
	size := 16 * mi
	fx := newFixture(t)
	src := fx.volume(t, "pvc-a", size,
		extent{0, random(100*ki, 1)}, extent{3 * mi, zeros(2 * mi)}, extent{7*mi + 3, random(mi, 2)}, extent{size - 512, random(512, 3)})
	want := checksumOf(t, src, size)

	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	backing := garbageFile(t, dir, "dst.img", size)
	l := loop.New()
	dev, err := l.Attach(ctx, backing)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Detach(ctx, dev); err != nil {
			t.Errorf("detach %s: %v", dev, err)
		}
	})

	for _, tc := range []struct {
		name      string
		fallocate bool
	}{{"zero range on the device", true}, {"written zeros", false}} {
		t.Run(tc.name, func(t *testing.T) {
			// Garbage again, through the device.
			d := open(t, dev, os.O_RDWR|os.O_EXCL)
			if _, err := d.WriteAt(bytes.Repeat([]byte{0xAB}, int(size)), 0); err != nil {
				t.Fatal(err)
			}
			z, n, err := newZeroer(d)
			if err != nil || n != size || !z.block {
				t.Fatalf("newZeroer(%s): size %d, block %v, %v", dev, n, z != nil && z.block, err)
			}
			if tc.fallocate {
				if err := z.zero(0, mi); err != nil {
					t.Fatal(err)
				}
				if z.mode == 0 {
					t.Logf("%s does not support fallocate ZERO_RANGE here: zeros are written", dev)
				}
			}
			got, err := pullWith(ctx, fx, d, tc.fallocate)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("Pull = %s, want %s", got, want)
			}
			if sum := checksumOf(t, dev, size); sum != want {
				t.Errorf("the device reads back as %s, want %s", sum, want)
			}
			if !bytes.Equal(readAll(t, dev, size), readAll(t, src, size)) {
				t.Error("the device's bytes differ from the source's")
			}
		})
	}
}

// pullWith is Pull with fallocate switched off when fallocate is false.
func pullWith(ctx context.Context, fx *fixture, dst *os.File, fallocate bool) (string, error) {
	return pull(ctx, fx.client, fx.endpoint(), sourceNode, pool, "pvc-a", targetNode, dst, nil, pullHooks{noFallocate: !fallocate})
}
