package emulated

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"hwameistor.io/local/csidriver/drbd"
)

// Environment of the second process of TestTwoProcesses.
const (
	childEnv     = "EMULATED_DRBD_CHILD"      // the root
	childDiskEnv = "EMULATED_DRBD_CHILD_DISK" // n2's backing file
)

const (
	childWrites = 200
	blockSize   = 4096
)

// TestTwoProcesses shares one root between this process (node n1) and a
// second one (node n2, the test binary run again), as the simulator's agent
// processes do: the pair connects across them, and while n1 is cut off
// both processes write through n1 at once; every write must be counted in
// n1's out-of-sync bytes (a lost update under a broken lock would show as
// fewer), and the resync after the isolation brings n2 every block.
func TestTwoProcesses(t *testing.T) {
	h := newHarness(t, 0, "n1", "n2")
	ctx := context.Background()
	h.newReplica("n1")
	run := func(step string) {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.count=1")
		cmd.Env = append(os.Environ(), childEnv+"="+h.c.Root(), childDiskEnv+"="+h.disks["n2"], "EMULATED_DRBD_STEP="+step)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("child %s: %v\n%s", step, err, out)
		}
	}
	run("up") // n2's Manager, in the other process
	h.must(h.m["n1"].SkipInitialSync(ctx, "pvc-ha"))
	h.must(h.m["n1"].Primary(ctx, "pvc-ha", false))
	h.want("n1", "Connected", "Primary/Secondary", "UpToDate/UpToDate")
	h.must(h.c.Isolate("n1"))

	child := exec.Command(os.Args[0], "-test.run=^$", "-test.count=1")
	child.Env = append(os.Environ(), childEnv+"="+h.c.Root(), childDiskEnv+"="+h.disks["n2"], "EMULATED_DRBD_STEP=write")
	out, err := os.CreateTemp(t.TempDir(), "child")
	h.must(err)
	child.Stdout, child.Stderr = out, out
	h.must(child.Start())
	for i := range childWrites {
		h.must(h.c.Node("n1").Write("pvc-ha", int64(i)*blockSize, fill('p', blockSize)))
	}
	if err := child.Wait(); err != nil {
		b, _ := os.ReadFile(out.Name())
		t.Fatalf("child write: %v\n%s", err, b)
	}
	st := h.want("n1", "WFConnection", "Primary/Unknown", "UpToDate/DUnknown")
	if want := int64(2*childWrites*blockSize) >> 10; st.OutOfSyncKiB != want {
		t.Errorf("out of sync %d KiB after two processes' writes, want %d: updates were lost", st.OutOfSyncKiB, want)
	}
	h.must(h.c.Reconnect("n1"))
	h.want("n1", "Connected", "Primary/Secondary", "UpToDate/UpToDate")
	if h.checksum("n1") != h.checksum("n2") {
		t.Error("the replicas differ after the resync")
	}
}

// TestMain runs the test binary as TestTwoProcesses' second process when
// childEnv names the root, and the tests otherwise.
func TestMain(m *testing.M) {
	if root := os.Getenv(childEnv); root != "" {
		if err := childProcess(root); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// childProcess is TestTwoProcesses' second process: node n2 brings the
// pair up ("up"), or writes through n1 while the first process does too
// ("write").
func childProcess(root string) error {
	c, err := Open(root)
	if err != nil {
		return err
	}
	ctx := context.Background()
	switch step := os.Getenv("EMULATED_DRBD_STEP"); step {
	case "up":
		dir, err := os.MkdirTemp("", "emulated-drbd-child")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		m := c.Node("n2").Manager(filepath.Join(dir, "etc"))
		if _, err := m.Detect(); err != nil {
			return err
		}
		disk := os.Getenv(childDiskEnv)
		res := &drbd.Resource{Name: "pvc-ha", Minor: 3, Port: 43003, MetaDisk: "internal", Peers: []drbd.Peer{
			{Node: "n1", Address: "127.0.0.1", NodeID: 0, Disk: filepath.Join(filepath.Dir(filepath.Dir(disk)), "n1", "pvc-ha.img")},
			{Node: "n2", Address: "127.0.0.1", NodeID: 1, Disk: disk},
		}}
		for _, f := range []func() error{
			func() error { _, err := m.Write(res); return err },
			func() error { return m.CreateMD(ctx, res.Name) },
			func() error { return m.Up(ctx, res.Name) },
		} {
			if err := f(); err != nil {
				return err
			}
		}
		st, err := m.Status(ctx, res)
		if err != nil || st.Connection != "Connected" {
			return fmt.Errorf("n2 after up: %+v, %v", st, err)
		}
	case "write":
		for i := range childWrites {
			off := int64(childWrites+i) * blockSize
			if err := c.Node("n1").Write("pvc-ha", off, fill('c', blockSize)); err != nil {
				return err
			}
			if _, err := c.Node("n2").ReadFile(drbd.ProcDRBD); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("unknown step %q", step)
	}
	return nil
}
