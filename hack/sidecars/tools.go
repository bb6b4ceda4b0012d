//go:build tools

// Package sidecars pins the CSI sidecars the simulator and the end-to-end
// tests run beside the driver. They live in their own module: their
// Kubernetes libraries differ from the main module's pins.
package sidecars

import (
	_ "github.com/kubernetes-csi/external-provisioner/v5/cmd/csi-provisioner"
	_ "github.com/kubernetes-csi/external-resizer/cmd/csi-resizer"
)
