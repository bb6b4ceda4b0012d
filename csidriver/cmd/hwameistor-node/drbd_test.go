package main

import (
	"path/filepath"
	"strings"
	"testing"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/backend"
	bemulated "hwameistor.io/local/csidriver/backend/emulated"
	"hwameistor.io/local/csidriver/drbd"
)

// TestEmulatedDRBD: --drbd-emulated-root gives every served emulated node a
// Manager (8.4, its own folder) and, without loop devices, file devices.
func TestEmulatedDRBD(t *testing.T) {
	for _, tc := range []struct {
		name    string
		rate    string
		attach  bool
		other   bool // a backend that is not the emulated one
		wantErr string
	}{
		{name: "capacity-only nodes", rate: "0"},
		{name: "attached nodes, a rate", rate: "100Mi", attach: true},
		{name: "bad rate", rate: "fast", wantErr: "--drbd-emulated-rate"},
		{name: "negative rate", rate: "-1", wantErr: "--drbd-emulated-rate"},
		{name: "not the emulated backend", rate: "0", other: true, wantErr: "needs --backend emulated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			backends := map[string]backend.Backend{}
			for _, n := range []string{"a", "b"} {
				be, err := bemulated.New(filepath.Join(dir, "pools", n), []bemulated.PoolConfig{{Class: v1.PoolClassHDD, CapacityBytes: 1 << 30}}, bemulated.WithoutLoop())
				if err != nil {
					t.Fatal(err)
				}
				backends[n] = be
				if tc.other {
					backends[n] = struct{ backend.Backend }{be}
				}
			}
			ms, err := emulatedDRBD(filepath.Join(dir, "drbd"), tc.rate, filepath.Join(dir, "res"), tc.attach, backends)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range []string{"a", "b"} {
				m := ms[n]
				if m == nil || m.Version != drbd.V84 || m.Dir != filepath.Join(dir, "res", n) {
					t.Errorf("manager of %s: %+v", n, m)
				}
				_, wrapped := backends[n].(*bemulated.Backend)
				if wrapped == !tc.attach {
					t.Errorf("backend of %s wrapped = %t with attach %t", n, !wrapped, tc.attach)
				}
			}
		})
	}
}
