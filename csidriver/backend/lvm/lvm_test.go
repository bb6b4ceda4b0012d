package lvm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/backend"
	"hwameistor.io/local/csidriver/backend/command"
)

// The recorded outputs in testdata/ come from lvm2 2.03.16 (record.sh):
//
//	LocalStorage_PoolHDD  2 PVs (/dev/loop0, /dev/loop1), 510 extents of 4Mi,
//	                      503 free; pvc-aaa (ours, 12Mi, tag
//	                      hwameistor.io/volume=pvc-aaa), pvc-bbb (ours, 8Mi,
//	                      striped), other (not ours, 8Mi)
//	LocalStorage_PoolSSD  1 PV (/dev/loop2), 127 extents, no LVs
//	LocalStorage_PoolNVMe does not exist
const (
	hdd  = v1alpha1.PoolNameHDD
	ssd  = v1alpha1.PoolNameSSD
	nvme = v1alpha1.PoolNameNVMe
	mi   = int64(1 << 20)
	gi   = int64(1 << 30)

	hddFree = int64(2109734912)
	owner   = "hwameistor.io/owner=lvm.hwameistor.io"
)

func testdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The argv of every command, spelled out so that a change to the flags
// shows in a test diff.
func vgsCall(out string, vg ...string) command.Call {
	return command.Call{Argv: append([]string{"lvm", "vgs", "--reportformat", "json", "--units", "b", "--nosuffix",
		"-o", "vg_name,vg_size,vg_free,vg_extent_size,pv_count"}, vg...), Stdout: out}
}

func fullreportCall(out string) command.Call {
	return command.Call{Argv: []string{"lvm", "fullreport", "--reportformat", "json", "--units", "b", "--nosuffix",
		"--configreport", "vg", "-o", "vg_name,vg_size,vg_free,vg_extent_size,pv_count",
		"--configreport", "pv", "-o", "pv_name,vg_name,pv_size,pv_free",
		"--configreport", "lv", "-o", "lv_name,vg_name,lv_size,lv_tags,lv_path",
		"--configreport", "pvseg", "-o", "pvseg_start", "--configreport", "seg", "-o", "seg_start"}, Stdout: out}
}

// zeroTag0 marks a new LV until it is zeroed.
const zeroTag0 = "hwameistor.io/zero-from=0"

// deltag is the lvchange that removes zero-from tags once the LV is zeroed.
func deltag(lv string, tags ...string) command.Call {
	argv := []string{"lvm", "lvchange"}
	for _, t := range tags {
		argv = append(argv, "--deltag", t)
	}
	return cmd(append(argv, lv)...)
}

// zeroCall is one call of Backend.zero.
type zeroCall struct {
	path      string
	off, n    int64
	exclusive bool
}

func lvsCall(out string, vg ...string) command.Call {
	return command.Call{Argv: append([]string{"lvm", "lvs", "--reportformat", "json", "--units", "b", "--nosuffix",
		"-o", "lv_name,vg_name,lv_size,lv_tags,lv_path"}, vg...), Stdout: out}
}

func failed(c command.Call, exitCode int, stderr string) command.Call {
	c.ExitCode, c.Stderr = exitCode, stderr
	return c
}

// missingVG is lvm's failure of vgs or lvs for a VG that does not exist,
// recorded for NoSuchVG.
func missingVG(t *testing.T, c command.Call, vg string) command.Call {
	sub := c.Argv[1] // vgs or lvs
	if sub == "vgs" {
		c.Stdout = testdata(t, "vgs_missing.json")
	}
	return failed(c, 5, strings.ReplaceAll(testdata(t, sub+"_missing.stderr"), "NoSuchVG", vg))
}

func cmd(argv ...string) command.Call { return command.Call{Argv: argv} }

// pending is a recorded lvs report in which the LV name also has the tags
// given (an interrupted zeroing).
func pending(t *testing.T, file, name string, tags ...string) string {
	t.Helper()
	out, n := "", 0
	for _, line := range strings.SplitAfter(testdata(t, file), "\n") {
		if strings.Contains(line, `"lv_name":"`+name+`"`) {
			line = strings.Replace(line, `"lv_tags":"`, `"lv_tags":"`+strings.Join(tags, ",")+",", 1)
			n++
		}
		out += line
	}
	if n != 1 {
		t.Fatalf("%s: %d rows of %s", file, n, name)
	}
	return out
}

type testCase struct {
	name    string
	opts    Options
	calls   func(t *testing.T) []command.Call
	run     func(ctx context.Context, b *Backend) (any, error)
	want    any
	wantErr error  // errors.Is target
	wantMsg string // substring of the error (an error is expected)
	// wantZero are the ranges zeroed, in order (nil: none).
	wantZero []zeroCall
	// zeroErr makes every zeroing fail.
	zeroErr error
}

