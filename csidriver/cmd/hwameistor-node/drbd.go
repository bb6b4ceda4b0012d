package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"k8s.io/apimachinery/pkg/api/resource"

	"hwameistor.io/local/csidriver/backend"
	bemulated "hwameistor.io/local/csidriver/backend/emulated"
	"hwameistor.io/local/csidriver/drbd"
	drbdemulated "hwameistor.io/local/csidriver/drbd/emulated"
)

// emulatedDRBD is --drbd-emulated-root: every served node (emulated
// backend) replicates HA volumes through the emulated DRBD 8.4 rooted at
// root, which all agent processes of the simulator share, each node with
// its own Manager writing its resource files into dir/<node>. Volumes of
// nodes without loop devices get their file as device path, the disk the
// resource files name (drbdemulated.FileDevices).
func emulatedDRBD(root, rate, dir string, attach bool, backends map[string]backend.Backend) (map[string]*drbd.Manager, error) {
	q, err := resource.ParseQuantity(rate)
	if err != nil || q.Sign() < 0 {
		return nil, fmt.Errorf("--drbd-emulated-rate %q: want bytes per second such as 100Mi, or 0", rate)
	}
	c, err := drbdemulated.Open(root, drbdemulated.WithRate(q.Value()))
	if err != nil {
		return nil, err
	}
	out := map[string]*drbd.Manager{}
	for n, be := range backends {
		eb, ok := be.(*bemulated.Backend)
		if !ok {
			return nil, errors.New("--drbd-emulated-root needs --backend emulated")
		}
		if !attach {
			backends[n] = drbdemulated.FileDevices(eb)
		}
		m := c.Node(n).Manager(filepath.Join(dir, n))
		if _, err := m.Detect(); err != nil {
			return nil, err
		}
		out[n] = m
	}
	return out, nil
}
