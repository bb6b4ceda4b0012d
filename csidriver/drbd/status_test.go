package drbd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"

	"hwameistor.io/local/csidriver/backend/command"
)

// The /proc/drbd samples (testdata/proc84-<case>.txt) and the
// `drbdsetup status --json` samples (testdata/status9-<case>.json) are
// written after DRBD 8.4.11's and drbd-utils 9's formats; a sample recorded
// in a real guest can replace one under the same name.

func TestStatus84(t *testing.T) {
	for _, tc := range []struct {
		name    string
		file    string
		minor   int
		want    Status
		wantErr bool
	}{
		{name: "connected in sync", file: "proc84-connected.txt", minor: 0, want: Status{
			Configured: true, Role: RolePrimary, Disk: DiskUpToDate, Connection: "Connected",
			PeerRole: RoleSecondary, PeerDisk: DiskUpToDate, InSyncPercent: 100, OutOfSyncKiB: 0, Quorum: true}},
		{name: "resync in progress", file: "proc84-syncsource.txt", minor: 0, want: Status{
			Configured: true, Role: RolePrimary, Disk: DiskUpToDate, Connection: "SyncSource",
			PeerRole: RoleSecondary, PeerDisk: DiskInconsistent, InSyncPercent: 45.2, OutOfSyncKiB: 574464, Quorum: true}},
		// DRBD's own percentage reads 100.0 with up to 4 MiB left (the
		// form seen in test/vm's online move): the KiB left and total
		// give the progress, and it is not mistaken for a disconnect.
		{name: "resync, last step", file: "proc84-synctarget-last-step.txt", minor: 1, want: Status{
			Configured: true, Role: RoleSecondary, Disk: DiskInconsistent, Connection: "SyncTarget",
			PeerRole: RolePrimary, PeerDisk: DiskUpToDate, InSyncPercent: 88.2, OutOfSyncKiB: 3864, Quorum: true}},
		{name: "peer died", file: "proc84-peer-died.txt", minor: 0, want: Status{
			Configured: true, Role: RoleSecondary, Disk: DiskUpToDate, Connection: "WFConnection",
			PeerRole: RoleUnknown, PeerDisk: DiskUnknown, InSyncPercent: 100, OutOfSyncKiB: 0, Quorum: true}},
		// Recorded in test/vm with fencing resource-and-stonith: the
		// Primary's guest cut off, its I/O frozen ('s'); then, having
		// lost to its peer, force-detached and resumed.
		{name: "frozen Primary", file: "proc84-recorded-frozen-primary.txt", minor: 3, want: Status{
			Configured: true, Role: RolePrimary, Disk: DiskUpToDate, Connection: "WFConnection",
			PeerRole: RoleUnknown, PeerDisk: DiskUnknown, InSyncPercent: 100, Quorum: true, Suspended: true}},
		// StandAlone has no network configuration: the protocol is a
		// blank, and the flags still say whether I/O is suspended.
		{name: "frozen Primary, StandAlone", file: "proc84-standalone-frozen-primary.txt", minor: 1, want: Status{
			Configured: true, Role: RolePrimary, Disk: DiskUpToDate, Connection: "StandAlone",
			PeerRole: RoleUnknown, PeerDisk: DiskUnknown, InSyncPercent: 0, OutOfSyncKiB: 8, Quorum: true, Suspended: true}},
		{name: "lost Primary detached", file: "proc84-recorded-lost-detached.txt", minor: 3, want: Status{
			Configured: true, Role: RolePrimary, Disk: DiskDiskless, Connection: "WFConnection",
			PeerRole: RoleUnknown, PeerDisk: DiskUnknown, InSyncPercent: 100, Quorum: true}},
		{name: "disconnected primary with changes", file: "proc84-primary-changes.txt", minor: 0, want: Status{
			Configured: true, Role: RolePrimary, Disk: DiskUpToDate, Connection: "WFConnection",
			PeerRole: RoleUnknown, PeerDisk: DiskUnknown, InSyncPercent: 0, OutOfSyncKiB: 1234, Quorum: true}},
		{name: "several minors, asked second", file: "proc84-several.txt", minor: 1, want: Status{
			Configured: true, Role: RoleSecondary, Disk: DiskUpToDate, Connection: "Connected",
			PeerRole: RolePrimary, PeerDisk: DiskUpToDate, InSyncPercent: 100, OutOfSyncKiB: 0, Quorum: true}},
		{name: "several minors, asked first", file: "proc84-several.txt", minor: 0, want: Status{
			Configured: true, Role: RolePrimary, Disk: DiskUpToDate, Connection: "SyncSource",
			PeerRole: RoleSecondary, PeerDisk: DiskInconsistent, InSyncPercent: 10, OutOfSyncKiB: 943719, Quorum: true}},
		{name: "several minors, diskless standalone", file: "proc84-several.txt", minor: 3, want: Status{
			Configured: true, Role: RoleSecondary, Disk: DiskDiskless, Connection: "StandAlone",
			PeerRole: RoleUnknown, PeerDisk: DiskUnknown, InSyncPercent: 100, OutOfSyncKiB: 0, Quorum: true}},
		{name: "several minors, two-digit minor last", file: "proc84-several.txt", minor: 10, want: Status{
			Configured: true, Role: RoleSecondary, Disk: DiskInconsistent, Connection: "SyncTarget",
			PeerRole: RolePrimary, PeerDisk: DiskUpToDate, InSyncPercent: 30, OutOfSyncKiB: 734004, Quorum: true}},
		{name: "unconfigured minor", file: "proc84-several.txt", minor: 2, want: Status{}},
		{name: "minor absent", file: "proc84-several.txt", minor: 4, want: Status{}},
		{name: "no minors at all", file: "proc84-none.txt", minor: 0, want: Status{}},
		{name: "garbage", file: "proc84-garbage.txt", minor: 0, wantErr: true},
		{name: "empty", file: "", minor: 0, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var content []byte
			if tc.file != "" {
				content = testdata(t, tc.file)
			}
			fake := command.NewFake() // 8.4 runs nothing
			m := &Manager{Runner: fake, ReadFile: readFile(t, content, nil), Version: V84}
			r := twoPeers()
			r.Minor = tc.minor
			got, err := m.Status(context.Background(), r)
			if err := fake.Verify(); err != nil {
				t.Error(err)
			}
			if tc.wantErr {
				if err == nil {
					t.Errorf("Status() = %+v, nil; want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Status(): %v", err)
			}
			if got != tc.want {
				t.Errorf("Status(minor %d) =\n %+v\nwant\n %+v", tc.minor, got, tc.want)
			}
		})
	}
}

