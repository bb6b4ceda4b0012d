package emulated

import (
	"context"
	"math"
	"os"
	"testing"
	"time"
)

// TestScenarios drives two or three nodes through real drbd.Managers and
// checks what /proc/drbd says at each point, against DRBD 8.4 as test/vm
// observes it on the real kernel.
func TestScenarios(t *testing.T) {
	ctx := context.Background()
	const rate = 1 << 20 // a 4 MiB full resync takes 4 s
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, h *harness)
	}{
		{name: "new pair connects Inconsistent, skips the initial sync, one Primary", run: func(t *testing.T, h *harness) {
			h.newReplica("n1")
			h.want("n1", "WFConnection", "Secondary/Unknown", "Inconsistent/DUnknown")
			refused(t, h.m["n1"].Primary(ctx, "pvc-ha", false), 17, "Need access to UpToDate data")
			h.newReplica("n2")
			h.want("n1", "Connected", "Secondary/Secondary", "Inconsistent/Inconsistent")
			refused(t, h.m["n2"].Primary(ctx, "pvc-ha", false), 17, "Need access to UpToDate data")
			h.must(h.m["n1"].SkipInitialSync(ctx, "pvc-ha"))
			st := h.want("n2", "Connected", "Secondary/Secondary", "UpToDate/UpToDate")
			if !st.MayServe() || st.InSyncPercent != 100 || st.OutOfSyncKiB != 0 {
				t.Errorf("in sync: %+v", st)
			}
			h.must(h.m["n1"].Primary(ctx, "pvc-ha", false))
			h.want("n2", "Connected", "Secondary/Primary", "UpToDate/UpToDate")
			refused(t, h.m["n2"].Primary(ctx, "pvc-ha", false), 11, "Multiple primaries not allowed")
			refused(t, h.m["n2"].Primary(ctx, "pvc-ha", true), 11, "Multiple primaries not allowed")
			h.must(h.m["n1"].Secondary(ctx, "pvc-ha"))
			h.must(h.m["n2"].Primary(ctx, "pvc-ha", false))
			h.want("n1", "Connected", "Secondary/Primary", "UpToDate/UpToDate")
		}},
		{name: "forced first Primary syncs the whole device", run: func(t *testing.T, h *harness) {
			h.newReplica("n1")
			h.newReplica("n2")
			h.must(h.m["n2"].Primary(ctx, "pvc-ha", true))
			h.want("n2", "SyncSource", "Primary/Secondary", "UpToDate/Inconsistent")
			st := h.want("n1", "SyncTarget", "Secondary/Primary", "Inconsistent/UpToDate")
			if st.OutOfSyncKiB != diskSize>>10 || st.InSyncPercent != 0 {
				t.Errorf("sync target at the start: %+v", st)
			}
			h.clock.advance(4 * time.Second)
			h.want("n1", "Connected", "Secondary/Primary", "UpToDate/UpToDate")
		}},
		{name: "failover: the standby is promoted and the old Primary resyncs at the rate", run: func(t *testing.T, h *harness) {
			h.pair("n1", "n2")
			h.must(h.m["n1"].Primary(ctx, "pvc-ha", false))
			if p, err := h.c.Write("pvc-ha", 0, fill('a', 64<<10)); err != nil || p != "n1" {
				t.Fatalf("write = %s, %v", p, err)
			}
			if h.checksum("n1") != h.checksum("n2") {
				t.Fatal("a write while connected reached one replica only")
			}
			h.must(h.c.Fail("n1"))
			if _, err := h.m["n1"].Status(ctx, h.res); err == nil {
				t.Error("a failed node's /proc/drbd was read")
			}
			if err := h.m["n1"].Secondary(ctx, "pvc-ha"); err == nil {
				t.Error("a failed node ran drbdadm")
			}
			st := h.want("n2", "WFConnection", "Secondary/Unknown", "UpToDate/DUnknown")
			if !st.MayServe() {
				t.Fatalf("the standby cannot serve: %+v", st)
			}
			h.must(h.m["n2"].Primary(ctx, "pvc-ha", false))
			if p, err := h.c.Write("pvc-ha", 1<<20, fill('b', 512<<10)); err != nil || p != "n2" {
				t.Fatalf("write on the new Primary = %s, %v", p, err)
			}
			if st := h.want("n2", "WFConnection", "Primary/Unknown", "UpToDate/DUnknown"); st.OutOfSyncKiB != 512 || st.InSyncPercent != 0 {
				t.Errorf("the new Primary alone: %+v, want 512 KiB out of sync", st)
			}
			want := h.checksum("n2")

			h.must(h.c.Recover("n1"))
			if st := h.status("n1"); st.Configured {
				t.Fatalf("after a reboot the resource is up: %+v", st)
			}
			h.must(h.m["n1"].Up(ctx, "pvc-ha")) // as the agent does: metadata kept
			st = h.want("n1", "SyncTarget", "Secondary/Primary", "Inconsistent/UpToDate")
			if st.InSyncPercent != 0 || st.OutOfSyncKiB != diskSize>>10 {
				t.Errorf("the rejoined Primary (full resync, as observed on the kernel): %+v", st)
			}
			refused(t, h.m["n1"].Primary(ctx, "pvc-ha", false), 11, "Multiple primaries")
			h.clock.advance(time.Second)
			st = h.want("n1", "SyncTarget", "Secondary/Primary", "Inconsistent/UpToDate")
			if math.Abs(st.InSyncPercent-25) > 0.1 || st.OutOfSyncKiB != 3072 {
				t.Errorf("after 1 s at 1 MiB/s: %+v, want 25%% and 3072 KiB left", st)
			}
			h.want("n2", "SyncSource", "Primary/Secondary", "UpToDate/Inconsistent")
			h.clock.advance(3 * time.Second)
			h.want("n1", "Connected", "Secondary/Primary", "UpToDate/UpToDate")
			if got := h.checksum("n1"); got != want {
				t.Errorf("the resynced replica holds %s, want the new Primary's %s", got, want)
			}
		}},
		{name: "the standby of a running Primary falls behind and catches up", run: func(t *testing.T, h *harness) {
			h.pair("n1", "n2")
			h.must(h.m["n1"].Primary(ctx, "pvc-ha", false))
			h.must(h.c.Isolate("n2"))
			h.must(h.c.Node("n1").Write("pvc-ha", 0, fill('c', 1<<20)))
			h.must(h.c.Reconnect("n2"))
			st := h.want("n2", "SyncTarget", "Secondary/Primary", "Inconsistent/UpToDate")
			if st.OutOfSyncKiB != 1024 || st.MayServe() {
				t.Errorf("behind by 1 MiB: %+v", st)
			}
			refused(t, h.m["n2"].Primary(ctx, "pvc-ha", true), 11, "Multiple primaries")
			h.clock.advance(500 * time.Millisecond)
			if st := h.status("n2"); st.InSyncPercent != 50 {
				t.Errorf("half way: %+v", st)
			}
			h.clock.advance(500 * time.Millisecond)
			h.want("n2", "Connected", "Secondary/Primary", "UpToDate/UpToDate")
			if h.checksum("n1") != h.checksum("n2") {
				t.Error("the replicas differ after the resync")
			}
		}},
		{name: "two Primaries apart end StandAlone, nothing discarded", run: func(t *testing.T, h *harness) {
			h.pair("n1", "n2")
			h.must(h.m["n1"].Primary(ctx, "pvc-ha", false))
			h.must(h.c.Isolate("n1"))
			h.want("n1", "WFConnection", "Primary/Unknown", "UpToDate/DUnknown")
			h.want("n2", "WFConnection", "Secondary/Unknown", "UpToDate/DUnknown")
			h.must(h.m["n2"].Primary(ctx, "pvc-ha", false)) // 8.4: no quorum stops it
			h.must(h.c.Node("n1").Write("pvc-ha", 0, fill('1', 4096)))
			h.must(h.c.Node("n2").Write("pvc-ha", 0, fill('2', 4096)))
			if _, err := h.c.Write("pvc-ha", 0, fill('x', 1)); err == nil {
				t.Error("Cluster.Write picked one of two Primaries")
			}
			s1, s2 := h.checksum("n1"), h.checksum("n2")
			h.must(h.c.Reconnect("n1"))
			h.want("n1", "StandAlone", "Primary/Unknown", "UpToDate/DUnknown")
			h.want("n2", "StandAlone", "Primary/Unknown", "UpToDate/DUnknown")
			// Retrying (adjust on both) finds the split brain again.
			h.must(h.m["n1"].Adjust(ctx, "pvc-ha"))
			h.want("n1", "WFConnection", "Primary/Unknown", "UpToDate/DUnknown")
			h.must(h.m["n2"].Adjust(ctx, "pvc-ha"))
			h.want("n1", "StandAlone", "Primary/Unknown", "UpToDate/DUnknown")
			h.want("n2", "StandAlone", "Primary/Unknown", "UpToDate/DUnknown")
			h.clock.advance(time.Hour)
			if h.checksum("n1") != s1 || h.checksum("n2") != s2 || s1 == s2 {
				t.Error("a split brain overwrote a side")
			}
			reps, err := h.c.Replicas("pvc-ha")
			h.must(err)
			if len(reps) != 2 || !reps[0].SplitBrain || !reps[1].SplitBrain {
				t.Errorf("replicas %+v, want both in split brain", reps)
			}
			// A person resolves it: n2 gives up its changes.
			h.must(h.m["n2"].Secondary(ctx, "pvc-ha"))
			h.must(h.adm("n2", "connect", "--discard-my-data", "pvc-ha"))
			h.must(h.m["n1"].Connect(ctx, "pvc-ha"))
			h.want("n2", "SyncTarget", "Secondary/Primary", "Inconsistent/UpToDate")
			h.clock.advance(time.Second)
			h.want("n2", "Connected", "Secondary/Primary", "UpToDate/UpToDate")
			if h.checksum("n2") != s1 {
				t.Error("the discarded side does not hold the survivor's data")
			}
		}},
		{name: "a Secondary that wrote as Primary apart loses to the Primary (discard-secondary)", run: func(t *testing.T, h *harness) {
			h.pair("n1", "n2")
			h.must(h.m["n1"].Primary(ctx, "pvc-ha", false))
			h.must(h.c.Isolate("n1"))
			h.must(h.m["n2"].Primary(ctx, "pvc-ha", false))
			h.must(h.c.Node("n2").Write("pvc-ha", 0, fill('2', 4096)))
			h.must(h.m["n2"].Secondary(ctx, "pvc-ha"))
			h.must(h.c.Node("n1").Write("pvc-ha", 8192, fill('1', 4096)))
			h.must(h.c.Reconnect("n1"))
			h.want("n2", "SyncTarget", "Secondary/Primary", "Inconsistent/UpToDate")
			h.clock.advance(time.Second)
			h.want("n2", "Connected", "Secondary/Primary", "UpToDate/UpToDate")
			if h.checksum("n1") != h.checksum("n2") {
				t.Error("the replicas differ")
			}
		}},
		{name: "disconnect and connect; down and up keep the data generation", run: func(t *testing.T, h *harness) {
			h.pair("n1", "n2")
			h.must(h.m["n1"].Primary(ctx, "pvc-ha", false))
			h.must(h.m["n2"].Disconnect(ctx, "pvc-ha"))
			h.want("n2", "StandAlone", "Secondary/Unknown", "UpToDate/DUnknown")
			h.want("n1", "WFConnection", "Primary/Unknown", "UpToDate/DUnknown")
			h.must(h.m["n2"].Connect(ctx, "pvc-ha"))
			h.want("n2", "Connected", "Secondary/Primary", "UpToDate/UpToDate") // nothing written apart
			h.must(h.m["n1"].Secondary(ctx, "pvc-ha"))
			h.must(h.m["n2"].Down(ctx, "pvc-ha"))
			if st := h.status("n2"); st.Configured {
				t.Errorf("down: %+v", st)
			}
			h.want("n1", "WFConnection", "Secondary/Unknown", "UpToDate/DUnknown")
			h.must(h.m["n2"].Up(ctx, "pvc-ha"))
			h.want("n2", "Connected", "Secondary/Secondary", "UpToDate/UpToDate")
		}},
		{name: "outdated disk: refused, forced", run: func(t *testing.T, h *harness) {
			h.pair("n1", "n2")
			h.must(h.m["n2"].Disconnect(ctx, "pvc-ha"))
			h.must(h.adm("n2", "outdate", "pvc-ha"))
			h.want("n2", "StandAlone", "Secondary/Unknown", "Outdated/DUnknown")
			refused(t, h.m["n2"].Primary(ctx, "pvc-ha", false), 17, "Need access to UpToDate data")
			h.must(h.m["n2"].Primary(ctx, "pvc-ha", true))
			h.want("n2", "StandAlone", "Primary/Unknown", "UpToDate/DUnknown")
		}},
		{name: "a replica moved to a third node gets a full sync", run: func(t *testing.T, h *harness) {
			h.pair("n1", "n2")
			h.must(h.m["n1"].Primary(ctx, "pvc-ha", false))
			h.must(h.c.Node("n1").Write("pvc-ha", 0, fill('m', 4096)))
			h.must(h.m["n2"].Down(ctx, "pvc-ha"))
			h.must(h.m["n2"].Remove("pvc-ha"))
			h.res = h.resource("n1", "n3")
			_, err := h.m["n1"].Write(h.res)
			h.must(err)
			h.must(h.m["n1"].Adjust(ctx, "pvc-ha"))
			h.newReplica("n3")
			h.want("n3", "SyncTarget", "Secondary/Primary", "Inconsistent/UpToDate")
			h.clock.advance(4 * time.Second)
			h.want("n3", "Connected", "Secondary/Primary", "UpToDate/UpToDate")
			if h.checksum("n3") != h.checksum("n1") {
				t.Error("the new replica lacks the data")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, newHarness(t, rate, "n1", "n2", "n3")) })
	}
}

