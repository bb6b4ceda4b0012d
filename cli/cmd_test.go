package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/yaml"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// fakeClient is an in-memory API server holding cl's objects.
func fakeClient(cl *cluster) client.Client {
	var objs []client.Object
	for i := range cl.Nodes {
		objs = append(objs, &cl.Nodes[i])
	}
	for i := range cl.StorageNodes {
		objs = append(objs, &cl.StorageNodes[i])
	}
	for i := range cl.Volumes {
		objs = append(objs, &cl.Volumes[i])
	}
	for i := range cl.Replicas {
		objs = append(objs, &cl.Replicas[i])
	}
	for i := range cl.Migrations {
		objs = append(objs, &cl.Migrations[i])
	}
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).
		WithStatusSubresource(&v1.LocalStorageNode{}, &v1.LocalVolume{}, &v1.LocalVolumeReplica{}, &v1.LocalVolumeMigrate{}).Build()
}

// runWith runs a command line against c and returns what it printed and
// its exit code.
func runWith(t *testing.T, c client.Client, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	o := NewOptions(streams)
	o.NewClient = func() (client.Client, error) { return c, nil }
	o.Now = func() time.Time { return epoch.Add(time.Hour) }
	code = execute(o, args)
	return out.String(), errOut.String(), code
}

// commandCluster: node-1 with a single volume and a group of two, node-2
// with an HA volume's peer, node-3 empty and roomy.
func commandCluster() *cluster {
	return testCluster([]testNode{
		{name: "node-1", zone: "a", free: 20 * gi, volumes: []string{"pvc-a", "pvc-g1", "pvc-g2", "pvc-ha"}},
		{name: "node-2", zone: "b", free: 30 * gi, volumes: []string{"pvc-ha"}},
		{name: "node-3", zone: "b", free: 90 * gi},
	}, []testVolume{
		{name: "pvc-a", size: 2 * gi, replicas: []string{"node-1"}, claim: "db/data-0"},
		{name: "pvc-g1", group: "lvg-1", replicas: []string{"node-1"}, claim: "db/logs-0"},
		{name: "pvc-g2", group: "lvg-1", replicas: []string{"node-1"}, claim: "db/wal-0"},
		{name: "pvc-ha", replicas: []string{"node-1", "node-2"}, claim: "web/cache-0"},
	}, nil)
}