func TestStatus84ReadError(t *testing.T) {
	for _, readErr := range []error{
		&fs.PathError{Op: "open", Path: ProcDRBD, Err: syscall.ENOENT},
		&fs.PathError{Op: "read", Path: ProcDRBD, Err: syscall.EIO},
	} {
		m := &Manager{Runner: command.NewFake(), ReadFile: readFile(t, nil, readErr), Version: V84}
		got, err := m.Status(context.Background(), twoPeers())
		if !errors.Is(err, readErr) || got != (Status{}) {
			t.Errorf("Status() with ReadFile failing (%v) = %+v, %v; want that error", readErr, got, err)
		}
	}
}

func statusCall(name string) []string { return []string{"drbdsetup", "status", "--json", name} }

func TestStatus9(t *testing.T) {
	for _, tc := range []struct {
		name     string
		stdout   string
		stderr   string
		exitCode int
		want     Status
		wantErr  string // substring; "" means no error
		cmdErr   bool   // the error is the *command.Error
	}{
		{name: "connected in sync", stdout: string(testdata(t, "status9-connected.json")), want: Status{
			Configured: true, Role: RolePrimary, Disk: DiskUpToDate, Connection: "Connected",
			PeerRole: RoleSecondary, PeerDisk: DiskUpToDate, InSyncPercent: 100, OutOfSyncKiB: 0, Quorum: true}},
		{name: "sync target", stdout: string(testdata(t, "status9-synctarget.json")), want: Status{
			Configured: true, Role: RoleSecondary, Disk: DiskInconsistent, Connection: "SyncTarget",
			PeerRole: RolePrimary, PeerDisk: DiskUpToDate, InSyncPercent: 37.5, OutOfSyncKiB: 655360, Quorum: true}},
		{name: "no connection", stdout: string(testdata(t, "status9-noconnection.json")), want: Status{
			Configured: true, Role: RoleSecondary, Disk: DiskConsistent, Connection: "StandAlone",
			PeerRole: RoleUnknown, PeerDisk: DiskUnknown, InSyncPercent: 100, OutOfSyncKiB: 0, Quorum: true}},
		{name: "quorum lost", stdout: string(testdata(t, "status9-quorumlost.json")), want: Status{
			Configured: true, Role: RolePrimary, Disk: DiskUpToDate, Connection: "Connecting",
			PeerRole: RoleUnknown, PeerDisk: DiskUnknown, InSyncPercent: 99.88, OutOfSyncKiB: 1234, Quorum: false, Suspended: true}},
		{name: "another resource only", stdout: string(testdata(t, "status9-other.json")), want: Status{}},
		{name: "empty array", stdout: "[]\n", want: Status{}},
		{name: "no such resource", stderr: "pvc-1b2c3d4e-ha: No such resource\n", exitCode: 10, want: Status{}},
		{name: "module not loaded", exitCode: 20,
			stderr:  "Could not connect to 'drbd' generic netlink family\n",
			wantErr: "Could not connect to 'drbd' generic netlink family", cmdErr: true},
		{name: "other failure with exit 10", exitCode: 10, stderr: "pvc-1b2c3d4e-ha: Permission denied\n",
			wantErr: "Permission denied", cmdErr: true},
		{name: "invalid JSON", stdout: string(testdata(t, "status9-truncated.json")), wantErr: "drbdsetup status --json"},
		{name: "empty output", stdout: "", wantErr: "drbdsetup status --json"},
		{name: "not an array", stdout: `{"name": "pvc-1b2c3d4e-ha"}`, wantErr: "drbdsetup status --json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := twoPeers()
			// The samples were recorded for a resource named pvc-ha.
			stdout := strings.ReplaceAll(tc.stdout, `"pvc-ha"`, fmt.Sprintf("%q", r.Name))
			fake := command.NewFake(command.Call{Argv: statusCall(r.Name), Stdout: stdout, Stderr: tc.stderr, ExitCode: tc.exitCode})
			m := &Manager{Runner: fake, Version: V9,
				ReadFile: func(p string) ([]byte, error) {
					t.Errorf("Status on DRBD 9 read %s", p)
					return nil, fs.ErrNotExist
				}}
			got, err := m.Status(context.Background(), r)
			if err := fake.Verify(); err != nil {
				t.Error(err)
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Status(): %v", err)
				}
				if got != tc.want {
					t.Errorf("Status() =\n %+v\nwant\n %+v", got, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Status() = %+v, nil; want an error with %q", got, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Status() = %q, want it to contain %q", err, tc.wantErr)
			}
			var ce *command.Error
			if errors.As(err, &ce) != tc.cmdErr {
				t.Errorf("Status() = %v (%T): *command.Error %v, want %v", err, err, !tc.cmdErr, tc.cmdErr)
			}
			if got != (Status{}) {
				t.Errorf("Status() failed but returned %+v", got)
			}
		})
	}
}

