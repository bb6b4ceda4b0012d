package emulated

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"

	"hwameistor.io/local/csidriver/drbd"
)

// refusal is a drbdadm failure: exit code and message.
type refusal struct {
	code int
	msg  string
}

func (r *refusal) Error() string { return r.msg }

func refuse(code int, format string, a ...any) error {
	return &refusal{code: code, msg: fmt.Sprintf(format, a...)}
}

// State change refusals, with the kernel's codes and words.
func needUpToDate(minor int) error {
	return refuse(17, "%d: State change failed: (-2) Need access to UpToDate data", minor)
}

// adm runs one drbdadm command on node for resource name, whose file gives
// this node's section (self) and its peer's.
func (c *Cluster) adm(node, cmd string, opts []string, name string, self, peer host) (out string, code int, msg string) {
	err := c.withResource(name, func(r *resource) error {
		s := r.Sides[node]
		if s == nil {
			s = &side{Node: node}
			r.Sides[node] = s
		}
		if !s.Up || cmd == "adjust" || cmd == "up" {
			// A running resource keeps the configuration it was
			// brought up with until adjust.
			s.Peer, s.Minor, s.Disk = peer.Node, self.Minor, self.Disk
		}
		var err error
		out, err = c.command(r, s, cmd, opts)
		return err
	})
	var ref *refusal
	switch {
	case errors.As(err, &ref):
		return "", ref.code, ref.msg
	case err != nil:
		return "", 10, err.Error()
	}
	return out, 0, ""
}

// command applies cmd to side s of r (settled; settled again afterwards).
func (c *Cluster) command(r *resource, s *side, cmd string, opts []string) (string, error) {
	force := slices.Contains(opts, "--force")
	if !s.Up && cmd != "create-md" && cmd != "up" && cmd != "adjust" && cmd != "down" && cmd != "outdate" {
		return "", refuse(10, "%d: Failure: (127) Device minor not allocated (%s is not up)", s.Minor, r.Name)
	}
	switch cmd {
	case "create-md":
		if s.Up {
			return "", refuse(20, "Device '%d' is configured!", s.Minor)
		}
		if err := s.attachDisk(); err != nil {
			return "", refuse(20, "%v", err)
		}
		*s = side{Node: s.Node, Peer: s.Peer, Minor: s.Minor, Disk: s.Disk, File: s.File, Size: s.Size, MD: true}
		return "New drbd meta data block successfully created.\n", nil
	case "up":
		return "", c.up(r, s)
	case "adjust":
		if !s.Up {
			return "", c.up(r, s)
		}
		if err := s.attachDisk(); err != nil {
			return "", refuse(10, "%d: Failure: (114) Lower device / meta device / index not available: %v", s.Minor, err)
		}
		s.StandAlone, s.SplitBrain = false, false
		return "", nil
	case "down":
		if s.Up {
			s.Role = drbd.RoleSecondary // down demotes first: no new generation
			s.Up, s.StandAlone, s.SplitBrain, s.Discard = false, false, false, false
			if r.peerOf(s) != nil {
				c.drop(r, c.now())
			}
		}
		return "", c.setUp(s.Node, r.Name, false)
	case "resize":
		peer := r.peerOf(s)
		if peer == nil {
			return "", refuse(10, "%d: Failure: (131) Need a connection to resize (connection to the peer is not established)", s.Minor)
		}
		if err := s.attachDisk(); err != nil {
			return "", refuse(10, "%d: Failure: (114) Lower device / meta device / index not available: %v", s.Minor, err)
		}
		return "", peer.attachDisk()
	case "connect":
		if !s.StandAlone {
			return "", refuse(10, "%d: Failure: (125) Device has a net-config (use disconnect first)", s.Minor)
		}
		s.StandAlone, s.SplitBrain = false, false
		s.Discard = slices.Contains(opts, "--discard-my-data")
		return "", nil
	case "disconnect":
		if r.peerOf(s) != nil {
			// No fencing policy in the file: the peer is not outdated.
			c.drop(r, c.now())
		}
		s.StandAlone = true
		return "", nil
	case "primary":
		return "", c.primary(r, s, force)
	case "secondary":
		s.Role = drbd.RoleSecondary
		return "", nil
	case "new-current-uuid":
		return "", c.newCurrentUUID(r, s, slices.Contains(opts, "--clear-bitmap"))
	case "outdate":
		switch {
		case r.peerOf(s) != nil:
			return "", refuse(17, "%d: State change failed: (-10) State change was refused by peer node", s.Minor)
		case s.Role == drbd.RolePrimary:
			return "", refuse(17, "%d: State change failed: (-7) Refusing to be Outdated while Primary", s.Minor)
		case s.Consistent:
			s.Outdated = true
		}
		return "", nil
	}
	return "", refuse(20, "drbdadm %s: not emulated", cmd)
}

