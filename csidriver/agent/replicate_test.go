package agent

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/backend"
	"hwameistor.io/local/csidriver/backend/command"
	"hwameistor.io/local/csidriver/drbd"
)

// The HA volume of these tests: resource id 7 (/dev/drbd7, port 43007),
// replicas on n1 (the first) and n2.
const (
	drbdVol  = "pvc-ha"
	drbdID   = int64(7)
	drbdPort = 43007
	drbdDev  = "/dev/drbd7"
)

// drbdDisk is the replica's logical volume on node.
func drbdDisk(node string) string { return "/dev/vg-" + node + "/" + drbdVol }

// /proc/drbd of DRBD 8.4.11 after the samples recorded in test/vm
// (csidriver/drbd/testdata/proc84-recorded-*.txt), for minor 7.
const drbdProcHeader = "version: 8.4.11 (api:1/proto:86-101)\nsrcversion: F73C670A7EC572DB9CF3E5B\n"

func drbdProc(lines ...string) string { return drbdProcHeader + strings.Join(lines, "\n") + "\n" }

var (
	// Minor 7 is not up (another volume's minor 0 is).
	procDown = drbdProc(" 0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----",
		"    ns:1048 nr:0 dw:1048 dr:2065 al:2 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0")
	// Two new replicas, connected, neither synced.
	procNewConnected = drbdProc(" 7: cs:Connected ro:Secondary/Secondary ds:Inconsistent/Inconsistent C r-----",
		"    ns:0 nr:0 dw:0 dr:0 al:8 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:65496")
	// A new replica whose peer is not up yet.
	procNewAlone = drbdProc(" 7: cs:WFConnection ro:Secondary/Unknown ds:Inconsistent/DUnknown C r----s",
		"    ns:0 nr:0 dw:0 dr:0 al:8 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:65496")
	procInSync = drbdProc(" 7: cs:Connected ro:Secondary/Secondary ds:UpToDate/UpToDate C r-----",
		"    ns:65496 nr:3563 dw:74761 dr:69041 al:13 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0")
	procPrimaryInSync = drbdProc(" 7: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----",
		"    ns:320 nr:0 dw:70005 dr:344 al:10 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0")
	// A replica back after a restart: UpToDate, its peer not connected yet.
	procUpAlone = drbdProc(" 7: cs:WFConnection ro:Secondary/Unknown ds:UpToDate/DUnknown C r-----",
		"    ns:0 nr:0 dw:0 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0")
	procSyncSource = drbdProc(" 7: cs:SyncSource ro:Primary/Secondary ds:UpToDate/Inconsistent C r-----",
		"    ns:474112 nr:0 dw:0 dr:475200 al:0 bm:0 lo:0 pe:2 ua:0 ap:0 ep:1 wo:f oos:574464",
		"\t[========>...........] sync'ed: 45.2% (574464/1048576)K",
		"\tfinish: 0:00:14 speed: 39,474 (39,474) K/sec")
)

// drbdObjects are the HA volume, both LocalStorageNodes and both replicas
// (allocated).
type drbdObjects struct {
	lv   *v1.LocalVolume
	lsns map[string]*v1.LocalStorageNode
	reps map[string]*v1.LocalVolumeReplica
}

func newDRBDObjects() *drbdObjects {
	o := &drbdObjects{
		lv: &v1.LocalVolume{ObjectMeta: metav1.ObjectMeta{Name: drbdVol}, Spec: v1.LocalVolumeSpec{
			PoolName: v1.PoolNameHDD, RequiredCapacityBytes: gi, ReplicaNumber: 2,
			Accessibility: v1.AccessibilityTopology{Nodes: []string{"n1", "n2"}},
			Config: &v1.VolumeConfig{VolumeName: drbdVol, RequiredCapacityBytes: gi, ResourceID: drbdID,
				Replicas: []v1.VolumeReplica{{ID: 1, Hostname: "n1", Primary: true}, {ID: 2, Hostname: "n2"}}}}},
		lsns: map[string]*v1.LocalStorageNode{},
		reps: map[string]*v1.LocalVolumeReplica{},
	}
	for i, n := range []string{"n1", "n2"} {
		ip := []string{"10.0.0.1:9810", "10.0.0.2:9810"}[i]
		o.lsns[n] = &v1.LocalStorageNode{ObjectMeta: metav1.ObjectMeta{Name: n}, Spec: v1.LocalStorageNodeSpec{Hostname: n, StorageIP: ip}}
		o.reps[n] = &v1.LocalVolumeReplica{ObjectMeta: metav1.ObjectMeta{Name: v1.ReplicaName(drbdVol, n)},
			Spec:   v1.LocalVolumeReplicaSpec{VolumeName: drbdVol, NodeName: n, PoolName: v1.PoolNameHDD, RequiredCapacityBytes: gi},
			Status: v1.LocalVolumeReplicaStatus{State: v1.StateReady, DevicePath: drbdDisk(n), StoragePath: drbdDisk(n)}}
	}
	return o
}