func runCases(t *testing.T, tests []testCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var calls []command.Call
			if tc.calls != nil {
				calls = tc.calls(t)
			}
			fake := command.NewFake(calls...)
			opts := tc.opts
			opts.Runner = fake
			b, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			var zeroed []zeroCall
			b.zero = func(_ context.Context, path string, off, n int64, exclusive bool) error {
				zeroed = append(zeroed, zeroCall{path, off, n, exclusive})
				return tc.zeroErr
			}
			got, err := tc.run(context.Background(), b)
			if tc.wantErr == nil && tc.wantMsg == "" && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want errors.Is %v", err, tc.wantErr)
			}
			if tc.wantMsg != "" && (err == nil || !strings.Contains(err.Error(), tc.wantMsg)) {
				t.Errorf("err = %v, want it to contain %q", err, tc.wantMsg)
			}
			if tc.want != nil && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got\n%#v\nwant\n%#v", got, tc.want)
			}
			if !reflect.DeepEqual(zeroed, tc.wantZero) {
				t.Errorf("zeroed %+v, want %+v", zeroed, tc.wantZero)
			}
			if err := fake.Verify(); err != nil {
				t.Error(err)
			}
		})
	}
}

func create(pool, name string, bytes int64, opts backend.CreateOptions) func(context.Context, *Backend) (any, error) {
	return func(ctx context.Context, b *Backend) (any, error) {
		return b.CreateVolume(ctx, pool, name, bytes, opts)
	}
}