// attachDisk resolves the side's disk to its backing file.
func (s *side) attachDisk() error {
	file, err := backingFile(s.Disk)
	if err != nil {
		return err
	}
	fi, err := os.Stat(file)
	if err != nil {
		return err
	}
	s.File, s.Size = file, fi.Size()
	return nil
}

// up attaches the disk and starts connecting.
func (c *Cluster) up(r *resource, s *side) error {
	if s.Up {
		return refuse(10, "%d: Failure: (161) Minor or volume exists already (delete it first)", s.Minor)
	}
	if !s.MD {
		return refuse(10, "%d: Failure: (119) No valid meta-data signature found.\n==> Use 'drbdadm create-md res' to initialize meta-data area. <==", s.Minor)
	}
	others, err := c.upOn(s.Node)
	if err != nil {
		return err
	}
	for _, o := range others {
		if o == r.Name {
			continue
		}
		if minor, ok := c.minorOf(o, s.Node); ok && minor == s.Minor {
			return refuse(10, "%d: Failure: (161) Minor or volume exists already (delete it first): resource %s", s.Minor, o)
		}
	}
	if err := s.attachDisk(); err != nil {
		return refuse(10, "%d: Failure: (114) Lower device / meta device / index not available: %v", s.Minor, err)
	}
	s.Up, s.Role, s.StandAlone, s.SplitBrain, s.Discard = true, drbd.RoleSecondary, false, false, false
	return c.setUp(s.Node, r.Name, true)
}

// minorOf reads another resource's minor on node without its lock (its
// state file is replaced atomically).
func (c *Cluster) minorOf(name, node string) (int, bool) {
	var r resource
	b, err := os.ReadFile(c.resourcePath(name))
	if err != nil || json.Unmarshal(b, &r) != nil || r.Sides[node] == nil {
		return 0, false
	}
	return r.Sides[node].Minor, true
}

// primary promotes s. DRBD 8.4 without allow-two-primaries refuses while
// the connected peer is Primary; it wants UpToDate data (--force makes an
// Inconsistent, Consistent or Outdated disk UpToDate). Stricter than the
// kernel, which lets a SyncTarget be Primary through its peer's disk: the
// emulator has no way to read through the peer.
func (c *Cluster) primary(r *resource, s *side, force bool) error {
	peer := r.peerOf(s)
	switch {
	case s.Role == drbd.RolePrimary:
		return nil
	case peer != nil && peer.Role == drbd.RolePrimary:
		return refuse(11, "%d: State change failed: (-1) Multiple primaries not allowed by config", s.Minor)
	case r.Sync != nil && r.Sync.Target == s.Node:
		return needUpToDate(s.Minor)
	case s.disk() != drbd.DiskUpToDate && !force:
		return needUpToDate(s.Minor)
	}
	if s.disk() != drbd.DiskUpToDate {
		// Forced: this side's data is the truth from now on.
		s.moveOn()
		s.Consistent, s.Outdated, s.Pending = true, false, 0
		if peer != nil {
			peer.Consistent, peer.Outdated = false, false
			r.Sync = &resync{Source: s.Node, Target: peer.Node, Total: min(s.Size, peer.Size), Start: c.now(), Rate: c.rate}
		}
	} else if peer == nil {
		// Promoted alone: a new data generation.
		s.moveOn()
	}
	s.Role = drbd.RolePrimary
	return nil
}

// newCurrentUUID is 8.4's `new-current-uuid [--clear-bitmap]`: on a new,
// connected pair with --clear-bitmap both sides become UpToDate at once
// (the initial sync skipped); otherwise a new generation starts here.
func (c *Cluster) newCurrentUUID(r *resource, s *side, clear bool) error {
	peer := r.peerOf(s)
	switch {
	case r.Sync != nil:
		return refuse(17, "%d: State change failed: (-15) Resync running", s.Minor)
	case clear && peer != nil && s.Gen == 0 && peer.Gen == 0:
		g := newGen()
		for _, x := range []*side{s, peer} {
			x.Gen, x.Parent, x.Changes, x.Consistent, x.Outdated = g, 0, 0, true, false
		}
	case peer != nil:
		g := newGen()
		s.Gen, peer.Gen = g, g
	default:
		if s.Parent != 0 {
			s.Gen = newGen()
		} else {
			s.moveOn()
		}
		if clear {
			s.Changes = 0
		}
	}
	return nil
}