func TestPoolsCommand(t *testing.T) {
	c := fakeClient(commandCluster())
	out, _, code := runWith(t, c, "pools")
	if code != 0 || !strings.HasPrefix(out, "NODE     CLASS   FREE   TOTAL   USED%   VOLUMES\nnode-1   HDD     20Gi   30Gi    33%     4\n") {
		t.Errorf("pools (%d):\n%s", code, out)
	}
	out, _, _ = runWith(t, c, "pools", "node-2", "node-3", "-o", "name")
	if out != "localstoragenode.hwameistor.io/node-2\nlocalstoragenode.hwameistor.io/node-3\n" {
		t.Errorf("-o name: %q", out)
	}
	out, _, _ = runWith(t, c, "pools", "-o", "json")
	var list struct {
		Kind  string
		Items []v1.LocalStorageNode
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || list.Kind != "List" || len(list.Items) != 3 ||
		list.Items[0].Kind != "LocalStorageNode" || list.Items[0].APIVersion != "hwameistor.io/v1alpha1" {
		t.Errorf("-o json: %v\n%s", err, out)
	}
	out, _, _ = runWith(t, c, "pools", "node-1", "-o", "jsonpath={.status.pools.LocalStorage_PoolHDD.freeCapacityBytes}")
	if out != "21474836480" {
		t.Errorf("-o jsonpath of one node: %q", out)
	}
	for _, tt := range []struct {
		args []string
		err  string
	}{
		{[]string{"pools", "typo"}, `error: node "typo" not found: it has no LocalStorageNode`},
		{[]string{"pools", "--class", "SATA"}, `error: --class: unknown poolClass "SATA": use one of HDD, SSD, NVMe`},
		{[]string{"pools", "-o", "xml"}, `error: unable to match a printer suitable for the output format "xml"`},
	} {
		_, errOut, code := runWith(t, c, tt.args...)
		if code != ExitError || !strings.HasPrefix(errOut, tt.err) {
			t.Errorf("%v: exit %d, stderr %q, want 1 and %q", tt.args, code, errOut, tt.err)
		}
	}
}

func TestVolumesCommand(t *testing.T) {
	c := fakeClient(commandCluster())
	out, _, code := runWith(t, c, "volumes", "--node", "node-2")
	want := "NAME     CAPACITY   REPLICAS        STATE   PVC           MIGRATION\npvc-ha   1Gi        node-1,node-2   Ready   web/cache-0   <none>\n"
	if code != 0 || out != want {
		t.Errorf("volumes --node node-2 (%d):\n%s\nwant:\n%s", code, out, want)
	}
	out, _, _ = runWith(t, c, "volumes", "-n", "db", "-o", "name")
	if out != "localvolume.hwameistor.io/pvc-a\nlocalvolume.hwameistor.io/pvc-g1\nlocalvolume.hwameistor.io/pvc-g2\n" {
		t.Errorf("-n db -o name: %q", out)
	}
	out, _, _ = runWith(t, c, "volumes", "pvc-a", "-o", "yaml")
	var lv v1.LocalVolume
	if err := yaml.Unmarshal([]byte(out), &lv); err != nil || lv.Kind != "LocalVolume" || lv.Name != "pvc-a" || lv.Spec.PersistentVolumeClaimName != "data-0" {
		t.Errorf("-o yaml of one volume: %v\n%s", err, out)
	}
	_, errOut, _ := runWith(t, c, "volumes", "--node", "node-9")
	if errOut != "error: node \"node-9\" not found\n" {
		t.Errorf("unknown node: %q", errOut)
	}
	_, errOut, _ = runWith(t, c, "volumes", "pvc-x")
	if errOut != "error: volume \"pvc-x\" not found\n" {
		t.Errorf("unknown volume: %q", errOut)
	}
	_, errOut, _ = runWith(t, c, "volumes", "--node", "node-3")
	if errOut != "No volumes found.\n" {
		t.Errorf("no volumes: %q", errOut)
	}
}

func TestMigrateStartCommand(t *testing.T) {
	ctx := context.Background()
	c := fakeClient(commandCluster())
	out, _, code := runWith(t, c, "migrate", "start", "pvc-a", "--from", "node-1")
	if code != 0 || !strings.HasPrefix(out, "localvolumemigrate.hwameistor.io/move-pvc-a-") || !strings.HasSuffix(out, " created\n") {
		t.Fatalf("start (%d): %q", code, out)
	}
	name := strings.TrimSuffix(strings.TrimPrefix(out, "localvolumemigrate.hwameistor.io/"), " created\n")
	m := &v1.LocalVolumeMigrate{}
	if err := c.Get(ctx, client.ObjectKey{Name: name}, m); err != nil {
		t.Fatal(err)
	}
	want := v1.LocalVolumeMigrateSpec{SourceNode: "node-1", VolumeName: "pvc-a"}
	if m.Spec.SourceNode != want.SourceNode || m.Spec.VolumeName != want.VolumeName || m.Spec.MigrateAllVols || m.Spec.Abort ||
		len(m.Spec.TargetNodesSuggested) != 0 || m.Labels[v1.MigrateSourceNodeLabel] != "node-1" || m.Labels[v1.MigrateTriggerLabel] != "" {
		t.Errorf("created %+v labels %v", m.Spec, m.Labels)
	}

	// A group's volume moves with its group; --to is the suggestion.
	out, _, code = runWith(t, c, "migrate", "start", "pvc-g1", "--from", "node-1", "--to", "node-2,node-3", "--name", "move-logs", "-o", "name")
	if code != 0 || out != "localvolumemigrate.hwameistor.io/move-logs\n" {
		t.Fatalf("start -o name (%d): %q", code, out)
	}
	if err := c.Get(ctx, client.ObjectKey{Name: "move-logs"}, m); err != nil {
		t.Fatal(err)
	}
	if !m.Spec.MigrateAllVols || strings.Join(m.Spec.TargetNodesSuggested, ",") != "node-2,node-3" {
		t.Errorf("group migration %+v", m.Spec)
	}

	for _, tt := range []struct {
		args []string
		err  string
	}{
		{[]string{"pvc-x", "--from", "node-1"}, `volume "pvc-x" not found`},
		{[]string{"pvc-ha", "--from", "node-3"}, `node "node-3" holds no replica of volume "pvc-ha" (replicas on node-1, node-2)`},
		{[]string{"pvc-ha", "--from", "node-1", "--to", "node-1"}, `--to node-1 is the source node (--from)`},
		{[]string{"pvc-ha", "--from", "node-1", "--to", "node-9"}, `node "node-9" not found`},
		{[]string{"pvc-ha", "--from", "node-1", "--to", "node-2"}, `node "node-2" already holds a replica of pvc-ha: it cannot be the target`},
		{[]string{"pvc-a", "--from", "node-1"}, "volume pvc-a is already being migrated by " + name + " (Submitted)"},
		{[]string{"pvc-g2", "--from", "node-1"}, "volume pvc-g1, pvc-g2 is already being migrated by move-logs"},
		{[]string{"pvc-a"}, `required flag(s) "from" not set`},
	} {
		_, errOut, code := runWith(t, c, append([]string{"migrate", "start"}, tt.args...)...)
		if code != ExitError || !strings.HasPrefix(errOut, "error: "+tt.err) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tt.args, code, errOut, tt.err)
		}
	}

	// The HA volume's other replica is moving: this one waits for it.
	if err := c.Create(ctx, &v1.LocalVolumeMigrate{ObjectMeta: metav1.ObjectMeta{Name: "peer"},
		Spec: v1.LocalVolumeMigrateSpec{SourceNode: "node-2", VolumeName: "pvc-ha"}}); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runWith(t, c, "migrate", "start", "pvc-ha", "--from", "node-1")
	if code != 0 || errOut != "Warning: the migration waits for peer, which moves the volume's replica on node-2\n" {
		t.Errorf("HA warning (%d): %q", code, errOut)
	}
}

