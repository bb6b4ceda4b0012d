package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/evictor"
	"hwameistor.io/local/controllers/migrate"
	"hwameistor.io/local/internal/testenv"
)

// TestAgainstControllers runs the CLI binary's code path (--kubeconfig, a
// real kube-apiserver and etcd) and holds drain-check to what the real
// evictor and migrate controller then do: the same migrations, the same
// targets, the same "waiting for a target" message, and no retry of a
// migration aborted within the cordon. No node agent runs, so migrations
// stop in AddReplica, once their target is chosen.
func TestAgainstControllers(t *testing.T) {
	e := controlPlane(t)
	ctx := context.Background()
	c := e.Client
	kubeconfig := testenv.WriteKubeconfig(t, e.Config)
	run := func(args ...string) (string, string, int) {
		t.Helper()
		streams, _, out, errOut := genericiooptions.NewTestIOStreams()
		code := execute(NewOptions(streams), append([]string{"--kubeconfig", kubeconfig}, args...))
		return out.String(), errOut.String(), code
	}
	check := func(args ...string) *DrainCheck {
		t.Helper()
		out, errOut, code := run(append(args, "-o", "json")...)
		dc := &DrainCheck{}
		if err := json.Unmarshal([]byte(out), dc); err != nil {
			t.Fatalf("%v: %v (exit %d, stderr %q)\n%s", args, err, code, errOut, out)
		}
		if want := map[bool]int{true: ExitOK, false: ExitNotDrainable}[dc.CanDrain]; code != want {
			t.Errorf("%v: exit %d with canDrain %v", args, code, dc.CanDrain)
		}
		return dc
	}

	// n1 (zone a) is drained: a single volume, a two-volume group and an HA
	// volume whose peer is on n2. n5 keeps its volumes; n6's SSD volume
	// has nowhere to go.
	createCluster(t, c, testCluster([]testNode{
		{name: "n1", zone: "a", free: 50 * gi, volumes: []string{"vol-a", "vol-g1", "vol-g2", "vol-ha"}},
		{name: "n2", zone: "b", free: 40 * gi, volumes: []string{"vol-ha", "vol-b"}},
		{name: "n3", zone: "a", free: 100 * gi},
		{name: "n4", zone: "b", free: 200 * gi},
		{name: "n5", zone: "c", free: 20 * gi, disabled: true, volumes: []string{"vol-e"}},
		{name: "n6", zone: "c", free: 50 * gi, pool: v1.PoolNameSSD, volumes: []string{"vol-ssd"}},
	}, []testVolume{
		{name: "vol-a", replicas: []string{"n1"}, claim: "db/data-a"},
		{name: "vol-g1", group: "lvg-1", replicas: []string{"n1"}, claim: "db/data-g1"},
		{name: "vol-g2", group: "lvg-1", replicas: []string{"n1"}, claim: "db/data-g2"},
		{name: "vol-ha", replicas: []string{"n1", "n2"}, claim: "web/cache"},
		{name: "vol-b", replicas: []string{"n2"}},
		{name: "vol-e", replicas: []string{"n5"}},
		{name: "vol-ssd", size: 30 * gi, pool: v1.PoolNameSSD, replicas: []string{"n6"}},
	}, nil))

	out, _, code := run("pools")
	if code != 0 || !strings.Contains(squeeze(out), "n1 HDD 50Gi 60Gi 16% 4") || !strings.Contains(squeeze(out), "n6 SSD 50Gi 60Gi 16% 1") {
		t.Errorf("pools (%d):\n%s", code, out)
	}
	out, _, _ = run("volumes", "--node", "n1", "-o", "name")
	if out != "localvolume.hwameistor.io/vol-a\nlocalvolume.hwameistor.io/vol-g1\nlocalvolume.hwameistor.io/vol-g2\nlocalvolume.hwameistor.io/vol-ha\n" {
		t.Errorf("volumes --node n1: %q", out)
	}

	// Before the drain: what drain-check expects.
	before := check("drain-check", "n1")
	want := map[string]string{"vol-a": "n4", "vol-g1": "n4", "vol-g2": "n4", "vol-ha": "n3"}
	if !before.CanDrain || len(before.Volumes) != len(want) {
		t.Fatalf("drain-check n1: %+v", before)
	}
	for _, v := range before.Volumes {
		if v.Action != ActionMove || v.Target != want[v.Volume] {
			t.Errorf("drain-check n1: %s %s to %q, want move to %s", v.Volume, v.Action, v.Target, want[v.Volume])
		}
	}
	if dc := check("drain-check", "n5"); dc.CanDrain || !dc.EvictionDisabled || dc.Volumes[0].Action != ActionStay {
		t.Errorf("drain-check n5: %+v", dc)
	}
	ssd := check("drain-check", "n6")
	if ssd.CanDrain || ssd.Volumes[0].Action != ActionStay || !strings.HasPrefix(ssd.Volumes[0].Reason, "waiting for a target: ") {
		t.Fatalf("drain-check n6: %+v", ssd)
	}

	e.StartManager(t, func(ctx context.Context, mgr ctrl.Manager) error {
		if err := (&evictor.Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorderFor("evictor")}).SetupWithManager(ctx, mgr); err != nil {
			return err
		}
		// Limits above the test's migrations: without a node agent none
		// completes, so a queued one would never start.
		return (&migrate.Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorderFor("migrate"), MaxPerNode: 10, MaxTotal: 10}).SetupWithManager(mgr)
	})

	// The migrate controller waits for a target with drain-check's words.
	out, errOut, code := run("migrate", "start", "vol-ssd", "--from", "n6", "-o", "name")
	if code != 0 {
		t.Fatalf("migrate start vol-ssd (%d): %s", code, errOut)
	}
	ssdMigration := strings.TrimSpace(strings.TrimPrefix(out, "localvolumemigrate.hwameistor.io/"))
	waitMigration(t, c, ssdMigration, "waiting for a target", func(m *v1.LocalVolumeMigrate) bool {
		return m.Status.Message == ssd.Volumes[0].Reason
	})

	// Drain n1: the evictor creates drain-check's migrations and the
	// controller picks drain-check's targets.
	cordon(t, c, "n1")
	for _, v := range before.Volumes {
		m := waitMigration(t, c, v.Migration, "a target", func(m *v1.LocalVolumeMigrate) bool { return m.Status.TargetNode != "" })
		if m.Status.TargetNode != v.Target || m.Spec.SourceNode != "n1" || m.Labels[v1.MigrateTriggerLabel] != v1.MigrateTriggerDrain {
			t.Errorf("%s: the controllers moved it to %s by %s (%s), drain-check said %s", v.Volume, m.Status.TargetNode, m.Name, m.Status.State, v.Target)
		}
	}
	migrations := &v1.LocalVolumeMigrateList{}
	if err := c.List(ctx, migrations, client.MatchingLabels{v1.MigrateSourceNodeLabel: "n1"}); err != nil || len(migrations.Items) != 3 {
		t.Errorf("migrations off n1: %d (%v), want 3 (one per group)", len(migrations.Items), err)
	}

	// During the drain: every volume is moving, to the chosen target.
	during := check("drain-check", "n1")
	for _, v := range during.Volumes {
		if v.Action != ActionMoving || v.Target != want[v.Volume] {
			t.Errorf("drain-check n1 while draining: %s %s to %q", v.Volume, v.Action, v.Target)
		}
		// The target is listed among the replicas now, but holds no data.
		wantNote := "its pod, once evicted, waits Pending until the copy is verified"
		if v.Volume == "vol-ha" {
			wantNote = "HA: its pod can run on the replica on n2 meanwhile"
		}
		if strings.Join(v.Notes, "; ") != wantNote {
			t.Errorf("drain-check n1 while draining, %s: notes %q, want %q", v.Volume, v.Notes, wantNote)
		}
	}
	aMigration := v1.MigrateName("vol-a", "n1")
	out, _, _ = run("volumes", "vol-a")
	if !strings.Contains(out, aMigration+" (AddReplica, 0%)") {
		t.Errorf("volumes vol-a does not show its migration:\n%s", out)
	}
	out, _, _ = run("migrations", "--node", "n1", "--active", "-o", "name")
	if strings.Count(out, "\n") != 3 {
		t.Errorf("migrations --node n1 --active:\n%s", out)
	}

	// Abort vol-a's: it rolls back, and within this cordon the evictor
	// does not retry it, as drain-check says.
	out, _, code = run("migrate", "abort", aMigration)
	if code != 0 || !strings.Contains(out, "abort requested (AddReplica)") {
		t.Errorf("migrate abort (%d): %s", code, out)
	}
	aborted := waitMigration(t, c, aMigration, "Aborted", func(m *v1.LocalVolumeMigrate) bool { return m.Status.State == v1.OperationStateAborted })
	after := check("drain-check", "n1")
	if v := volumeMove(t, after, "vol-a"); after.CanDrain || v.Action != ActionStay || !strings.Contains(v.Reason, "ended Aborted during this cordon") {
		t.Errorf("drain-check n1 after the abort: %+v", v)
	}
	time.Sleep(2 * time.Second) // the evictor reconciles the ended migration meanwhile
	if m := getMigration(t, c, aMigration); m.UID != aborted.UID || m.Status.State != v1.OperationStateAborted {
		t.Errorf("the evictor replaced the aborted migration within the cordon: %s %s", m.UID, m.Status.State)
	}

	// A user moves vol-a by hand to a node of their choice.
	out, errOut, code = run("migrate", "start", "vol-a", "--from", "n1", "--to", "n2", "--name", "move-a")
	if code != 0 || out != "localvolumemigrate.hwameistor.io/move-a created\n" {
		t.Fatalf("migrate start vol-a (%d): %q %q", code, out, errOut)
	}
	m := waitMigration(t, c, "move-a", "a target", func(m *v1.LocalVolumeMigrate) bool { return m.Status.TargetNode != "" })
	if m.Status.TargetNode != "n2" {
		t.Errorf("move-a went to %s, want the suggested n2", m.Status.TargetNode)
	}
	if v := volumeMove(t, check("drain-check", "n1"), "vol-a"); v.Action != ActionMoving || v.Migration != "move-a" || v.Target != "n2" {
		t.Errorf("drain-check n1 with move-a: %+v", v)
	}
}