// TestRefusals: drbdadm's refusals, each a non-zero exit with its message.
func TestRefusals(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		setup func(h *harness)
		run   func(h *harness) error
		code  int
		msg   string
	}{
		{name: "up without metadata", setup: func(h *harness) { _, err := h.m["n1"].Write(h.res); h.must(err) },
			run: func(h *harness) error { return h.m["n1"].Up(ctx, "pvc-ha") }, code: 10, msg: "No valid meta-data signature"},
		{name: "up twice", setup: func(h *harness) { h.newReplica("n1") },
			run: func(h *harness) error { return h.m["n1"].Up(ctx, "pvc-ha") }, code: 10, msg: "exists already"},
		{name: "create-md while up", setup: func(h *harness) { h.newReplica("n1") },
			run: func(h *harness) error { return h.m["n1"].CreateMD(ctx, "pvc-ha") }, code: 20, msg: "is configured"},
		{name: "connect while connecting", setup: func(h *harness) { h.newReplica("n1") },
			run: func(h *harness) error { return h.m["n1"].Connect(ctx, "pvc-ha") }, code: 10, msg: "use disconnect first"},
		{name: "primary while not up", setup: func(h *harness) { _, err := h.m["n1"].Write(h.res); h.must(err) },
			run: func(h *harness) error { return h.m["n1"].Primary(ctx, "pvc-ha", true) }, code: 10, msg: "not allocated"},
		{name: "no resource file", run: func(h *harness) error { return h.m["n1"].Up(ctx, "pvc-ha") }, code: 10, msg: "No such file"},
		{name: "file without this host", setup: func(h *harness) { _, err := h.m["n3"].Write(h.res); h.must(err) },
			run: func(h *harness) error { return h.m["n3"].Up(ctx, "pvc-ha") }, code: 10, msg: "not defined in your config"},
		{name: "missing backing file", setup: func(h *harness) {
			_, err := h.m["n1"].Write(h.res)
			h.must(err)
			h.must(os.Remove(h.disks["n1"]))
		}, run: func(h *harness) error { return h.m["n1"].CreateMD(ctx, "pvc-ha") }, code: 20, msg: "no such file"},
		{name: "minor taken by another resource", setup: func(h *harness) {
			h.newReplica("n1")
			h.res = h.resource("n1", "n2")
			h.res.Name = "pvc-other"
			_, err := h.m["n1"].Write(h.res)
			h.must(err)
			h.must(h.m["n1"].CreateMD(ctx, "pvc-other"))
		}, run: func(h *harness) error { return h.m["n1"].Up(ctx, "pvc-other") }, code: 10, msg: "resource pvc-ha"},
		{name: "drbdsetup (DRBD 9's status) is not emulated", run: func(h *harness) error {
			_, err := h.c.Node("n1").Run(ctx, "drbdsetup", "status", "--json", "pvc-ha")
			return err
		}, code: 127, msg: "not emulated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, 0, "n1", "n2", "n3")
			if tc.setup != nil {
				tc.setup(h)
			}
			refused(t, tc.run(h), tc.code, tc.msg)
		})
	}
}
