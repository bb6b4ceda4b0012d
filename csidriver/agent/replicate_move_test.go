package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/backend/command"
	"hwameistor.io/local/csidriver/drbd"
)

// The migration of these tests.
const drbdMigration = "mig-1"

// procJoinSyncTarget: a move's new replica resyncing in full from its
// UpToDate peer (the Primary).
var procJoinSyncTarget = drbdProc(" 7: cs:SyncTarget ro:Secondary/Primary ds:Inconsistent/UpToDate C r-----",
	"    ns:0 nr:474112 dw:474112 dr:0 al:0 bm:0 lo:0 pe:2 ua:0 ap:0 ep:1 wo:f oos:574464",
	"\t[========>...........] sync'ed: 45.2% (574464/1048576)K",
	"\tfinish: 0:00:14 speed: 39,474 (39,474) K/sec")

// drbdInSync is the status.drbd of a replica up and in sync.
func drbdInSync(role string) *v1.ReplicaDRBDStatus {
	return &v1.ReplicaDRBDStatus{Device: drbdDev, Port: drbdPort, SizedBytes: gi, Role: role, DiskState: "UpToDate",
		Connection: "Connected", PeerDiskState: "UpToDate", InSyncPercent: "100", MayServe: true}
}

// writeResFile puts a resource file there, as an earlier replicate did.
func (d *drbdAgent) writeResFile(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(d.dir, drbdVol+".res"), []byte("resource pvc-ha {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// annotate sets an annotation on the replica on node (as the migration
// controller does), "" removes it.
func (d *drbdAgent) annotate(t *testing.T, node, key, value string) {
	t.Helper()
	rep := d.replica(t, node)
	if value == "" {
		delete(rep.Annotations, key)
	} else {
		if rep.Annotations == nil {
			rep.Annotations = map[string]string{}
		}
		rep.Annotations[key] = value
	}
	if err := d.c.Update(context.Background(), rep); err != nil {
		t.Fatal(err)
	}
}

// wantLeft checks the replica on node left the resource for the
// migration: device and port kept, no DRBD state, not serving.
func (d *drbdAgent) wantLeft(t *testing.T, node string) {
	t.Helper()
	rep := d.replica(t, node)
	got := rep.Status.DRBD
	if got == nil {
		t.Fatalf("status.drbd of the replica on %s is empty, want it left for %s", node, drbdMigration)
	}
	want := &v1.ReplicaDRBDStatus{Device: drbdDev, Port: drbdPort, SizedBytes: gi, LeftFor: drbdMigration, Message: got.Message}
	if !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("status.drbd of the replica on %s =\n %+v\nwant\n %+v", node, got, want)
	}
	if !strings.Contains(got.Message, "left the DRBD resource") || !strings.Contains(got.Message, drbdMigration) {
		t.Errorf("status.drbd.message = %q, want it to say it left for %s", got.Message, drbdMigration)
	}
	if got.MayServe {
		t.Error("a replica that left the DRBD resource may serve")
	}
	if !rep.DRBDLeft(drbdMigration) {
		t.Errorf("DRBDLeft(%s) = false after leaving", drbdMigration)
	}
	if rep.DRBDLeft("mig-other") {
		t.Error("DRBDLeft of another migration = true")
	}
	if why := rep.DRBDNotServing(); !strings.Contains(why, drbdMigration) {
		t.Errorf("DRBDNotServing = %q, want it to name migration %s", why, drbdMigration)
	}
}

// TestReplicateLeave: a Secondary in sync asked to leave takes the
// resource down once (drbdadm down), removes its file, records leftFor
// with its device and port, and then stays down without running anything
// or writing again.
func TestReplicateLeave(t *testing.T) {
	for _, node := range []string{"n1", "n2"} {
		t.Run(node, func(t *testing.T) {
			o := newDRBDObjects()
			d := newDRBDAgent(t, o, node, func(adm func(...string) []string) []command.Call {
				return admCalls(adm("down", drbdVol))
			}, procInSync, procInSync, procDown)

			// Up and in sync first (the resource file written).
			if after, err := d.replicate(t, node); after != drbdSteady || err != nil {
				t.Fatalf("replicate in sync = %v, %v; want %v, nil", after, err, drbdSteady)
			}
			d.wantDRBD(t, node, drbdInSync("Secondary"))
			if rep := d.replica(t, node); rep.DRBDLeft(drbdMigration) {
				t.Error("DRBDLeft before the leave annotation")
			}

			d.annotate(t, node, v1.DRBDLeaveAnnotation, drbdMigration)
			if rep := d.replica(t, node); rep.DRBDLeft(drbdMigration) {
				t.Error("DRBDLeft before its agent took the resource down")
			}
			after, err := d.replicate(t, node)
			if after != drbdSteady || err != nil {
				t.Errorf("leave = %v, %v; want %v, nil", after, err, drbdSteady)
			}
			if err := d.runner.Verify(); err != nil {
				t.Errorf("leave: %v", err)
			}
			d.wantLeft(t, node)
			// The file goes: nothing brings the resource up again from
			// it (a restarted agent, unreplicate); a rollback writes it.
			d.wantNoFile(t)

			// Again, the resource down: nothing runs, nothing written.
			rv := d.replica(t, node).ResourceVersion
			if after, err := d.replicate(t, node); after != drbdSteady || err != nil {
				t.Errorf("leave again = %v, %v; want %v, nil", after, err, drbdSteady)
			}
			if got := d.replica(t, node).ResourceVersion; got != rv {
				t.Errorf("an unchanged leave was written again (resourceVersion %s → %s)", rv, got)
			}
			d.wantLeft(t, node)
			d.verify(t)
		})
	}
}

// TestReplicateLeaveNotConfigured: a replica whose resource is not up
// (a reboot) leaves without a command; its device stays recorded.
func TestReplicateLeaveNotConfigured(t *testing.T) {
	o := newDRBDObjects()
	o.reps["n2"].Status.DRBD = drbdInSync("Secondary")
	o.reps["n2"].Annotations = map[string]string{v1.DRBDLeaveAnnotation: drbdMigration}
	d := newDRBDAgent(t, o, "n2", nil, procDown)
	if after, err := d.replicate(t, "n2"); after != drbdSteady || err != nil {
		t.Errorf("leave = %v, %v; want %v, nil", after, err, drbdSteady)
	}
	d.verify(t)
	d.wantNoFile(t)
	d.wantLeft(t, "n2")
}

// TestReplicateLeavePrimary: a Primary (the volume in use here) does not
// take the resource down: its state stays, a message says why, and it
// leaves once it is Secondary.
func TestReplicateLeavePrimary(t *testing.T) {
	o := newDRBDObjects()
	o.reps["n1"].Status.DRBD = drbdInSync("Primary")
	o.reps["n1"].Annotations = map[string]string{v1.DRBDLeaveAnnotation: drbdMigration}
	d := newDRBDAgent(t, o, "n1", func(adm func(...string) []string) []command.Call {
		return admCalls(adm("down", drbdVol))
	}, procPrimaryInSync, procInSync)
	d.writeResFile(t)

	after, err := d.replicate(t, "n1")
	if after != drbdSettling || err != nil {
		t.Errorf("leave while Primary = %v, %v; want %v, nil", after, err, drbdSettling)
	}
	if err := d.runner.Verify(); err == nil {
		t.Error("down ran while Primary")
	}
	rep := d.replica(t, "n1")
	got := rep.Status.DRBD
	want := drbdInSync("Primary")
	if got != nil {
		want.Message = got.Message
	}
	if !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("status.drbd =\n %+v\nwant the state kept\n %+v", got, want)
	}
	if got == nil || !strings.Contains(got.Message, "in use") || !strings.Contains(got.Message, drbdMigration) || got.LeftFor != "" {
		t.Errorf("status.drbd = %+v, want a message that the volume is in use here and no leftFor", got)
	}
	if rep.DRBDLeft(drbdMigration) {
		t.Error("DRBDLeft while Primary")
	}
	if d.resFile(t) == "" {
		t.Error("the resource file was removed while Primary")
	}
	// Asked to leave, it no longer counts as a replica to serve from.
	if why := rep.DRBDNotServing(); !strings.Contains(why, drbdMigration) {
		t.Errorf("DRBDNotServing of the Primary asked to leave = %q, want it to name migration %s", why, drbdMigration)
	}

	// The pod moved: Secondary now, it leaves.
	if after, err := d.replicate(t, "n1"); after != drbdSteady || err != nil {
		t.Errorf("leave once Secondary = %v, %v; want %v, nil", after, err, drbdSteady)
	}
	d.verify(t)
	d.wantLeft(t, "n1")
	d.wantNoFile(t)
}

