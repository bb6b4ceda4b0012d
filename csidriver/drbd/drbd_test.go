package drbd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"hwameistor.io/local/csidriver/backend/command"
)

const resName = "pvc-1b2c3d4e-ha"

// adm is the argv of drbdadm run on resName's file in dir.
func adm(dir string, args ...string) []string {
	return append([]string{"drbdadm", "-c", filepath.Join(dir, resName+".res")}, args...)
}

func TestCommands(t *testing.T) {
	type op struct {
		name string
		run  func(m *Manager, ctx context.Context) error
	}
	createMD := op{"CreateMD", func(m *Manager, ctx context.Context) error { return m.CreateMD(ctx, resName) }}
	skip := op{"SkipInitialSync", func(m *Manager, ctx context.Context) error { return m.SkipInitialSync(ctx, resName) }}
	up := op{"Up", func(m *Manager, ctx context.Context) error { return m.Up(ctx, resName) }}
	down := op{"Down", func(m *Manager, ctx context.Context) error { return m.Down(ctx, resName) }}
	adjust := op{"Adjust", func(m *Manager, ctx context.Context) error { return m.Adjust(ctx, resName) }}
	resize := op{"Resize", func(m *Manager, ctx context.Context) error { return m.Resize(ctx, resName) }}
	connect := op{"Connect", func(m *Manager, ctx context.Context) error { return m.Connect(ctx, resName) }}
	disconnect := op{"Disconnect", func(m *Manager, ctx context.Context) error { return m.Disconnect(ctx, resName) }}
	primary := op{"Primary", func(m *Manager, ctx context.Context) error { return m.Primary(ctx, resName, false) }}
	force := op{"Primary --force", func(m *Manager, ctx context.Context) error { return m.Primary(ctx, resName, true) }}
	secondary := op{"Secondary", func(m *Manager, ctx context.Context) error { return m.Secondary(ctx, resName) }}

	for _, tc := range []struct {
		op   op
		v    Version
		args []string
	}{
		{createMD, V84, []string{"create-md", "--force", resName}},
		{createMD, V9, []string{"create-md", "--force", "--max-peers=2", resName}},
		{skip, V84, []string{"--", "--clear-bitmap", "new-current-uuid", resName}},
		{skip, V9, []string{"new-current-uuid", "--clear-bitmap", resName + "/0"}},
		{up, V84, []string{"up", resName}},
		{up, V9, []string{"up", resName}},
		{down, V84, []string{"down", resName}},
		{down, V9, []string{"down", resName}},
		{adjust, V84, []string{"adjust", resName}},
		{adjust, V9, []string{"adjust", resName}},
		{resize, V84, []string{"resize", resName}},
		{resize, V9, []string{"resize", resName}},
		{connect, V84, []string{"connect", resName}},
		{connect, V9, []string{"connect", resName}},
		{disconnect, V84, []string{"disconnect", resName}},
		{disconnect, V9, []string{"disconnect", resName}},
		{primary, V84, []string{"primary", resName}},
		{primary, V9, []string{"primary", resName}},
		{force, V84, []string{"primary", "--force", resName}},
		{force, V9, []string{"primary", "--force", resName}},
		{secondary, V84, []string{"secondary", resName}},
		{secondary, V9, []string{"secondary", resName}},
	} {
		t.Run(fmt.Sprintf("%s/%s", tc.op.name, tc.v), func(t *testing.T) {
			dir := t.TempDir()
			argv := adm(dir, tc.args...)

			fake := command.NewFake(command.Call{Argv: argv})
			m := &Manager{Runner: fake, Dir: dir, Version: tc.v}
			if err := tc.op.run(m, context.Background()); err != nil {
				t.Errorf("%s: %v", tc.op.name, err)
			}
			if err := fake.Verify(); err != nil {
				t.Error(err)
			}

			// A failing command comes back as the *command.Error.
			fake = command.NewFake(command.Call{Argv: argv, ExitCode: 10,
				Stderr: "0: Failure: (127) Device minor not allocated\nadditional info from kernel:\nunknown minor\n"})
			m = &Manager{Runner: fake, Dir: dir, Version: tc.v}
			err := tc.op.run(m, context.Background())
			var ce *command.Error
			if !errors.As(err, &ce) {
				t.Fatalf("%s with exit 10 = %v (%T), want a *command.Error", tc.op.name, err, err)
			}
			if ce.ExitCode != 10 || !reflect.DeepEqual(ce.Argv, argv) ||
				ce.Stderr != "0: Failure: (127) Device minor not allocated; additional info from kernel:; unknown minor" {
				t.Errorf("%s error = %+v", tc.op.name, ce)
			}
			if err := fake.Verify(); err != nil {
				t.Error(err)
			}
		})
	}
}