// A resource's name is matched exactly: a prefix does not count.
func TestStatus9Name(t *testing.T) {
	out := strings.ReplaceAll(string(testdata(t, "status9-connected.json")), `"pvc-ha"`, `"pvc-ha-2"`)
	fake := command.NewFake(command.Call{Argv: statusCall("pvc-ha"), Stdout: out})
	m := &Manager{Runner: fake, Version: V9}
	got, err := m.Status(context.Background(), &Resource{Name: "pvc-ha", Minor: 7})
	if err != nil || got != (Status{}) {
		t.Errorf("Status(pvc-ha) with only pvc-ha-2 up = %+v, %v; want not configured", got, err)
	}
	if err := fake.Verify(); err != nil {
		t.Error(err)
	}
}

func TestMayServe(t *testing.T) {
	for _, tc := range []struct {
		st   Status
		want bool
	}{
		{Status{Configured: true, Disk: DiskUpToDate, Quorum: true}, true},
		{Status{Configured: true, Disk: DiskUpToDate, Role: RolePrimary, PeerDisk: DiskUnknown, Connection: "WFConnection", Quorum: true}, true},
		// DRBD 9 without quorum: I/O suspended, its writes could be lost.
		{Status{Configured: true, Disk: DiskUpToDate, Role: RolePrimary, Quorum: false}, false},
		{Status{Configured: false, Disk: DiskUpToDate}, false},
		{Status{}, false},
		{Status{Configured: true, Disk: DiskInconsistent, PeerDisk: DiskUpToDate}, false},
		{Status{Configured: true, Disk: DiskOutdated}, false},
		{Status{Configured: true, Disk: DiskConsistent}, false},
		{Status{Configured: true, Disk: DiskDiskless, PeerDisk: DiskUpToDate}, false},
		{Status{Configured: true, Disk: DiskUnknown}, false},
		{Status{Configured: true, Disk: "Negotiating"}, false},
		{Status{Configured: true, Disk: "uptodate"}, false},
	} {
		if got := tc.st.MayServe(); got != tc.want {
			t.Errorf("%+v.MayServe() = %v, want %v", tc.st, got, tc.want)
		}
	}
}

