package lvm

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"hwameistor.io/local/csidriver/backend"
	"hwameistor.io/local/csidriver/backend/command"
	"hwameistor.io/local/csidriver/blockdev"
)

// TestOpenData checks which device node OpenData opens, with which flags,
// and how it fails, through the Fake runner (recorded lvs output) and a
// recording stand-in for os.OpenFile.
func TestOpenData(t *testing.T) {
	hddLVs := func(t *testing.T) []command.Call { return []command.Call{lvsCall(testdata(t, "lvs_hdd.json"), hdd)} }
	type opened struct {
		path string
		flag int
	}
	tests := []struct {
		name     string
		calls    func(t *testing.T) []command.Call
		pool     string
		volume   string
		write    bool
		openErr  error // the stand-in fails like the kernel would
		realOpen bool  // use os.OpenFile on the recorded path
		want     *opened
		wantErr  error
		wantMsg  string
	}{
		{
			// Exclusively: the kernel refuses while the LV is
			// mounted, and a mount while the copy reads it.
			name: "read opens the LV path read-only and exclusively", calls: hddLVs, pool: hdd, volume: "pvc-aaa",
			want: &opened{path: "/dev/LocalStorage_PoolHDD/pvc-aaa", flag: os.O_RDONLY | os.O_EXCL},
		},
		{
			name: "write opens it read-write and exclusively", calls: hddLVs, pool: hdd, volume: "pvc-bbb", write: true,
			want: &opened{path: "/dev/LocalStorage_PoolHDD/pvc-bbb", flag: os.O_RDWR | os.O_EXCL},
		},
		{
			name: "missing volume", calls: hddLVs, pool: hdd, volume: "pvc-none",
			wantErr: backend.ErrNotFound,
		},
		{
			name: "an LV that is not ours", calls: hddLVs, pool: hdd, volume: "other", write: true,
			wantErr: backend.ErrNotOwned,
		},
		{
			name:  "missing volume group",
			calls: func(t *testing.T) []command.Call { return []command.Call{missingVG(t, lvsCall("", hdd), hdd)} },
			pool:  hdd, volume: "pvc-aaa",
			wantErr: backend.ErrPoolNotFound,
		},
		{
			name: "pool not configured", pool: "LocalStorage_PoolXYZ", volume: "pvc-aaa",
			wantErr: backend.ErrPoolNotFound,
		},
		{
			name: "invalid name", pool: hdd, volume: "../../etc/passwd",
			wantErr: backend.ErrInvalidArgument,
		},
		{
			// Here, without device-mapper, no LV has a device node.
			name: "device node missing fails cleanly, not as a missing volume", calls: hddLVs, pool: hdd, volume: "pvc-aaa",
			realOpen: true,
			wantErr:  fs.ErrNotExist, wantMsg: "device /dev/LocalStorage_PoolHDD/pvc-aaa does not exist (is the LV active?)",
		},
		{
			name: "device in use", calls: hddLVs, pool: hdd, volume: "pvc-aaa", write: true,
			openErr: &fs.PathError{Op: "open", Path: "/dev/LocalStorage_PoolHDD/pvc-aaa", Err: syscall.EBUSY},
			wantErr: syscall.EBUSY, wantMsg: "is in use (mounted, or being copied)",
		},
		{
			name: "source in use", calls: hddLVs, pool: hdd, volume: "pvc-aaa",
			openErr: &fs.PathError{Op: "open", Path: "/dev/LocalStorage_PoolHDD/pvc-aaa", Err: syscall.EBUSY},
			wantErr: blockdev.ErrBusy, wantMsg: "is in use (mounted, or being copied)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.realOpen {
				if _, err := os.Stat("/dev/LocalStorage_PoolHDD/pvc-aaa"); err == nil {
					t.Skip("this machine has a /dev/LocalStorage_PoolHDD/pvc-aaa")
				}
			}
			var calls []command.Call
			if tc.calls != nil {
				calls = tc.calls(t)
			}
			fake := command.NewFake(calls...)
			b, err := New(Options{Runner: fake})
			if err != nil {
				t.Fatal(err)
			}
			var got *opened
			stand := filepath.Join(t.TempDir(), "dev")
			if err := os.WriteFile(stand, []byte("lv"), 0o600); err != nil {
				t.Fatal(err)
			}
			if !tc.realOpen {
				b.openFile = func(name string, flag int, _ os.FileMode) (*os.File, error) {
					got = &opened{path: name, flag: flag}
					if tc.openErr != nil {
						return nil, tc.openErr
					}
					return os.OpenFile(stand, flag&^os.O_EXCL, 0)
				}
			}
			f, err := b.OpenData(context.Background(), tc.pool, tc.volume, tc.write)
			if f != nil {
				defer f.Close()
			}
			switch {
			case tc.wantErr == nil && tc.wantMsg == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Fatalf("err = %v, want errors.Is %v", err, tc.wantErr)
			case tc.wantMsg != "" && (err == nil || !strings.Contains(err.Error(), tc.wantMsg)):
				t.Errorf("err = %v, want it to contain %q", err, tc.wantMsg)
			}
			if errors.Is(tc.wantErr, fs.ErrNotExist) && errors.Is(err, backend.ErrNotFound) {
				t.Errorf("a missing device node of an existing LV is not a missing volume: %v", err)
			}
			if tc.want != nil {
				if got == nil || *got != *tc.want {
					t.Errorf("opened %+v, want %+v", got, tc.want)
				}
				if f == nil {
					t.Error("no file returned")
				}
			} else if got != nil && tc.openErr == nil {
				t.Errorf("opened %+v, want nothing opened", got)
			}
			if err := fake.Verify(); err != nil {
				t.Error(err)
			}
		})
	}
}
