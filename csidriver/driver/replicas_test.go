package driver

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

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	mountutils "k8s.io/mount-utils"
	testingexec "k8s.io/utils/exec/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/backend/command"
	"hwameistor.io/local/csidriver/drbd"
)

// The HA volume of these tests: resource id 7, so /dev/drbd7, on node n1.
const (
	haVol    = "pvc-ha"
	haNode   = "n1"
	haID     = int64(7)
	haDevice = "/dev/drbd7"
	// haOwnDev is the replica's own logical volume.
	haOwnDev = "/dev/LocalStorage_PoolHDD/pvc-ha"
)

// /proc/drbd of DRBD 8.4.11, after the samples recorded in test/vm
// (csidriver/drbd/testdata/proc84-recorded-*.txt), with the volume's minor
// 7 instead of 0.
const procHeader = "version: 8.4.11 (api:1/proto:86-101)\nsrcversion: F73C670A7EC572DB9CF3E5B\n"

func proc84(minors ...string) string { return procHeader + strings.Join(minors, "\n") + "\n" }

var (
	procBothSecondary = proc84(" 7: cs:Connected ro:Secondary/Secondary ds:UpToDate/UpToDate C r-----",
		"    ns:65496 nr:3563 dw:74761 dr:69041 al:13 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0")
	procPrimary = proc84(" 7: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----",
		"    ns:320 nr:0 dw:70005 dr:344 al:10 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0")
	procPrimaryAlone = proc84(" 7: cs:WFConnection ro:Primary/Unknown ds:UpToDate/DUnknown C r-----",
		"    ns:0 nr:3563 dw:74761 dr:3545 al:13 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:1512")
	procPeerPrimary = proc84(" 7: cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate C r-----",
		"    ns:0 nr:65496 dw:65496 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0")
	// The peer died: this replica is UpToDate and alone, it may take over.
	procPeerGone = proc84(" 7: cs:WFConnection ro:Secondary/Unknown ds:UpToDate/DUnknown C r-----",
		"    ns:0 nr:3563 dw:74761 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0")
	// A resync into this replica, its peer Primary elsewhere.
	procSyncTarget = proc84(" 7: cs:SyncTarget ro:Secondary/Primary ds:Inconsistent/UpToDate C r-----",
		"    ns:0 nr:314572 dw:314572 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:734004",
		"\t[=====>..............] sync'ed: 30.0% (734004/1048576)K",
		"\tfinish: 0:00:18 speed: 40,220 (40,220) K/sec")
	// A resync into this replica while both are Secondary (the peer is not
	// in use either): still not a replica that may serve.
	procSyncTargetBothSecondary = proc84(" 7: cs:SyncTarget ro:Secondary/Secondary ds:Inconsistent/UpToDate C r-----",
		"    ns:0 nr:524288 dw:524288 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:474112",
		"\t[==========>.........] sync'ed: 54.8% (474112/1048576)K",
		"\tfinish: 0:00:12 speed: 39,474 (39,474) K/sec")
	procWFConnectionInconsistent = proc84(" 7: cs:WFConnection ro:Secondary/Unknown ds:Inconsistent/DUnknown C r----s",
		"    ns:0 nr:0 dw:0 dr:0 al:8 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:65496")
	procOutdated = proc84(" 7: cs:WFConnection ro:Secondary/Unknown ds:Outdated/DUnknown C r-----",
		"    ns:0 nr:0 dw:0 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0")
	procUnconfigured = proc84(" 7: cs:Unconfigured")
	// Other volumes are up, minor 7 is not (17 is not 7).
	procOthers = proc84(" 0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----",
		"    ns:1048 nr:0 dw:1048 dr:2065 al:2 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0",
		"17: cs:Connected ro:Secondary/Secondary ds:UpToDate/UpToDate C r-----",
		"    ns:0 nr:0 dw:0 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0")
	procNone = procHeader
)

// haReplica is the volume's replica on haNode; d is its status.drbd.
func haReplica(d *v1.ReplicaDRBDStatus) *v1.LocalVolumeReplica {
	return &v1.LocalVolumeReplica{ObjectMeta: metav1.ObjectMeta{Name: v1.ReplicaName(haVol, haNode)},
		Spec:   v1.LocalVolumeReplicaSpec{VolumeName: haVol, NodeName: haNode, PoolName: v1.PoolNameHDD, RequiredCapacityBytes: 1 << 30},
		Status: v1.LocalVolumeReplicaStatus{State: v1.StateReady, DevicePath: haOwnDev, DRBD: d}}
}