// volumeMove is the report's row for volume.
func volumeMove(t *testing.T, dc *DrainCheck, volume string) VolumeMove {
	t.Helper()
	for _, v := range dc.Volumes {
		if v.Volume == volume {
			return v
		}
	}
	t.Fatalf("drain-check of %s has no row for %s: %+v", dc.Node, volume, dc.Volumes)
	return VolumeMove{}
}

// createCluster creates cl's objects with their status, as the node agents
// and the volume controller would have left them.
func createCluster(t *testing.T, c client.Client, cl *cluster) {
	t.Helper()
	ctx := context.Background()
	create := func(obj client.Object, setStatus func()) {
		t.Helper()
		if err := c.Create(ctx, obj); err != nil {
			t.Fatalf("creating %s: %v", obj.GetName(), err)
		}
		if setStatus != nil {
			setStatus()
			if err := c.Status().Update(ctx, obj); err != nil {
				t.Fatalf("status of %s: %v", obj.GetName(), err)
			}
		}
	}
	for i := range cl.Nodes {
		create(&cl.Nodes[i], nil)
	}
	for i := range cl.StorageNodes {
		o := &cl.StorageNodes[i]
		st := o.Status
		create(o, func() { o.Status = st })
	}
	for i := range cl.Volumes {
		o := &cl.Volumes[i]
		st := o.Status
		create(o, func() { o.Status = st })
	}
	for i := range cl.Replicas {
		o := &cl.Replicas[i]
		st := o.Status
		create(o, func() { o.Status = st })
	}
}