func (o *drbdObjects) list() []client.Object {
	var out []client.Object
	if o.lv != nil {
		out = append(out, o.lv)
	}
	for _, n := range []string{"n1", "n2"} {
		if o.lsns[n] != nil {
			out = append(out, o.lsns[n])
		}
		if o.reps[n] != nil {
			out = append(out, o.reps[n])
		}
	}
	return out
}

// drbdProcs replays /proc/drbd: one text per read, in order.
type drbdProcs struct {
	t     *testing.T
	mu    sync.Mutex
	texts []string
	err   error
	reads int
}

func (p *drbdProcs) read(path string) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if path != drbd.ProcDRBD {
		p.t.Errorf("ReadFile(%q), want %q", path, drbd.ProcDRBD)
	}
	p.reads++
	if p.err != nil {
		return nil, p.err
	}
	if p.reads > len(p.texts) {
		p.t.Errorf("/proc/drbd read %d times, only %d expected", p.reads, len(p.texts))
		return nil, errors.New("test: unexpected read of /proc/drbd")
	}
	return []byte(p.texts[p.reads-1]), nil
}

// verify fails unless every expected read happened.
func (p *drbdProcs) verify(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reads < len(p.texts) {
		t.Errorf("/proc/drbd read %d times, want %d", p.reads, len(p.texts))
	}
}

// drbdAgent is an agent on a fake client with o, replicating with DRBD 8.4
// on node (the only one with a manager).
type drbdAgent struct {
	a      *Agent
	c      client.Client
	m      *drbd.Manager
	runner *command.Fake
	procs  *drbdProcs
	dir    string
}

// newDRBDAgent: calls builds the expected drbdadm commands from the
// manager's Dir; procs are the successive /proc/drbd texts.
func newDRBDAgent(t *testing.T, o *drbdObjects, node string, calls func(adm func(args ...string) []string) []command.Call, procs ...string) *drbdAgent {
	t.Helper()
	dir := t.TempDir()
	adm := func(args ...string) []string {
		return append([]string{"drbdadm", "-c", filepath.Join(dir, drbdVol+".res")}, args...)
	}
	var want []command.Call
	if calls != nil {
		want = calls(adm)
	}
	runner := command.NewFake(want...)
	p := &drbdProcs{t: t, texts: procs}
	m := &drbd.Manager{Version: drbd.V84, Dir: dir, ReadFile: p.read, Runner: runner}
	c := fakeClient(t, o.list()...)
	a := &Agent{Client: c, Recorder: record.NewFakeRecorder(100), DRBD: map[string]*drbd.Manager{node: m}}
	return &drbdAgent{a: a, c: c, m: m, runner: runner, procs: p, dir: dir}
}

func admCalls(argvs ...[]string) []command.Call {
	out := make([]command.Call, len(argvs))
	for i, a := range argvs {
		out[i] = command.Call{Argv: a}
	}
	return out
}

// replica reads the volume's replica on node back.
func (d *drbdAgent) replica(t *testing.T, node string) *v1.LocalVolumeReplica {
	t.Helper()
	rep := &v1.LocalVolumeReplica{}
	if err := d.c.Get(context.Background(), client.ObjectKey{Name: v1.ReplicaName(drbdVol, node)}, rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

// replicate runs Agent.replicate for the replica on node as the
// reconciler does (the replica as read, its backend volume).
func (d *drbdAgent) replicate(t *testing.T, node string) (time.Duration, error) {
	t.Helper()
	rep := d.replica(t, node)
	return d.a.replicate(context.Background(), rep, backend.Volume{Name: drbdVol, Pool: v1.PoolNameHDD, SizeBytes: gi, DevicePath: drbdDisk(node)})
}

func (d *drbdAgent) verify(t *testing.T) {
	t.Helper()
	if err := d.runner.Verify(); err != nil {
		t.Error(err)
	}
	d.procs.verify(t)
}

// resFile is the resource file's content, "" when there is none.
func (d *drbdAgent) resFile(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.dir, drbdVol+".res"))
	if errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// wantResFile checks the file holds both replicas: addresses and disks.
func (d *drbdAgent) wantResFile(t *testing.T) {
	t.Helper()
	got := d.resFile(t)
	for _, part := range []string{
		"resource pvc-ha {",
		"  on n1 {\n    device /dev/drbd7 minor 7;\n    disk /dev/vg-n1/pvc-ha;\n    address ipv4 10.0.0.1:43007;\n    meta-disk internal;\n  }",
		"  on n2 {\n    device /dev/drbd7 minor 7;\n    disk /dev/vg-n2/pvc-ha;\n    address ipv4 10.0.0.2:43007;\n    meta-disk internal;\n  }",
	} {
		if !strings.Contains(got, part) {
			t.Errorf("resource file lacks %q:\n%s", part, got)
		}
	}
	want, err := drbd.Config(&drbd.Resource{Name: drbdVol, Minor: 7, Port: drbdPort, MetaDisk: "internal", Peers: []drbd.Peer{
		{Node: "n1", Address: "10.0.0.1", NodeID: 0, Disk: drbdDisk("n1")},
		{Node: "n2", Address: "10.0.0.2", NodeID: 1, Disk: drbdDisk("n2")},
	}}, drbd.V84)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("resource file:\n%s\nwant:\n%s", got, want)
	}
}