// upReplica is a replica the node agent brought up (its status.drbd).
func upReplica() *v1.LocalVolumeReplica {
	return haReplica(&v1.ReplicaDRBDStatus{Device: haDevice, Port: v1.DRBDPort(haID), Role: "Secondary",
		DiskState: "UpToDate", Connection: "Connected", PeerDiskState: "UpToDate", InSyncPercent: "100", MayServe: true})
}

// leaving marks rep as asked to leave the DRBD resource by migration mig-1.
func leaving(rep *v1.LocalVolumeReplica) *v1.LocalVolumeReplica {
	rep.Annotations = map[string]string{v1.DRBDLeaveAnnotation: "mig-1"}
	return rep
}

// haVolume is the HA volume with resource id id (0: not assigned yet).
func haVolume(id int64) *v1.LocalVolume {
	return &v1.LocalVolume{ObjectMeta: metav1.ObjectMeta{Name: haVol},
		Spec: v1.LocalVolumeSpec{PoolName: v1.PoolNameHDD, RequiredCapacityBytes: 1 << 30, ReplicaNumber: 2,
			Config: &v1.VolumeConfig{VolumeName: haVol, RequiredCapacityBytes: 1 << 30, ResourceID: id,
				Replicas: []v1.VolumeReplica{{ID: 1, Hostname: haNode, Primary: true}, {ID: 2, Hostname: "n2"}}}}}
}

// singleVolume is the volume with one replica: never replicated.
func singleVolume() *v1.LocalVolume {
	lv := haVolume(0)
	lv.Spec.ReplicaNumber, lv.Spec.Config.Replicas = 1, lv.Spec.Config.Replicas[:1]
	return lv
}

// haAdm is the argv of drbdadm on the volume's resource file in dir.
func haAdm(dir string, args ...string) []string {
	return append([]string{"drbdadm", "-c", filepath.Join(dir, haVol+".res")}, args...)
}

// procFile replays /proc/drbd (its content can change between calls) and
// counts the reads.
type procFile struct {
	t     *testing.T
	mu    sync.Mutex
	text  string
	err   error
	reads int
}

func (p *procFile) read(path string) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if path != drbd.ProcDRBD {
		p.t.Errorf("ReadFile(%q), want %q", path, drbd.ProcDRBD)
	}
	p.reads++
	if p.err != nil {
		return nil, p.err
	}
	return []byte(p.text), nil
}

func (p *procFile) set(text string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.text = text
}

func (p *procFile) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reads
}

func haClient(t *testing.T, objs ...client.Object) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := v1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	return fake.NewClientBuilder().WithScheme(scheme).WithStatusSubresource(&v1.LocalVolumeReplica{}).WithObjects(objs...).Build()
}

// newReplicas is DRBDReplicas on haNode over a DRBD 8.4 whose /proc/drbd
// reads proc and whose drbdadm expects calls (built from its Dir).
func newReplicas(t *testing.T, proc string, calls func(dir string) []command.Call, objs ...client.Object) (DRBDReplicas, *command.Fake, *procFile) {
	t.Helper()
	dir := t.TempDir()
	var want []command.Call
	if calls != nil {
		want = calls(dir)
	}
	runner := command.NewFake(want...)
	pf := &procFile{t: t, text: proc}
	m := &drbd.Manager{Version: drbd.V84, Dir: dir, ReadFile: pf.read, Runner: runner}
	return DRBDReplicas{Client: haClient(t, objs...), Node: haNode, DRBD: m}, runner, pf
}

func run(args ...string) func(dir string) []command.Call {
	return func(dir string) []command.Call { return []command.Call{{Argv: haAdm(dir, args...)}} }
}

func failing(stderr string, args ...string) func(dir string) []command.Call {
	return func(dir string) []command.Call {
		return []command.Call{{Argv: haAdm(dir, args...), ExitCode: 11, Stderr: stderr}}
	}
}

func checkCode(t *testing.T, what string, err error, code codes.Code, msg []string) {
	t.Helper()
	if code == codes.OK {
		if err != nil {
			t.Errorf("%s: %v, want no error", what, err)
		}
		return
	}
	if status.Code(err) != code {
		t.Errorf("%s = %v (%s), want %s", what, err, status.Code(err), code)
		return
	}
	for _, m := range msg {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("%s = %q, want it to contain %q", what, err, m)
		}
	}
}

