package vm_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/backend/lvm"
	"hwameistor.io/local/internal/vm"
)

// TestHAOnlineMoveBetweenGuests moves a replica of an HA volume in use to
// a third guest with a LocalVolumeMigrate, online: the real node agent
// (hwameistor-node --drbd) in the three guests, the volume, nodecerts and
// migrate controllers on the host. The volume is replicated on g1 and g2;
// a writer in g1, staged through the CSI node service (Primary, ext4),
// writes an fsync'd file every 100 ms or so and lists each acknowledged
// write in a ledger on the host (round 128 files, each rewrite with new
// content). The migration moves g2's replica to g3 while it writes: g2's
// replica leaves the DRBD resource, the volume names g3 instead, g1's
// agent switches its resource to g3's, g3's agent brings a zeroed replica
// up and DRBD resyncs it in full from g1; then g2's replica and its
// logical volume are deleted. The writer never stops and never sees an
// error, and writes are acknowledged during the move. Stopped and
// unstaged on g1, the volume is staged on g3, whose replica reads back
// every file the ledger lists as its last acknowledged write: g3 holds
// every acknowledged byte, written before and during the move. Deleting
// the volume takes DRBD down and removes the logical volumes everywhere.
func TestHAOnlineMoveBetweenGuests(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	ctrl.SetLogger(klog.Background())
	if len(cluster.Guests) < 3 {
		t.Fatalf("needs three guests, the cluster has %d", len(cluster.Guests))
	}
	g1, g2, g3 := cluster.Guests[0], cluster.Guests[1], cluster.Guests[2]
	c := api.Client
	createNodes(ctx, t)
	startMoveControllers(t)
	for _, g := range cluster.Guests {
		startAgent(ctx, t, g, "--drbd")
	}
	waitFor(ctx, t, "every node reports its pool, its storage IP and DRBD", func() bool {
		for _, g := range cluster.Guests {
			lsn := &v1.LocalStorageNode{}
			if c.Get(ctx, client.ObjectKey{Name: g.Name}, lsn) != nil || lsn.Status.Pools[v1.PoolNameHDD].TotalCapacityBytes == 0 || lsn.Spec.StorageIP == "" ||
				!meta.IsStatusConditionTrue(lsn.Status.Conditions, v1.ConditionDRBD) {
				return false
			}
		}
		return true
	})

	// 32 MiB: the full resync of the new replica runs at about 350 KiB/s
	// under emulation while the writer writes.
	const name, size = "pvc-hamove", 32 << 20
	lv := createHAVolume(ctx, t, name, size, g1, g2)
	id := lv.Spec.Config.ResourceID
	replica := func(g *vm.Guest) (*v1.LocalVolumeReplica, error) {
		rep := &v1.LocalVolumeReplica{}
		return rep, c.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(name, g.Name)}, rep)
	}
	inSync := func(g *vm.Guest) bool { return replicaInSync(ctx, name, g) }

	// The writer in g1, in the background; the ledger, the error file and
	// the stop file are on the share.
	w := newGuestWriter("hamove", name)
	t.Cleanup(func() { haMoveCleanup(t, name, w) })
	w.start(ctx, t, g1)
	waitFor(ctx, t, "the writer on "+g1.Name+" to acknowledge 20 writes", func() bool {
		w.mustNotHaveFailed(t)
		return w.acked() >= 20
	})
	if d := replicaDRBD(ctx, name, g1); d.Role != "Primary" {
		t.Fatalf("%s's replica with the writer running is not reported Primary: %+v", g1.Name, *d)
	}

	// The move, while the writer writes: each state's first sight with
	// the number of acknowledged writes then.
	start := time.Now()
	atStart := w.acked()
	mig := startMigration(ctx, t, "hamove", name, g2.Name, g3.Name)
	seen := map[v1.State]int{}
	var order []v1.State
	lastMsg := ""
	var syncSince time.Time
	logged := false
	waitFor(ctx, t, "migration hamove Completed with the writer running", func() bool {
		w.mustNotHaveFailed(t)
		if err := c.Get(ctx, client.ObjectKeyFromObject(mig), mig); err != nil {
			return false
		}
		st := mig.Status.State
		if _, ok := seen[st]; !ok {
			seen[st] = w.acked()
			order = append(order, st)
		}
		if mig.Status.Message != lastMsg {
			lastMsg = mig.Status.Message
			var d any = "none"
			if rep, err := replica(g3); err == nil && rep.Status.DRBD != nil {
				d = *rep.Status.DRBD
			}
			t.Logf("%5.1fs %s: %s\n  %s's replica: %+v", time.Since(start).Seconds(), st, lastMsg, g3.Name, d)
		}
		if st == v1.OperationStateSyncReplica && syncSince.IsZero() {
			syncSince = time.Now()
		}
		if !logged && !syncSince.IsZero() && time.Since(syncSince) > 20*time.Second {
			// The resync's speed, as DRBD sees it on both sides.
			logged = true
			for _, g := range []*vm.Guest{g1, g3} {
				if res, err := g.Sh(ctx, "cat /proc/drbd"); err == nil {
					t.Logf("%s during the resync:\n%s", g.Name, res.Stdout)
				}
			}
		}
		if st == v1.OperationStateFailed || st == v1.OperationStateAborted {
			t.Fatalf("migration hamove ended %s: %s", st, mig.Status.Message)
		}
		return st == v1.OperationStateCompleted
	})
	atEnd := w.acked()
	var states []string
	for _, st := range order {
		label := string(st)
		if label == "" {
			label = "Submitted"
		}
		states = append(states, fmt.Sprintf("%s at %d", label, seen[st]))
	}
	t.Logf("moved in %s; writes acknowledged: %d at the start, %s", time.Since(start).Round(time.Second), atStart, strings.Join(states, ", "))
	if atEnd <= atStart {
		t.Errorf("no write acknowledged during the move: %d writes before, %d at its completion", atStart, atEnd)
	}
	if sync, ok := seen[v1.OperationStateSyncReplica]; ok && atEnd <= sync {
		t.Errorf("no write acknowledged during the resync: %d writes when it started, %d at the completion", sync, atEnd)
	}

	// The volume names g1 and g3; g2's replica, logical volume and DRBD
	// minor are gone; g3's replica is connected to g1's, in sync, may
	// serve; g1's still serves the writer and has switched its peer.
	must(t, c.Get(ctx, client.ObjectKeyFromObject(lv), lv))
	if got := lv.ReplicaNodes(); !slices.Equal(got, []string{g1.Name, g3.Name}) {
		t.Errorf("the volume's replicas after the move: %v, want [%s %s]", got, g1.Name, g3.Name)
	}
	if got := lv.Spec.Accessibility.Nodes; !slices.Equal(got, []string{g1.Name, g3.Name}) {
		t.Errorf("the volume's accessibility after the move: %v, want [%s %s]", got, g1.Name, g3.Name)
	}
	if _, err := replica(g2); !apierrors.IsNotFound(err) {
		t.Errorf("the replica on %s after the move: %v, want it gone", g2.Name, err)
	}
	waitFor(ctx, t, g2.Name+"'s logical volume removed", func() bool {
		out, err := g2.Run(ctx, nil, "lvm", "lvs", "--noheadings", "-o", "lv_name", vg)
		return err == nil && !strings.Contains(out.Stdout, name)
	})
	minor := regexp.MustCompile(fmt.Sprintf(`(?m)^ *%d: cs:`, v1.DRBDMinor(id)))
	if out := sh(ctx, t, g2, "cat /proc/drbd"); minor.MatchString(out) {
		t.Errorf("%s still has the DRBD minor %d:\n%s", g2.Name, v1.DRBDMinor(id), out)
	}
	if !inSync(g3) {
		r3, _ := replica(g3)
		t.Errorf("after the move: %s's replica %+v; want Connected, UpToDate, may serve", g3.Name, r3.Status.DRBD)
	}
	// g1's agent reports the resync's end at its next look (every 3 s
	// while not in sync).
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	waitFor(sctx, t, g1.Name+"'s replica to report the resync's end (Connected, UpToDate on both sides)", func() bool { return inSync(g1) })
	scancel()
	if rep, err := replica(g3); err == nil {
		if d := rep.Status.DRBD; d == nil || d.Role != "Secondary" || d.Device != fmt.Sprintf("/dev/drbd%d", v1.DRBDMinor(id)) || d.LeftFor != "" {
			t.Errorf("%s's new replica: DRBD status %+v, want Secondary on /dev/drbd%d", g3.Name, d, v1.DRBDMinor(id))
		}
		if rep.Annotations[v1.DRBDJoinAnnotation] != "" || rep.Status.State != v1.StateReady {
			t.Errorf("%s's new replica: state %s, annotations %v, want Ready without %s", g3.Name, rep.Status.State, rep.Annotations, v1.DRBDJoinAnnotation)
		}
	}
	if rep, err := replica(g1); err != nil || rep.Status.DRBD == nil || rep.Status.DRBD.Role != "Primary" {
		t.Errorf("%s's replica after the move is not Primary (the writer's): %+v, %v", g1.Name, rep.Status.DRBD, err)
	}
	if out := sh(ctx, t, g1, "drbdsetup show "+name); !strings.Contains(out, g3.IP+":") || strings.Contains(out, g2.IP+":") {
		t.Errorf("%s's DRBD resource is not connected to %s (%s) alone:\n%s", g1.Name, g3.Name, g3.IP, out)
	}
	waitFor(ctx, t, "the writer to go on after the move", func() bool {
		w.mustNotHaveFailed(t)
		return w.acked() >= atEnd+5
	})

	// Stopped, the writer unstages (unmounted, demoted) and exits.
	must(t, os.WriteFile(w.stopFile, nil, 0o644))
	var log string
	waitFor(ctx, t, "the writer on "+g1.Name+" to stop and unstage", func() bool {
		res, err := g1.Run(ctx, nil, "cat", w.log)
		log = res.Stdout
		return err == nil && regexp.MustCompile(`(?m)^(PASS|FAIL)$`).MatchString(log)
	})
	if !strings.Contains(log, "--- PASS") {
		t.Fatalf("the writer on %s failed:\n%s", g1.Name, log)
	}
	w.pid = 0
	w.mustNotHaveFailed(t)
	t.Logf("the writer acknowledged %d writes, %d of them during the move", w.acked(), atEnd-atStart)

	// g3 alone reads back everything, promoted in its turn.
	runGuestTests(t, g3, "^TestHAMoveStep$", w.env(g3, "verify")...)

	// Deleting the volume takes DRBD down and removes its LVs everywhere.
	must(t, c.Delete(ctx, lv))
	waitFor(ctx, t, "the volume gone", func() bool {
		return apierrors.IsNotFound(c.Get(ctx, client.ObjectKeyFromObject(lv), &v1.LocalVolume{}))
	})
	for _, g := range cluster.Guests {
		out := sh(ctx, t, g, fmt.Sprintf("cat /proc/drbd; lvm lvs --noheadings -o lv_name %s", vg))
		if strings.Contains(out, name) || minor.MatchString(out) {
			t.Errorf("%s after the volume's deletion still has its LV or DRBD minor:\n%s", g.Name, out)
		}
	}
}