// TestReplicateLeaveDownFails: a failing down is not returned as an error
// but said in the message (with drbdadm's error); leftFor stays empty and
// the next attempt takes it down.
func TestReplicateLeaveDownFails(t *testing.T) {
	o := newDRBDObjects()
	o.reps["n2"].Status.DRBD = drbdInSync("Secondary")
	o.reps["n2"].Annotations = map[string]string{v1.DRBDLeaveAnnotation: drbdMigration}
	d := newDRBDAgent(t, o, "n2", func(adm func(...string) []string) []command.Call {
		return []command.Call{
			{Argv: adm("down", drbdVol), ExitCode: 11, Stderr: "7: State change failed: (-12) Device is held open by someone\n"},
			{Argv: adm("down", drbdVol)},
		}
	}, procInSync, procInSync)
	d.writeResFile(t)

	after, err := d.replicate(t, "n2")
	if after != drbdSettling || err != nil {
		t.Errorf("leave with down failing = %v, %v; want %v, nil", after, err, drbdSettling)
	}
	rep := d.replica(t, "n2")
	got := rep.Status.DRBD
	want := drbdInSync("Secondary")
	if got != nil {
		want.Message = got.Message
	}
	if !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("status.drbd =\n %+v\nwant the state kept\n %+v", got, want)
	}
	if got == nil || !strings.Contains(got.Message, "Device is held open by someone") || !strings.Contains(got.Message, drbdMigration) {
		t.Errorf("status.drbd = %+v, want a message with the down error", got)
	}
	if rep.DRBDLeft(drbdMigration) {
		t.Error("DRBDLeft although down failed")
	}
	if d.resFile(t) == "" {
		t.Error("the resource file was removed although down failed (the next attempt could not take it down)")
	}

	// The next attempt succeeds.
	if after, err := d.replicate(t, "n2"); after != drbdSteady || err != nil {
		t.Errorf("leave again = %v, %v; want %v, nil", after, err, drbdSteady)
	}
	d.verify(t)
	d.wantLeft(t, "n2")
	d.wantNoFile(t)
}