func TestReplicasPromote(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		objs  []client.Object
		proc  string
		calls func(dir string) []command.Call
		// reads is how many times /proc/drbd is read.
		reads int
		want  string
		code  codes.Code
		msg   []string
		// record is the volume's hwameistor.io/drbd-outdated after.
		record string
	}{
		// An HA volume whose resource is not up here is refused, never
		// staged from its logical volume (which would bypass DRBD).
		{name: "replica without DRBD state", objs: []client.Object{haReplica(nil), haVolume(haID)}, proc: procBothSecondary, reads: 0,
			code: codes.Unavailable, msg: []string{"cannot be served from node n1", "has not brought it up yet"}},
		{name: "DRBD state without a device", objs: []client.Object{haReplica(&v1.ReplicaDRBDStatus{Message: "waiting for the replica on n2"}), haVolume(haID)},
			proc: procBothSecondary, reads: 0, code: codes.Unavailable, msg: []string{"cannot be served from node n1", "waiting for the replica on n2"}},
		{name: "volume without resource id", objs: []client.Object{upReplica(), haVolume(0)}, proc: procBothSecondary, reads: 0,
			code: codes.Unavailable, msg: []string{"cannot be served from node n1"}},
		// A replica a migration asks to leave is never promoted again.
		{name: "leaving", objs: []client.Object{leaving(upReplica()), haVolume(haID)}, proc: procBothSecondary, reads: 0,
			code: codes.Unavailable, msg: []string{"cannot be served from node n1", "leaving the DRBD resource (migration mig-1"}},
		{name: "single-replica volume", objs: []client.Object{haReplica(nil), singleVolume()}, proc: procBothSecondary, reads: 0},
		// Written before DRBD ran (the agent never puts metadata over its
		// data): staged from its logical volume, unreplicated, as before.
		{name: "staged before DRBD", objs: []client.Object{stagedBefore(haReplica(&v1.ReplicaDRBDStatus{Message: "not replicated: the replica holds data from before DRBD"})), haVolume(haID)},
			proc: procBothSecondary, reads: 0},
		{name: "filled by a copy before DRBD", objs: []client.Object{copiedBefore(haReplica(nil)), haVolume(haID)}, proc: procBothSecondary, reads: 0},
		{name: "volume without config", objs: []client.Object{upReplica(), func() client.Object { lv := haVolume(haID); lv.Spec.Config = nil; return lv }()},
			proc: procBothSecondary, reads: 0},
		{name: "UpToDate Secondary, peer Secondary", objs: []client.Object{upReplica(), haVolume(haID)}, proc: procBothSecondary,
			calls: run("primary", haVol), reads: 1, want: haDevice},
		// Without its peer (a failover, a partition) it first records the
		// peer outdated on the volume (package fence), then 8.4's fencing
		// needs --force.
		{name: "UpToDate Secondary, peer gone (failover)", objs: []client.Object{upReplica(), haVolume(haID)}, proc: procPeerGone,
			calls: run("primary", "--force", haVol), reads: 1, want: haDevice, record: "n2"},
		{name: "peer gone, already recorded outdated by this node", objs: []client.Object{upReplica(), outdatedOn(haVolume(haID), "n2")}, proc: procPeerGone,
			calls: run("primary", "--force", haVol), reads: 1, want: haDevice, record: "n2"},
		{name: "peer gone, this replica recorded outdated", objs: []client.Object{upReplica(), outdatedOn(haVolume(haID), haNode)}, proc: procPeerGone,
			reads: 1, record: haNode, code: codes.FailedPrecondition,
			msg: []string{"the replica on node n1 is recorded outdated (hwameistor.io/drbd-outdated)", "its peer on n2 took writes it lacks"}},
		{name: "connected, a stale record of this replica", objs: []client.Object{upReplica(), outdatedOn(haVolume(haID), haNode)}, proc: procBothSecondary,
			calls: run("primary", haVol), reads: 1, want: haDevice, record: haNode},
		{name: "already Primary", objs: []client.Object{upReplica(), haVolume(haID)}, proc: procPrimary, reads: 1, want: haDevice},
		{name: "already Primary, peer gone", objs: []client.Object{upReplica(), haVolume(haID)}, proc: procPrimaryAlone, reads: 1, want: haDevice},
		{name: "resync into it, peer Primary", objs: []client.Object{upReplica(), haVolume(haID)}, proc: procSyncTarget, reads: 1,
			code: codes.Unavailable, msg: []string{"volume pvc-ha", "node n1", "Inconsistent", "30% in sync", "SyncTarget"}},
		{name: "resync into it, peer Secondary", objs: []client.Object{upReplica(), haVolume(haID)}, proc: procSyncTargetBothSecondary, reads: 1,
			code: codes.Unavailable, msg: []string{"Inconsistent", "54.8% in sync", "SyncTarget"}},
		{name: "new replica waiting for its peer", objs: []client.Object{upReplica(), haVolume(haID)}, proc: procWFConnectionInconsistent, reads: 1,
			code: codes.Unavailable, msg: []string{"Inconsistent", "WFConnection"}},
		{name: "Outdated", objs: []client.Object{upReplica(), haVolume(haID)}, proc: procOutdated, reads: 1,
			code: codes.Unavailable, msg: []string{"Outdated"}},
		{name: "peer Primary", objs: []client.Object{upReplica(), haVolume(haID)}, proc: procPeerPrimary, reads: 1,
			code: codes.FailedPrecondition, msg: []string{"volume pvc-ha is in use on its other node"}},
		{name: "minor absent", objs: []client.Object{upReplica(), haVolume(haID)}, proc: procOthers, reads: 1,
			code: codes.Unavailable, msg: []string{"not up on node n1"}},
		{name: "no minors", objs: []client.Object{upReplica(), haVolume(haID)}, proc: procNone, reads: 1,
			code: codes.Unavailable, msg: []string{"not up on node n1"}},
		{name: "minor unconfigured", objs: []client.Object{upReplica(), haVolume(haID)}, proc: procUnconfigured, reads: 1,
			code: codes.Unavailable, msg: []string{"not up on node n1"}},
		{name: "drbdadm primary fails", objs: []client.Object{upReplica(), haVolume(haID)}, proc: procBothSecondary,
			calls: failing("0: State change failed: (-1) Multiple primaries not allowed by config\n", "primary", haVol), reads: 1,
			code: codes.Unavailable, msg: []string{"promoting the replica of pvc-ha on node n1", "exit status 11", "Multiple primaries not allowed by config"}},
		{name: "replica missing", objs: []client.Object{haVolume(haID)}, proc: procBothSecondary, reads: 0,
			code: codes.Unavailable, msg: []string{"reading the replica of pvc-ha"}},
		{name: "volume missing", objs: []client.Object{upReplica()}, proc: procBothSecondary, reads: 0,
			code: codes.Unavailable, msg: []string{"reading volume pvc-ha"}},
		{name: "garbage in /proc/drbd", objs: []client.Object{upReplica(), haVolume(haID)}, proc: "drbd: no such thing here\n", reads: 1,
			code: codes.Unavailable, msg: []string{"reading the DRBD state of pvc-ha"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, runner, pf := newReplicas(t, tc.proc, tc.calls, tc.objs...)
			dev, err := r.Promote(ctx, haVol)
			checkCode(t, "Promote", err, tc.code, tc.msg)
			if dev != tc.want {
				t.Errorf("Promote = %q, want %q", dev, tc.want)
			}
			if err := runner.Verify(); err != nil {
				t.Error(err)
			}
			if got := pf.count(); got != tc.reads {
				t.Errorf("/proc/drbd read %d times, want %d", got, tc.reads)
			}
			lv := &v1.LocalVolume{}
			if err := r.Client.Get(ctx, client.ObjectKey{Name: haVol}, lv); err == nil && lv.DRBDOutdated() != tc.record {
				t.Errorf("the volume records %q outdated, want %q", lv.DRBDOutdated(), tc.record)
			}
		})
	}
}

