package emulated

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"hwameistor.io/local/csidriver/backend/command"
	"hwameistor.io/local/csidriver/drbd"
	"hwameistor.io/local/csidriver/replication"
)

// diskSize is each replica's backing file (sparse).
const diskSize = 4 << 20

// clock is a test's time, moved by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// harness is a cluster whose nodes each drive resource "pvc-ha" (minor 3)
// through a real drbd.Manager, as the node agent does.
type harness struct {
	t     *testing.T
	c     *Cluster
	clock *clock
	res   *drbd.Resource
	m     map[string]*drbd.Manager
	disks map[string]string
}

// newHarness: the resource's two replicas are on the first two nodes; every
// node gets a Manager and a backing file.
func newHarness(t *testing.T, rate int64, nodes ...string) *harness {
	t.Helper()
	root := t.TempDir()
	clk := &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	c, err := Open(filepath.Join(root, "drbd"), WithRate(rate), WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, c: c, clock: clk, m: map[string]*drbd.Manager{}, disks: map[string]string{}}
	for _, n := range nodes {
		h.disks[n] = filepath.Join(root, "pools", n, "pvc-ha.img")
		if err := os.MkdirAll(filepath.Dir(h.disks[n]), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(h.disks[n], nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(h.disks[n], diskSize); err != nil {
			t.Fatal(err)
		}
		m := c.Node(n).Manager(filepath.Join(root, "etc", n))
		if v, err := m.Detect(); err != nil || v != drbd.V84 {
			t.Fatalf("Detect on %s = %v, %v; want 8.4", n, v, err)
		}
		h.m[n] = m
	}
	h.res = h.resource(nodes[0], nodes[1])
	return h
}

// resource is pvc-ha between nodes a and b.
func (h *harness) resource(a, b string) *drbd.Resource {
	return &drbd.Resource{Name: "pvc-ha", Minor: 3, Port: 43003, MetaDisk: "internal", Peers: []drbd.Peer{
		{Node: a, Address: "127.0.0.1", NodeID: 0, Disk: h.disks[a]},
		{Node: b, Address: "127.0.0.1", NodeID: 1, Disk: h.disks[b]},
	}}
}

func (h *harness) must(err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatal(err)
	}
}

// newReplica is the agent's first pass on a new replica: file,
// metadata, up.
func (h *harness) newReplica(node string) {
	h.t.Helper()
	ctx := context.Background()
	_, err := h.m[node].Write(h.res)
	h.must(err)
	h.must(h.m[node].CreateMD(ctx, h.res.Name))
	h.must(h.m[node].Up(ctx, h.res.Name))
}

// pair brings up a new pair on a and b and skips the initial sync from a.
func (h *harness) pair(a, b string) {
	h.t.Helper()
	h.newReplica(a)
	h.newReplica(b)
	h.must(h.m[a].SkipInitialSync(context.Background(), h.res.Name))
	h.want(a, "Connected", "Secondary/Secondary", "UpToDate/UpToDate")
	h.want(b, "Connected", "Secondary/Secondary", "UpToDate/UpToDate")
}

func (h *harness) status(node string) drbd.Status {
	h.t.Helper()
	st, err := h.m[node].Status(context.Background(), h.res)
	h.must(err)
	return st
}

// want checks node's connection, roles ("Primary/Secondary") and disks.
func (h *harness) want(node, conn, roles, disks string) drbd.Status {
	h.t.Helper()
	st := h.status(node)
	got := [3]string{st.Connection, string(st.Role) + "/" + string(st.PeerRole), string(st.Disk) + "/" + string(st.PeerDisk)}
	if want := [3]string{conn, roles, disks}; got != want || !st.Configured {
		proc, _ := h.c.Node(node).ReadFile(drbd.ProcDRBD)
		h.t.Fatalf("%s: %v, want %v\n%s", node, got, want, proc)
	}
	return st
}

// refused checks err is drbdadm's refusal with code and message.
func refused(t *testing.T, err error, code int, msg string) {
	t.Helper()
	var ce *command.Error
	if !errors.As(err, &ce) || ce.ExitCode != code || !bytes.Contains([]byte(ce.Stderr), []byte(msg)) {
		t.Fatalf("error %v, want exit %d with %q", err, code, msg)
	}
}

// checksum is the checksum of node's backing file.
func (h *harness) checksum(node string) string {
	h.t.Helper()
	f, err := os.Open(h.disks[node])
	h.must(err)
	defer f.Close()
	sum, err := replication.Checksum(f, diskSize)
	h.must(err)
	return sum
}

// fill is n bytes of b.
func fill(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

// adm runs drbdadm on node with the resource file, for commands the
// Manager does not issue.
func (h *harness) adm(node string, args ...string) error {
	_, err := h.c.Node(node).Run(context.Background(), "drbdadm", append([]string{"-c", h.m[node].File("pvc-ha")}, args...)...)
	return err
}
