package vm_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/drbd"
	"hwameistor.io/local/internal/vm"
)

const (
	drbdVG     = "drbdvg"
	drbdLVSize = "64m"
)

// TestDRBDFailover replicates a volume between two guests with the node
// agent's DRBD layer (csidriver/drbd) on the real kernel's DRBD 8.4: both
// replicas come up on zeroed logical volumes without an initial sync; the
// Primary's file system takes fsync'd writes (each acknowledged one listed
// on the host) until its guest is killed hard; the standby, UpToDate, is
// promoted without force and reads back every acknowledged file; the killed
// guest boots again, its replica rejoins and resyncs the writes it missed,
// and, made Primary again, reads back everything.
func TestDRBDFailover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	res := drbd.Resource{Name: "pvc-drbd-failover", Minor: v1.DRBDMinor(1), Port: v1.DRBDPort(1), MetaDisk: "internal"}
	for i, g := range cluster.Guests[:2] {
		res.Peers = append(res.Peers, drbd.Peer{Node: g.Name, Address: g.IP, NodeID: i, Disk: "/dev/" + drbdVG + "/" + res.Name})
	}
	ledger := filepath.Join(share, "drbd-acked.txt")
	_ = os.Remove(ledger)
	_ = os.Remove(ledger + ".after")
	t.Cleanup(func() { drbdCleanup(t, &res) })

	disks := strings.ReplaceAll(guestDisks(), ",", " ")
	for _, g := range cluster.Guests[:2] {
		// A zeroed backing volume, as the agent creates them
		// (zero-on-create): both sides start identical.
		sh(ctx, t, g, fmt.Sprintf("for d in %[1]s; do wipefs -a -q $d; done; lvm pvcreate -q -y %[1]s; lvm vgcreate -q %[2]s %[1]s; "+
			"lvm lvcreate -q -y -Zn -Wn -L %[3]s -n %[4]s %[2]s; dd if=/dev/zero of=/dev/%[2]s/%[4]s bs=1M oflag=direct status=none || true",
			disks, drbdVG, drbdLVSize, res.Name))
		drbdStep(ctx, t, g, &res, ledger, "up")
	}
	primary, standby := 0, 1
	drbdStep(ctx, t, cluster.Guests[primary], &res, ledger, "first-primary")

	// The writer runs in the Primary until its guest dies.
	g := cluster.Guests[primary]
	if _, err := g.Start(ctx, drbdEnv(&res, ledger, "writer"), "/tmp/drbd-writer.log",
		guestPath("guest.test"), "-test.v", "-test.count=1", "-test.run", "^TestDRBDStep$"); err != nil {
		t.Fatal(err)
	}
	acked := 0
	waitFor(ctx, t, "the Primary to acknowledge 40 writes", func() bool {
		acked = countLines(ledger)
		return acked >= 40
	})
	must(t, cluster.Kill(primary))
	t.Logf("killed %s after %d acknowledged writes", g.Name, acked)

	drbdStep(ctx, t, cluster.Guests[standby], &res, ledger, "failover")

	// The old Primary comes back: its replica rejoins as a Secondary and
	// takes the writes it missed.
	must(t, cluster.Restart(ctx, primary))
	drbdStep(ctx, t, cluster.Guests[primary], &res, ledger, "rejoin")
	drbdStep(ctx, t, cluster.Guests[standby], &res, ledger, "secondary")
	drbdStep(ctx, t, cluster.Guests[primary], &res, ledger, "verify")
}

func drbdEnv(res *drbd.Resource, ledger, step string) []string {
	b, _ := json.Marshal(res)
	return []string{"HWVM_DRBD_STEP=" + step, "HWVM_DRBD_RESOURCE=" + string(b),
		"HWVM_DRBD_LEDGER=" + filepath.Join(vm.GuestMountPoint, filepath.Base(ledger))}
}

func drbdStep(ctx context.Context, t *testing.T, g *vm.Guest, res *drbd.Resource, ledger, step string) {
	t.Helper()
	runGuestTests(t, g, "^TestDRBDStep$", drbdEnv(res, ledger, step)...)
}

// drbdCleanup takes the resource down and removes the volume group on
// both guests, booting a guest the test left dead, so the suite's next
// tests find clean guests.
func drbdCleanup(t *testing.T, res *drbd.Resource) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for i, g := range cluster.Guests[:2] {
		if _, err := g.Sh(ctx, "true"); err != nil {
			if err := cluster.Restart(ctx, i); err != nil {
				t.Errorf("restarting %s: %v", g.Name, err)
				continue
			}
			g = cluster.Guests[i]
		}
		script := fmt.Sprintf("umount /mnt/drbd 2>/dev/null || true; drbdsetup down %s 2>/dev/null || true; "+
			"lvm vgremove -q -f %s 2>/dev/null || true; for d in %s; do lvm pvremove -q -y -ff $d 2>/dev/null || true; wipefs -a -q $d; done",
			res.Name, drbdVG, strings.ReplaceAll(guestDisks(), ",", " "))
		if res, err := g.Sh(ctx, script); err != nil {
			t.Errorf("cleanup on %s: %v\n%s", g.Name, err, res.Stderr)
		}
	}
}

// countLines counts the complete lines of a file (0 when absent).
func countLines(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
	}
	return n
}