func (d *drbdAgent) wantNoFile(t *testing.T) {
	t.Helper()
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("the DRBD folder holds %v, want nothing", entries)
	}
}

func (d *drbdAgent) wantDRBD(t *testing.T, node string, want *v1.ReplicaDRBDStatus) {
	t.Helper()
	got := d.replica(t, node).Status.DRBD
	if !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("status.drbd of the replica on %s =\n %+v\nwant\n %+v", node, got, want)
	}
}

// TestReplicateLeavesAlone: replicas that are not replicated with DRBD.
func TestReplicateLeavesAlone(t *testing.T) {
	for _, tc := range []struct {
		name   string
		node   string // the replica's
		mgr    string // the node with a manager
		mutate func(o *drbdObjects)
	}{
		{name: "single-replica volume", node: "n1", mgr: "n1", mutate: func(o *drbdObjects) {
			o.lv.Spec.ReplicaNumber = 1
			o.lv.Spec.Config.Replicas = o.lv.Spec.Config.Replicas[:1]
			o.reps["n2"] = nil
		}},
		{name: "single-replica volume with a resource id", node: "n1", mgr: "n1", mutate: func(o *drbdObjects) {
			o.lv.Spec.ReplicaNumber = 1
		}},
		{name: "volume without config", node: "n1", mgr: "n1", mutate: func(o *drbdObjects) { o.lv.Spec.Config = nil }},
		{name: "sync-pending copy target", node: "n1", mgr: "n1", mutate: func(o *drbdObjects) {
			o.reps["n1"].Annotations = map[string]string{v1.SyncPendingAnnotation: "mig-1", v1.SyncSourceAnnotation: "n3"}
		}},
		{name: "node without manager", node: "n2", mgr: "n1"},
		{name: "volume gone", node: "n1", mgr: "n1", mutate: func(o *drbdObjects) { o.lv = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newDRBDObjects()
			if tc.mutate != nil {
				tc.mutate(o)
			}
			d := newDRBDAgent(t, o, tc.mgr, nil)
			after, err := d.replicate(t, tc.node)
			if after != 0 || err != nil {
				t.Errorf("replicate = %v, %v; want 0, nil", after, err)
			}
			d.verify(t)
			d.wantNoFile(t)
			d.wantDRBD(t, tc.node, nil)
		})
	}

	// An agent without DRBD at all.
	o := newDRBDObjects()
	a := &Agent{Client: fakeClient(t, o.list()...), Recorder: record.NewFakeRecorder(100)}
	rep := o.reps["n1"].DeepCopy()
	if after, err := a.replicate(context.Background(), rep, backend.Volume{Name: drbdVol, DevicePath: drbdDisk("n1")}); after != 0 || err != nil {
		t.Errorf("replicate without DRBD = %v, %v; want 0, nil", after, err)
	}
	if err := a.unreplicate(context.Background(), rep); err != nil {
		t.Errorf("unreplicate without DRBD: %v", err)
	}
}

// TestReplicateWaits: what a replica waits for is said in its status.drbd
// message, and nothing is read, written or run.
func TestReplicateWaits(t *testing.T) {
	for _, tc := range []struct {
		name   string
		node   string
		mutate func(o *drbdObjects)
		want   string
	}{
		{name: "no resource id", node: "n1", mutate: func(o *drbdObjects) { o.lv.Spec.Config.ResourceID = 0 },
			want: "waiting for the volume's DRBD resource id (the volume controller assigns it)"},
		{name: "peer without storage IP", node: "n1", mutate: func(o *drbdObjects) { o.lsns["n2"].Spec.StorageIP = "" },
			want: "waiting for node n2's storage IP"},
		{name: "peer with a host name as storage IP", node: "n1", mutate: func(o *drbdObjects) { o.lsns["n2"].Spec.StorageIP = "n2.example:9810" },
			want: "waiting for node n2's storage IP"},
		{name: "own node without storage IP", node: "n1", mutate: func(o *drbdObjects) { o.lsns["n1"].Spec.StorageIP = "" },
			want: "waiting for node n1's storage IP"},
		{name: "second replica, first node without storage IP", node: "n2", mutate: func(o *drbdObjects) { o.lsns["n1"].Spec.StorageIP = "" },
			want: "waiting for node n1's storage IP"},
		{name: "peer replica missing", node: "n1", mutate: func(o *drbdObjects) { o.reps["n2"] = nil },
			want: "waiting for the replica on n2"},
		{name: "peer replica not allocated", node: "n1", mutate: func(o *drbdObjects) { o.reps["n2"].Status = v1.LocalVolumeReplicaStatus{} },
			want: "waiting for the replica on n2 to be allocated"},
		{name: "first replica not allocated, seen from the second", node: "n2", mutate: func(o *drbdObjects) { o.reps["n1"].Status.DevicePath = "" },
			want: "waiting for the replica on n1 to be allocated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newDRBDObjects()
			tc.mutate(o)
			d := newDRBDAgent(t, o, tc.node, nil)
			after, err := d.replicate(t, tc.node)
			if after != drbdSettling || err != nil {
				t.Errorf("replicate = %v, %v; want %v, nil", after, err, drbdSettling)
			}
			d.verify(t)
			d.wantNoFile(t)
			got := d.replica(t, tc.node).Status.DRBD
			if got == nil || !strings.HasPrefix(got.Message, tc.want) || !equality.Semantic.DeepEqual(*got, v1.ReplicaDRBDStatus{Message: got.Message}) {
				t.Errorf("status.drbd = %+v, want only a message starting with %q", got, tc.want)
			}

			// Again: the same message, no new write.
			rv := d.replica(t, tc.node).ResourceVersion
			if after, err := d.replicate(t, tc.node); after != drbdSettling || err != nil {
				t.Errorf("replicate again = %v, %v", after, err)
			}
			if got := d.replica(t, tc.node).ResourceVersion; got != rv {
				t.Errorf("an unchanged wait was written again (resourceVersion %s → %s)", rv, got)
			}
		})
	}
}