// A sequence of commands runs exactly in order, each once: what the agent
// does to bring up a new volume on the first node.
func TestCommandSequence(t *testing.T) {
	dir := t.TempDir()
	fake := command.NewFake(
		command.Call{Argv: adm(dir, "create-md", "--force", "--max-peers=2", resName)},
		command.Call{Argv: adm(dir, "up", resName)},
		command.Call{Argv: adm(dir, "new-current-uuid", "--clear-bitmap", resName+"/0")},
		command.Call{Argv: adm(dir, "primary", resName)},
	)
	m := &Manager{Runner: fake, Dir: dir, Version: V9}
	ctx := context.Background()
	for _, f := range []func() error{
		func() error { return m.CreateMD(ctx, resName) },
		func() error { return m.Up(ctx, resName) },
		func() error { return m.SkipInitialSync(ctx, resName) },
		func() error { return m.Primary(ctx, resName, false) },
	} {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	if err := fake.Verify(); err != nil {
		t.Error(err)
	}
}

func TestFile(t *testing.T) {
	m := &Manager{Dir: "drbd.d"}
	if got, want := m.File("r0"), filepath.Join("drbd.d", "r0.res"); got != want {
		t.Errorf("File(r0) = %q, want %q", got, want)
	}
}

func TestWriteRemove(t *testing.T) {
	for _, v := range []Version{V84, V9} {
		t.Run(v.String(), func(t *testing.T) {
			// Dir does not exist yet: Write creates it.
			dir := filepath.Join(t.TempDir(), "drbd.d")
			m := &Manager{Dir: dir, Version: v}
			r := twoPeers()
			want, err := Config(r, v)
			if err != nil {
				t.Fatal(err)
			}
			if replaced, err := m.Write(r); err != nil || replaced {
				t.Fatalf("Write = %v, %v; want false, nil (a new file)", replaced, err)
			}
			assertDir(t, dir, []string{resName + ".res"})
			got, err := os.ReadFile(filepath.Join(dir, resName+".res"))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("written file:\n%s\nwant Config's:\n%s", got, want)
			}

			// Rewriting replaces the content (a changed peer), still without
			// a .tmp left behind.
			r.Peers[1].Address = "10.6.0.99"
			if replaced, err := m.Write(r); err != nil || !replaced {
				t.Fatalf("second Write = %v, %v; want true, nil (the peer changed)", replaced, err)
			}
			if replaced, err := m.Write(r); err != nil || replaced {
				t.Fatalf("third Write, unchanged = %v, %v; want false, nil", replaced, err)
			}
			assertDir(t, dir, []string{resName + ".res"})
			got, _ = os.ReadFile(m.File(resName))
			if !strings.Contains(string(got), "address ipv4 10.6.0.99:43008;") || strings.Contains(string(got), "10.6.0.12") {
				t.Errorf("rewritten file keeps the old peer:\n%s", got)
			}

			// An invalid resource writes nothing.
			bad := twoPeers()
			bad.Name, bad.Port = "other", 0
			if _, err := m.Write(bad); err == nil {
				t.Error("Write(invalid) = nil, want an error")
			}
			assertDir(t, dir, []string{resName + ".res"})

			if err := m.Remove(resName); err != nil {
				t.Fatalf("Remove: %v", err)
			}
			assertDir(t, dir, nil)
			// Again: a missing file is not an error.
			if err := m.Remove(resName); err != nil {
				t.Errorf("Remove of a missing file: %v", err)
			}
		})
	}
}

func TestRemoveMissingDir(t *testing.T) {
	m := &Manager{Dir: filepath.Join(t.TempDir(), "never-created")}
	if err := m.Remove(resName); err != nil {
		t.Errorf("Remove with no Dir: %v", err)
	}
}