func TestMigrateAbortCommand(t *testing.T) {
	ctx := context.Background()
	cl := commandCluster()
	for _, m := range []testMigration{
		{name: "queued", volume: "pvc-a", source: "node-1"},
		{name: "copying", volume: "pvc-g1", source: "node-1", target: "node-3", state: v1.OperationStateSyncReplica},
		{name: "pruning", volume: "pvc-ha", source: "node-2", target: "node-3", state: v1.OperationStatePruneReplica},
		{name: "failed", volume: "pvc-ha", source: "node-1", state: v1.OperationStateFailed},
	} {
		cl.Migrations = append(cl.Migrations, m.object())
	}
	c := fakeClient(cl)
	abort := func(name string) bool {
		m := &v1.LocalVolumeMigrate{}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, m); err != nil {
			t.Fatal(err)
		}
		return m.Spec.Abort
	}

	out, _, code := runWith(t, c, "migrate", "abort", "copying", "failed")
	if code != 0 || out != "localvolumemigrate.hwameistor.io/copying: abort requested (SyncReplica): the copy to node-3 is rolled back and its replica removed; the volume stays on node-1\n"+
		"localvolumemigrate.hwameistor.io/failed: already Failed, nothing to abort\n" {
		t.Errorf("abort (%d):\n%s", code, out)
	}
	if !abort("copying") || abort("failed") || abort("queued") {
		t.Errorf("spec.abort: copying %v, failed %v, queued %v; want true, false, false", abort("copying"), abort("failed"), abort("queued"))
	}
	out, _, _ = runWith(t, c, "migrate", "abort", "--node", "node-1")
	if !strings.Contains(out, "/queued: abort requested (Submitted)") || !strings.Contains(out, "/copying: abort was already requested") || strings.Contains(out, "pruning") || strings.Contains(out, "failed") {
		t.Errorf("abort --node node-1:\n%s", out)
	}
	if !abort("queued") || abort("pruning") {
		t.Error("--node node-1 must abort queued and leave node-2's pruning alone")
	}
	for _, tt := range []struct {
		args []string
		err  string
	}{
		{[]string{"nope"}, `error: migration "nope" not found`},
		{[]string{}, "error: name the migrations to abort, or give --node (not both)"},
		{[]string{"queued", "--node", "node-1"}, "error: name the migrations to abort, or give --node (not both)"},
		{[]string{"--node", "node-9"}, `error: node "node-9" not found`},
	} {
		_, errOut, code := runWith(t, c, append([]string{"migrate", "abort"}, tt.args...)...)
		if code != ExitError || !strings.HasPrefix(errOut, tt.err) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tt.args, code, errOut, tt.err)
		}
	}
}