// outdatedOn records node's replica of lv outdated.
func outdatedOn(lv *v1.LocalVolume, node string) *v1.LocalVolume {
	lv.Annotations = map[string]string{v1.DRBDOutdatedAnnotation: node}
	return lv
}

func stagedBefore(rep *v1.LocalVolumeReplica) *v1.LocalVolumeReplica {
	rep.Annotations = map[string]string{v1.StagedAtAnnotation: "2026-12-01T10:00:00Z"}
	return rep
}

func copiedBefore(rep *v1.LocalVolumeReplica) *v1.LocalVolumeReplica {
	rep.Status.Checksum = "sha256:00"
	return rep
}

func TestReplicasPromoteReadError(t *testing.T) {
	r, runner, pf := newReplicas(t, "", nil, upReplica(), haVolume(haID))
	pf.err = &fs.PathError{Op: "read", Path: drbd.ProcDRBD, Err: syscall.EIO}
	dev, err := r.Promote(context.Background(), haVol)
	checkCode(t, "Promote", err, codes.Unavailable, []string{"reading the DRBD state of pvc-ha", "input/output error"})
	if dev != "" {
		t.Errorf("Promote = %q, want \"\"", dev)
	}
	if err := runner.Verify(); err != nil {
		t.Error(err)
	}
}