func TestCreateVolume(t *testing.T) {
	lvcreate := func(args ...string) []string {
		return append([]string{"lvm", "lvcreate", "-y", "-Wy", "-Zy"}, args...)
	}
	hddState := func(t *testing.T) []command.Call {
		return []command.Call{vgsCall(testdata(t, "vgs_hdd.json"), hdd), lvsCall(testdata(t, "lvs_hdd.json"), hdd)}
	}
	then := func(more ...command.Call) func(t *testing.T) []command.Call {
		return func(t *testing.T) []command.Call { return append(hddState(t), more...) }
	}
	tagged := backend.CreateOptions{Tags: []string{"hwameistor.io/volume=pvc-new"}}

	runCases(t, []testCase{
		{
			name: "new volume rounded up to whole extents",
			calls: then(cmd(lvcreate("-L", "12582912b", "-n", "pvc-new",
				"--addtag", owner, "--addtag", zeroTag0, "--addtag", "hwameistor.io/volume=pvc-new", hdd)...),
				deltag("LocalStorage_PoolHDD/pvc-new", zeroTag0)),
			run:      create(hdd, "pvc-new", 10*mi, tagged),
			wantZero: []zeroCall{{"/dev/LocalStorage_PoolHDD/pvc-new", 0, 12 * mi, true}},
			want: backend.Volume{Name: "pvc-new", Pool: hdd, SizeBytes: 12 * mi,
				DevicePath: "/dev/LocalStorage_PoolHDD/pvc-new", Tags: []string{"hwameistor.io/volume=pvc-new"}},
		},
		{
			name: "striped over both PVs, rounded to whole stripes",
			calls: then(cmd(lvcreate("-L", "16777216b", "-n", "pvc-new", "-i", "2",
				"--addtag", owner, "--addtag", zeroTag0, hdd)...), deltag("LocalStorage_PoolHDD/pvc-new", zeroTag0)),
			run:      create(hdd, "pvc-new", 10*mi, backend.CreateOptions{Striped: true}),
			wantZero: []zeroCall{{"/dev/LocalStorage_PoolHDD/pvc-new", 0, 16 * mi, true}},
			want:     backend.Volume{Name: "pvc-new", Pool: hdd, SizeBytes: 16 * mi, DevicePath: "/dev/LocalStorage_PoolHDD/pvc-new"},
		},
		{
			name: "striped in a VG of one PV is a plain LV",
			calls: func(t *testing.T) []command.Call {
				return []command.Call{
					vgsCall(testdata(t, "vgs_ssd_empty.json"), ssd), lvsCall(testdata(t, "lvs_ssd_empty.json"), ssd),
					cmd(lvcreate("-L", "12582912b", "-n", "pvc-new", "--addtag", owner, "--addtag", zeroTag0, ssd)...),
					deltag("LocalStorage_PoolSSD/pvc-new", zeroTag0),
				}
			},
			run:      create(ssd, "pvc-new", 10*mi, backend.CreateOptions{Striped: true}),
			wantZero: []zeroCall{{"/dev/LocalStorage_PoolSSD/pvc-new", 0, 12 * mi, true}},
			want:     backend.Volume{Name: "pvc-new", Pool: ssd, SizeBytes: 12 * mi, DevicePath: "/dev/LocalStorage_PoolSSD/pvc-new"},
		},
		{
			name: "tags are sorted and deduplicated",
			calls: then(cmd(lvcreate("-L", "4194304b", "-n", "pvc-new", "--addtag", owner, "--addtag", zeroTag0, "--addtag", "a=1", "--addtag", "b=2", hdd)...),
				deltag("LocalStorage_PoolHDD/pvc-new", zeroTag0)),
			run:      create(hdd, "pvc-new", 1, backend.CreateOptions{Tags: []string{"b=2", "a=1", "b=2"}}),
			wantZero: []zeroCall{{"/dev/LocalStorage_PoolHDD/pvc-new", 0, 4 * mi, true}},
			want:     backend.Volume{Name: "pvc-new", Pool: hdd, SizeBytes: 4 * mi, DevicePath: "/dev/LocalStorage_PoolHDD/pvc-new", Tags: []string{"a=1", "b=2"}},
		},
		{
			name:  "same name and size returns the existing volume",
			calls: hddState,
			run:   create(hdd, "pvc-aaa", 12*mi, backend.CreateOptions{}),
			want: backend.Volume{Name: "pvc-aaa", Pool: hdd, SizeBytes: 12 * mi,
				DevicePath: "/dev/LocalStorage_PoolHDD/pvc-aaa", Tags: []string{"hwameistor.io/volume=pvc-aaa"}},
		},
		{
			name:  "same name and a size that rounds to the same extents",
			calls: hddState,
			run:   create(hdd, "pvc-aaa", 9*mi, backend.CreateOptions{}),
			want: backend.Volume{Name: "pvc-aaa", Pool: hdd, SizeBytes: 12 * mi,
				DevicePath: "/dev/LocalStorage_PoolHDD/pvc-aaa", Tags: []string{"hwameistor.io/volume=pvc-aaa"}},
		},
		{
			name:  "striped retry returns the existing striped volume",
			calls: hddState,
			run:   create(hdd, "pvc-bbb", 5*mi, backend.CreateOptions{Striped: true}),
			want:  backend.Volume{Name: "pvc-bbb", Pool: hdd, SizeBytes: 8 * mi, DevicePath: "/dev/LocalStorage_PoolHDD/pvc-bbb"},
		},
		{
			name:    "same name, another size",
			calls:   hddState,
			run:     create(hdd, "pvc-aaa", 20*mi, backend.CreateOptions{}),
			wantErr: backend.ErrAlreadyExists,
			wantMsg: "volume pvc-aaa has 12Mi, requested 20Mi",
		},
		{
			name:    "an LV without our tag is never taken over",
			calls:   hddState,
			run:     create(hdd, "other", 8*mi, backend.CreateOptions{}),
			wantErr: backend.ErrNotOwned,
			wantMsg: "LocalStorage_PoolHDD/other has no tag hwameistor.io/owner=lvm.hwameistor.io",
		},
		{
			name:    "vg_free too small: refused before lvcreate",
			calls:   hddState,
			run:     create(hdd, "pvc-new", 4*gi, backend.CreateOptions{}),
			wantErr: backend.ErrInsufficientCapacity,
			wantMsg: "pool LocalStorage_PoolHDD: insufficient capacity: need 4Gi, free 2012Mi",
		},
		{
			name: "lvcreate reports insufficient free space",
			calls: then(failed(cmd(lvcreate("-L", "1073741824b", "-n", "pvc-new", "--addtag", owner, "--addtag", zeroTag0, hdd)...),
				5, testdata(t, "lvcreate_insufficient.stderr"))),
			run:     create(hdd, "pvc-new", gi, backend.CreateOptions{}),
			wantErr: backend.ErrInsufficientCapacity,
			wantMsg: `need 1Gi, free 2012Mi: lvm lvcreate -y -Wy -Zy -L 1073741824b -n pvc-new --addtag hwameistor.io/owner=lvm.hwameistor.io --addtag hwameistor.io/zero-from=0 LocalStorage_PoolHDD: exit status 5: ` +
				`WARNING: Activation disabled. No device-mapper interaction will be attempted.; WARNING: Skipping zeroing and wipping, compiled without activation support.; ` +
				`Volume group "LocalStorage_PoolHDD" has insufficient free space (502 extents): 1024 required.`,
		},
		{
			name: "lvcreate finds no PVs with free extents for every stripe",
			calls: then(failed(cmd(lvcreate("-L", "8388608b", "-n", "pvc-ccc", "-i", "2", "--addtag", owner, "--addtag", zeroTag0, hdd)...),
				5, testdata(t, "lvcreate_no_suitable_extents.stderr"))),
			run:     create(hdd, "pvc-ccc", 8*mi, backend.CreateOptions{Striped: true}),
			wantErr: backend.ErrInsufficientCapacity,
			wantMsg: "Insufficient suitable allocatable extents for logical volume pvc-ccc: 2 more required",
		},
		{
			name: "lvcreate races with another creator",
			calls: then(failed(cmd(lvcreate("-L", "8388608b", "-n", "pvc-new", "--addtag", owner, "--addtag", zeroTag0, hdd)...),
				5, strings.ReplaceAll(testdata(t, "lvcreate_exists.stderr"), "pvc-bbb", "pvc-new"))),
			run:     create(hdd, "pvc-new", 8*mi, backend.CreateOptions{}),
			wantErr: backend.ErrAlreadyExists,
			wantMsg: `Logical Volume "pvc-new" already exists in volume group "LocalStorage_PoolHDD"`,
		},
		{
			name: "lvcreate without device-mapper: the error carries stderr",
			calls: then(failed(cmd(lvcreate("-L", "8388608b", "-n", "pvc-new", "--addtag", owner, "--addtag", zeroTag0, hdd)...),
				3, testdata(t, "lvcreate_no_device_mapper.stderr"))),
			run:     create(hdd, "pvc-new", 8*mi, backend.CreateOptions{}),
			wantMsg: "pool LocalStorage_PoolHDD: create volume pvc-new: lvm lvcreate -y -Wy -Zy -L 8388608b -n pvc-new --addtag hwameistor.io/owner=lvm.hwameistor.io --addtag hwameistor.io/zero-from=0 LocalStorage_PoolHDD: exit status 3: /dev/mapper/control: open failed: No such device;",
		},
		{
			name:    "volume count limit",
			opts:    Options{VolumeCountLimit: 2},
			calls:   hddState,
			run:     create(hdd, "pvc-new", 8*mi, backend.CreateOptions{}),
			wantErr: backend.ErrInsufficientCapacity,
			wantMsg: "volume count limit 2 reached",
		},
		{
			name: "the volume group of the pool does not exist",
			calls: func(t *testing.T) []command.Call {
				return []command.Call{missingVG(t, vgsCall("", nvme), nvme)}
			},
			run:     create(nvme, "pvc-new", 8*mi, backend.CreateOptions{}),
			wantErr: backend.ErrPoolNotFound,
			wantMsg: "pool LocalStorage_PoolNVMe: volume group LocalStorage_PoolNVMe does not exist",
		},
		{
			name:    "a pool that is not configured runs nothing",
			opts:    Options{VolumeGroups: map[string]string{hdd: hdd}},
			run:     create(ssd, "pvc-new", 8*mi, backend.CreateOptions{}),
			wantErr: backend.ErrPoolNotFound,
			wantMsg: `"LocalStorage_PoolSSD" is not configured on this node (pools: LocalStorage_PoolHDD)`,
		},
		{name: "option injection in the name", run: create(hdd, "--config=x", 8*mi, backend.CreateOptions{}), wantErr: backend.ErrInvalidArgument},
		{name: "a tag with a space", run: create(hdd, "pvc-new", 8*mi, backend.CreateOptions{Tags: []string{"a b"}}), wantErr: backend.ErrInvalidArgument},
		{name: "a forged ownership tag", run: create(hdd, "pvc-new", 8*mi, backend.CreateOptions{Tags: []string{"hwameistor.io/owner=x"}}), wantErr: backend.ErrInvalidArgument},
		{name: "a forged zeroing tag", run: create(hdd, "pvc-new", 8*mi, backend.CreateOptions{Tags: []string{"hwameistor.io/zero-from=99"}}), wantErr: backend.ErrInvalidArgument},
		{
			name:     "zeroing fails: the volume is not returned and keeps its tag",
			calls:    then(cmd(lvcreate("-L", "8388608b", "-n", "pvc-new", "--addtag", owner, "--addtag", zeroTag0, hdd)...)),
			run:      create(hdd, "pvc-new", 8*mi, backend.CreateOptions{}),
			zeroErr:  errors.New("device /dev/LocalStorage_PoolHDD/pvc-new does not exist (is the LV active?)"),
			wantZero: []zeroCall{{"/dev/LocalStorage_PoolHDD/pvc-new", 0, 8 * mi, true}},
			wantMsg:  "pool LocalStorage_PoolHDD: volume pvc-new: zeroing bytes [0, 8388608) of /dev/LocalStorage_PoolHDD/pvc-new, which may hold a previous tenant's data: device",
		},
		{
			name: "a retry finishes the zeroing a crash interrupted",
			calls: func(t *testing.T) []command.Call {
				return []command.Call{vgsCall(testdata(t, "vgs_hdd.json"), hdd), lvsCall(pending(t, "lvs_hdd.json", "pvc-aaa", zeroTag0), hdd),
					deltag("LocalStorage_PoolHDD/pvc-aaa", zeroTag0)}
			},
			run: create(hdd, "pvc-aaa", 12*mi, backend.CreateOptions{}),
			want: backend.Volume{Name: "pvc-aaa", Pool: hdd, SizeBytes: 12 * mi,
				DevicePath: "/dev/LocalStorage_PoolHDD/pvc-aaa", Tags: []string{"hwameistor.io/volume=pvc-aaa"}},
			wantZero: []zeroCall{{"/dev/LocalStorage_PoolHDD/pvc-aaa", 0, 12 * mi, true}},
		},
		{name: "zero bytes", run: create(hdd, "pvc-new", 0, backend.CreateOptions{}), wantErr: backend.ErrInvalidArgument},
		{
			name:    "a name too long for device-mapper with this VG",
			run:     create(hdd, strings.Repeat("a-", 50), 8*mi, backend.CreateOptions{}),
			wantErr: backend.ErrInvalidArgument,
			wantMsg: "device-mapper name 171 > 127",
		},
		{
			name: "--config, binary and VG mapping apply to every command",
			opts: Options{Binary: "/sbin/lvm", Config: "devices { use_devicesfile=0 }", VolumeGroups: map[string]string{hdd: "test_hdd"}},
			calls: func(t *testing.T) []command.Call {
				conf := []string{"--config", "devices { use_devicesfile=0 }"}
				vgs := strings.ReplaceAll(testdata(t, "vgs_hdd.json"), hdd, "test_hdd")
				lvs := strings.ReplaceAll(testdata(t, "lvs_ssd_empty.json"), ssd, "test_hdd")
				return []command.Call{
					{Argv: concat([]string{"/sbin/lvm", "vgs"}, conf, []string{"--reportformat", "json", "--units", "b", "--nosuffix", "-o", "vg_name,vg_size,vg_free,vg_extent_size,pv_count", "test_hdd"}), Stdout: vgs},
					{Argv: concat([]string{"/sbin/lvm", "lvs"}, conf, []string{"--reportformat", "json", "--units", "b", "--nosuffix", "-o", "lv_name,vg_name,lv_size,lv_tags,lv_path", "test_hdd"}), Stdout: lvs},
					{Argv: concat([]string{"/sbin/lvm", "lvcreate"}, conf, []string{"-y", "-Wy", "-Zy", "-L", "8388608b", "-n", "pvc-new", "--addtag", owner, "--addtag", zeroTag0, "test_hdd"})},
					{Argv: concat([]string{"/sbin/lvm", "lvchange"}, conf, []string{"--deltag", zeroTag0, "test_hdd/pvc-new"})},
				}
			},
			run:      create(hdd, "pvc-new", 8*mi, backend.CreateOptions{}),
			wantZero: []zeroCall{{"/dev/test_hdd/pvc-new", 0, 8 * mi, true}},
			want:     backend.Volume{Name: "pvc-new", Pool: hdd, SizeBytes: 8 * mi, DevicePath: "/dev/test_hdd/pvc-new"},
		},
	})
}

