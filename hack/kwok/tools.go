//go:build tools

// Package kwok pins the kwok and kwokctl commands at the version the simulator
// is tested with. It lives in its own module because kwok needs newer
// Kubernetes libraries than the main module pins.
package kwok

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
	_ "sigs.k8s.io/kwok/cmd/kwokctl"
)