func TestRemoveError(t *testing.T) {
	// A directory where the file should be: Remove fails (not empty) and
	// says so instead of pretending it is gone.
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, resName+".res", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	m := &Manager{Dir: dir}
	if err := m.Remove(resName); err == nil {
		t.Error("Remove of a non-empty directory = nil, want an error")
	}
}

func TestWriteDirIsAFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(dir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	m := &Manager{Dir: dir, Version: V84}
	if _, err := m.Write(twoPeers()); err == nil {
		t.Error("Write into a Dir that is a file = nil, want an error")
	}
}

func assertDir(t *testing.T, dir string, want []string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s holds %q, want %q (no .tmp left behind)", filepath.Base(dir), got, want)
	}
}

// readFile replays path's content from testdata, or err.
func readFile(t *testing.T, content []byte, err error) func(string) ([]byte, error) {
	return func(path string) ([]byte, error) {
		if path != ProcDRBD {
			t.Errorf("ReadFile(%q), want %q", path, ProcDRBD)
		}
		return content, err
	}
}

func TestDetect(t *testing.T) {
	permission := &fs.PathError{Op: "open", Path: ProcDRBD, Err: syscall.EACCES}
	for _, tc := range []struct {
		name    string
		content []byte
		err     error
		want    Version
		wantErr string // substring; "" means no error
		is      error  // errors.Is target
	}{
		{name: "8.4", content: testdata(t, "proc84-connected.txt"), want: V84},
		{name: "8.4 without minors", content: testdata(t, "proc84-none.txt"), want: V84},
		{name: "8.4 version line only", content: []byte("version: 8.4.11 (api:1/proto:86-101)"), want: V84},
		{name: "9", content: testdata(t, "proc9.txt"), want: V9},
		{name: "9.1", content: []byte("version: 9.1.19 (api:2/proto:86-121)\n"), want: V9},
		{name: "8.3", content: testdata(t, "proc83.txt"), wantErr: "(version: 8.3.16 (api:88/proto:86-97))"},
		{name: "8.4 not first line", content: []byte("srcversion: 211FB288A383ED945B83420\nversion: 8.4.11 (api:1/proto:86-101)\n"),
			wantErr: "srcversion: 211FB288A383ED945B83420"},
		{name: "empty", content: nil, wantErr: "unsupported DRBD module"},
		{name: "garbage", content: testdata(t, "proc84-garbage.txt"), wantErr: "drbd: no such thing here"},
		{name: "not loaded", err: &fs.PathError{Op: "open", Path: ProcDRBD, Err: syscall.ENOENT}, is: ErrNotLoaded},
		{name: "not loaded, wrapped", err: fmt.Errorf("replay: %w", os.ErrNotExist), is: ErrNotLoaded},
		{name: "unreadable", err: permission, is: permission, wantErr: "permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := command.NewFake()
			m := &Manager{Runner: fake, ReadFile: readFile(t, tc.content, tc.err), Version: 42}
			v, err := m.Detect()
			if err := fake.Verify(); err != nil {
				t.Errorf("Detect ran a command: %v", err)
			}
			if tc.wantErr == "" && tc.is == nil {
				if err != nil || v != tc.want || m.Version != tc.want {
					t.Errorf("Detect() = %v, %v (Manager.Version %v); want %v", v, err, m.Version, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Detect() = %v, nil; want an error", v)
			}
			if v != 0 || m.Version != 42 {
				t.Errorf("Detect() failed but returned %v, set Manager.Version %v", v, m.Version)
			}
			if tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Detect() = %q, want it to contain %q", err, tc.wantErr)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("Detect() = %v, want errors.Is %v", err, tc.is)
			}
			if tc.is != ErrNotLoaded && errors.Is(err, ErrNotLoaded) {
				t.Errorf("Detect() = %v: ErrNotLoaded for a module that is there", err)
			}
		})
	}
}

// Without ReadFile, Detect reads the real /proc/drbd: on a machine without
// the module that is ErrNotLoaded, with it a version or an error naming it.
func TestDetectRealProc(t *testing.T) {
	m := &Manager{}
	v, err := m.Detect()
	if _, statErr := os.Stat(ProcDRBD); errors.Is(statErr, os.ErrNotExist) {
		if !errors.Is(err, ErrNotLoaded) {
			t.Errorf("Detect() without %s = %v, %v; want ErrNotLoaded", ProcDRBD, v, err)
		}
		return
	}
	t.Logf("this machine: %v, %v", v, err)
}
