package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "hwameistor.io/local/api/v1alpha1"
)

func TestHumanBytes(t *testing.T) {
	for _, tt := range []struct {
		in   int64
		want string
	}{
		{0, "0"},
		{1023, "1023"},
		{1024, "1Ki"},
		{1536, "1.5Ki"},
		{512 << 20, "512Mi"},
		{10 * gi, "10Gi"},
		{gi + gi/2, "1.5Gi"},
		{gi - 1, "1Gi"}, // 1023.99...Mi rounds up to the next unit
		{100_000_000_000, "93.1Gi"},
		{3 << 40, "3Ti"},
		{-2 * gi, "-2Gi"},
	} {
		if got := humanBytes(tt.in); got != tt.want {
			t.Errorf("humanBytes(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestPercent(t *testing.T) {
	for _, tt := range []struct {
		part, whole int64
		want        string
	}{{0, 0, "0%"}, {1, 3, "33%"}, {10, 60, "16%"}, {60, 60, "100%"}} {
		if got := percent(tt.part, tt.whole); got != tt.want {
			t.Errorf("percent(%d, %d) = %q, want %q", tt.part, tt.whole, got, tt.want)
		}
	}
}

// printed renders a table the way the commands do.
func printed(t *testing.T, tbl *metav1.Table, wide bool) string {
	t.Helper()
	o := newOutputFlags(true)
	if wide {
		*o.print.OutputFormat = "wide"
	}
	var out, errOut bytes.Buffer
	if err := o.printTable(&out, &errOut, tbl, "nothing"); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestPoolsTable(t *testing.T) {
	cl := testCluster([]testNode{
		{name: "n1", zone: "a", free: 50 * gi, volumes: []string{"v1", "v2"}},
		{name: "n2", zone: "b", free: 5 * gi, pool: v1.PoolNameSSD, cordoned: true, disabled: true},
		{name: "n3", noNode: true, free: gi},
	}, []testVolume{{name: "v1", replicas: []string{"n1"}}, {name: "v2", replicas: []string{"n1"}}, {name: "new", size: 2 * gi, pool: v1.PoolNameSSD, replicas: []string{"n2"}}}, nil)
	// n3 gets a second pool, n1 an LSN without pools.
	cl.StorageNodes[2].Status.Pools[v1.PoolNameNVMe] = v1.LocalPool{Name: v1.PoolNameNVMe, Class: v1.PoolClassNVMe, TotalCapacityBytes: 4 * gi, UsedCapacityBytes: gi, FreeCapacityBytes: 3 * gi}
	cl.StorageNodes = append(cl.StorageNodes, v1.LocalStorageNode{ObjectMeta: metav1.ObjectMeta{Name: "n4"}})
	lsns, err := selectStorageNodes(cl, nil)
	if err != nil {
		t.Fatal(err)
	}

	want := `NODE   CLASS    FREE   TOTAL   USED%   VOLUMES
n1     HDD      50Gi   60Gi    16%     2
n2     SSD      5Gi    15Gi    66%     0
n3     HDD      1Gi    11Gi    90%     0
n3     NVMe     3Gi    4Gi     25%     0
n4     <none>   0      0       0%      0
`
	if got := printed(t, poolsTable(cl, lsns, nil, cl.capacity().Cache), false); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
	// Wide: "new" is placed on n2 but not in its status yet, so AVAILABLE
	// is 2Gi less than FREE there.
	wide := printed(t, poolsTable(cl, lsns, nil, cl.capacity().Cache), true)
	for _, line := range []string{
		"n1     HDD      50Gi   60Gi    16%     2         a        Ready                                 50Gi        2/100",
		"n2     SSD      5Gi    15Gi    66%     0         b        Ready,SchedulingDisabled,EvictionDisabled   3Gi         0/100",
		"n3     HDD      1Gi    11Gi    90%     0         <none>   Ready,NoNode",
	} {
		if !strings.Contains(squeeze(wide), squeeze(line)) {
			t.Errorf("wide table lacks %q:\n%s", line, wide)
		}
	}
	if got := printed(t, poolsTable(cl, lsns, []v1.PoolClass{v1.PoolClassNVMe}, nil), false); got != "NODE   CLASS   FREE   TOTAL   USED%   VOLUMES\nn3     NVMe    3Gi    4Gi     25%     0\n" {
		t.Errorf("--class NVMe:\n%s", got)
	}
}

// squeeze collapses runs of spaces, so a test names cells, not padding.
func squeeze(s string) string { return strings.Join(strings.Fields(s), " ") }

func TestVolumesTable(t *testing.T) {
	cl := testCluster([]testNode{{name: "n1"}, {name: "n2"}, {name: "n3"}},
		[]testVolume{
			{name: "v1", size: 10 * gi, replicas: []string{"n1"}, claim: "db/data-0"},
			{name: "ha", size: gi + gi/2, group: "lvg-1", replicas: []string{"n1", "n2"}},
			{name: "bare", replicas: []string{"n3"}},
		},
		[]testMigration{
			{name: "m1", volume: "v1", source: "n1", target: "n3", state: v1.OperationStateSyncReplica, progress: "40%"},
			{name: "done", volume: "bare", source: "n1", target: "n3", state: v1.OperationStateCompleted},
		})
	cl.Volumes[1].Status.PublishedNodeName = "n2"
	cl.Replicas[2].Status.State, cl.Replicas[2].Status.Synced = v1.StateNotReady, false // ha on n2
	vols, err := selectVolumes(cl, nil, "", "")
	if err != nil {
		t.Fatal(err)
	}
	want := `NAME   CAPACITY   REPLICAS   STATE   PVC         MIGRATION
bare   1Gi        n3         Ready   <none>      <none>
ha     1.5Gi      n1,n2      Ready   <none>      <none>
v1     10Gi       n1         Ready   db/data-0   m1 (SyncReplica, 40%)
`
	if got := printed(t, volumesTable(cl, vols), false); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
	wide := squeeze(printed(t, volumesTable(cl, vols), true))
	if line := "ha 1.5Gi n1,n2 Ready <none> <none> HDD lvg-1 n1=Ready,n2=NotReady n1=true,n2=false n2"; !strings.Contains(wide, line) {
		t.Errorf("wide lacks %q:\n%s", line, wide)
	}

	for _, tt := range []struct {
		names           []string
		node, namespace string
		want            []string
		err             string
	}{
		{node: "n1", want: []string{"ha", "v1"}},
		{node: "n2", want: []string{"ha"}},
		{namespace: "db", want: []string{"v1"}},
		{names: []string{"v1", "bare"}, want: []string{"v1", "bare"}},
		{names: []string{"v1", "bare"}, node: "n3", want: []string{"bare"}},
		{names: []string{"nope"}, err: `volume "nope" not found`},
	} {
		got, err := selectVolumes(cl, tt.names, tt.node, tt.namespace)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("%+v: err %v, want %s", tt, err, tt.err)
			}
			continue
		}
		if names := volumeNames(got); strings.Join(names, ",") != strings.Join(tt.want, ",") {
			t.Errorf("%+v: %v, want %v", tt, names, tt.want)
		}
	}
}

func TestMigrationsTable(t *testing.T) {
	cl := testCluster(nil, nil, []testMigration{
		{name: "lvg-a-5c2a9f10", volume: "pvc-a", volumes: []string{"pvc-a", "pvc-b"}, source: "hdd-0", target: "hdd-2",
			state: v1.OperationStateSyncReplica, progress: "40%", trigger: "drain"},
		{name: "move-db-0", volume: "pvc-c", source: "hdd-0", created: 60},
		{name: "old", volume: "pvc-d", source: "hdd-1", target: "hdd-0", state: v1.OperationStateCompleted},
	})
	cl.Migrations[0].Status.BytesCopied, cl.Migrations[0].Status.TotalBytes = 4*gi, 10*gi
	cl.Migrations[1].Status.Message = "queued: 2 migrations running (limit 10), 2 from hdd-0 (limit 2)"
	ms, err := selectMigrations(cl, nil, "", false)
	if err != nil {
		t.Fatal(err)
	}
	now := epoch.Add(10 * time.Minute)
	want := `NAME             VOLUMES       SOURCE   TARGET   STATE         PROGRESS         AGE
lvg-a-5c2a9f10   pvc-a,pvc-b   hdd-0    hdd-2    SyncReplica   40% (4Gi/10Gi)   10m
move-db-0        pvc-c         hdd-0    <none>   Submitted     <none>           9m
old              pvc-d         hdd-1    hdd-0    Completed     <none>           10m
`
	if got := printed(t, migrationsTable(ms, now), false); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
	wide := squeeze(printed(t, migrationsTable(ms, now), true))
	for _, line := range []string{"10m drain false <none>", "9m <none> false queued: 2 migrations running (limit 10), 2 from hdd-0 (limit 2)"} {
		if !strings.Contains(wide, line) {
			t.Errorf("wide lacks %q:\n%s", line, wide)
		}
	}
	for _, tt := range []struct {
		names  []string
		node   string
		active bool
		want   string
		err    string
	}{
		{node: "hdd-0", want: "lvg-a-5c2a9f10,move-db-0,old"}, // old's target is hdd-0
		{node: "hdd-1", want: "old"},
		{active: true, want: "lvg-a-5c2a9f10,move-db-0"},
		{names: []string{"old"}, active: true, want: ""},
		{names: []string{"nope"}, err: `migration "nope" not found`},
	} {
		got, err := selectMigrations(cl, tt.names, tt.node, tt.active)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("%+v: err %v, want %s", tt, err, tt.err)
			}
			continue
		}
		var names []string
		for _, m := range got {
			names = append(names, m.Name)
		}
		if strings.Join(names, ",") != tt.want {
			t.Errorf("%+v: %v, want %s", tt, names, tt.want)
		}
	}
}