func concat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestExpandVolume(t *testing.T) {
	expand := func(name string, bytes int64) func(context.Context, *Backend) (any, error) {
		return func(ctx context.Context, b *Backend) (any, error) { return b.ExpandVolume(ctx, hdd, name, bytes) }
	}
	hddState := func(t *testing.T) []command.Call {
		return []command.Call{vgsCall(testdata(t, "vgs_hdd.json"), hdd), lvsCall(testdata(t, "lvs_hdd.json"), hdd)}
	}
	lvextend := func(size, lv string) command.Call { return cmd("lvm", "lvextend", "-L", size, lv) }
	const zeroTag12 = "hwameistor.io/zero-from=12582912"
	addtag := cmd("lvm", "lvchange", "--addtag", zeroTag12, "LocalStorage_PoolHDD/pvc-aaa")
	aaa16 := backend.Volume{Name: "pvc-aaa", Pool: hdd, SizeBytes: 16 * mi, DevicePath: "/dev/LocalStorage_PoolHDD/pvc-aaa", Tags: []string{"hwameistor.io/volume=pvc-aaa"}}
	aaa12 := aaa16
	aaa12.SizeBytes = 12 * mi

	runCases(t, []testCase{
		{
			name: "grows to whole extents, re-reads the LV and zeroes the new extents",
			calls: func(t *testing.T) []command.Call {
				return append(hddState(t), addtag, lvextend("16777216b", "LocalStorage_PoolHDD/pvc-aaa"),
					lvsCall(pending(t, "lvs_hdd_extended.json", "pvc-aaa", zeroTag12), hdd),
					deltag("LocalStorage_PoolHDD/pvc-aaa", zeroTag12))
			},
			run:  expand("pvc-aaa", 13*mi),
			want: aaa16,
			// Not exclusively: a mounted volume grows online.
			wantZero: []zeroCall{{"/dev/LocalStorage_PoolHDD/pvc-aaa", 12 * mi, 4 * mi, false}},
		},
		{
			name: "a retry finishes the zeroing of an interrupted expansion",
			calls: func(t *testing.T) []command.Call {
				return []command.Call{vgsCall(testdata(t, "vgs_hdd.json"), hdd),
					lvsCall(pending(t, "lvs_hdd_extended.json", "pvc-aaa", zeroTag12), hdd),
					deltag("LocalStorage_PoolHDD/pvc-aaa", zeroTag12)}
			},
			run:      expand("pvc-aaa", 16*mi),
			want:     aaa16,
			wantZero: []zeroCall{{"/dev/LocalStorage_PoolHDD/pvc-aaa", 12 * mi, 4 * mi, false}},
		},
		{
			name: "an unfinished zeroing of the whole LV covers the new extents",
			calls: func(t *testing.T) []command.Call {
				return []command.Call{vgsCall(testdata(t, "vgs_hdd.json"), hdd),
					lvsCall(pending(t, "lvs_hdd.json", "pvc-aaa", zeroTag0), hdd),
					lvextend("16777216b", "LocalStorage_PoolHDD/pvc-aaa"),
					lvsCall(pending(t, "lvs_hdd_extended.json", "pvc-aaa", zeroTag0), hdd),
					deltag("LocalStorage_PoolHDD/pvc-aaa", zeroTag0)}
			},
			run:      expand("pvc-aaa", 16*mi),
			want:     aaa16,
			wantZero: []zeroCall{{"/dev/LocalStorage_PoolHDD/pvc-aaa", 0, 16 * mi, true}},
		},
		{name: "never shrinks", calls: hddState, run: expand("pvc-aaa", 4*mi), want: aaa12},
		{name: "same size runs no lvextend", calls: hddState, run: expand("pvc-aaa", 12*mi), want: aaa12},
		{name: "missing volume", calls: hddState, run: expand("pvc-zzz", 12*mi), wantErr: backend.ErrNotFound, wantMsg: "pool LocalStorage_PoolHDD: volume pvc-zzz"},
		{name: "not ours", calls: hddState, run: expand("other", 12*mi), wantErr: backend.ErrNotOwned},
		{
			name:    "vg_free too small for the difference",
			calls:   hddState,
			run:     expand("pvc-aaa", 4*gi),
			wantErr: backend.ErrInsufficientCapacity,
			wantMsg: "need 4084Mi, free 2012Mi",
		},
		{
			name: "lvextend reports insufficient free space",
			calls: func(t *testing.T) []command.Call {
				return append(hddState(t), cmd("lvm", "lvchange", "--addtag", "hwameistor.io/zero-from=12582912", "LocalStorage_PoolHDD/pvc-aaa"),
					failed(lvextend("1073741824b", "LocalStorage_PoolHDD/pvc-aaa"), 5, testdata(t, "lvextend_insufficient.stderr")))
			},
			run:     expand("pvc-aaa", gi),
			wantErr: backend.ErrInsufficientCapacity,
			wantMsg: "Insufficient free space: 1020 extents needed, but only 502 available",
		},
		{
			name: "the VG disappeared",
			calls: func(t *testing.T) []command.Call {
				return []command.Call{missingVG(t, vgsCall("", hdd), hdd)}
			},
			run:     expand("pvc-aaa", gi),
			wantErr: backend.ErrPoolNotFound,
		},
	})
}