// TestReplicateWaitsKeepsTheState: a replica that was up keeps its last
// state while it waits (here for its peer's replica, being replaced).
func TestReplicateWaitsKeepsTheState(t *testing.T) {
	o := newDRBDObjects()
	known := &v1.ReplicaDRBDStatus{Device: drbdDev, Port: drbdPort, SizedBytes: gi, Role: "Primary", DiskState: "UpToDate",
		Connection: "WFConnection", PeerDiskState: "DUnknown", InSyncPercent: "0", OutOfSyncBytes: 1512 << 10, MayServe: true}
	o.reps["n1"].Status.DRBD = known.DeepCopy()
	o.reps["n2"] = nil
	d := newDRBDAgent(t, o, "n1", nil)
	if after, err := d.replicate(t, "n1"); after != drbdSettling || err != nil {
		t.Errorf("replicate = %v, %v; want %v, nil", after, err, drbdSettling)
	}
	d.verify(t)
	want := known.DeepCopy()
	want.Message = "waiting for the replica on n2"
	d.wantDRBD(t, "n1", want)
}

// TestReplicateWaitsForAMissingStorageNode: the peer's LocalStorageNode
// does not exist (yet, or its agent never registered): the replica waits
// for it like for a missing storage IP, and nothing is written or run.
func TestReplicateWaitsForAMissingStorageNode(t *testing.T) {
	o := newDRBDObjects()
	o.lsns["n2"] = nil
	// (/proc/drbd as it is, should it be read.)
	d := newDRBDAgent(t, o, "n1", nil, procDown)
	after, err := d.replicate(t, "n1")
	if after != drbdSettling || err != nil {
		t.Errorf("replicate = %v, %v; want %v, nil (waiting)", after, err, drbdSettling)
	}
	if err := d.runner.Verify(); err != nil {
		t.Error(err)
	}
	d.wantNoFile(t)
	got := d.replica(t, "n1").Status.DRBD
	if got == nil || !strings.Contains(got.Message, "n2") {
		t.Errorf("status.drbd = %+v, want a message waiting for node n2", got)
	}
}