func cordon(t *testing.T, c client.Client, node string) {
	t.Helper()
	n := &corev1.Node{}
	n.Name = node
	if err := c.Patch(context.Background(), n, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"unschedulable":true}}`))); err != nil {
		t.Fatal(err)
	}
}

func getMigration(t *testing.T, c client.Client, name string) *v1.LocalVolumeMigrate {
	t.Helper()
	m := &v1.LocalVolumeMigrate{}
	if err := c.Get(context.Background(), client.ObjectKey{Name: name}, m); err != nil {
		t.Fatalf("migration %s: %v", name, err)
	}
	return m
}

// waitMigration waits until the migration exists and cond holds.
func waitMigration(t *testing.T, c client.Client, name, what string, cond func(*v1.LocalVolumeMigrate) bool) *v1.LocalVolumeMigrate {
	t.Helper()
	var last *v1.LocalVolumeMigrate
	defer func() {
		if t.Failed() && last != nil {
			t.Logf("migration %s, last status: %+v", name, last.Status)
		}
	}()
	testenv.Eventually(t, "migration "+name+": "+what, func() bool {
		m := &v1.LocalVolumeMigrate{}
		if err := c.Get(context.Background(), client.ObjectKey{Name: name}, m); err != nil {
			return false
		}
		last = m
		return cond(m)
	})
	return last
}
