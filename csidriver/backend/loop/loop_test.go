package loop

import (
	"context"
	"reflect"
	"testing"

	"hwameistor.io/local/csidriver/backend/command"
)

// The outputs below were recorded with util-linux 2.38.1 (Debian 12).
func TestLosetup(t *testing.T) {
	const file = "/var/lib/hw/LocalStorage_PoolHDD/volumes/pvc-1.img"
	ctx := context.Background()
	tests := []struct {
		name    string
		calls   []command.Call
		run     func(l *Losetup) (any, error)
		want    any
		wantErr bool
	}{
		{
			name:  "find none",
			calls: []command.Call{{Argv: []string{"losetup", "--noheadings", "--output", "NAME", "--associated", file}}},
			run:   func(l *Losetup) (any, error) { return l.Find(ctx, file) },
			want:  []string(nil),
		},
		{
			name: "find two",
			calls: []command.Call{{Argv: []string{"losetup", "--noheadings", "--output", "NAME", "--associated", file},
				Stdout: "/dev/loop3\n/dev/loop7\n"}},
			run:  func(l *Losetup) (any, error) { return l.Find(ctx, file) },
			want: []string{"/dev/loop3", "/dev/loop7"},
		},
		{
			name:  "attach",
			calls: []command.Call{{Argv: []string{"losetup", "--find", "--show", file}, Stdout: "/dev/loop0\n"}},
			run:   func(l *Losetup) (any, error) { return l.Attach(ctx, file) },
			want:  "/dev/loop0",
		},
		{
			name: "attach without free devices",
			calls: []command.Call{{Argv: []string{"losetup", "--find", "--show", file}, ExitCode: 1,
				Stderr: "losetup: cannot find an unused loop device\n"}},
			run:     func(l *Losetup) (any, error) { return l.Attach(ctx, file) },
			want:    "",
			wantErr: true,
		},
		{
			name:    "attach with odd output",
			calls:   []command.Call{{Argv: []string{"losetup", "--find", "--show", file}, Stdout: "\n"}},
			run:     func(l *Losetup) (any, error) { return l.Attach(ctx, file) },
			want:    "",
			wantErr: true,
		},
		{
			name:  "refresh",
			calls: []command.Call{{Argv: []string{"losetup", "--set-capacity", "/dev/loop0"}}},
			run:   func(l *Losetup) (any, error) { return nil, l.Refresh(ctx, "/dev/loop0") },
		},
		{
			name:  "detach",
			calls: []command.Call{{Argv: []string{"losetup", "--detach", "/dev/loop0"}}},
			run:   func(l *Losetup) (any, error) { return nil, l.Detach(ctx, "/dev/loop0") },
		},
		{
			name: "detach a device already gone",
			calls: []command.Call{{Argv: []string{"losetup", "--detach", "/dev/loop0"}, ExitCode: 1,
				Stderr: "losetup: /dev/loop0: detach failed: No such device or address\n"}},
			run: func(l *Losetup) (any, error) { return nil, l.Detach(ctx, "/dev/loop0") },
		},
		{
			name: "detach fails",
			calls: []command.Call{{Argv: []string{"losetup", "--detach", "/dev/loop0"}, ExitCode: 1,
				Stderr: "losetup: /dev/loop0: detach failed: Permission denied\n"}},
			run:     func(l *Losetup) (any, error) { return nil, l.Detach(ctx, "/dev/loop0") },
			wantErr: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := command.NewFake(tc.calls...)
			got, err := tc.run(&Losetup{Runner: fake})
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
			if err := fake.Verify(); err != nil {
				t.Error(err)
			}
		})
	}
}