// TestReplicateNewReplicas: two new replicas come up; the first one's node
// marks them identical (no initial sync), the second's does not.
func TestReplicateNewReplicas(t *testing.T) {
	t.Run("first replica", func(t *testing.T) {
		o := newDRBDObjects()
		// What it waited for before is resolved now.
		o.reps["n1"].Status.DRBD = &v1.ReplicaDRBDStatus{Message: "waiting for the replica on n2 to be allocated"}
		d := newDRBDAgent(t, o, "n1", func(adm func(...string) []string) []command.Call {
			return admCalls(
				adm("create-md", "--force", drbdVol),
				adm("up", drbdVol),
				adm("--", "--clear-bitmap", "new-current-uuid", drbdVol),
			)
		}, procDown, procNewConnected, procInSync)
		after, err := d.replicate(t, "n1")
		if after != drbdSteady || err != nil {
			t.Errorf("replicate = %v, %v; want %v, nil", after, err, drbdSteady)
		}
		d.verify(t)
		d.wantResFile(t)
		d.wantDRBD(t, "n1", &v1.ReplicaDRBDStatus{Device: drbdDev, Port: drbdPort, SizedBytes: gi, Role: "Secondary", DiskState: "UpToDate",
			Connection: "Connected", PeerDiskState: "UpToDate", InSyncPercent: "100", MayServe: true})
	})

	t.Run("second replica", func(t *testing.T) {
		o := newDRBDObjects()
		d := newDRBDAgent(t, o, "n2", func(adm func(...string) []string) []command.Call {
			return admCalls(adm("create-md", "--force", drbdVol), adm("up", drbdVol))
		}, procDown, procNewConnected)
		after, err := d.replicate(t, "n2")
		if after != drbdSettling || err != nil {
			t.Errorf("replicate = %v, %v; want %v, nil", after, err, drbdSettling)
		}
		d.verify(t)
		d.wantResFile(t)
		d.wantDRBD(t, "n2", &v1.ReplicaDRBDStatus{Device: drbdDev, Port: drbdPort, SizedBytes: gi, Role: "Secondary", DiskState: "Inconsistent",
			Connection: "Connected", PeerDiskState: "Inconsistent", InSyncPercent: "0", OutOfSyncBytes: 65496 << 10})
	})

	t.Run("first replica before its peer is up", func(t *testing.T) {
		o := newDRBDObjects()
		d := newDRBDAgent(t, o, "n1", func(adm func(...string) []string) []command.Call {
			return admCalls(adm("create-md", "--force", drbdVol), adm("up", drbdVol))
		}, procDown, procNewAlone)
		after, err := d.replicate(t, "n1")
		if after != drbdSettling || err != nil {
			t.Errorf("replicate = %v, %v; want %v, nil", after, err, drbdSettling)
		}
		d.verify(t)
		d.wantResFile(t)
		d.wantDRBD(t, "n1", &v1.ReplicaDRBDStatus{Device: drbdDev, Port: drbdPort, SizedBytes: gi, Role: "Secondary", DiskState: "Inconsistent",
			Connection: "WFConnection", PeerDiskState: "DUnknown", InSyncPercent: "0", OutOfSyncBytes: 65496 << 10})
	})

	t.Run("first replica, up before, both still Inconsistent", func(t *testing.T) {
		// The agent restarted between up and the skip: only the skip runs.
		o := newDRBDObjects()
		o.reps["n1"].Status.DRBD = &v1.ReplicaDRBDStatus{Device: drbdDev, Port: drbdPort, SizedBytes: gi, Role: "Secondary", DiskState: "Inconsistent",
			Connection: "WFConnection", PeerDiskState: "DUnknown", InSyncPercent: "0", OutOfSyncBytes: 65496 << 10}
		d := newDRBDAgent(t, o, "n1", func(adm func(...string) []string) []command.Call {
			return admCalls(adm("--", "--clear-bitmap", "new-current-uuid", drbdVol))
		}, procNewConnected, procInSync)
		after, err := d.replicate(t, "n1")
		if after != drbdSteady || err != nil {
			t.Errorf("replicate = %v, %v; want %v, nil", after, err, drbdSteady)
		}
		d.verify(t)
		d.wantDRBD(t, "n1", &v1.ReplicaDRBDStatus{Device: drbdDev, Port: drbdPort, SizedBytes: gi, Role: "Secondary", DiskState: "UpToDate",
			Connection: "Connected", PeerDiskState: "UpToDate", InSyncPercent: "100", MayServe: true})
	})
}

// TestReplicateFailures: a failing step stops there and is returned; the
// state is not recorded.
func TestReplicateFailures(t *testing.T) {
	t.Run("create-md", func(t *testing.T) {
		o := newDRBDObjects()
		d := newDRBDAgent(t, o, "n1", func(adm func(...string) []string) []command.Call {
			return []command.Call{{Argv: adm("create-md", "--force", drbdVol), ExitCode: 10, Stderr: "open(/dev/vg-n1/pvc-ha) failed: No such file or directory\n"}}
		}, procDown)
		_, err := d.replicate(t, "n1")
		var ce *command.Error
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), "No such file or directory") {
			t.Errorf("replicate = %v, want the create-md error", err)
		}
		d.verify(t)
		d.wantDRBD(t, "n1", nil)
	})
	t.Run("up", func(t *testing.T) {
		o := newDRBDObjects()
		d := newDRBDAgent(t, o, "n1", func(adm func(...string) []string) []command.Call {
			return []command.Call{{Argv: adm("create-md", "--force", drbdVol)},
				{Argv: adm("up", drbdVol), ExitCode: 10, Stderr: "10: Failure: (102) Local address(port) already in use.\n"}}
		}, procDown)
		_, err := d.replicate(t, "n1")
		if err == nil || !strings.Contains(err.Error(), "Local address(port) already in use") {
			t.Errorf("replicate = %v, want the up error", err)
		}
		d.verify(t)
		d.wantDRBD(t, "n1", nil)
	})
	t.Run("reading /proc/drbd", func(t *testing.T) {
		o := newDRBDObjects()
		d := newDRBDAgent(t, o, "n1", nil)
		d.procs.err = &fs.PathError{Op: "read", Path: drbd.ProcDRBD, Err: syscall.EIO}
		if _, err := d.replicate(t, "n1"); !errors.Is(err, syscall.EIO) {
			t.Errorf("replicate = %v, want the read error", err)
		}
		if err := d.runner.Verify(); err != nil {
			t.Error(err)
		}
		d.wantDRBD(t, "n1", nil)
	})
}