func TestReplicasDemote(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		objs  []client.Object
		proc  string
		calls func(dir string) []command.Call
		reads int
		code  codes.Code
		msg   []string
	}{
		{name: "replica without DRBD state", objs: []client.Object{haReplica(nil), haVolume(haID)}, proc: procPrimary},
		{name: "volume without resource id", objs: []client.Object{upReplica(), haVolume(0)}, proc: procPrimary},
		{name: "Primary", objs: []client.Object{upReplica(), haVolume(haID)}, proc: procPrimary, calls: run("secondary", haVol), reads: 1},
		{name: "Primary, peer gone", objs: []client.Object{upReplica(), haVolume(haID)}, proc: procPrimaryAlone, calls: run("secondary", haVol), reads: 1},
		{name: "Secondary", objs: []client.Object{upReplica(), haVolume(haID)}, proc: procBothSecondary, reads: 1},
		// ...but demoted, so that it can leave once the pod is gone.
		{name: "Primary, leaving", objs: []client.Object{leaving(upReplica()), haVolume(haID)}, proc: procPrimary, calls: run("secondary", haVol), reads: 1},
		{name: "Secondary, peer Primary", objs: []client.Object{upReplica(), haVolume(haID)}, proc: procPeerPrimary, reads: 1},
		{name: "minor absent", objs: []client.Object{upReplica(), haVolume(haID)}, proc: procOthers, reads: 1},
		{name: "minor unconfigured", objs: []client.Object{upReplica(), haVolume(haID)}, proc: procUnconfigured, reads: 1},
		{name: "drbdadm secondary fails", objs: []client.Object{upReplica(), haVolume(haID)}, proc: procPrimary,
			calls: failing("0: State change failed: (-12) Device is held open by someone\n", "secondary", haVol), reads: 1,
			code: codes.Unavailable, msg: []string{"demoting the replica of pvc-ha on node n1", "Device is held open by someone"}},
		{name: "replica missing", objs: []client.Object{haVolume(haID)}, proc: procPrimary,
			code: codes.Unavailable, msg: []string{"reading the replica of pvc-ha"}},
		{name: "garbage in /proc/drbd", objs: []client.Object{upReplica(), haVolume(haID)}, proc: "garbage\n", reads: 1,
			code: codes.Unavailable, msg: []string{"reading the DRBD state of pvc-ha"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, runner, pf := newReplicas(t, tc.proc, tc.calls, tc.objs...)
			checkCode(t, "Demote", r.Demote(ctx, haVol), tc.code, tc.msg)
			if err := runner.Verify(); err != nil {
				t.Error(err)
			}
			if got := pf.count(); got != tc.reads {
				t.Errorf("/proc/drbd read %d times, want %d", got, tc.reads)
			}
		})
	}
}

// TestReplicasDevice: the replicated device an HA volume's file system is
// grown on (NodeExpandVolume), read without a DRBD command.
func TestReplicasDevice(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		objs []client.Object
		want string
		err  string
	}{
		{name: "up", objs: []client.Object{upReplica(), haVolume(haID)}, want: haDevice},
		{name: "leaving", objs: []client.Object{leaving(upReplica()), haVolume(haID)}, want: haDevice},
		{name: "single-replica volume", objs: []client.Object{upReplica(), singleVolume()}},
		{name: "staged before DRBD", objs: []client.Object{copiedBefore(haReplica(nil)), haVolume(haID)}},
		{name: "not up", objs: []client.Object{haReplica(nil), haVolume(haID)}, err: "its device on node n1 is not known"},
		{name: "volume missing", objs: []client.Object{upReplica()}, err: "reading volume pvc-ha"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, runner, pf := newReplicas(t, procPrimary, nil, tc.objs...)
			dev, err := r.Device(ctx, haVol)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("Device = %q, %v; want an error containing %q", dev, err, tc.err)
				}
			} else if dev != tc.want || err != nil {
				t.Errorf("Device = %q, %v; want %q", dev, err, tc.want)
			}
			if err := runner.Verify(); err != nil {
				t.Error(err)
			}
			if n := pf.count(); n != 0 {
				t.Errorf("/proc/drbd read %d times, want 0", n)
			}
		})
	}
}

// fakeDevices is a DeviceResolver that hands out one device and records
// the stamps.
type fakeDevices struct {
	dev    string
	err    error
	mu     sync.Mutex
	staged []string
}

func (f *fakeDevices) DevicePath(context.Context, string) (string, error) { return f.dev, f.err }

func (f *fakeDevices) MarkStaged(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.staged = append(f.staged, id)
	return nil
}

func (f *fakeDevices) stamps() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.staged...)
}