// addNode3 adds node n3 (its LocalStorageNode) and the move's new replica
// there, allocated and annotated with the migration.
func (d *drbdAgent) addNode3(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	lsn := &v1.LocalStorageNode{ObjectMeta: metav1.ObjectMeta{Name: "n3"}, Spec: v1.LocalStorageNodeSpec{Hostname: "n3", StorageIP: "10.0.0.3:9810"}}
	if err := d.c.Create(ctx, lsn); err != nil {
		t.Fatal(err)
	}
	rep := &v1.LocalVolumeReplica{ObjectMeta: metav1.ObjectMeta{Name: v1.ReplicaName(drbdVol, "n3"),
		Annotations: map[string]string{v1.DRBDJoinAnnotation: drbdMigration}},
		Spec: v1.LocalVolumeReplicaSpec{VolumeName: drbdVol, NodeName: "n3", PoolName: v1.PoolNameHDD, RequiredCapacityBytes: gi}}
	if err := d.c.Create(ctx, rep); err != nil {
		t.Fatal(err)
	}
	rep.Status = v1.LocalVolumeReplicaStatus{State: v1.StateReady, DevicePath: drbdDisk("n3"), StoragePath: drbdDisk("n3")}
	if err := d.c.Status().Update(ctx, rep); err != nil {
		t.Fatal(err)
	}
}