// MayServe on states parsed from the samples: the disk decides, not the
// connection.
func TestMayServeSamples(t *testing.T) {
	for _, tc := range []struct {
		file  string
		minor int
		want  bool
	}{
		{"proc84-connected.txt", 0, true},
		{"proc84-syncsource.txt", 0, true},
		{"proc84-peer-died.txt", 0, true},
		{"proc84-several.txt", 10, false}, // SyncTarget: Inconsistent
		{"proc84-several.txt", 3, false},  // Diskless
		{"proc84-several.txt", 2, false},  // Unconfigured
		{"proc84-several.txt", 4, false},  // absent
	} {
		m := &Manager{ReadFile: readFile(t, testdata(t, tc.file), nil), Version: V84}
		r := twoPeers()
		r.Minor = tc.minor
		st, err := m.Status(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		if st.MayServe() != tc.want {
			t.Errorf("%s minor %d: %+v.MayServe() = %v, want %v", tc.file, tc.minor, st, !tc.want, tc.want)
		}
	}
}

// TestStatus84Recorded parses /proc/drbd as the in-kernel DRBD 8.4.11 wrote
// it in test/vm's TestDRBDFailover, at each step of the failover.
func TestStatus84Recorded(t *testing.T) {
	for _, tc := range []struct {
		file string
		want Status
	}{
		{"proc84-recorded-wfconnection-inconsistent.txt", Status{Configured: true, Connection: "WFConnection",
			Role: RoleSecondary, PeerRole: RoleUnknown, Disk: DiskInconsistent, PeerDisk: DiskUnknown, OutOfSyncKiB: 65496, Quorum: true}},
		{"proc84-recorded-primary-connected.txt", Status{Configured: true, Connection: "Connected",
			Role: RolePrimary, PeerRole: RoleSecondary, Disk: DiskUpToDate, PeerDisk: DiskUpToDate, InSyncPercent: 100, Quorum: true}},
		{"proc84-recorded-failover-primary-alone.txt", Status{Configured: true, Connection: "WFConnection",
			Role: RolePrimary, PeerRole: RoleUnknown, Disk: DiskUpToDate, PeerDisk: DiskUnknown, OutOfSyncKiB: 1512, Quorum: true}},
		{"proc84-recorded-rejoined-secondary.txt", Status{Configured: true, Connection: "Connected",
			Role: RoleSecondary, PeerRole: RolePrimary, Disk: DiskUpToDate, PeerDisk: DiskUpToDate, InSyncPercent: 100, Quorum: true}},
		{"proc84-recorded-both-secondary.txt", Status{Configured: true, Connection: "Connected",
			Role: RoleSecondary, PeerRole: RoleSecondary, Disk: DiskUpToDate, PeerDisk: DiskUpToDate, InSyncPercent: 100, Quorum: true}},
		// test/vm TestDRBDPartition, minor 2: both sides were Primary
		// apart and refused to connect (nothing discarded).
		{"proc84-recorded-split-brain.txt", Status{Configured: true, Connection: "StandAlone",
			Role: RolePrimary, PeerRole: RoleUnknown, Disk: DiskUpToDate, PeerDisk: DiskUnknown, OutOfSyncKiB: 1264, Quorum: true}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			m := &Manager{ReadFile: readFile(t, testdata(t, tc.file), nil), Version: V84}
			minor := 0
			if strings.Contains(tc.file, "split-brain") {
				minor = 2
			}
			got, err := m.Status(context.Background(), &Resource{Name: "pvc-drbd-failover", Minor: minor})
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Status() =\n %+v\nwant\n %+v", got, tc.want)
			}
		})
	}
}
