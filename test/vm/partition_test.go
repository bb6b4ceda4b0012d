package vm_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/internal/vm"
)

// TestDRBDPartition: network partitions between the two replicas of an HA
// volume with the real node agents (--drbd) and the CSI node service in two
// guests, and the volume controller and the API server on the host, which
// breaks the tie (csidriver/fence). A writer on the Primary's guest fsyncs
// files and lists each acknowledged write on the host.
//
//  1. The standby's guest is cut off: the Primary's I/O freezes (DRBD 8.4,
//     fencing resource-and-stonith) until its agent has recorded the
//     standby outdated on the volume, then the writer goes on. Back, the
//     standby resyncs and its record goes.
//  2. The Primary's guest is cut off, from its peer and the API server
//     alike: its I/O freezes and no write is acknowledged from then on.
//     The standby's CSI node service records the Primary outdated and is
//     promoted; every acknowledged write reads back there. Back, the old
//     Primary finds itself recorded and stays frozen (resuming would turn
//     the writes in flight at the cut into acknowledged ones the standby
//     never got); rebooted, it rejoins, resyncs and reads back what the
//     standby served. Never two Primaries accepting writes.
func TestDRBDPartition(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	g1, g2 := cluster.Guests[0], cluster.Guests[1]
	c := api.Client
	startDRBDPair(ctx, t)
	const name, size = "pvc-partition", 16 << 20
	lv := createHAVolume(ctx, t, name, size, g1, g2)
	drbdOf := func(g *vm.Guest) *v1.ReplicaDRBDStatus { return replicaDRBD(ctx, name, g) }
	inSync := func(g *vm.Guest) bool { return replicaInSync(ctx, name, g) }
	outdated := func() string {
		v := &v1.LocalVolume{}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, v); err != nil {
			return "?"
		}
		return v.DRBDOutdated()
	}

	w := newGuestWriter("partition", name)
	t.Cleanup(func() {
		_ = cluster.Reconnect(0)
		_ = cluster.Reconnect(1)
		haMoveCleanup(t, name, w)
	})
	w.start(ctx, t, g1)
	waitFor(ctx, t, "the writer on "+g1.Name+" to acknowledge 20 writes", func() bool {
		w.mustNotHaveFailed(t)
		return w.acked() >= 20
	})

	// 1. The standby cut off.
	must(t, cluster.Isolate(1))
	cut := w.acked()
	waitFor(ctx, t, g1.Name+" to record "+g2.Name+" outdated and its writer to go on", func() bool {
		w.mustNotHaveFailed(t)
		return outdated() == g2.Name && w.acked() >= cut+20
	})
	if d := drbdOf(g1); d.Role != "Primary" || d.Connection == "Connected" || !d.MayServe {
		t.Errorf("%s with its standby cut off: %+v, want Primary, not connected, serving", g1.Name, *d)
	}
	t.Logf("standby cut off: %s recorded outdated, %d writes acknowledged meanwhile", g2.Name, w.acked()-cut)
	must(t, cluster.Reconnect(1))
	waitFor(ctx, t, g2.Name+" resynced and its record gone", func() bool {
		w.mustNotHaveFailed(t)
		return outdated() == "" && inSync(g1) && inSync(g2)
	})

	// 2. The Primary cut off, from its peer and from the API server.
	must(t, cluster.Isolate(0))
	cut = w.acked()
	waitFor(ctx, t, g2.Name+" to lose its peer", func() bool { return drbdOf(g2).Connection != "Connected" })
	runGuestTests(t, g2, "^TestHAMoveStep$", w.env(g2, "verify-cut")...)
	if got := outdated(); got != g1.Name {
		t.Errorf("after %s took over, the volume records %q outdated, want %s", g2.Name, got, g1.Name)
	}
	// One write may have been acknowledged as the link went down (its
	// line is appended after its fsync returned).
	if n := w.acked(); n > cut+1 {
		t.Errorf("%d writes were acknowledged on the cut-off Primary %s after the cut: two Primaries took writes", n-cut, g1.Name)
	}
	atTakeover := w.acked()
	must(t, cluster.Reconnect(0))
	// Back, the old Primary finds itself recorded and stays frozen:
	// resuming would complete the writes in flight at the cut as
	// acknowledged although the standby never got them. Its kernel is
	// the ground truth: Primary, I/O suspended, not connected.
	reported := wait.PollUntilContextTimeout(ctx, time.Second, 2*time.Minute, true, func(context.Context) (bool, error) {
		return strings.Contains(drbdOf(g1).Message, "lost to its peer on "+g2.Name), nil
	}) == nil
	if !reported {
		out, _ := g1.Sh(ctx, "cat /proc/drbd; dmesg | grep -i drbd | tail -n 20; pkill -QUIT -x hwameistor-node; sleep 1; tail -n 150 "+nodeLog)
		t.Errorf("%s did not report that it lost to %s within 2 minutes (status.drbd %+v); its state:\n%s", g1.Name, g2.Name, *drbdOf(g1), out.Stdout)
	}
	time.Sleep(10 * time.Second)
	proc := sh(ctx, t, g1, "cat /proc/drbd")
	if st := regexp.MustCompile(fmt.Sprintf(`(?m)^ *%d: cs:(\S+) ro:(\S+) ds:\S+ [A-C ] ([rs])`, v1.DRBDMinor(lv.Spec.Config.ResourceID))).FindStringSubmatch(proc); st == nil ||
		st[1] == "Connected" || !strings.HasPrefix(st[2], "Primary/") || st[3] != "s" {
		t.Errorf("%s after it lost to %s: want Primary, I/O suspended ('s'), not connected:\n%s", g1.Name, g2.Name, proc)
	}
	if got := outdated(); got != g1.Name {
		t.Errorf("after %s came back, the volume records %q outdated, want %s", g1.Name, got, g1.Name)
	}
	if n := w.acked(); n != atTakeover {
		t.Errorf("%d writes were acknowledged on %s after %s took over", n-atTakeover, g1.Name, g2.Name)
	}
	if d := drbdOf(g1); d.MayServe {
		t.Errorf("%s lost to %s and may serve: %+v", g1.Name, g2.Name, *d)
	}
	w.mustNotHaveFailed(t) // frozen, not failed
	// The operator reboots it, as its message says; its replica rejoins.
	must(t, cluster.Restart(ctx, 0))
	w.pid, g1 = 0, cluster.Guests[0]
	runAgent(ctx, t, g1, "--drbd")
	waitFor(ctx, t, g1.Name+" rejoined, resynced and its record gone", func() bool {
		return outdated() == "" && inSync(g1) && inSync(g2)
	})
	// The rejoined replica holds what the standby served.
	runGuestTests(t, g1, "^TestHAMoveStep$", w.env(g1, "verify-cut")...)

	must(t, c.Delete(ctx, lv))
	waitFor(ctx, t, name+" deleted", func() bool { return apierrors.IsNotFound(c.Get(ctx, client.ObjectKeyFromObject(lv), lv)) })
}
