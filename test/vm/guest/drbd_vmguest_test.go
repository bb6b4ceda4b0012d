//go:build vmguest

package guest

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hwameistor.io/local/csidriver/backend/command"
	"hwameistor.io/local/csidriver/drbd"
)

// TestDRBDStep runs one step of test/vm's DRBD scenario on this guest with
// the node agent's DRBD layer (csidriver/drbd) against the real kernel
// module. The host drives the steps (HWVM_DRBD_STEP) across guests and
// guest restarts; the kernel, the disks and the share hold the state
// between them. HWVM_DRBD_RESOURCE is the drbd.Resource as JSON;
// HWVM_DRBD_LEDGER, on the share, lists the files whose writes the
// Primary acknowledged (name and sha256, one line each, appended only
// after the file and its folder were fsync'd).
func TestDRBDStep(t *testing.T) {
	step := os.Getenv("HWVM_DRBD_STEP")
	var res drbd.Resource
	if err := json.Unmarshal([]byte(os.Getenv("HWVM_DRBD_RESOURCE")), &res); err != nil {
		t.Fatalf("HWVM_DRBD_RESOURCE: %v", err)
	}
	ledger := os.Getenv("HWVM_DRBD_LEDGER")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	m := &drbd.Manager{Runner: command.Exec{}, Dir: "/run/hwameistor/drbd"}
	v, err := m.Detect()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("DRBD %s, step %s", v, step)
	defer func() {
		proc, _ := os.ReadFile(drbd.ProcDRBD)
		t.Logf("%s after %s:\n%s", drbd.ProcDRBD, step, proc)
	}()
	const mnt = "/mnt/drbd"
	switch step {
	case "up":
		// A new replica: metadata on the (zeroed) backing LV, then up.
		_, err := m.Write(&res)
		must(t, err)
		must(t, m.CreateMD(ctx, res.Name))
		must(t, m.Up(ctx, res.Name))
	case "rejoin":
		// The same replica after its node restarted: metadata kept.
		run(t, "lvm", "vgchange", "-q", "-ay")
		_, err := m.Write(&res)
		must(t, err)
		must(t, m.Up(ctx, res.Name))
		st := waitStatus(ctx, t, m, &res, "UpToDate again, resynced from the new Primary", func(s drbd.Status) bool {
			return s.Connection == "Connected" && s.Disk == drbd.DiskUpToDate && s.PeerDisk == drbd.DiskUpToDate
		})
		if st.Role != drbd.RoleSecondary || st.PeerRole != drbd.RolePrimary {
			t.Errorf("after the rejoin: %+v, want Secondary with a Primary peer", st)
		}
	case "first-primary":
		// Both blank sides are identical: no initial sync, then Primary
		// without force, a file system, and a mount.
		waitStatus(ctx, t, m, &res, "connected, both Inconsistent", func(s drbd.Status) bool { return s.Connection == "Connected" })
		must(t, m.SkipInitialSync(ctx, res.Name))
		waitStatus(ctx, t, m, &res, "both UpToDate", func(s drbd.Status) bool {
			return s.Disk == drbd.DiskUpToDate && s.PeerDisk == drbd.DiskUpToDate
		})
		must(t, m.Primary(ctx, res.Name, false))
		st := waitStatus(ctx, t, m, &res, "Primary", func(s drbd.Status) bool { return s.Role == drbd.RolePrimary })
		if !st.MayServe() || st.InSyncPercent != 100 {
			t.Errorf("new Primary %+v: want UpToDate and in sync", st)
		}
		run(t, "mkfs.ext4", "-q", "-F", res.Device())
	case "writer":
		// Runs until the guest is killed: files of 64 KiB, each fsync'd
		// with its folder before its line goes to the ledger.
		must(t, os.MkdirAll(mnt, 0o755))
		run(t, "mount", res.Device(), mnt)
		writeFiles(t, mnt, ledger, "w", 1<<30)
	case "failover":
		// The Primary's node is gone: this replica, UpToDate, is
		// promoted, and every acknowledged write is read. DRBD's fencing
		// refuses it without force (the peer is not known to be
		// outdated); the CSI node service forces it once it has
		// recorded the peer outdated through the API (package fence),
		// which this step plays.
		st := waitStatus(ctx, t, m, &res, "the peer lost", func(s drbd.Status) bool { return s.Connection != "Connected" })
		if !st.MayServe() {
			t.Fatalf("the standby cannot serve after the loss of the Primary: %+v", st)
		}
		if err := m.Primary(ctx, res.Name, false); err == nil || !strings.Contains(err.Error(), "peer is not outdated") {
			t.Fatalf("promoting without its peer, not forced: %v; want DRBD's fencing to refuse it (peer is not outdated)", err)
		}
		must(t, m.Primary(ctx, res.Name, true))
		must(t, os.MkdirAll(mnt, 0o755))
		run(t, "mount", res.Device(), mnt)
		n := verifyLedger(t, mnt, ledger)
		t.Logf("read back %d acknowledged files", n)
		// The new Primary takes writes; the old one must get them on rejoin.
		writeFiles(t, mnt, ledger+".after", "a", 20)
		run(t, "umount", mnt)
	case "verify":
		// After a switch back: everything the ledgers list is here.
		must(t, m.Primary(ctx, res.Name, false))
		must(t, os.MkdirAll(mnt, 0o755))
		run(t, "mount", res.Device(), mnt)
		n := verifyLedger(t, mnt, ledger) + verifyLedger(t, mnt, ledger+".after")
		t.Logf("read back %d acknowledged files", n)
		run(t, "umount", mnt)
	case "secondary":
		must(t, m.Secondary(ctx, res.Name))
	case "down":
		exec.Command("umount", mnt).Run()
		must(t, m.Down(ctx, res.Name))
		must(t, m.Remove(res.Name))
	default:
		t.Fatalf("unknown HWVM_DRBD_STEP %q", step)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// waitStatus polls the resource's status until ok (a minute at most).
func waitStatus(ctx context.Context, t *testing.T, m *drbd.Manager, r *drbd.Resource, what string, ok func(drbd.Status) bool) drbd.Status {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := m.Status(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: status %+v", what, st)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// writeFiles writes up to n files of 64 KiB under dir, appending each
// one's name and sha256 to ledger once the file and dir are fsync'd.
func writeFiles(t *testing.T, dir, ledger, prefix string, n int) {
	t.Helper()
	l, err := os.OpenFile(ledger, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	buf := make([]byte, 64<<10)
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%s-%06d", prefix, i)
		for j := range buf {
			buf[j] = byte(i*31 + j*7 + len(prefix))
		}
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(buf); err != nil {
			t.Fatal(err)
		}
		must(t, f.Sync())
		must(t, f.Close())
		must(t, d.Sync())
		if _, err := fmt.Fprintf(l, "%s %x\n", name, sha256.Sum256(buf)); err != nil {
			t.Fatal(err)
		}
		must(t, l.Sync())
	}
}

// verifyLedger checks every complete line of ledger against the file in
// dir and returns how many it checked. A last line cut by the kill is not
// acknowledged (its file may or may not be there).
func verifyLedger(t *testing.T, dir, ledger string) int {
	t.Helper()
	f, err := os.Open(ledger)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data, err := os.ReadFile(ledger)
	if err != nil {
		t.Fatal(err)
	}
	complete := strings.HasSuffix(string(data), "\n")
	sc := bufio.NewScanner(f)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if !complete && len(lines) > 0 {
		lines = lines[:len(lines)-1]
	}
	if len(lines) == 0 {
		t.Fatalf("ledger %s lists no acknowledged write", ledger)
	}
	for _, line := range lines {
		name, want, ok := strings.Cut(line, " ")
		if !ok {
			t.Fatalf("ledger line %q", line)
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("acknowledged file %s: %v", name, err)
			continue
		}
		if got := fmt.Sprintf("%x", sha256.Sum256(b)); got != want {
			t.Errorf("acknowledged file %s: sha256 %s, want %s", name, got, want)
		}
	}
	return len(lines)
}
