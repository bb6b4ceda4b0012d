package drbd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"hwameistor.io/local/csidriver/backend/command"
)

// ProcDRBD is where the kernel module reports its version (and, on 8.4,
// the state of every minor).
const ProcDRBD = "/proc/drbd"

// ErrNotLoaded: the node has no DRBD kernel module (no /proc/drbd). HA
// volumes cannot be placed there.
var ErrNotLoaded = errors.New("the drbd kernel module is not loaded (no " + ProcDRBD + "); install DRBD for HA volumes")

// Manager runs DRBD on one node: it writes resource files into Dir and
// drives them with drbdadm, each command given its file with -c, so
// nothing under /etc is touched and a resource's file is the whole truth
// about it.
type Manager struct {
	// Runner runs drbdadm and drbdsetup.
	Runner command.Runner
	// Dir holds the resource files (<name>.res).
	Dir string
	// ReadFile reads /proc/drbd (os.ReadFile when nil; tests replay it).
	ReadFile func(string) ([]byte, error)
	// Version is the module's; Detect fills it.
	Version Version
}

func (m *Manager) readFile(path string) ([]byte, error) {
	if m.ReadFile != nil {
		return m.ReadFile(path)
	}
	return os.ReadFile(path)
}

// Detect reads the module's version from /proc/drbd.
func (m *Manager) Detect() (Version, error) {
	b, err := m.readFile(ProcDRBD)
	if errors.Is(err, os.ErrNotExist) {
		return 0, ErrNotLoaded
	}
	if err != nil {
		return 0, err
	}
	v, err := parseVersion(string(b))
	if err != nil {
		return 0, err
	}
	m.Version = v
	return v, nil
}

func parseVersion(proc string) (Version, error) {
	line, _, _ := strings.Cut(proc, "\n")
	switch {
	case strings.HasPrefix(line, "version: 8.4."):
		return V84, nil
	case strings.HasPrefix(line, "version: 9."):
		return V9, nil
	}
	return 0, fmt.Errorf("unsupported DRBD module (%s): this agent drives 8.4 and 9", strings.TrimSpace(line))
}

// File is the path of r's resource file.
func (m *Manager) File(name string) string { return filepath.Join(m.Dir, name+".res") }

// errNotDetected: a Manager's version is unknown until Detect.
var errNotDetected = errors.New("drbd: the module's version is not known (call Detect first)")

// Write writes r's resource file (atomically: a rename), for the version
// Detect found, unless it already holds that. replaced reports that a file
// with other content was there: a peer changed, and a resource that is up
// needs Adjust.
func (m *Manager) Write(r *Resource) (replaced bool, err error) {
	if m.Version == 0 {
		return false, errNotDetected
	}
	b, err := Config(r, m.Version)
	if err != nil {
		return false, err
	}
	old, err := os.ReadFile(m.File(r.Name))
	switch {
	case err == nil && bytes.Equal(old, b):
		return false, nil
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return false, err
	}
	if err := os.MkdirAll(m.Dir, 0o755); err != nil {
		return false, err
	}
	tmp := m.File(r.Name) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return false, err
	}
	if err := os.Rename(tmp, m.File(r.Name)); err != nil {
		_ = os.Remove(tmp)
		return false, err
	}
	return old != nil, nil
}

// MarkStale replaces name's resource file with a comment after an Adjust
// to it failed: the next Write then replaces it, and the caller adjusts
// again (a missing file would read as new, not as changed).
func (m *Manager) MarkStale(name string) error {
	return os.WriteFile(m.File(name), []byte("# hwameistor-node: adjusting to this resource failed; rewritten and adjusted on the next pass\n"), 0o644)
}

// Remove deletes r's resource file (after Down).
func (m *Manager) Remove(name string) error {
	if err := os.Remove(m.File(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func (m *Manager) adm(ctx context.Context, name string, args ...string) error {
	argv := append([]string{"-c", m.File(name)}, args...)
	_, err := m.Runner.Run(ctx, "drbdadm", argv...)
	return err
}

// CreateMD writes DRBD's metadata on the backing device (a new replica;
// it refuses to overwrite a device that already has some, unless the
// agent knows it is blank: --force).
func (m *Manager) CreateMD(ctx context.Context, name string) error {
	args := []string{"create-md", "--force"}
	if m.Version == V9 {
		args = append(args, "--max-peers=2")
	}
	return m.adm(ctx, name, append(args, name)...)
}

// SkipInitialSync marks both (blank, zeroed) sides as identical, so a new
// volume is UpToDate on both nodes at once instead of copying zeros. Run on
// one node while both are connected and Secondary.
func (m *Manager) SkipInitialSync(ctx context.Context, name string) error {
	if m.Version == V84 {
		return m.adm(ctx, name, "--", "--clear-bitmap", "new-current-uuid", name)
	}
	return m.adm(ctx, name, "new-current-uuid", "--clear-bitmap", name+"/0")
}

// Up attaches the disk and starts connecting to the peer.
func (m *Manager) Up(ctx context.Context, name string) error { return m.adm(ctx, name, "up", name) }

// Down disconnects and detaches (the device goes).
func (m *Manager) Down(ctx context.Context, name string) error { return m.adm(ctx, name, "down", name) }

// Adjust makes the running resource match its file (after a peer change).
func (m *Manager) Adjust(ctx context.Context, name string) error {
	return m.adm(ctx, name, "adjust", name)
}

// Resize grows the replicated device to its backing devices' new size
// (the smaller of the two sides), moving internal metadata to the new
// end. Run while connected, after both logical volumes grew; the device
// grows on both nodes and DRBD syncs the new area.
func (m *Manager) Resize(ctx context.Context, name string) error {
	return m.adm(ctx, name, "resize", name)
}

// Connect (re)connects to the peer.
func (m *Manager) Connect(ctx context.Context, name string) error {
	return m.adm(ctx, name, "connect", name)
}

// Disconnect drops the connection to the peer.
func (m *Manager) Disconnect(ctx context.Context, name string) error {
	return m.adm(ctx, name, "disconnect", name)
}

// Primary promotes this node. force promotes a node whose disk is not
// known to be UpToDate with its peer (the first Primary of a new resource
// without SkipInitialSync, or a failover whose peer is gone): the caller
// must know this replica has every acknowledged write.
func (m *Manager) Primary(ctx context.Context, name string, force bool) error {
	if force {
		return m.adm(ctx, name, "primary", "--force", name)
	}
	return m.adm(ctx, name, "primary", name)
}

// Secondary demotes this node (the device must be closed).
func (m *Manager) Secondary(ctx context.Context, name string) error {
	return m.adm(ctx, name, "secondary", name)
}

// ResumeIO lets a Primary whose I/O froze when it lost its peer (8.4's
// fencing) go on writing alone. Run only once the peer is recorded
// outdated (package fence): its writes from then on exist on this node
// only.
func (m *Manager) ResumeIO(ctx context.Context, name string) error {
	return m.adm(ctx, name, "resume-io", name)
}

// DiscardMyData reconnects a Secondary that a split brain left StandAlone,
// giving up what it wrote since the two parted, so DRBD resyncs it from
// its peer. Run only on the replica the volume records outdated: none of
// those writes was acknowledged.
func (m *Manager) DiscardMyData(ctx context.Context, name string) error {
	return m.adm(ctx, name, "connect", "--discard-my-data", name)
}
