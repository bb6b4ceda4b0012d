// Package e2e runs the whole system on the local control plane with every
// component as its real binary (internal/stack): etcd, kube-apiserver,
// kube-controller-manager, kwok, hwameistor-scheduler, hwameistor-controllers
// with the webhook, hwameistor-csi-controller with the real
// external-provisioner and external-resizer, and hwameistor-node with an
// emulated pool on real loop devices for one fake node. There is no kubelet
// on a fake node, so the test plays it: it calls the CSI node service to
// stage and publish the volume, and writes through the mount.
package e2e

import (
	"fmt"
	"os"
	"testing"

	"hwameistor.io/local/internal/stack"
	"hwameistor.io/local/internal/testenv"
)

const nodeName = "e2e-node-0"

var h *stack.Stack

func TestMain(m *testing.M) {
	testenv.RequireOrExit("e2e", testenv.MissingRoot("it mounts loop devices"))
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run `make test`, or export KUBEBUILDER_ASSETS=$(hack/build-control-plane.sh)")
		os.Exit(1)
	}
	var err error
	h, err = stack.Up(stack.Options{Name: "e2e", Ports: 22370, Nodes: []string{nodeName}, Zones: []string{"zone-a"},
		Pools: "HDD=20Gi", Mount: true, Assets: assets})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
		os.Exit(1)
	}
	code := m.Run()
	h.Down()
	os.Exit(code)
}