func TestAbortOutcome(t *testing.T) {
	for _, tt := range []struct {
		state     v1.State
		requested bool
		want      string
	}{
		{"", true, "abort requested (Submitted): it ends Aborted at once, nothing to undo; the volume stays on src"},
		{v1.OperationStateSyncReplica, true, "abort requested (SyncReplica): the copy to tgt is rolled back and its replica removed; the volume stays on src"},
		{v1.OperationStateAddReplica, false, "abort was already requested (AddReplica): the copy to tgt is rolled back"},
		{v1.OperationStateAborting, false, "already rolling back; the volume stays on src"},
		{v1.OperationStatePruneReplica, true, "ignored in PruneReplica"},
		{v1.OperationStateCompleted, true, "ignored: the migration already completed; the volume is on tgt"},
		{v1.OperationStateFailed, false, "already Failed, nothing to abort"},
		{v1.OperationStateAborted, false, "already Aborted, nothing to abort"},
	} {
		m := testMigration{name: "m", source: "src", target: "tgt", state: tt.state}.object()
		if got := abortOutcome(&m, tt.requested); !strings.HasPrefix(got, tt.want) && !strings.Contains(got, tt.want) {
			t.Errorf("%s (requested %v): %q, want %q", tt.state, tt.requested, got, tt.want)
		}
	}
}