// haMoveCleanup, after a failure, shows the writer's log and each guest's
// DRBD state, stops the writer and the node agents, unmounts, takes the
// resource down, and removes the test's objects, so the next tests find
// clean guests (startAgent's cleanups, which run after this one, remove
// the volume groups).
func haMoveCleanup(t *testing.T, name string, w *guestWriter) {
	_ = os.WriteFile(w.stopFile, nil, 0o644)
	if !t.Failed() {
		return
	}
	for i, g := range cluster.Guests {
		// Each guest on its own clock, and lvm kept off DRBD devices:
		// a frozen one would hang its scan.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		script := fmt.Sprintf("cat /proc/drbd; dmesg | grep -i drbd | tail -n 30; ps -eo pid,stat,wchan:20,args | grep -E 'hwameistor|lvm|drbd' | grep -v grep; "+
			"lvm lvs --config '%s' --noheadings -o lv_name,lv_attr %s || true", lvm.DRBDFilterConfig, vg)
		if i == 0 {
			script = fmt.Sprintf("tail -n 60 %s || true; ", w.log) + script
		}
		if res, err := g.Sh(ctx, script); err == nil {
			t.Logf("%s after the failure:\n%s", g.Name, res.Stdout)
		}
		kill := ""
		if i == 0 && w.pid > 0 {
			kill = fmt.Sprintf("kill %d 2>/dev/null || true; sleep 1; ", w.pid)
		}
		if _, err := g.Sh(ctx, kill+"pkill -x hwameistor-node || true; sleep 1; umount /tmp/hamove-staging 2>/dev/null || true; "+
			"drbdsetup down "+name+" 2>/dev/null || true"); err != nil {
			t.Errorf("cleaning up %s: %v", g.Name, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := api.Client
	_ = c.Delete(ctx, &v1.LocalVolumeMigrate{ObjectMeta: metav1.ObjectMeta{Name: "hamove"}})
	unfinalize := func(o client.Object) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
			return
		}
		patch := client.MergeFrom(o.DeepCopyObject().(client.Object))
		o.SetFinalizers(nil)
		_ = c.Patch(ctx, o, patch)
		_ = c.Delete(ctx, o)
	}
	unfinalize(&v1.LocalVolumeMigrate{ObjectMeta: metav1.ObjectMeta{Name: "hamove"}})
	unfinalize(&v1.LocalVolume{ObjectMeta: metav1.ObjectMeta{Name: name}})
	reps := &v1.LocalVolumeReplicaList{}
	if c.List(ctx, reps) == nil {
		for i := range reps.Items {
			if reps.Items[i].Spec.VolumeName == name {
				unfinalize(&reps.Items[i])
			}
		}
	}
}