func TestDeleteVolume(t *testing.T) {
	del := func(name string) func(context.Context, *Backend) (any, error) {
		return func(ctx context.Context, b *Backend) (any, error) { return nil, b.DeleteVolume(ctx, hdd, name) }
	}
	lvremove := cmd("lvm", "lvremove", "-y", "LocalStorage_PoolHDD/pvc-aaa")
	runCases(t, []testCase{
		{
			name: "removes our LV",
			calls: func(t *testing.T) []command.Call {
				return []command.Call{lvsCall(testdata(t, "lvs_hdd.json"), hdd), lvremove}
			},
			run: del("pvc-aaa"),
		},
		{
			name:  "a missing volume is already deleted",
			calls: func(t *testing.T) []command.Call { return []command.Call{lvsCall(testdata(t, "lvs_hdd.json"), hdd)} },
			run:   del("pvc-zzz"),
		},
		{
			name:  "a missing VG holds nothing to delete",
			calls: func(t *testing.T) []command.Call { return []command.Call{missingVG(t, lvsCall("", hdd), hdd)} },
			run:   del("pvc-aaa"),
		},
		{
			name:    "an LV without our tag is left alone",
			calls:   func(t *testing.T) []command.Call { return []command.Call{lvsCall(testdata(t, "lvs_hdd.json"), hdd)} },
			run:     del("other"),
			wantErr: backend.ErrNotOwned,
		},
		{
			name: "lvremove races with another remover",
			calls: func(t *testing.T) []command.Call {
				return []command.Call{lvsCall(testdata(t, "lvs_hdd.json"), hdd),
					failed(lvremove, 5, strings.ReplaceAll(testdata(t, "lvremove_missing.stderr"), "nosuch", "pvc-aaa"))}
			},
			run: del("pvc-aaa"),
		},
		{
			name: "lvremove of a volume in use fails with its stderr",
			calls: func(t *testing.T) []command.Call {
				return []command.Call{lvsCall(testdata(t, "lvs_hdd.json"), hdd),
					failed(lvremove, 5, "  Logical volume LocalStorage_PoolHDD/pvc-aaa contains a filesystem in use.\n")}
			},
			run:     del("pvc-aaa"),
			wantMsg: "pool LocalStorage_PoolHDD: delete volume pvc-aaa: lvm lvremove -y LocalStorage_PoolHDD/pvc-aaa: exit status 5: Logical volume LocalStorage_PoolHDD/pvc-aaa contains a filesystem in use.",
		},
		{name: "a path in the name", run: del("../x"), wantErr: backend.ErrInvalidArgument},
	})
}

