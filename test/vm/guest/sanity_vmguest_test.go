//go:build vmguest

package guest

import (
	"os"
	"testing"

	"hwameistor.io/local/internal/testenv"
	"hwameistor.io/local/test/integration/csisanity"
)

// TestSanityLVM runs csi-sanity against the driver with the lvm2 backend:
// every volume the suite creates is an activated LV, staged with real mkfs
// and mount. The kube-apiserver runs on the host (HWVM_KUBECONFIG).
func TestSanityLVM(t *testing.T) {
	env, err := testenv.Connect(os.Getenv("HWVM_KUBECONFIG"))
	if err != nil {
		t.Fatalf("the host's apiserver (HWVM_KUBECONFIG): %v", err)
	}
	be, _ := newVG(t)
	csisanity.Run(t, env, be, t.TempDir())
}
