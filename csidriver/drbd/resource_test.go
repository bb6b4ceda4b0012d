package drbd

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// go test ./csidriver/drbd/ -run TestConfigGolden -update rewrites the
// golden resource files; review the diff before keeping it.
var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func testdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// twoPeers is a valid HA volume with resource id 7.
func twoPeers() *Resource {
	return &Resource{
		Name:  "pvc-1b2c3d4e-ha",
		Minor: 7,
		Port:  43008,
		Peers: []Peer{
			{Node: "node-a", Address: "10.6.0.11", NodeID: 0, Disk: "/dev/LocalStorage_PoolHDD/pvc-1b2c3d4e-ha"},
			{Node: "node-b", Address: "10.6.0.12", NodeID: 1, Disk: "/dev/LocalStorage_PoolHDD/pvc-1b2c3d4e-ha"},
		},
		MetaDisk: "internal",
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(r *Resource)
		// want are substrings of the error; none means valid.
		want []string
	}{
		{name: "valid", change: func(*Resource) {}},
		{name: "valid limits", change: func(r *Resource) {
			r.Name, r.Minor, r.Port = strings.Repeat("a", 63), MaxMinor, 65535
		}},
		{name: "valid low limits", change: func(r *Resource) {
			r.Name, r.Minor, r.Port = "0", 0, 1
		}},
		{name: "valid external meta-disk", change: func(r *Resource) {
			r.MetaDisk = "/dev/LocalStorage_PoolHDD/pvc-1b2c3d4e-ha-meta"
		}},
		{name: "empty name", change: func(r *Resource) { r.Name = "" }, want: []string{`resource name ""`}},
		{name: "name too long", change: func(r *Resource) { r.Name = strings.Repeat("a", 64) },
			want: []string{"resource name", "at most 63"}},
		{name: "name with slash", change: func(r *Resource) { r.Name = "pvc/x" }, want: []string{`resource name "pvc/x"`}},
		{name: "name with space", change: func(r *Resource) { r.Name = "pvc x" }, want: []string{`resource name "pvc x"`}},
		{name: "name starts with dash", change: func(r *Resource) { r.Name = "-pvc" }, want: []string{`resource name "-pvc"`}},
		{name: "name starts with dot", change: func(r *Resource) { r.Name = ".pvc" }, want: []string{`resource name ".pvc"`}},
		{name: "name with newline", change: func(r *Resource) { r.Name = "pvc\n" }, want: []string{"resource name"}},
		{name: "negative minor", change: func(r *Resource) { r.Minor = -1 }, want: []string{"minor -1: want 0..1048575"}},
		{name: "minor too big", change: func(r *Resource) { r.Minor = MaxMinor + 1 }, want: []string{"minor 1048576: want 0..1048575"}},
		{name: "port zero", change: func(r *Resource) { r.Port = 0 }, want: []string{"port 0: want 1..65535"}},
		{name: "port too big", change: func(r *Resource) { r.Port = 65536 }, want: []string{"port 65536: want 1..65535"}},
		{name: "negative port", change: func(r *Resource) { r.Port = -43001 }, want: []string{"port -43001"}},
		{name: "no peers", change: func(r *Resource) { r.Peers = nil }, want: []string{"0 peers: a resource has exactly two"}},
		{name: "one peer", change: func(r *Resource) { r.Peers = r.Peers[:1] }, want: []string{"1 peers"}},
		{name: "three peers", change: func(r *Resource) {
			r.Peers = append(r.Peers, Peer{Node: "node-c", Address: "10.6.0.13", NodeID: 2, Disk: "/dev/vg/lv"})
		}, want: []string{"3 peers"}},
		{name: "empty node", change: func(r *Resource) { r.Peers[1].Node = "" }, want: []string{`peer 1: node "" is empty or repeated`}},
		{name: "repeated node", change: func(r *Resource) { r.Peers[1].Node = "node-a" },
			want: []string{`peer 1: node "node-a" is empty or repeated`}},
		{name: "empty address", change: func(r *Resource) { r.Peers[0].Address = "" },
			want: []string{`peer node-a: address "" is not an IP`}},
		{name: "host name for address", change: func(r *Resource) { r.Peers[0].Address = "node-a.cluster.local" },
			want: []string{`peer node-a: address "node-a.cluster.local" is not an IP`}},
		{name: "short address", change: func(r *Resource) { r.Peers[1].Address = "10.6.0" },
			want: []string{`peer node-b: address "10.6.0" is not an IP`}},
		{name: "address with port", change: func(r *Resource) { r.Peers[1].Address = "10.6.0.12:7788" },
			want: []string{`peer node-b: address "10.6.0.12:7788" is not an IP`}},
		{name: "missing disk", change: func(r *Resource) { r.Peers[1].Disk = "" }, want: []string{"peer node-b: no backing disk"}},
		{name: "missing meta-disk", change: func(r *Resource) { r.MetaDisk = "" }, want: []string{"meta-disk"}},
		{name: "every error at once", change: func(r *Resource) {
			r.Name, r.Minor, r.Port, r.MetaDisk = "a b", -1, 0, ""
			r.Peers = []Peer{{}}
		}, want: []string{"resource name", "minor -1", "port 0", "1 peers", `peer 0: node ""`, "is not an IP", "no backing disk", "meta-disk"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := twoPeers()
			tc.change(r)
			err := r.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error with %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
			// Config refuses what Validate refuses, for both versions.
			for _, v := range []Version{V84, V9} {
				if b, cerr := Config(r, v); cerr == nil || b != nil {
					t.Errorf("Config(%s) = %q, %v; want nil and an error", v, b, cerr)
				}
			}
		})
	}
}

