// Package emulated is DRBD 8.4 without a kernel: the simulator's fake nodes
// replicate HA volumes through it. It sits below drbd.Manager: each node's
// Manager gets a Runner that interprets the drbdadm commands it runs and a
// ReadFile that renders /proc/drbd, so the node agent's real code (the
// resource files, the argv, the 8.4 parser) runs unchanged. A Cluster is
// rooted at a directory every agent process of the simulator shares; each
// resource's state is a file there, changed under an exclusive file lock.
// Only DRBD 8.4 is emulated (Detect finds 8.4); README.md has the state
// machine.
package emulated

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"hwameistor.io/local/csidriver/drbd"
)

// Layout under the root.
const (
	resourcesDir = "resources" // <name>.json (state), <name>.lock
	nodesDir     = "nodes"     // <node>/<name>: the resources up on a node
	failedDir    = "failed"    // <node>: the node is down
	isolatedDir  = "isolated"  // <node>: the node is cut off from every peer
)

// Cluster is the emulated DRBD of every node sharing one root.
type Cluster struct {
	root string
	rate int64
	now  func() time.Time
}

// Option changes how Open builds a Cluster.
type Option func(*Cluster)

// WithRate sets the resync rate in bytes per second (0, the default: a
// resync finishes at once). The rate is recorded with each resync, so
// processes opened with other rates show the same progress.
func WithRate(bytesPerSecond int64) Option { return func(c *Cluster) { c.rate = bytesPerSecond } }

// WithClock replaces time.Now (tests drive resyncs with it).
func WithClock(now func() time.Time) Option { return func(c *Cluster) { c.now = now } }

// Open opens (creating) the cluster rooted at root.
func Open(root string, opts ...Option) (*Cluster, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	c := &Cluster{root: abs, now: time.Now}
	for _, o := range opts {
		o(c)
	}
	for _, d := range []string{resourcesDir, nodesDir, failedDir, isolatedDir} {
		if err := os.MkdirAll(filepath.Join(abs, d), 0o755); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Root is the shared directory.
func (c *Cluster) Root() string { return c.root }

// validName keeps node and resource names usable as file names.
func validName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || strings.HasPrefix(name, ".") {
		return fmt.Errorf("emulated drbd: %q is not a usable name", name)
	}
	return nil
}

func (c *Cluster) marker(dir, node string) string { return filepath.Join(c.root, dir, node) }

func (c *Cluster) has(dir, node string) bool {
	_, err := os.Stat(c.marker(dir, node))
	return err == nil
}

// Failed says whether node is down (Fail).
func (c *Cluster) Failed(node string) bool { return c.has(failedDir, node) }

// Isolated says whether node is cut off from its peers (Isolate).
func (c *Cluster) Isolated(node string) bool { return c.has(isolatedDir, node) }

// reachable: the two nodes are up and neither is isolated.
func (c *Cluster) reachable(a, b string) bool {
	return !c.Failed(a) && !c.Failed(b) && !c.Isolated(a) && !c.Isolated(b)
}

// Fail takes node down as a crash or power loss would: its peers lose it
// (WFConnection, the peer's disk DUnknown, its role Unknown) and its own
// handle fails every command and read until Recover.
func (c *Cluster) Fail(node string) error {
	if err := c.setMarker(failedDir, node, true); err != nil {
		return err
	}
	return c.settleNode(node)
}

// Recover boots node again: like a rebooted machine, none of its resources
// is up (the agent brings them up again: they keep their metadata, rejoin
// their peers and resync); a side that was Primary when the node failed
// resyncs fully when it rejoins.
func (c *Cluster) Recover(node string) error {
	if err := validName(node); err != nil {
		return err
	}
	names, err := c.upOn(node)
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := c.withResource(name, func(r *resource) error {
			if s := r.Sides[node]; s != nil {
				if s.Up && s.Role == drbd.RolePrimary {
					s.Crashed = true
				}
				s.Up, s.Role, s.StandAlone, s.SplitBrain, s.Discard = false, "", false, false, false
			}
			return c.setUp(node, name, false)
		}); err != nil {
			return err
		}
	}
	return c.setMarker(failedDir, node, false)
}

// Isolate cuts node off from every peer (a network partition): both sides
// go on alone, and a Primary there keeps taking writes, as on DRBD 8.4.
func (c *Cluster) Isolate(node string) error {
	if err := c.setMarker(isolatedDir, node, true); err != nil {
		return err
	}
	return c.settleNode(node)
}

// Reconnect ends node's isolation: its resources connect to their peers
// again, which resyncs or, after two Primaries, detects a split brain.
func (c *Cluster) Reconnect(node string) error {
	if err := c.setMarker(isolatedDir, node, false); err != nil {
		return err
	}
	return c.settleNode(node)
}

func (c *Cluster) setMarker(dir, node string, on bool) error {
	if err := validName(node); err != nil {
		return err
	}
	if on {
		return os.WriteFile(c.marker(dir, node), nil, 0o644)
	}
	if err := os.Remove(c.marker(dir, node)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// settleNode settles every resource up on node, so its peers see a change
// of reachability at once rather than on their next read.
func (c *Cluster) settleNode(node string) error {
	names, err := c.upOn(node)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		errs = append(errs, c.withResource(name, func(*resource) error { return nil }))
	}
	return errors.Join(errs...)
}

// upOn lists the resources up on node.
func (c *Cluster) upOn(node string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(c.root, nodesDir, node))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// setUp records whether resource name is up on node (under its lock).
func (c *Cluster) setUp(node, name string, up bool) error {
	path := filepath.Join(c.root, nodesDir, node, name)
	if !up {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, nil, 0o644)
}

// Replica is one node's side of a resource as the simulator sees it.
type Replica struct {
	Node string
	// File is the backing file (the replica's data).
	File string
	// Failed and Isolated are the node's.
	Failed, Isolated bool
	// Status is what drbd.Manager.Status reports on the node (Configured
	// false while the resource is not up there).
	Status drbd.Status
	// SplitBrain: this side refused its peer after both moved on apart.
	SplitBrain bool
}

// Replicas reads resource name's sides, in node order.
func (c *Cluster) Replicas(name string) ([]Replica, error) {
	var out []Replica
	err := c.withResource(name, func(r *resource) error {
		for _, s := range sides(r) {
			rep := Replica{Node: s.Node, File: s.File, Failed: c.Failed(s.Node), Isolated: c.Isolated(s.Node), SplitBrain: s.SplitBrain}
			if s.Up {
				rep.Status = r.status(s, c.now())
			}
			out = append(out, rep)
		}
		return nil
	})
	return out, err
}
