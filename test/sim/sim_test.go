// Package sim runs scenario files through the simulator (kwok/sim, the
// code path of `hwameistor-sim run`) on the whole system and checks the
// report and, for the placements a report does not show, the cluster the
// run leaves (kept running until the test is done with it). Volumes are
// capacity-only emulated pools (no mounts), so it needs no root, but it
// needs the control-plane binaries (KUBEBUILDER_ASSETS).
package sim

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "hwameistor.io/local/api/v1alpha1"
	drbdemulated "hwameistor.io/local/csidriver/drbd/emulated"
	"hwameistor.io/local/internal/stack"
	"hwameistor.io/local/internal/testenv"
	"hwameistor.io/local/kwok/report"
	"hwameistor.io/local/kwok/scenario"
	"hwameistor.io/local/kwok/sim"
)

// run runs kwok/scenarios/<name>.yaml and returns the report and the
// still-running stack (stopped when the test ends).
func run(t *testing.T, name string) (*report.Report, *stack.Stack) {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run `export KUBEBUILDER_ASSETS=$(hack/build-control-plane.sh)` first, or `make test`")
	}
	sc, err := scenario.Load(filepath.Join(testenv.RootDir(), "kwok", "scenarios", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	rep, s, err := sim.Run(ctx, sc, sim.Options{Name: "sim-test", Ports: 32370, Assets: assets, Keep: true, Log: t.Logf})
	if s != nil {
		t.Cleanup(s.Down)
	}
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	rep.Summary(&b)
	t.Log("\n" + b.String())
	return rep, s
}

// volumeNodes maps each LocalVolume of the run to its replica nodes, sorted.
func volumeNodes(t *testing.T, s *stack.Stack) map[string][]string {
	t.Helper()
	lvs := &v1.LocalVolumeList{}
	if err := s.Client.List(context.Background(), lvs); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, lv := range lvs.Items {
		var nodes []string
		for _, r := range lv.Spec.Config.Replicas {
			nodes = append(nodes, r.Hostname)
		}
		sort.Strings(nodes)
		out[lv.Spec.PersistentVolumeClaimName] = nodes
	}
	return out
}

func TestBurstNearFull(t *testing.T) {
	rep, _ := run(t, "burst-near-full")
	if rep.Pods.Total != 10 || rep.Pods.Running != 9 || rep.Pods.Pending != 1 {
		t.Errorf("pods: %+v, want 10 total, 9 running, 1 pending", rep.Pods)
	}
	found := false
	for reason := range rep.Pods.PendingReasons {
		found = found || strings.Contains(reason, "need 6Gi")
	}
	if !found {
		t.Errorf("pending reasons %v: none says \"need 6Gi\"", rep.Pods.PendingReasons)
	}
	if rep.Overcommits != 0 {
		t.Errorf("overcommits = %d, want 0", rep.Overcommits)
	}
	if rep.Volumes.Requested != 10 || rep.Volumes.Provisioned != 9 {
		t.Errorf("volumes: %+v, want 10 requested, 9 provisioned", rep.Volumes)
	}
	if c := rep.Components[stack.ComponentScheduler]; c.PeakRSSBytes <= 0 || c.CPUSeconds <= 0 {
		t.Errorf("scheduler usage %+v, want CPU and memory measured", c)
	}
}

// TestDrain: the node's 5 volumes move, every copy verified, nothing lost,
// the pods run elsewhere.
func TestDrain(t *testing.T) {
	rep, s := run(t, "drain")
	m := rep.Migrations
	if m.Started != 5 || m.Completed != 5 || m.Failed+m.Aborted != 0 || m.VolumesLost != 0 {
		t.Errorf("migrations %+v, want 5 started and completed, none failed or lost", m)
	}
	if rep.Pods.Running != 5 || rep.Overcommits != 0 {
		t.Errorf("pods %+v, overcommits %d: want 5 running, 0 overcommits", rep.Pods, rep.Overcommits)
	}
	for claim, nodes := range volumeNodes(t, s) {
		if len(nodes) != 1 || nodes[0] == "src-0" {
			t.Errorf("claim %s on %v, want one replica off src-0", claim, nodes)
		}
	}
}

// TestDrainWithRestarts kills the controllers and the node agents at each
// migration state: every migration resumes and completes, nothing is lost.
func TestDrainWithRestarts(t *testing.T) {
	rep, _ := run(t, "drain-restart")
	m := rep.Migrations
	if m.Completed != 6 || m.Failed+m.Aborted != 0 || m.VolumesLost != 0 {
		t.Errorf("migrations %+v, want 6 completed, none failed, aborted or lost", m)
	}
	if rep.Pods.Running != 6 {
		t.Errorf("pods %+v, want 6 running", rep.Pods)
	}
}

// TestAbort: aborted in SyncReplica, the volume stays on the source and
// its pod runs there again after the uncordon.
func TestAbort(t *testing.T) {
	rep, s := run(t, "abort")
	if m := rep.Migrations; m.Aborted != 1 || m.Completed != 0 || m.VolumesLost != 0 {
		t.Errorf("migrations %+v, want 1 aborted, none completed or lost", m)
	}
	if got := volumeNodes(t, s)["vol0-db-0"]; !slices.Equal(got, []string{"src-0"}) {
		t.Errorf("volume on %v after the abort, want [src-0]", got)
	}
	if rep.Pods.Running != 1 {
		t.Errorf("pods %+v, want the pod running on src-0 again", rep.Pods)
	}
	// The target's replica is deleted (its agent frees the data first).
	testenv.Eventually(t, "the rollback leaves one replica", func() bool {
		lvrs := &v1.LocalVolumeReplicaList{}
		return s.Client.List(context.Background(), lvrs) == nil && len(lvrs.Items) == 1
	})
}

// TestEvictionDisabled: no migration off a node labelled
// eviction=disable; the pods run again there after the uncordon.
func TestEvictionDisabled(t *testing.T) {
	rep, s := run(t, "eviction-disabled")
	if rep.Migrations.Started != 0 || rep.Migrations.VolumesLost != 0 {
		t.Errorf("migrations %+v, want none", rep.Migrations)
	}
	if rep.Pods.Running != 2 {
		t.Errorf("pods %+v, want 2 running after the uncordon", rep.Pods)
	}
	events, err := s.Clientset.CoreV1().Events("").List(context.Background(), metavOpts("involvedObject.name=pinned-0,reason=EvictionDisabled"))
	if err != nil {
		t.Fatal(err)
	}
	if len(events.Items) == 0 {
		t.Error("no EvictionDisabled Event on pinned-0")
	}
}

// TestDrainGroupAndHA: the two volumes of a group move together to one
// node; the HA volume ends with two replicas on two nodes, off the
// drained ones.
func TestDrainGroupAndHA(t *testing.T) {
	rep, s := run(t, "drain-group-ha")
	if m := rep.Migrations; m.Failed+m.Aborted != 0 || m.VolumesLost != 0 || m.Completed == 0 {
		t.Errorf("migrations %+v, want all completed, none lost", m)
	}
	if rep.Pods.Running != 2 {
		t.Errorf("pods %+v, want 2 running", rep.Pods)
	}
	nodes := volumeNodes(t, s)
	a, b := nodes["vol0-app-0"], nodes["vol1-app-0"]
	if len(a) != 1 || !slices.Equal(a, b) || a[0] == "a-0" || a[0] == "c-0" {
		t.Errorf("group volumes on %v and %v, want both on the same node, off a-0 and c-0", a, b)
	}
	ha := nodes["vol0-queue-0"]
	if len(ha) != 2 || ha[0] == ha[1] || slices.Contains(ha, "a-0") || slices.Contains(ha, "c-0") {
		t.Errorf("HA volume on %v, want two replicas on two nodes off a-0 and c-0", ha)
	}
}

// TestScale100 is the 100-node version of the scale benchmark (issue 8):
// 200 pods with single, HA and grouped claims at once on pools driven close
// to full. It asserts correctness only, never timings: no pool ever held
// more than it has, and every pod is Running or Pending with the
// scheduler's reason.
func TestScale100(t *testing.T) {
	rep, _ := run(t, "scale-100")
	if rep.Pods.Total != 200 {
		t.Errorf("pods: %d, want 200", rep.Pods.Total)
	}
	if rep.Overcommits != 0 || rep.Pools.Overfull != 0 {
		t.Errorf("overcommits = %d, overfull pools = %d, want 0", rep.Overcommits, rep.Pools.Overfull)
	}
	for reason, n := range rep.Pods.PendingReasons {
		if reason == "" || reason == "bound, not running yet" || reason == "not scheduled yet" {
			t.Errorf("%d pods pending without a scheduler's reason: %q", n, reason)
		}
	}
	if rep.Pods.Running+rep.Pods.Pending != rep.Pods.Total {
		t.Errorf("pods %+v: some neither Running nor Pending", rep.Pods)
	}
	// Every Running pod's claims are provisioned (230 claims for 200 pods).
	if rep.Pods.Running == rep.Pods.Total && rep.Volumes.Provisioned != rep.Volumes.Requested {
		t.Errorf("volumes %+v: every pod runs but not every claim is bound", rep.Volumes)
	}
}

// TestFailover: a node holding the Primaries of HA volumes fails; every pod
// that ran there runs on its standby's node, with every byte written
// before the failure, and the failover time is in the report. Its replicas
// are rebuilt on the third node, resynced by DRBD; when the node comes back
// its old replicas are freed.
func TestFailover(t *testing.T) {
	rep, s := run(t, "failover")
	f := rep.Failover
	if f == nil || f.Pods == 0 || f.Stranded != 0 {
		t.Fatalf("failover %+v, want every pod of ssd-0 running elsewhere (and ssd-0 holding some)", f)
	}
	if f.SecondsMax <= 0 || f.SecondsMedian > f.SecondsMax {
		t.Errorf("failover times %+v: want positive, median <= max", f)
	}
	if rep.Migrations.VolumesLost != 0 {
		t.Errorf("%d volumes lost their data", rep.Migrations.VolumesLost)
	}
	if rep.Pods.Running != 6 {
		t.Errorf("pods %+v, want 6 running", rep.Pods)
	}
	// Every volume that had a replica on ssd-0 has it on another node now,
	// connected to the replica that stayed and UpToDate, and ssd-0's old
	// replicas are gone once it is back.
	waitReplicatedAway(t, s, "ssd-0")
}

// TestDrainHADRBD: draining a node that holds replicas of HA volumes
// replicated by the emulated DRBD moves them online: every migration
// completes, no data is lost, and each volume ends on two other nodes,
// connected and UpToDate.
func TestDrainHADRBD(t *testing.T) {
	rep, s := run(t, "drain-ha-drbd")
	m := rep.Migrations
	if m.Started == 0 || m.Completed != m.Started || m.Failed+m.Aborted != 0 || m.VolumesLost != 0 {
		t.Errorf("migrations %+v, want all started completed, none failed, aborted or lost", m)
	}
	if rep.Pods.Running != 6 || rep.Overcommits != 0 {
		t.Errorf("pods %+v, overcommits %d: want 6 running, 0 overcommits", rep.Pods, rep.Overcommits)
	}
	waitReplicatedAway(t, s, "ssd-0")
	// Online: no copy stream ran (no replica was ever a copy target).
	reps := &v1.LocalVolumeReplicaList{}
	if err := s.Client.List(context.Background(), reps); err != nil {
		t.Fatal(err)
	}
	for _, r := range reps.Items {
		if r.Status.Checksum != "" || r.Annotations[v1.SyncPendingAnnotation] != "" {
			t.Errorf("replica %s was filled by a copy (checksum %q, annotations %v), want DRBD's resync", r.Name, r.Status.Checksum, r.Annotations)
		}
	}
}

// waitReplicatedAway waits until no replica is left on node and every HA
// volume has both of its replicas connected and UpToDate in the emulated
// DRBD, without split brain or a rebuild in progress.
func waitReplicatedAway(t *testing.T, s *stack.Stack, node string) {
	t.Helper()
	c, err := drbdemulated.Open(s.DRBDRoot())
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "every HA volume on two live nodes, Connected and UpToDate, none left on "+node, func() bool {
		lvs := &v1.LocalVolumeList{}
		reps := &v1.LocalVolumeReplicaList{}
		if s.Client.List(context.Background(), lvs) != nil || s.Client.List(context.Background(), reps) != nil {
			return false
		}
		for _, r := range reps.Items {
			if r.Spec.NodeName == node {
				return false
			}
		}
		for _, lv := range lvs.Items {
			if slices.Contains(lv.ReplicaNodes(), node) || lv.Annotations["hwameistor.io/rebuild"] != "" {
				return false
			}
			sides, err := c.Replicas(lv.Name)
			if err != nil {
				return false
			}
			up := 0
			for _, r := range sides {
				if slices.Contains(lv.ReplicaNodes(), r.Node) && r.Status.Connection == "Connected" && r.Status.Disk == "UpToDate" && !r.SplitBrain {
					up++
				}
			}
			if up != 2 {
				return false
			}
		}
		return true
	})
}
