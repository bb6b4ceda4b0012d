package emulated

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"hwameistor.io/local/csidriver/drbd"
)

// resource is one DRBD resource's state across its nodes, kept in
// <root>/resources/<name>.json and changed only under the resource's lock:
// every agent process of the simulator reads and writes it.
type resource struct {
	Name  string           `json:"name"`
	Sides map[string]*side `json:"sides"`
	// Link is the pair of nodes connected (sorted), empty when none is.
	Link []string `json:"link,omitempty"`
	// Sync is the resync running over Link.
	Sync *resync `json:"sync,omitempty"`
}

// side is a resource on one node: what DRBD keeps in its metadata (it
// survives down and a node's failure) and what lives in the kernel (lost on
// down and on a node's failure).
type side struct {
	Node string `json:"node"`
	// From this node's resource file.
	Peer  string `json:"peer"`
	Minor int    `json:"minor"`
	Disk  string `json:"disk"`
	// File is the regular file Disk is (or is backed by), Size its size.
	File string `json:"file"`
	Size int64  `json:"size"`

	// Metadata.
	MD bool `json:"md"`
	// Gen is the current data generation (DRBD's current UUID); 0 is
	// "just created". Parent is the generation this side moved on from
	// without its peer (the bitmap UUID), 0 while in sync.
	Gen    uint64 `json:"gen,omitempty"`
	Parent uint64 `json:"parent,omitempty"`
	// Consistent is false for an Inconsistent disk (new, or a resync
	// target); Outdated marks a consistent disk known to be behind.
	Consistent bool `json:"consistent,omitempty"`
	Outdated   bool `json:"outdated,omitempty"`
	// Changes are the bytes written here since the peers parted (the
	// bitmap); Pending what an interrupted resync into this side has left.
	Changes int64 `json:"changes,omitempty"`
	Pending int64 `json:"pending,omitempty"`
	// Crashed: the node failed while this side was Primary; it rejoins
	// with a full resync, as the real kernel did in test/vm.
	Crashed bool `json:"crashed,omitempty"`

	// Kernel state.
	Up         bool      `json:"up,omitempty"`
	Role       drbd.Role `json:"role,omitempty"`
	StandAlone bool      `json:"standAlone,omitempty"`
	SplitBrain bool      `json:"splitBrain,omitempty"`
	// Discard: connect --discard-my-data (this side loses a split brain).
	Discard bool `json:"discard,omitempty"`
}

// resync copies Total bytes from Source to Target at Rate bytes per second
// (0: at once), Done of them before Start.
type resync struct {
	Source string    `json:"source"`
	Target string    `json:"target"`
	Total  int64     `json:"total"`
	Done   int64     `json:"done,omitempty"`
	Start  time.Time `json:"start"`
	Rate   int64     `json:"rate,omitempty"`
}

// done is how much of the resync is done at now.
func (r *resync) done(now time.Time) int64 {
	if r.Rate <= 0 {
		return r.Total
	}
	d := r.Done + int64(now.Sub(r.Start).Seconds()*float64(r.Rate))
	return min(max(d, r.Done), r.Total)
}

// disk is the side's disk state in DRBD's words.
func (s *side) disk() drbd.DiskState {
	switch {
	case !s.Consistent:
		return drbd.DiskInconsistent
	case s.Outdated:
		return drbd.DiskOutdated
	}
	// Without a fencing policy DRBD 8.4 attaches a consistent disk as
	// UpToDate (it never shows Consistent then).
	return drbd.DiskUpToDate
}

// newGen is a new data generation (never 0).
func newGen() uint64 { return rand.Uint64() | 1 }

// moveOn starts a new data generation on a side that writes without its
// peer, remembering the one both shared.
func (s *side) moveOn() {
	switch {
	case s.Gen == 0:
		s.Gen = newGen()
	case s.Parent == 0:
		s.Parent, s.Gen = s.Gen, newGen()
	}
}

func (c *Cluster) resourcePath(name string) string {
	return filepath.Join(c.root, resourcesDir, name+".json")
}

// withResource runs fn on resource name's state under its exclusive lock
// (flock on <name>.lock: it excludes other processes and, each call opening
// the file anew, other goroutines), after settling it, and stores what fn
// and the settling changed with an atomic rename.
func (c *Cluster) withResource(name string, fn func(r *resource) error) error {
	if err := validName(name); err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(c.root, resourcesDir, name+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	for {
		err = syscall.Flock(int(lock.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("locking resource %s: %w", name, err)
	}
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }()

	old, err := os.ReadFile(c.resourcePath(name))
	r := &resource{Name: name, Sides: map[string]*side{}}
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	default:
		if err := json.Unmarshal(old, r); err != nil {
			return fmt.Errorf("%s: %w", c.resourcePath(name), err)
		}
	}
	ferr := c.settle(r)
	if ferr == nil {
		ferr = fn(r)
		if err := c.settle(r); ferr == nil {
			ferr = err
		}
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if !bytes.Equal(b, old) {
		if err := writeAtomic(c.resourcePath(name), b); err != nil {
			return err
		}
	}
	return ferr
}

// peek reads resource name's state without its lock (it is replaced
// atomically), nil when it cannot.
func (c *Cluster) peek(name string) *resource {
	b, err := os.ReadFile(c.resourcePath(name))
	if err != nil {
		return nil
	}
	r := &resource{}
	if json.Unmarshal(b, r) != nil || r.Sides == nil {
		return nil
	}
	return r
}

// writeAtomic writes data under a temporary name and renames it over path,
// so a reader never sees half a state.
func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}
