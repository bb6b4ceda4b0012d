package vm_test

import "testing"

// TestLVMOnRealKernel runs the lvm2 backend and the CSI node service on
// activated logical volumes in a guest: mkfs (xfs, ext4), mount, online
// growth, raw block, pool reports under concurrent creates, lvm's own
// refusals (test/vm/guest/lvm_vmguest_test.go).
func TestLVMOnRealKernel(t *testing.T) {
	runGuestTests(t, cluster.Guests[0], "^(TestFilesystemLifecycle|TestRawBlock|TestPoolReportWhileCreating|TestLVMErrors|TestNoPreviousTenantData|TestZeroCost)$")
}
