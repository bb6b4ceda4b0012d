package csisanity

import (
	"context"
	"path/filepath"
	"testing"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/backend/emulated"
	"hwameistor.io/local/internal/testenv"
)

// TestSanity runs the suite with the emulated backend on real loop devices.
func TestSanity(t *testing.T) {
	testenv.RequireRoot(t, "csi-sanity stages volumes with real mkfs and mount on loop devices")
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	dir := t.TempDir()
	be, err := emulated.New(filepath.Join(dir, "pools"), []emulated.PoolConfig{{Class: v1.PoolClassHDD, CapacityBytes: 100 << 30}})
	if err != nil {
		t.Fatal(err)
	}
	// Detach whatever sanity left attached before the folder goes away.
	t.Cleanup(func() {
		if err := be.DetachAll(context.Background()); err != nil {
			t.Error(err)
		}
	})
	Run(t, env, be, dir)
}