func TestDrainTable(t *testing.T) {
	cl := testCluster([]testNode{
		{name: "src", zone: "a", free: 50 * gi},
		{name: "n1", zone: "b", free: 100 * gi},
	}, []testVolume{
		{name: "v1", size: 2 * gi, replicas: []string{"src"}, claim: "db/data-0"},
		{name: "big", size: 500 * gi, replicas: []string{"src"}},
	}, nil)
	cl.Volumes[1].Status.PublishedNodeName = "src"
	dc, err := planDrain(cl, "src", epoch)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	writeSummary(&out, dc)
	if got := out.String(); got != "Node src cannot be drained now: 1 of its 2 local volume(s) would not move.\n" {
		t.Errorf("summary %q", got)
	}
	want := `VOLUME   PVC         SIZE    ACTION   TARGET   REASON
big      <none>      500Gi   stay     <none>   waiting for a target: no candidate node (1 checked) can hold 500Gi in LocalStorage_PoolHDD
v1       db/data-0   2Gi     move     n1       <none>
`
	if got := printed(t, drainTable(dc), false); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
	wide := squeeze(printed(t, drainTable(dc), true))
	if line := "v1 db/data-0 2Gi move n1 <none> <none> HDD src v1-"; !strings.Contains(wide, line) {
		t.Errorf("wide lacks %q:\n%s", line, wide)
	}

	for _, tt := range []struct {
		dc   DrainCheck
		want string
	}{
		{DrainCheck{Node: "n", CanDrain: true}, "Node n holds no local volumes: it can be drained now, nothing moves.\n"},
		{DrainCheck{Node: "n", CanDrain: true, Volumes: []VolumeMove{{Action: ActionMove}, {Action: ActionMoving}, {Action: ActionMove}}},
			"Node n can be drained now: 3 local volume(s) move off it (2 by new migrations, 1 already moving).\n"},
		{DrainCheck{Node: "n", Problems: []string{"no address"}, Warnings: []string{"slow"}, Volumes: []VolumeMove{{Action: ActionMove}}},
			"Node n cannot be drained now: the copies off it would fail.\n  problem: no address\n  warning: slow\n"},
	} {
		var b bytes.Buffer
		writeSummary(&b, &tt.dc)
		if b.String() != tt.want {
			t.Errorf("summary %q, want %q", b.String(), tt.want)
		}
	}
}