// upAloneMessage is a replica's DRBD message while it came up without its
// peer (it does not serve).
const upAloneMessage = "up without its peer: it may miss writes the peer took while it was down, so it serves only once connected to its peer"

// TestReplicateRestartedReplica: a replica that was up before (its
// status.drbd has the device) whose resource is not up now (a reboot) is
// brought up on its existing metadata: no create-md. It reads UpToDate but
// may miss writes its peer took meanwhile: it does not serve until it has
// connected.
func TestReplicateRestartedReplica(t *testing.T) {
	for _, node := range []string{"n1", "n2"} {
		t.Run(node, func(t *testing.T) {
			o := newDRBDObjects()
			o.reps[node].Status.DRBD = &v1.ReplicaDRBDStatus{Device: drbdDev, Port: drbdPort, SizedBytes: gi, Role: "Primary", DiskState: "UpToDate",
				Connection: "Connected", PeerDiskState: "UpToDate", InSyncPercent: "100", MayServe: true}
			d := newDRBDAgent(t, o, node, func(adm func(...string) []string) []command.Call {
				return admCalls(adm("up", drbdVol))
			}, procDown, procUpAlone)
			after, err := d.replicate(t, node)
			if after != drbdSettling || err != nil {
				t.Errorf("replicate = %v, %v; want %v, nil", after, err, drbdSettling)
			}
			d.verify(t)
			d.wantResFile(t)
			d.wantDRBD(t, node, &v1.ReplicaDRBDStatus{Device: drbdDev, Port: drbdPort, SizedBytes: gi, Role: "Secondary", DiskState: "UpToDate",
				Connection: "WFConnection", PeerDiskState: "DUnknown", InSyncPercent: "100", Message: upAloneMessage})
		})
	}
}

// TestReplicateStandbyKeepsServing: a standby allowed to serve stays
// allowed when its peer goes away (the Primary's node stopped: failover
// needs it), while one that came up alone is allowed once connected.
func TestReplicateStandbyKeepsServing(t *testing.T) {
	o := newDRBDObjects()
	o.reps["n2"].Status.DRBD = &v1.ReplicaDRBDStatus{Device: drbdDev, Port: drbdPort, SizedBytes: gi, Role: "Secondary", DiskState: "UpToDate",
		Connection: "Connected", PeerDiskState: "UpToDate", InSyncPercent: "100", MayServe: true}
	o.reps["n1"].Status.DRBD = &v1.ReplicaDRBDStatus{Device: drbdDev, Port: drbdPort, SizedBytes: gi, Role: "Secondary", DiskState: "UpToDate",
		Connection: "WFConnection", PeerDiskState: "DUnknown", InSyncPercent: "100", Message: upAloneMessage}
	d := newDRBDAgent(t, o, "n2", nil, procUpAlone)
	if _, err := d.replicate(t, "n2"); err != nil {
		t.Fatal(err)
	}
	d.wantDRBD(t, "n2", &v1.ReplicaDRBDStatus{Device: drbdDev, Port: drbdPort, SizedBytes: gi, Role: "Secondary", DiskState: "UpToDate",
		Connection: "WFConnection", PeerDiskState: "DUnknown", InSyncPercent: "100", MayServe: true})
	d.verify(t)

	d1 := newDRBDAgent(t, o, "n1", nil, procUpAlone, procInSync)
	if _, err := d1.replicate(t, "n1"); err != nil {
		t.Fatal(err)
	}
	d1.wantDRBD(t, "n1", &v1.ReplicaDRBDStatus{Device: drbdDev, Port: drbdPort, SizedBytes: gi, Role: "Secondary", DiskState: "UpToDate",
		Connection: "WFConnection", PeerDiskState: "DUnknown", InSyncPercent: "100", Message: upAloneMessage})
	if _, err := d1.replicate(t, "n1"); err != nil {
		t.Fatal(err)
	}
	d1.wantDRBD(t, "n1", &v1.ReplicaDRBDStatus{Device: drbdDev, Port: drbdPort, SizedBytes: gi, Role: "Secondary", DiskState: "UpToDate",
		Connection: "Connected", PeerDiskState: "UpToDate", InSyncPercent: "100", MayServe: true})
	d1.verify(t)
}

