package emulated

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"hwameistor.io/local/csidriver/backend/command"
	"hwameistor.io/local/csidriver/drbd"
)

// Node is one node's view of the cluster: its drbdadm (Run) and its
// /proc/drbd (ReadFile).
type Node struct {
	c    *Cluster
	name string
}

var _ command.Runner = (*Node)(nil)

// Node is node's handle. Its name is what DRBD would take from `uname -n`:
// the "on" section of a resource file that is this node's.
func (c *Cluster) Node(name string) *Node { return &Node{c: c, name: name} }

// Name is the node's name.
func (n *Node) Name() string { return n.name }

// Manager is a drbd.Manager for this node writing its resource files into
// dir; Detect finds DRBD 8.4.
func (n *Node) Manager(dir string) *drbd.Manager {
	return &drbd.Manager{Runner: n, Dir: dir, ReadFile: n.ReadFile}
}

// errDown is what a failed node's handle answers.
func (n *Node) errDown() error {
	return fmt.Errorf("emulated drbd: node %s is down", n.name)
}

func (n *Node) check() error {
	if err := validName(n.name); err != nil {
		return err
	}
	if n.c.Failed(n.name) {
		return n.errDown()
	}
	return nil
}

// ReadFile is the node's Manager.ReadFile: /proc/drbd with a line pair per
// resource up on the node; other paths are read from disk.
func (n *Node) ReadFile(path string) ([]byte, error) {
	if path != drbd.ProcDRBD {
		return os.ReadFile(path)
	}
	if err := n.check(); err != nil {
		return nil, err
	}
	names, err := n.c.upOn(n.name)
	if err != nil {
		return nil, err
	}
	var views []view
	for _, name := range names {
		if r := n.c.peek(name); r != nil && !n.c.unsettled(r) {
			// Nothing to move on: no lock (thousands of replicas are
			// read every few seconds).
			if s := r.Sides[n.name]; s != nil && s.Up {
				views = append(views, r.view(s, n.c.now()))
			}
			continue
		}
		if err := n.c.withResource(name, func(r *resource) error {
			if s := r.Sides[n.name]; s != nil && s.Up {
				views = append(views, r.view(s, n.c.now()))
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return proc(views), nil
}

// Write writes p at off into resource name through this node, which must
// be its Primary: into this side's backing file and, while connected, into
// the peer's too (protocol C); while disconnected the peer falls behind by
// what was written.
func (n *Node) Write(name string, off int64, p []byte) error {
	if err := n.check(); err != nil {
		return err
	}
	return n.c.withResource(name, func(r *resource) error {
		s := r.Sides[n.name]
		if s == nil || !s.Up || s.Role != drbd.RolePrimary {
			return fmt.Errorf("emulated drbd: %s is not Primary on %s", name, n.name)
		}
		if s.disk() != drbd.DiskUpToDate {
			return fmt.Errorf("emulated drbd: %s on %s is %s", name, n.name, s.disk())
		}
		if off < 0 || off+int64(len(p)) > s.Size {
			return fmt.Errorf("emulated drbd: write [%d, %d) beyond %s's %d bytes", off, off+int64(len(p)), name, s.Size)
		}
		if err := writeAt(s.File, off, p); err != nil {
			return err
		}
		if peer := r.peerOf(s); peer != nil {
			return writeAt(peer.File, off, p)
		}
		s.Changes = min(s.Changes+int64(len(p)), s.Size)
		return nil
	})
}

// Write writes through resource name's Primary (Node.Write) and returns
// its node; it fails unless exactly one live node is Primary.
func (c *Cluster) Write(name string, off int64, p []byte) (string, error) {
	reps, err := c.Replicas(name)
	if err != nil {
		return "", err
	}
	var primaries []string
	for _, r := range reps {
		if !r.Failed && r.Status.Role == drbd.RolePrimary {
			primaries = append(primaries, r.Node)
		}
	}
	if len(primaries) != 1 {
		return "", fmt.Errorf("emulated drbd: %s has %d Primaries (%s), want one", name, len(primaries), strings.Join(primaries, ", "))
	}
	return primaries[0], c.Node(primaries[0]).Write(name, off, p)
}

func writeAt(path string, off int64, p []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(p, off)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Run is the node's drbdadm: `drbdadm -c FILE [--] [OPTIONS] COMMAND RES`.
// A refusal is a *command.Error with DRBD's message and a non-zero exit
// code, as the real one's.
func (n *Node) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	argv := append([]string{name}, args...)
	fail := func(code int, format string, a ...any) ([]byte, error) {
		return nil, &command.Error{Argv: argv, ExitCode: code, Stderr: fmt.Sprintf(format, a...), Err: fmt.Errorf("exit status %d", code)}
	}
	if err := n.check(); err != nil {
		return nil, &command.Error{Argv: argv, ExitCode: -1, Err: err}
	}
	if name != "drbdadm" {
		return fail(127, "%s: not emulated (the emulated DRBD is 8.4: drbdadm and /proc/drbd only)", name)
	}
	if len(args) < 2 || args[0] != "-c" {
		return fail(20, "USAGE: drbdadm -c FILE COMMAND RESOURCE (the emulator needs the resource file)")
	}
	file, rest := args[1], args[2:]
	var opts, words []string
	for _, a := range rest {
		switch {
		case a == "--":
		case strings.HasPrefix(a, "-"):
			opts = append(opts, a)
		default:
			words = append(words, a)
		}
	}
	if len(words) != 2 {
		return fail(20, "drbdadm %s: want one command and one resource", strings.Join(rest, " "))
	}
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return fail(10, "open(%s): No such file or directory", file)
	}
	if err != nil {
		return fail(10, "%v", err)
	}
	rf, err := parseResFile(b)
	if err != nil {
		return fail(10, "%s: %v", file, err)
	}
	if rf.Name != words[1] {
		return fail(10, "'%s' not defined in your config (for this host).", words[1])
	}
	self, peer, err := rf.on(n.name)
	if err != nil {
		return fail(10, "%v.", err)
	}
	out, code, msg := n.c.adm(n.name, words[0], opts, rf.Name, self, peer)
	if code != 0 {
		return fail(code, "%s", msg)
	}
	return []byte(out), nil
}