// haNodeService is the node service of haNode with Replicas over the fake
// DRBD, a fake mounter holding mounts, and an exec without scripted
// commands (any mkfs or blkid fails).
func haNodeService(t *testing.T, r DRBDReplicas, mounts []mountutils.MountPoint) (*Node, *fakeDevices, *mountutils.FakeMounter) {
	devs := &fakeDevices{dev: haOwnDev}
	m := mountutils.NewFakeMounter(mounts)
	exec := &testingexec.FakeExec{ExactOrder: true}
	return &Node{NodeID: haNode, Devices: devs, Replicas: r, Mounter: &mountutils.SafeFormatAndMount{Interface: m, Exec: exec}}, devs, m
}

// TestReplicasNodeRawBlock: a raw block HA volume is published from its
// DRBD device once promoted, and unpublishing it demotes the replica.
func TestReplicasNodeRawBlock(t *testing.T) {
	ctx := context.Background()
	r, runner, pf := newReplicas(t, procBothSecondary, func(dir string) []command.Call {
		return []command.Call{{Argv: haAdm(dir, "primary", haVol)}, {Argv: haAdm(dir, "secondary", haVol)}}
	}, upReplica(), haVolume(haID))
	n, devs, m := haNodeService(t, r, nil)
	target := filepath.Join(t.TempDir(), "publish", "pvc-ha")

	if _, err := n.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: haVol, TargetPath: target, VolumeCapability: rawCap}); err != nil {
		t.Fatalf("NodePublishVolume: %v", err)
	}
	if log := m.GetLog(); len(log) != 1 || log[0].Action != mountutils.FakeActionMount || log[0].Source != haDevice || log[0].Target != target {
		t.Errorf("mount actions %+v, want one bind mount of %s at %s", log, haDevice, target)
	}
	if got := devs.stamps(); len(got) != 1 || got[0] != haVol {
		t.Errorf("MarkStaged calls %q, want one for %s", got, haVol)
	}
	m.ResetLog()

	// Now Primary here: unpublishing the block target ends its use.
	pf.set(procPrimary)
	if _, err := n.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: haVol, TargetPath: target}); err != nil {
		t.Fatalf("NodeUnpublishVolume: %v", err)
	}
	if log := m.GetLog(); len(log) != 1 || log[0].Action != mountutils.FakeActionUnmount || log[0].Target != target {
		t.Errorf("mount actions %+v, want one unmount of %s", log, target)
	}
	if _, err := os.Stat(target); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the block target is still there: %v", err)
	}
	if err := runner.Verify(); err != nil {
		t.Error(err)
	}
	if got := pf.count(); got != 2 {
		t.Errorf("/proc/drbd read %d times, want 2", got)
	}
}

// TestReplicasNodeRawBlockRefused: a raw block HA volume in use on its
// other node is not published, stamped or bind-mounted.
func TestReplicasNodeRawBlockRefused(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		proc string
		code codes.Code
	}{
		{procPeerPrimary, codes.FailedPrecondition},
		{procSyncTarget, codes.Unavailable},
		{procOthers, codes.Unavailable},
	} {
		r, runner, _ := newReplicas(t, tc.proc, nil, upReplica(), haVolume(haID))
		n, devs, m := haNodeService(t, r, nil)
		target := filepath.Join(t.TempDir(), "publish", "pvc-ha")
		_, err := n.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: haVol, TargetPath: target, VolumeCapability: rawCap})
		if status.Code(err) != tc.code {
			t.Errorf("NodePublishVolume = %v, want %s", err, tc.code)
		}
		if log := m.GetLog(); len(log) != 0 {
			t.Errorf("mount actions %+v, want none", log)
		}
		if got := devs.stamps(); len(got) != 0 {
			t.Errorf("the refused replica was stamped as staged (%q)", got)
		}
		if _, err := os.Stat(target); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the refused block target was created: %v", err)
		}
		if err := runner.Verify(); err != nil {
			t.Error(err)
		}
	}
}

// TestReplicasNodeNotReplicated: a single-replica volume is published from
// the replica's own device and nothing is run.
func TestReplicasNodeNotReplicated(t *testing.T) {
	ctx := context.Background()
	r, runner, pf := newReplicas(t, procPrimary, nil, haReplica(nil), singleVolume())
	n, _, m := haNodeService(t, r, nil)
	target := filepath.Join(t.TempDir(), "publish", "pvc-ha")
	if _, err := n.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: haVol, TargetPath: target, VolumeCapability: rawCap}); err != nil {
		t.Fatalf("NodePublishVolume: %v", err)
	}
	if log := m.GetLog(); len(log) != 1 || log[0].Source != haOwnDev {
		t.Errorf("mount actions %+v, want one bind mount of %s", log, haOwnDev)
	}
	if _, err := n.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: haVol, TargetPath: target}); err != nil {
		t.Fatalf("NodeUnpublishVolume: %v", err)
	}
	if err := runner.Verify(); err != nil {
		t.Error(err)
	}
	if got := pf.count(); got != 0 {
		t.Errorf("/proc/drbd read %d times, want 0", got)
	}
}