func TestMigrationsCommand(t *testing.T) {
	cl := commandCluster()
	cl.Migrations = append(cl.Migrations,
		testMigration{name: "copying", volume: "pvc-g1", volumes: []string{"pvc-g1", "pvc-g2"}, source: "node-1", target: "node-3", state: v1.OperationStateSyncReplica, progress: "50%"}.object(),
		testMigration{name: "done", volume: "pvc-a", source: "node-1", target: "node-3", state: v1.OperationStateCompleted}.object())
	c := fakeClient(cl)
	for _, args := range [][]string{{"migrations", "--active"}, {"migrate", "list", "--active"}} {
		out, _, code := runWith(t, c, args...)
		want := "NAME      VOLUMES         SOURCE   TARGET   STATE         PROGRESS   AGE\ncopying   pvc-g1,pvc-g2   node-1   node-3   SyncReplica   50%        60m\n"
		if code != 0 || out != want {
			t.Errorf("%v (%d):\n%s\nwant:\n%s", args, code, out, want)
		}
	}
	out, _, _ := runWith(t, c, "migrations", "-o", "name")
	if out != "localvolumemigrate.hwameistor.io/copying\nlocalvolumemigrate.hwameistor.io/done\n" {
		t.Errorf("-o name: %q", out)
	}
}

func TestDrainCheckCommand(t *testing.T) {
	cl := commandCluster()
	keep, _ := testNode{name: "keep", disabled: true}.objects()
	cl.Nodes = append(cl.Nodes, *keep)
	lv, reps := testVolume{name: "pvc-k", replicas: []string{"keep"}}.objects()
	cl.Volumes, cl.Replicas = append(cl.Volumes, *lv), append(cl.Replicas, reps...)
	c := fakeClient(cl)

	out, _, code := runWith(t, c, "drain-check", "node-1")
	if code != ExitOK || !strings.HasPrefix(out, "Node node-1 can be drained now: 4 local volume(s) move off it (4 by new migrations, 0 already moving).\n\nVOLUME ") {
		t.Errorf("drain-check node-1 (%d):\n%s", code, out)
	}
	// node-3 has the most room in another zone than node-1's; for the HA
	// volume it is the only node without a replica.
	for _, line := range []string{"pvc-a db/data-0 2Gi move node-3", "pvc-g1 db/logs-0 1Gi move node-3", "pvc-ha web/cache-0 1Gi move node-3"} {
		if !strings.Contains(squeeze(out), line) {
			t.Errorf("drain-check node-1 lacks %q:\n%s", line, out)
		}
	}

	out, _, code = runWith(t, c, "drain-check", "keep", "-o", "json")
	var dc DrainCheck
	if err := json.Unmarshal([]byte(out), &dc); err != nil || code != ExitNotDrainable || dc.Kind != "DrainCheck" || dc.APIVersion != "cli.hwameistor.io/v1alpha1" ||
		dc.CanDrain || !dc.EvictionDisabled || len(dc.Volumes) != 1 || dc.Volumes[0].Action != ActionStay {
		t.Errorf("drain-check keep -o json (%d, %v):\n%s", code, err, out)
	}
	out, _, code = runWith(t, c, "drain-check", "node-3", "-o", "jsonpath={.canDrain}")
	if code != ExitOK || out != "true" {
		t.Errorf("drain-check node-3 -o jsonpath (%d): %q", code, out)
	}
	_, errOut, code := runWith(t, c, "drain-check", "node-9")
	if code != ExitCheckFailed || errOut != "error: node \"node-9\" not found\n" {
		t.Errorf("unknown node (%d): %q", code, errOut)
	}
	for _, args := range [][]string{{"drain-check"}, {"drain-check", "a", "b"}, {"drain-check", "node-1", "--bogus"}} {
		if _, errOut, code := runWith(t, c, args...); code != ExitCheckFailed || !strings.HasPrefix(errOut, "error: ") {
			t.Errorf("%v: exit %d, stderr %q; want 2 for a usage error", args, code, errOut)
		}
	}
	_, errOut, code = runWith(t, c, "drain-check", "node-1", "-o", "name")
	if code != ExitCheckFailed || !strings.Contains(errOut, "allowed formats are: go-template") {
		t.Errorf("-o name (%d): %q", code, errOut)
	}
}
