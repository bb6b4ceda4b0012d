package vm_test

import "testing"

// TestSanityLVMOnRealKernel runs csi-sanity in a guest against the driver
// with the lvm2 backend (activated LVs, real mkfs and mount), its
// kube-apiserver on the host (test/vm/guest/sanity_vmguest_test.go).
func TestSanityLVMOnRealKernel(t *testing.T) {
	runGuestTests(t, cluster.Guests[1], "^TestSanityLVM$", "HWVM_KUBECONFIG="+guestPath("kubeconfig"))
}