// TestReplicasNodeStage: staging promotes first (here the staging path is
// already mounted, so nothing is formatted); a replica that may not serve
// is neither stamped nor mounted; unstaging demotes, also when retried
// after a failed demotion.
func TestReplicasNodeStage(t *testing.T) {
	ctx := context.Background()
	staging := filepath.Join(t.TempDir(), "staging")
	if err := os.Mkdir(staging, 0o750); err != nil {
		t.Fatal(err)
	}

	t.Run("promotes", func(t *testing.T) {
		r, runner, _ := newReplicas(t, procBothSecondary, run("primary", haVol), upReplica(), haVolume(haID))
		n, devs, m := haNodeService(t, r, []mountutils.MountPoint{{Device: haDevice, Path: staging, Type: "xfs"}})
		if _, err := n.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: haVol, StagingTargetPath: staging, VolumeCapability: xfsCap}); err != nil {
			t.Fatalf("NodeStageVolume: %v", err)
		}
		if got := devs.stamps(); len(got) != 1 {
			t.Errorf("MarkStaged calls %q, want one", got)
		}
		if log := m.GetLog(); len(log) != 0 {
			t.Errorf("mount actions %+v on a staged path, want none", log)
		}
		if err := runner.Verify(); err != nil {
			t.Error(err)
		}
	})

	t.Run("refused", func(t *testing.T) {
		empty := filepath.Join(t.TempDir(), "staging")
		for _, tc := range []struct {
			proc string
			code codes.Code
			msg  string
		}{
			{procPeerPrimary, codes.FailedPrecondition, "in use on its other node"},
			{procSyncTarget, codes.Unavailable, "its disk is Inconsistent"},
			{procOutdated, codes.Unavailable, "its disk is Outdated"},
			{procUnconfigured, codes.Unavailable, "not up on node n1"},
		} {
			r, runner, _ := newReplicas(t, tc.proc, nil, upReplica(), haVolume(haID))
			n, devs, m := haNodeService(t, r, nil)
			_, err := n.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: haVol, StagingTargetPath: empty, VolumeCapability: xfsCap})
			checkCode(t, "NodeStageVolume", err, tc.code, []string{tc.msg})
			if got := devs.stamps(); len(got) != 0 {
				t.Errorf("the refused replica was stamped as staged (%q)", got)
			}
			if log := m.GetLog(); len(log) != 0 {
				t.Errorf("mount actions %+v, want none", log)
			}
			if _, err := os.Stat(empty); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the staging path of a refused volume was created: %v", err)
			}
			if err := runner.Verify(); err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("unstage demotes", func(t *testing.T) {
		r, runner, pf := newReplicas(t, procPrimary, func(dir string) []command.Call {
			return []command.Call{
				{Argv: haAdm(dir, "secondary", haVol), ExitCode: 11, Stderr: "0: State change failed: (-12) Device is held open by someone\n"},
				{Argv: haAdm(dir, "secondary", haVol)},
			}
		}, upReplica(), haVolume(haID))
		n, _, m := haNodeService(t, r, []mountutils.MountPoint{{Device: haDevice, Path: staging, Type: "xfs"}})
		_, err := n.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: haVol, StagingTargetPath: staging})
		checkCode(t, "NodeUnstageVolume", err, codes.Unavailable, []string{"Device is held open by someone"})
		if log := m.GetLog(); len(log) != 1 || log[0].Action != mountutils.FakeActionUnmount {
			t.Errorf("mount actions %+v, want one unmount", log)
		}
		// kubelet retries: nothing is mounted any more, the demotion is
		// tried again.
		if _, err := n.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: haVol, StagingTargetPath: staging}); err != nil {
			t.Fatalf("NodeUnstageVolume retried: %v", err)
		}
		// Secondary now: a third call runs nothing.
		pf.set(procBothSecondary)
		if _, err := n.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: haVol, StagingTargetPath: staging}); err != nil {
			t.Fatalf("NodeUnstageVolume again: %v", err)
		}
		if err := runner.Verify(); err != nil {
			t.Error(err)
		}
	})

	t.Run("unpublishing a filesystem does not demote", func(t *testing.T) {
		target := filepath.Join(t.TempDir(), "target")
		if err := os.Mkdir(target, 0o750); err != nil {
			t.Fatal(err)
		}
		r, runner, pf := newReplicas(t, procPrimary, nil, upReplica(), haVolume(haID))
		n, _, _ := haNodeService(t, r, []mountutils.MountPoint{{Device: haDevice, Path: target, Type: "xfs"}})
		if _, err := n.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: haVol, TargetPath: target}); err != nil {
			t.Fatalf("NodeUnpublishVolume: %v", err)
		}
		if err := runner.Verify(); err != nil {
			t.Error(err)
		}
		if got := pf.count(); got != 0 {
			t.Errorf("/proc/drbd read %d times, want 0 (the volume stays staged)", got)
		}
	})
}