// TestReplicateJoin: a move's new replica waits (nothing read, written or
// run) while the volume names n1 and n2 only; once the volume names its
// node instead of the source's, it gets metadata, comes up and resyncs
// from its peer.
func TestReplicateJoin(t *testing.T) {
	for _, tc := range []struct {
		source string // the replica that leaves
		stays  string
	}{{"n2", "n1"}, {"n1", "n2"}} {
		t.Run("replacing "+tc.source, func(t *testing.T) {
			o := newDRBDObjects()
			d := newDRBDAgent(t, o, "n3", func(adm func(...string) []string) []command.Call {
				return admCalls(adm("create-md", "--force", drbdVol), adm("up", drbdVol))
			}, procDown, procJoinSyncTarget)
			d.addNode3(t)

			after, err := d.replicate(t, "n3")
			if after != drbdSettling || err != nil {
				t.Errorf("replicate = %v, %v; want %v, nil", after, err, drbdSettling)
			}
			if err := d.runner.Verify(); err == nil {
				t.Error("commands ran before the volume names n3")
			}
			if d.procs.reads != 0 {
				t.Errorf("/proc/drbd read %d times before the volume names n3, want 0", d.procs.reads)
			}
			d.wantNoFile(t)
			rep := d.replica(t, "n3")
			got := rep.Status.DRBD
			if got == nil || !strings.HasPrefix(got.Message, "waiting to join") || !equality.Semantic.DeepEqual(*got, v1.ReplicaDRBDStatus{Message: got.Message}) {
				t.Errorf("status.drbd = %+v, want only a message waiting to join", got)
			}
			if !rep.DRBDJoining() {
				t.Error("DRBDJoining = false for a new replica waiting to join")
			}
			// A joining replica does not make the volume unmanaged.
			reps := []*v1.LocalVolumeReplica{d.replica(t, "n1"), d.replica(t, "n2"), rep}
			reps[0].Status.DRBD, reps[1].Status.DRBD = drbdInSync("Primary"), drbdInSync("Secondary")
			if !v1.DRBDManaged(reps) {
				t.Error("DRBDManaged = false with a joining replica")
			}

			// Unchanged: not written again.
			rv := rep.ResourceVersion
			if after, err := d.replicate(t, "n3"); after != drbdSettling || err != nil {
				t.Errorf("replicate again = %v, %v", after, err)
			}
			if got := d.replica(t, "n3").ResourceVersion; got != rv {
				t.Errorf("an unchanged wait was written again (resourceVersion %s → %s)", rv, got)
			}

			// The migration switches the volume to n3: in place, as
			// controllers/internal/volumes.ReplaceNode does (n3 takes the
			// source's position, id and primary flag aside).
			ctx := context.Background()
			lv := &v1.LocalVolume{}
			if err := d.c.Get(ctx, client.ObjectKey{Name: drbdVol}, lv); err != nil {
				t.Fatal(err)
			}
			for i := range lv.Spec.Config.Replicas {
				if r := &lv.Spec.Config.Replicas[i]; r.Hostname == tc.source {
					*r = v1.VolumeReplica{ID: 3, Hostname: "n3", Primary: r.Primary}
				}
			}
			lv.Spec.Config.Version++
			if err := d.c.Update(ctx, lv); err != nil {
				t.Fatal(err)
			}
			after, err = d.replicate(t, "n3")
			if after != drbdSettling || err != nil {
				t.Errorf("replicate once named = %v, %v; want %v, nil", after, err, drbdSettling)
			}
			d.verify(t)
			rep = d.replica(t, "n3")
			d.wantDRBD(t, "n3", &v1.ReplicaDRBDStatus{Device: drbdDev, Port: drbdPort, SizedBytes: gi, Role: "Secondary", DiskState: "Inconsistent",
				Connection: "SyncTarget", PeerDiskState: "UpToDate", InSyncPercent: "45.2", OutOfSyncBytes: 574464 << 10})
			if rep.DRBDJoining() {
				t.Error("DRBDJoining = true once it has a DRBD device")
			}
			file := d.resFile(t)
			for _, part := range []string{
				"  on n3 {\n    device /dev/drbd7 minor 7;\n    disk /dev/vg-n3/pvc-ha;\n    address ipv4 10.0.0.3:43007;\n    meta-disk internal;\n  }",
				"  on " + tc.stays + " {\n    device /dev/drbd7 minor 7;\n    disk /dev/vg-" + tc.stays + "/pvc-ha;\n",
			} {
				if !strings.Contains(file, part) {
					t.Errorf("resource file lacks %q:\n%s", part, file)
				}
			}
			if strings.Contains(file, "on "+tc.source+" {") {
				t.Errorf("resource file still names the source %s:\n%s", tc.source, file)
			}
		})
	}
}