// TestReplicateSteady: a resource that is up runs no command while its
// file is current; a stale file is rewritten and the running resource
// adjusted to it; its state is recorded (once), and it is looked at again
// soon only while it is not in sync.
func TestReplicateSteady(t *testing.T) {
	o := newDRBDObjects()
	d := newDRBDAgent(t, o, "n1", func(adm func(args ...string) []string) []command.Call {
		return admCalls(adm("adjust", drbdVol))
	}, procInSync, procInSync, procSyncSource, procPrimaryInSync)
	// A stale file is replaced, and the resource adjusted.
	if err := os.WriteFile(filepath.Join(d.dir, drbdVol+".res"), []byte("resource pvc-ha { stale }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	inSync := &v1.ReplicaDRBDStatus{Device: drbdDev, Port: drbdPort, SizedBytes: gi, Role: "Secondary", DiskState: "UpToDate",
		Connection: "Connected", PeerDiskState: "UpToDate", InSyncPercent: "100", MayServe: true}

	after, err := d.replicate(t, "n1")
	if after != drbdSteady || err != nil {
		t.Errorf("replicate in sync = %v, %v; want %v, nil", after, err, drbdSteady)
	}
	if after != 30*time.Second {
		t.Errorf("the steady interval is %v, want 30s", after)
	}
	d.wantResFile(t)
	d.wantDRBD(t, "n1", inSync)

	// Unchanged: not written again.
	rv := d.replica(t, "n1").ResourceVersion
	if after, err := d.replicate(t, "n1"); after != drbdSteady || err != nil {
		t.Errorf("replicate in sync again = %v, %v", after, err)
	}
	if got := d.replica(t, "n1").ResourceVersion; got != rv {
		t.Errorf("an unchanged state was written again (resourceVersion %s → %s)", rv, got)
	}

	// A resync: looked at again soon, progress recorded.
	after, err = d.replicate(t, "n1")
	if after != drbdSettling || err != nil {
		t.Errorf("replicate while resyncing = %v, %v; want %v, nil", after, err, drbdSettling)
	}
	if after != 3*time.Second {
		t.Errorf("the settling interval is %v, want 3s", after)
	}
	d.wantDRBD(t, "n1", &v1.ReplicaDRBDStatus{Device: drbdDev, Port: drbdPort, SizedBytes: gi, Role: "Primary", DiskState: "UpToDate",
		Connection: "SyncSource", PeerDiskState: "Inconsistent", InSyncPercent: "45.2", OutOfSyncBytes: 574464 << 10, MayServe: true})

	// In sync again, Primary: steady.
	if after, err := d.replicate(t, "n1"); after != drbdSteady || err != nil {
		t.Errorf("replicate Primary in sync = %v, %v; want %v, nil", after, err, drbdSteady)
	}
	primary := inSync.DeepCopy()
	primary.Role = "Primary"
	d.wantDRBD(t, "n1", primary)
	d.verify(t)
	d.wantResFile(t)
}

// TestReplicateStorageIPForms: the storage IP with or without a port, and
// IPv6, becomes DRBD's address with the resource's port.
func TestReplicateStorageIPForms(t *testing.T) {
	o := newDRBDObjects()
	o.lsns["n1"].Spec.StorageIP = "10.0.0.1"
	o.lsns["n2"].Spec.StorageIP = "[fd00::2]:9810"
	d := newDRBDAgent(t, o, "n1", nil, procInSync)
	if after, err := d.replicate(t, "n1"); after != drbdSteady || err != nil {
		t.Errorf("replicate = %v, %v; want %v, nil", after, err, drbdSteady)
	}
	d.verify(t)
	got := d.resFile(t)
	for _, want := range []string{"address ipv4 10.0.0.1:43007;", "address ipv6 [fd00::2]:43007;"} {
		if !strings.Contains(got, want) {
			t.Errorf("resource file lacks %q:\n%s", want, got)
		}
	}
}

func TestUnreplicate(t *testing.T) {
	ctx := context.Background()
	t.Run("file present", func(t *testing.T) {
		o := newDRBDObjects()
		d := newDRBDAgent(t, o, "n1", func(adm func(...string) []string) []command.Call {
			return admCalls(adm("down", drbdVol))
		})
		if err := os.WriteFile(filepath.Join(d.dir, drbdVol+".res"), []byte("resource pvc-ha {}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		// Another volume's file stays.
		other := filepath.Join(d.dir, "pvc-other.res")
		if err := os.WriteFile(other, []byte("resource pvc-other {}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := d.a.unreplicate(ctx, d.replica(t, "n1")); err != nil {
			t.Errorf("unreplicate: %v", err)
		}
		d.verify(t)
		if d.resFile(t) != "" {
			t.Error("the resource file is still there")
		}
		if _, err := os.Stat(other); err != nil {
			t.Errorf("another volume's file: %v", err)
		}
	})
	t.Run("no file", func(t *testing.T) {
		o := newDRBDObjects()
		d := newDRBDAgent(t, o, "n1", nil)
		if err := d.a.unreplicate(ctx, d.replica(t, "n1")); err != nil {
			t.Errorf("unreplicate: %v", err)
		}
		d.verify(t)
	})
	t.Run("node without manager", func(t *testing.T) {
		o := newDRBDObjects()
		d := newDRBDAgent(t, o, "n1", nil)
		if err := os.WriteFile(filepath.Join(d.dir, drbdVol+".res"), []byte("resource pvc-ha {}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := d.a.unreplicate(ctx, d.replica(t, "n2")); err != nil {
			t.Errorf("unreplicate: %v", err)
		}
		d.verify(t)
		if d.resFile(t) == "" {
			t.Error("another node's unreplicate removed n1's file")
		}
	})
	t.Run("down fails", func(t *testing.T) {
		o := newDRBDObjects()
		d := newDRBDAgent(t, o, "n1", func(adm func(...string) []string) []command.Call {
			return []command.Call{{Argv: adm("down", drbdVol), ExitCode: 11, Stderr: "0: State change failed: (-12) Device is held open by someone\n"}}
		})
		if err := os.WriteFile(filepath.Join(d.dir, drbdVol+".res"), []byte("resource pvc-ha {}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		err := d.a.unreplicate(ctx, d.replica(t, "n1"))
		if err == nil || !strings.Contains(err.Error(), "Device is held open by someone") {
			t.Errorf("unreplicate = %v, want the down error", err)
		}
		d.verify(t)
		if d.resFile(t) == "" {
			t.Error("the resource file was removed although down failed (the next attempt would skip down)")
		}
	})
	t.Run("after replicate", func(t *testing.T) {
		// The file replicate writes is the one unreplicate takes down.
		o := newDRBDObjects()
		d := newDRBDAgent(t, o, "n1", func(adm func(...string) []string) []command.Call {
			return admCalls(adm("down", drbdVol))
		}, procInSync)
		if _, err := d.replicate(t, "n1"); err != nil {
			t.Fatal(err)
		}
		if err := d.a.unreplicate(ctx, d.replica(t, "n1")); err != nil {
			t.Errorf("unreplicate: %v", err)
		}
		d.verify(t)
		d.wantNoFile(t)
	})
}

// TestReplicateLeavesDataFromBeforeDRBD: a replica that was staged, or
// filled by a copy, before DRBD ran gets no metadata (internal metadata
// would overwrite the end of its data): nothing runs, no file, a message
// says why.
func TestReplicateLeavesDataFromBeforeDRBD(t *testing.T) {
	for name, mutate := range map[string]func(r *v1.LocalVolumeReplica){
		"staged": func(r *v1.LocalVolumeReplica) {
			r.Annotations = map[string]string{v1.StagedAtAnnotation: "2026-12-07T00:00:00Z"}
		},
		"filled by copy": func(r *v1.LocalVolumeReplica) { r.Status.Checksum = "sha256:0123" },
	} {
		t.Run(name, func(t *testing.T) {
			o := newDRBDObjects()
			mutate(o.reps["n1"])
			d := newDRBDAgent(t, o, "n1", nil)
			after, err := d.replicate(t, "n1")
			if after != drbdSteady || err != nil {
				t.Errorf("replicate = %v, %v; want %v, nil", after, err, drbdSteady)
			}
			d.verify(t)
			d.wantNoFile(t)
			if got := d.replica(t, "n1").Status.DRBD; got == nil || got.Device != "" || !strings.HasPrefix(got.Message, "not replicated: the replica holds data from before DRBD") {
				t.Errorf("status.drbd = %+v, want only the reason it is not replicated", got)
			}
		})
	}
}

// TestReplicateGrows: once both logical volumes grew (an expansion) and
// the resource is connected and in sync, the device is grown with
// drbdadm resize and the new size recorded; not while the peer's volume
// is smaller (DRBD would keep the smaller size), and a failure is
// returned (the agent retries).
func TestReplicateGrows(t *testing.T) {
	inSync := func(sized int64) *v1.ReplicaDRBDStatus {
		return &v1.ReplicaDRBDStatus{Device: drbdDev, Port: drbdPort, SizedBytes: sized, Role: "Secondary", DiskState: "UpToDate",
			Connection: "Connected", PeerDiskState: "UpToDate", InSyncPercent: "100", MayServe: true}
	}
	for _, tc := range []struct {
		name      string
		peerBytes int64
		calls     func(adm func(...string) []string) []command.Call
		after     time.Duration
		wantErr   string
		sized     int64
	}{
		{name: "both grown", peerBytes: gi, after: drbdSteady, sized: gi,
			calls: func(adm func(...string) []string) []command.Call { return admCalls(adm("resize", drbdVol)) }},
		{name: "peer not grown yet", peerBytes: gi / 2, after: drbdSettling, sized: gi / 2},
		{name: "resize fails", peerBytes: gi, sized: gi / 2, wantErr: "growing the DRBD device of pvc-ha to its logical volumes' 1Gi",
			calls: func(adm func(...string) []string) []command.Call {
				return []command.Call{{Argv: adm("resize", drbdVol), ExitCode: 10, Stderr: "7: Failure: (131) Need a connection to resize\n"}}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newDRBDObjects()
			o.reps["n1"].Status.DRBD = inSync(gi / 2) // its LV is 1Gi now
			o.reps["n2"].Status.AllocatedCapacityBytes = tc.peerBytes
			d := newDRBDAgent(t, o, "n1", tc.calls, procInSync)
			after, err := d.replicate(t, "n1")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("replicate = %v, want an error containing %q", err, tc.wantErr)
				}
			} else if after != tc.after || err != nil {
				t.Errorf("replicate = %v, %v; want %v, nil", after, err, tc.after)
			}
			d.verify(t)
			d.wantDRBD(t, "n1", inSync(tc.sized))
		})
	}
}