func TestGetAndListVolumes(t *testing.T) {
	aaa := backend.Volume{Name: "pvc-aaa", Pool: hdd, SizeBytes: 12 * mi, DevicePath: "/dev/LocalStorage_PoolHDD/pvc-aaa", Tags: []string{"hwameistor.io/volume=pvc-aaa"}}
	bbb := backend.Volume{Name: "pvc-bbb", Pool: hdd, SizeBytes: 8 * mi, DevicePath: "/dev/LocalStorage_PoolHDD/pvc-bbb"}
	get := func(pool, name string) func(context.Context, *Backend) (any, error) {
		return func(ctx context.Context, b *Backend) (any, error) { return b.GetVolume(ctx, pool, name) }
	}
	list := func(pool string) func(context.Context, *Backend) (any, error) {
		return func(ctx context.Context, b *Backend) (any, error) { return b.ListVolumes(ctx, pool) }
	}
	hddLVs := func(file string) func(t *testing.T) []command.Call {
		return func(t *testing.T) []command.Call { return []command.Call{lvsCall(testdata(t, file), hdd)} }
	}
	runCases(t, []testCase{
		{name: "get ours", calls: hddLVs("lvs_hdd.json"), run: get(hdd, "pvc-aaa"), want: aaa},
		{
			name: "get finishes a zeroing a crash interrupted",
			calls: func(t *testing.T) []command.Call {
				return []command.Call{lvsCall(pending(t, "lvs_hdd.json", "pvc-aaa", zeroTag0, "hwameistor.io/zero-from=4194304"), hdd),
					deltag("LocalStorage_PoolHDD/pvc-aaa", zeroTag0, "hwameistor.io/zero-from=4194304")}
			},
			run:      get(hdd, "pvc-aaa"),
			want:     aaa,
			wantZero: []zeroCall{{"/dev/LocalStorage_PoolHDD/pvc-aaa", 0, 12 * mi, true}},
		},
		{
			name: "list hides the zeroing tag and zeroes nothing",
			calls: func(t *testing.T) []command.Call {
				return []command.Call{lvsCall(pending(t, "lvs_hdd.json", "pvc-aaa", zeroTag0), hdd)}
			},
			run:  list(hdd),
			want: []backend.Volume{aaa, bbb},
		},
		{name: "get missing", calls: hddLVs("lvs_hdd.json"), run: get(hdd, "pvc-zzz"), wantErr: backend.ErrNotFound},
		{name: "get not ours", calls: hddLVs("lvs_hdd.json"), run: get(hdd, "other"), wantErr: backend.ErrNotOwned},
		{
			name:    "get from a missing VG",
			calls:   func(t *testing.T) []command.Call { return []command.Call{missingVG(t, lvsCall("", nvme), nvme)} },
			run:     get(nvme, "pvc-aaa"),
			wantErr: backend.ErrPoolNotFound,
		},
		{name: "list leaves out LVs without our tag", calls: hddLVs("lvs_hdd.json"), run: list(hdd), want: []backend.Volume{aaa, bbb}},
		{
			name: "list an empty VG",
			calls: func(t *testing.T) []command.Call {
				return []command.Call{lvsCall(testdata(t, "lvs_ssd_empty.json"), ssd)}
			},
			run:  list(ssd),
			want: []backend.Volume(nil),
		},
		{
			name:  "one row per LV even when lvs prints one per segment",
			calls: hddLVs("lvs_hdd_segments.json"),
			run:   list(hdd),
			want:  []backend.Volume{func() backend.Volume { v := aaa; v.SizeBytes = 16 * mi; return v }(), bbb},
		},
		{
			name:    "a report that is not JSON",
			calls:   func(t *testing.T) []command.Call { return []command.Call{lvsCall("  No volume groups found\n", hdd)} },
			run:     list(hdd),
			wantMsg: "decode lvm report",
		},
	})
}