// TestReplicateLeaveRollback: without the annotation again, a replica
// that left is brought up on its metadata (no create-md): its state is
// read back and leftFor cleared.
func TestReplicateLeaveRollback(t *testing.T) {
	o := newDRBDObjects()
	o.reps["n2"].Status.DRBD = &v1.ReplicaDRBDStatus{Device: drbdDev, Port: drbdPort, SizedBytes: gi, LeftFor: drbdMigration,
		Message: "left the DRBD resource for migration mig-1: down here, the logical volume kept until the migration ends"}
	d := newDRBDAgent(t, o, "n2", func(adm func(...string) []string) []command.Call {
		return admCalls(adm("up", drbdVol))
	}, procDown, procUpAlone)
	after, err := d.replicate(t, "n2")
	if after != drbdSettling || err != nil {
		t.Errorf("replicate = %v, %v; want %v, nil", after, err, drbdSettling)
	}
	d.verify(t)
	d.wantResFile(t)
	d.wantDRBD(t, "n2", &v1.ReplicaDRBDStatus{Device: drbdDev, Port: drbdPort, SizedBytes: gi, Role: "Secondary", DiskState: "UpToDate",
		Connection: "WFConnection", PeerDiskState: "DUnknown", InSyncPercent: "100", Message: upAloneMessage})
	if rep := d.replica(t, "n2"); rep.DRBDLeft(drbdMigration) {
		t.Error("DRBDLeft after the rollback")
	}
}

// TestReplicateLeaveThenRollback: the whole round trip on one agent: in
// sync, left (down), annotation removed, up again without create-md.
func TestReplicateLeaveThenRollback(t *testing.T) {
	o := newDRBDObjects()
	d := newDRBDAgent(t, o, "n2", func(adm func(...string) []string) []command.Call {
		return admCalls(adm("create-md", "--force", drbdVol), adm("up", drbdVol), adm("down", drbdVol), adm("up", drbdVol))
	}, procDown, procNewConnected, procInSync, procInSync, procDown, procInSync)
	steps := []struct {
		name  string
		edit  func()
		after time.Duration
		want  *v1.ReplicaDRBDStatus
	}{
		{name: "new", after: drbdSettling, want: &v1.ReplicaDRBDStatus{Device: drbdDev, Port: drbdPort, SizedBytes: gi, Role: "Secondary", DiskState: "Inconsistent",
			Connection: "Connected", PeerDiskState: "Inconsistent", InSyncPercent: "0", OutOfSyncBytes: 65496 << 10}},
		{name: "in sync", after: drbdSteady, want: drbdInSync("Secondary")},
		{name: "leave", edit: func() { d.annotate(t, "n2", v1.DRBDLeaveAnnotation, drbdMigration) }, after: drbdSteady},
		{name: "rollback", edit: func() { d.annotate(t, "n2", v1.DRBDLeaveAnnotation, "") }, after: drbdSteady, want: drbdInSync("Secondary")},
	}
	for _, s := range steps {
		if s.edit != nil {
			s.edit()
		}
		if after, err := d.replicate(t, "n2"); after != s.after || err != nil {
			t.Errorf("%s: replicate = %v, %v; want %v, nil", s.name, after, err, s.after)
		}
		if s.want == nil {
			d.wantLeft(t, "n2")
			d.wantNoFile(t)
		} else {
			d.wantDRBD(t, "n2", s.want)
			d.wantResFile(t)
		}
	}
	d.verify(t)
}