func TestDevice(t *testing.T) {
	if got := twoPeers().Device(); got != "/dev/drbd7" {
		t.Errorf("Device() = %q, want /dev/drbd7", got)
	}
}

func TestVersionString(t *testing.T) {
	if V84.String() != "8.4" || V9.String() != "9" {
		t.Errorf("String() = %q, %q; want 8.4, 9", V84.String(), V9.String())
	}
}

func TestConfigGolden(t *testing.T) {
	for _, tc := range []struct {
		v    Version
		file string
	}{
		{V84, "config-84.res"},
		{V9, "config-9.res"},
	} {
		t.Run(tc.v.String(), func(t *testing.T) {
			got, err := Config(twoPeers(), tc.v)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.file)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want := testdata(t, tc.file)
			if !bytes.Equal(got, want) {
				t.Errorf("Config(%s) differs from %s (go test -update rewrites it):\n--- got\n%s--- want\n%s", tc.v, path, got, want)
			}
		})
	}
}

// TestConfigVersions checks what each version's file must and must not
// say, independently of the golden files.
func TestConfigVersions(t *testing.T) {
	common := []string{
		"resource pvc-1b2c3d4e-ha {\n",
		"protocol C;",
		"after-sb-0pri discard-zero-changes;",
		"after-sb-1pri discard-secondary;",
		"after-sb-2pri disconnect;",
		"on-io-error detach;",
		"  on node-a {\n",
		"  on node-b {\n",
		"address ipv4 10.6.0.11:43008;",
		"address ipv4 10.6.0.12:43008;",
		"device /dev/drbd7 minor 7;",
		"disk /dev/LocalStorage_PoolHDD/pvc-1b2c3d4e-ha;",
		"meta-disk internal;",
	}
	for _, tc := range []struct {
		v         Version
		want, not []string
	}{
		{V84, common, []string{"node-id", "connection-mesh", "quorum", "options"}},
		{V9, append([]string{"node-id 0;", "node-id 1;", "connection-mesh {", "hosts node-a node-b;",
			"quorum majority;", "on-no-quorum suspend-io;"}, common...), nil},
	} {
		t.Run(tc.v.String(), func(t *testing.T) {
			b, err := Config(twoPeers(), tc.v)
			if err != nil {
				t.Fatal(err)
			}
			s := string(b)
			for _, w := range tc.want {
				if !strings.Contains(s, w) {
					t.Errorf("Config(%s) lacks %q:\n%s", tc.v, w, s)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(s, n) {
					t.Errorf("Config(%s) has %q, which %s does not know:\n%s", tc.v, n, tc.v, s)
				}
			}
			if o, c := strings.Count(s, "{"), strings.Count(s, "}"); o != c {
				t.Errorf("Config(%s): %d '{' but %d '}'", tc.v, o, c)
			}
			for _, n := range []string{"device ", "disk /", "address ", "meta-disk "} {
				if got := strings.Count(s, "    "+n); got != 2 {
					t.Errorf("Config(%s): %q %d times, want once per peer", tc.v, n, got)
				}
			}
			// Each peer's section names its own node id (9) and disk.
			for i, p := range twoPeers().Peers {
				sec := section(s, "  on "+p.Node+" {\n")
				if tc.v == V9 && !strings.Contains(sec, fmt.Sprintf("node-id %d;", i)) {
					t.Errorf("Config(9): section of %s lacks node-id %d:\n%s", p.Node, i, sec)
				}
			}
		})
	}
}

func TestConfigMetaDiskAndDisks(t *testing.T) {
	r := twoPeers()
	r.MetaDisk = "/dev/LocalStorage_PoolHDD/pvc-1b2c3d4e-ha-meta"
	r.Peers[1].Disk = "/dev/LocalStorage_PoolSSD/pvc-1b2c3d4e-ha"
	for _, v := range []Version{V84, V9} {
		b, err := Config(r, v)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if got := strings.Count(s, "meta-disk /dev/LocalStorage_PoolHDD/pvc-1b2c3d4e-ha-meta;"); got != 2 {
			t.Errorf("Config(%s): external meta-disk %d times, want 2:\n%s", v, got, s)
		}
		if sec := section(s, "  on node-b {\n"); !strings.Contains(sec, "disk /dev/LocalStorage_PoolSSD/pvc-1b2c3d4e-ha;") {
			t.Errorf("Config(%s): node-b's section lacks its own disk:\n%s", v, sec)
		}
	}
}

// section returns the text from header to the closing "  }" line.
func section(s, header string) string {
	i := strings.Index(s, header)
	if i < 0 {
		return ""
	}
	s = s[i:]
	if j := strings.Index(s, "\n  }\n"); j >= 0 {
		return s[:j+5]
	}
	return s
}

// BUG: Validate accepts any IP (net.ParseIP), but Config always writes
// "address ipv4 ADDR:PORT". For an IPv6 storage IP that renders
// "address ipv4 fd00::11:43008;", which drbdadm rejects (DRBD wants
// "address ipv6 [fd00::11]:43008;"). Either Validate must refuse non-IPv4
// addresses or Config must render the ipv6 form.
func TestConfigIPv6Address(t *testing.T) {
	for _, addr := range []string{"fd00::11", "::ffff:10.6.0.11"} {
		t.Run(addr, func(t *testing.T) {
			r := twoPeers()
			r.Peers[0].Address = addr
			for _, v := range []Version{V84, V9} {
				b, err := Config(r, v)
				if err != nil {
					continue // refused: fine
				}
				s := string(b)
				if strings.Contains(s, "address ipv4 "+addr+":") {
					t.Errorf("Config(%s) renders %q as an IPv4 address drbdadm cannot parse:\n%s", v, addr, section(s, "  on node-a {\n"))
				}
			}
		})
	}
}

// BUG: DRBD 9 needs a distinct node id per host (0..31), but neither
// Validate nor Config(V9) checks Peer.NodeID: two peers left at 0 (or a
// negative id) render a file drbdadm refuses ("conflicting node-id"),
// found only when Up fails on a node.
func TestConfig9NodeIDs(t *testing.T) {
	for _, tc := range []struct {
		name string
		ids  [2]int
	}{
		{"both zero", [2]int{0, 0}},
		{"both one", [2]int{1, 1}},
		{"negative", [2]int{-1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := twoPeers()
			r.Peers[0].NodeID, r.Peers[1].NodeID = tc.ids[0], tc.ids[1]
			if b, err := Config(r, V9); err == nil {
				t.Errorf("Config(9) with node ids %v = nil error, want one; it rendered %q and %q", tc.ids, section(string(b), "  on node-a {\n"), section(string(b), "  on node-b {\n"))
			}
			// 8.4 writes no node ids, but Validate checks them for both
			// versions: a resource is valid or not whatever the module.
			if _, err := Config(r, V84); err == nil {
				t.Errorf("Config(8.4) with node ids %v = nil error, want Validate's", tc.ids)
			}
		})
	}
}