func TestPools(t *testing.T) {
	pools := func(ctx context.Context, b *Backend) (any, error) { return b.Pools(ctx) }
	recorded := func(t *testing.T) []command.Call {
		return []command.Call{fullreportCall(testdata(t, "fullreport.json"))}
	}
	hddPool := backend.Pool{
		Name: hdd, Class: v1alpha1.PoolClassHDD,
		TotalBytes: 2139095040, FreeBytes: hddFree, ExtentSizeBytes: 4 * mi,
		VolumeCount: 2, VolumeCountLimit: 1000,
		Disks:   []backend.Disk{{DevPath: "/dev/loop0", CapacityBytes: 1069547520}, {DevPath: "/dev/loop1", CapacityBytes: 1069547520}},
		Volumes: []string{"pvc-aaa", "pvc-bbb"},
	}
	ssdPool := backend.Pool{
		Name: ssd, Class: v1alpha1.PoolClassSSD,
		TotalBytes: 532676608, FreeBytes: 532676608, ExtentSizeBytes: 4 * mi,
		VolumeCountLimit: 1000,
		Disks:            []backend.Disk{{DevPath: "/dev/loop2", CapacityBytes: 532676608}},
	}
	nvmeOnSSD := ssdPool
	nvmeOnSSD.Name, nvmeOnSSD.Class, nvmeOnSSD.VolumeCountLimit = nvme, v1alpha1.PoolClassNVMe, 10

	runCases(t, []testCase{
		{name: "existing VGs only, in class order", calls: recorded, run: pools, want: []backend.Pool{hddPool, ssdPool}},
		{
			name:  "VG mapping and volume limit",
			opts:  Options{VolumeGroups: map[string]string{nvme: ssd}, VolumeCountLimit: 10},
			calls: recorded,
			run:   pools,
			want:  []backend.Pool{nvmeOnSSD},
		},
		{
			name: "fullreport fails",
			calls: func(t *testing.T) []command.Call {
				return []command.Call{failed(fullreportCall(""), 5, "  Reading VG LocalStorage_PoolHDD failed.\n")}
			},
			run:     pools,
			wantMsg: "exit status 5: Reading VG LocalStorage_PoolHDD failed.",
		},
	})
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"unknown pool", Options{VolumeGroups: map[string]string{"LocalStorage_PoolTape": "vg"}}},
		{"VG name with a space", Options{VolumeGroups: map[string]string{hdd: "my vg"}}},
		{"VG name as an option", Options{VolumeGroups: map[string]string{hdd: "-vg"}}},
		{"owner with a comma", Options{Owner: "a,b"}},
	}
	for _, tc := range tests {
		if _, err := New(tc.opts); err == nil {
			t.Errorf("%s: New succeeded", tc.name)
		}
	}
}