// TestReplicateLeaveKeepsTheOnlyUpToDateCopy: a Secondary must not leave
// while its peer is not connected and UpToDate (it would take down the
// only copy of writes the peer lacks, or the disk a Primary SyncTarget
// reads through).
func TestReplicateLeaveKeepsTheOnlyUpToDateCopy(t *testing.T) {
	procSourceOfPrimary := drbdProc(" 7: cs:SyncSource ro:Secondary/Primary ds:UpToDate/Inconsistent C r-----",
		"    ns:474112 nr:0 dw:0 dr:475200 al:0 bm:0 lo:0 pe:2 ua:0 ap:0 ep:1 wo:f oos:574464",
		"\t[========>...........] sync'ed: 45.2% (574464/1048576)K",
		"\tfinish: 0:00:14 speed: 39,474 (39,474) K/sec")
	for name, proc := range map[string]string{"peer not connected": procUpAlone, "resync source of a Primary": procSourceOfPrimary} {
		t.Run(name, func(t *testing.T) {
			o := newDRBDObjects()
			o.reps["n1"].Status.DRBD = drbdInSync("Secondary")
			o.reps["n1"].Annotations = map[string]string{v1.DRBDLeaveAnnotation: drbdMigration}
			d := newDRBDAgent(t, o, "n1", nil, proc)
			if after, err := d.replicate(t, "n1"); after != drbdSettling || err != nil {
				t.Errorf("leave = %v, %v; want %v, nil (waiting)", after, err, drbdSettling)
			}
			d.verify(t)
			if rep := d.replica(t, "n1"); rep.Status.DRBD == nil || rep.Status.DRBD.LeftFor != "" || rep.Status.DRBD.Message == "" {
				t.Errorf("status.drbd = %+v, want a waiting message and no leftFor", rep.Status.DRBD)
			}
		})
	}
}

// TestReplicateAdjustRetried: a failed adjust to a new peer is not
// forgotten: the file goes, and the next pass writes it and adjusts again.
func TestReplicateAdjustRetried(t *testing.T) {
	o := newDRBDObjects()
	d := newDRBDAgent(t, o, "n1", func(adm func(args ...string) []string) []command.Call {
		return []command.Call{
			{Argv: adm("adjust", drbdVol), ExitCode: 10, Stderr: "7: Failure: (102) Local address(port) already in use.\n"},
			{Argv: adm("adjust", drbdVol)},
		}
	}, procInSync, procInSync)
	if err := os.WriteFile(filepath.Join(d.dir, drbdVol+".res"), []byte("resource pvc-ha { the old peer }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := d.replicate(t, "n1"); err == nil {
		t.Fatal("replicate with adjust failing = nil, want the error")
	}
	if f := d.resFile(t); !strings.HasPrefix(f, "# hwameistor-node: adjusting to this resource failed") {
		t.Errorf("the resource file after the adjust failed:\n%s\nwant it marked stale, so the next pass adjusts again", f)
	}
	if _, err := d.replicate(t, "n1"); err != nil {
		t.Fatal(err)
	}
	d.wantResFile(t)
	d.verify(t)
}

// TestDRBDReplicasOfVolume: a volume whose replica nodes change wakes its
// replicas on the nodes this agent replicates; other changes do not.
func TestDRBDReplicasOfVolume(t *testing.T) {
	a := &Agent{DRBD: map[string]*drbd.Manager{"n1": {}, "n3": {}}}
	lv := newDRBDObjects().lv
	got := a.drbdReplicasOf(context.Background(), lv)
	if len(got) != 1 || got[0].Name != v1.ReplicaName(drbdVol, "n1") {
		t.Errorf("requests %v, want the replica on n1 only", got)
	}
	moved := lv.DeepCopy()
	moved.Spec.Config.Replicas[1].Hostname = "n3"
	resized := lv.DeepCopy()
	resized.Spec.RequiredCapacityBytes *= 2
	for _, tc := range []struct {
		name     string
		old, new *v1.LocalVolume
		want     bool
	}{
		{name: "replica moved", old: lv, new: moved, want: true},
		{name: "size changed", old: lv, new: resized},
		{name: "unchanged", old: lv, new: lv.DeepCopy()},
	} {
		if got := replicaNodesChanged.Update(event.UpdateEvent{ObjectOld: tc.old, ObjectNew: tc.new}); got != tc.want {
			t.Errorf("%s: predicate = %v, want %v", tc.name, got, tc.want)
		}
	}
	if replicaNodesChanged.Create(event.CreateEvent{Object: lv}) {
		t.Error("a created volume passes (its replicas' own events cover it)")
	}
}