// TestReplicasNodeDevice: n.device and n.demote directly.
func TestReplicasNodeDevice(t *testing.T) {
	ctx := context.Background()

	// Without Replicas: the replica's own device, nothing to demote.
	n := &Node{NodeID: haNode, Devices: &fakeDevices{dev: haOwnDev}}
	if dev, err := n.device(ctx, haVol); dev != haOwnDev || err != nil {
		t.Errorf("device without Replicas = %q, %v; want %s", dev, err, haOwnDev)
	}
	if err := n.demote(ctx, haVol); err != nil {
		t.Errorf("demote without Replicas: %v", err)
	}

	// The replica's device unknown: no promotion is attempted.
	r, runner, pf := newReplicas(t, procBothSecondary, nil, upReplica(), haVolume(haID))
	want := status.Error(codes.NotFound, "volume pvc-ha has no replica on node n1")
	n = &Node{NodeID: haNode, Devices: &fakeDevices{err: want}, Replicas: r}
	if _, err := n.device(ctx, haVol); status.Code(err) != codes.NotFound {
		t.Errorf("device without a replica = %v, want NotFound", err)
	}
	if err := runner.Verify(); err != nil {
		t.Error(err)
	}
	if got := pf.count(); got != 0 {
		t.Errorf("/proc/drbd read %d times, want 0", got)
	}

	// Replicated: the DRBD device, promoted.
	r, runner, _ = newReplicas(t, procBothSecondary, run("primary", haVol), upReplica(), haVolume(haID))
	n = &Node{NodeID: haNode, Devices: &fakeDevices{dev: haOwnDev}, Replicas: r}
	if dev, err := n.device(ctx, haVol); dev != haDevice || err != nil {
		t.Errorf("device = %q, %v; want %s", dev, err, haDevice)
	}
	if err := runner.Verify(); err != nil {
		t.Error(err)
	}

	// Refused: the error (the caller never uses the device with it).
	r, runner, _ = newReplicas(t, procPeerPrimary, nil, upReplica(), haVolume(haID))
	n = &Node{NodeID: haNode, Devices: &fakeDevices{dev: haOwnDev}, Replicas: r}
	if _, err := n.device(ctx, haVol); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("device of a volume in use elsewhere = %v, want FailedPrecondition", err)
	}
	if err := runner.Verify(); err != nil {
		t.Error(err)
	}

	// demote: Primary → secondary.
	r, runner, _ = newReplicas(t, procPrimary, run("secondary", haVol), upReplica(), haVolume(haID))
	n = &Node{NodeID: haNode, Devices: &fakeDevices{dev: haOwnDev}, Replicas: r}
	if err := n.demote(ctx, haVol); err != nil {
		t.Errorf("demote: %v", err)
	}
	if err := runner.Verify(); err != nil {
		t.Error(err)
	}
}

// unreachable is an API server that cannot be reached.
type unreachable struct{ client.Reader }

func (unreachable) Get(context.Context, client.ObjectKey, client.Object, ...client.GetOption) error {
	return errors.New("dial tcp: connect: network is unreachable")
}

// TestReplicasPromoteWithoutTheAPI: a standby that cannot record its peer
// outdated (the API server is unreachable from its node) is not promoted:
// nothing runs, the volume records nothing.
func TestReplicasPromoteWithoutTheAPI(t *testing.T) {
	r, runner, _ := newReplicas(t, procPeerGone, nil, upReplica(), haVolume(haID))
	r.APIReader = unreachable{}
	_, err := r.Promote(context.Background(), haVol)
	checkCode(t, "Promote", err, codes.Unavailable, []string{"promoting the replica on node n1 without its peer", "network is unreachable"})
	if err := runner.Verify(); err != nil {
		t.Error(err)
	}
	lv := &v1.LocalVolume{}
	if err := r.Client.Get(context.Background(), client.ObjectKey{Name: haVol}, lv); err != nil || lv.DRBDOutdated() != "" {
		t.Errorf("the volume records %q outdated (%v), want nothing", lv.DRBDOutdated(), err)
	}
}
