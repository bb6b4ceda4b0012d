package emulated

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/backend"
	bemulated "hwameistor.io/local/csidriver/backend/emulated"
	"hwameistor.io/local/csidriver/drbd"
)

// TestParseResFile reads what drbd.Config writes (both versions) and
// refuses what it cannot use.
func TestParseResFile(t *testing.T) {
	res := &drbd.Resource{Name: "pvc-1", Minor: 12, Port: 43012, MetaDisk: "internal", Peers: []drbd.Peer{
		{Node: "a", Address: "10.0.0.1", Disk: "/p/a.img"},
		{Node: "b", Address: "fd00::2", NodeID: 1, Disk: "/p/b.img"},
	}}
	for _, v := range []drbd.Version{drbd.V84, drbd.V9} {
		b, err := drbd.Config(res, v)
		if err != nil {
			t.Fatal(err)
		}
		rf, err := parseResFile(b)
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		self, peer, err := rf.on("b")
		want := host{Node: "b", Minor: 12, Disk: "/p/b.img", Address: "fd00::2", Port: 43012, MetaDisk: "internal"}
		if err != nil || self != want || peer.Node != "a" || peer.Address != "10.0.0.1" || rf.Name != "pvc-1" {
			t.Errorf("%s: on b = %+v, %+v, %v", v, self, peer, err)
		}
		if _, _, err := rf.on("c"); err == nil {
			t.Errorf("%s: a host not in the file was found", v)
		}
	}
	for name, text := range map[string]string{
		"empty":        "",
		"unbalanced":   "resource r {\n  on a {\n",
		"no minor":     "resource r {\n  on a {\n    disk /x;\n    address ipv4 1.2.3.4:1;\n    meta-disk internal;\n  }\n}\n",
		"bad address":  "resource r {\n  on a {\n    device /dev/drbd1 minor 1;\n    disk /x;\n    address ipv4 host:1;\n    meta-disk internal;\n  }\n}\n",
		"not resource": "global {\n}\n",
	} {
		if _, err := parseResFile([]byte(text)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

// TestProcFormat: the lines are the kernel's (test/vm's recordings), and
// a resync shows its progress bar, percent and amounts.
func TestProcFormat(t *testing.T) {
	for _, tc := range []struct {
		v    view
		want []string
	}{
		{v: view{minor: 0, cs: "Connected", role: "Primary", peerRole: "Secondary", disk: "UpToDate", peerDisk: "UpToDate"},
			want: []string{" 0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----", "    ns:0 nr:0 dw:0 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0"}},
		{v: view{minor: 2, cs: "StandAlone", role: "Primary", peerRole: "Unknown", disk: "UpToDate", peerDisk: "DUnknown", oos: 1264},
			want: []string{" 2: cs:StandAlone ro:Primary/Unknown ds:UpToDate/DUnknown   r-----", "oos:1264"}},
		{v: view{minor: 10, cs: "SyncTarget", role: "Secondary", peerRole: "Primary", disk: "Inconsistent", peerDisk: "UpToDate",
			syncing: true, synced: 30, oos: 734004, syncOf: 1048576, left: 734004 << 10, rate: 40 << 20},
			want: []string{"10: cs:SyncTarget ro:Secondary/Primary ds:Inconsistent/UpToDate C r-----", "\t[=====>..............] sync'ed: 30.0% (734004/1048576)K", "\tfinish: 0:00:17 speed: 40,960 (40,960) K/sec"}},
	} {
		got := tc.v.text()
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%q lacks %q", got, w)
			}
		}
	}
	if p := string(proc(nil)); !regexp.MustCompile(`^version: 8\.4\.`).MatchString(p) {
		t.Errorf("header %q", p)
	}
}

// TestFileDevices: a capacity-only emulated volume (no loop devices) gets
// its file as device path, which is the file the emulator replicates.
func TestFileDevices(t *testing.T) {
	ctx := context.Background()
	b, err := bemulated.New(t.TempDir(), []bemulated.PoolConfig{{Class: v1alpha1.PoolClassHDD, CapacityBytes: 1 << 30}}, bemulated.WithoutLoop())
	if err != nil {
		t.Fatal(err)
	}
	be := FileDevices(b)
	v, err := be.CreateVolume(ctx, v1alpha1.PoolNameHDD, "pvc-1", 8<<20, backend.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := be.GetVolume(ctx, v1alpha1.PoolNameHDD, "pvc-1")
	if err != nil || got.DevicePath != v.DevicePath || filepath.Base(v.DevicePath) != "pvc-1.img" {
		t.Fatalf("device paths %q, %q (%v), want the volume's file", v.DevicePath, got.DevicePath, err)
	}
	if f, err := backingFile(v.DevicePath); err != nil || f != v.DevicePath {
		t.Errorf("backing file of %s: %s, %v", v.DevicePath, f, err)
	}
	if fi, err := os.Stat(v.DevicePath); err != nil || fi.Size() != 8<<20 {
		t.Errorf("the file: %v, %v", fi, err)
	}
	if _, err := be.GetVolume(ctx, v1alpha1.PoolNameHDD, "missing"); err == nil {
		t.Error("a missing volume was found")
	}
	if _, ok := be.(backend.Attacher); !ok {
		t.Error("the wrapper hides the backend's Attacher")
	}
}