func TestDecodeReport(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []lv
		wantErr bool
	}{
		{
			name: "json: numbers as strings",
			in:   `{"report":[{"lv":[{"lv_name":"a","vg_name":"v","lv_size":"4194304","lv_tags":"x,y=1","lv_path":"/dev/v/a"}]}]}`,
			want: []lv{{Name: "a", VGName: "v", Size: 4194304, Tags: tags{"x", "y=1"}, Path: "/dev/v/a"}},
		},
		{
			name: "json_std: numbers and tag lists",
			in:   `{"report":[{"lv":[{"lv_name":"a","vg_name":"v","lv_size":4194304,"lv_tags":["x"],"lv_path":""}]}],"log":[]}`,
			want: []lv{{Name: "a", VGName: "v", Size: 4194304, Tags: tags{"x"}}},
		},
		{
			name: "empty values",
			in:   `{"report":[{"lv":[{"lv_name":"a","vg_name":"v","lv_size":"","lv_tags":"","lv_path":""}]}]}`,
			want: []lv{{Name: "a", VGName: "v"}},
		},
		{name: "a size with a unit suffix", in: `{"report":[{"lv":[{"lv_size":"4.00m"}]}]}`, wantErr: true},
		{name: "not JSON", in: `  Volume group "x" not found`, wantErr: true},
	}
	for _, tc := range tests {
		r, err := decodeReport([]byte(tc.in))
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: err = %v", tc.name, err)
			continue
		}
		if got := r.lvs(); !tc.wantErr && !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %#v, want %#v", tc.name, got, tc.want)
		}
	}
}

// TestAttach: the device node of an active LV is returned without a
// command; a missing node (an LV left inactive by a reboot) is activated,
// only for an LV of ours.
func TestAttach(t *testing.T) {
	attach := func(name string, active bool) func(context.Context, *Backend) (any, error) {
		return func(ctx context.Context, b *Backend) (any, error) {
			b.exists = func(path string) bool { return active && path == "/dev/LocalStorage_PoolHDD/"+name }
			return b.Attach(ctx, hdd, name)
		}
	}
	activate := cmd("lvm", "lvchange", "--activate", "y", "LocalStorage_PoolHDD/pvc-aaa")
	runCases(t, []testCase{
		{name: "active: nothing runs", run: attach("pvc-aaa", true), want: "/dev/LocalStorage_PoolHDD/pvc-aaa"},
		{
			name: "inactive: activated",
			calls: func(t *testing.T) []command.Call {
				return []command.Call{lvsCall(testdata(t, "lvs_hdd.json"), hdd), activate}
			},
			run: attach("pvc-aaa", false), want: "/dev/LocalStorage_PoolHDD/pvc-aaa",
		},
		{
			name:    "missing volume",
			calls:   func(t *testing.T) []command.Call { return []command.Call{lvsCall(testdata(t, "lvs_hdd.json"), hdd)} },
			run:     attach("pvc-zzz", false),
			wantErr: backend.ErrNotFound,
		},
		{
			name:    "an LV without our tag is not activated",
			calls:   func(t *testing.T) []command.Call { return []command.Call{lvsCall(testdata(t, "lvs_hdd.json"), hdd)} },
			run:     attach("other", false),
			wantErr: backend.ErrNotOwned,
		},
		{
			name: "lvchange fails",
			calls: func(t *testing.T) []command.Call {
				return []command.Call{lvsCall(testdata(t, "lvs_hdd.json"), hdd), failed(activate, 5, "  device-mapper: reload ioctl failed\n")}
			},
			run: attach("pvc-aaa", false), wantMsg: "pool LocalStorage_PoolHDD: activating volume pvc-aaa",
		},
	})
}
