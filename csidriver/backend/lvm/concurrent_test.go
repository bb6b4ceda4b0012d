package lvm

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"hwameistor.io/local/csidriver/backend"
	"hwameistor.io/local/csidriver/backend/command"
)

// simLVM is a command.Runner that behaves like lvm on one volume group:
// every command sees and changes its state atomically (lvm's VG lock), and
// takes a little time outside that lock, so that concurrent callers
// interleave their commands as they do with the real lvm.
type simLVM struct {
	vg      string
	extent  int64
	extents int64
	delay   time.Duration

	mu  sync.Mutex
	lvs map[string]*simLV
}

type simLV struct {
	size int64
	tags []string
}

func (s *simLVM) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	time.Sleep(s.delay)
	s.mu.Lock()
	defer s.mu.Unlock()
	fail := func(format string, a ...any) ([]byte, error) {
		msg := fmt.Sprintf(format, a...)
		return nil, &command.Error{Argv: append([]string{name}, args...), ExitCode: 5, Stderr: msg, Err: fmt.Errorf("exit status 5")}
	}
	if len(args) == 0 {
		return fail("no subcommand")
	}
	used := int64(0)
	for _, l := range s.lvs {
		used += l.size
	}
	total := s.extent * s.extents
	vgRow := map[string]string{"vg_name": s.vg, "vg_size": strconv.FormatInt(total, 10), "vg_free": strconv.FormatInt(total-used, 10),
		"vg_extent_size": strconv.FormatInt(s.extent, 10), "pv_count": "1"}
	pvRow := map[string]string{"pv_name": "/dev/sim0", "vg_name": s.vg, "pv_size": strconv.FormatInt(total, 10), "pv_free": strconv.FormatInt(total-used, 10)}
	var lvRows []map[string]string
	for _, n := range slices.Sorted(func(yield func(string) bool) {
		for n := range s.lvs {
			if !yield(n) {
				return
			}
		}
	}) {
		l := s.lvs[n]
		lvRows = append(lvRows, map[string]string{"lv_name": n, "vg_name": s.vg, "lv_size": strconv.FormatInt(l.size, 10),
			"lv_tags": strings.Join(l.tags, ","), "lv_path": "/dev/" + s.vg + "/" + n})
	}
	out := func(sections map[string]any) ([]byte, error) {
		return json.Marshal(map[string]any{"report": []any{sections}})
	}
	opt := func(flag string) []string {
		var vals []string
		for i, a := range args {
			if a == flag && i+1 < len(args) {
				vals = append(vals, args[i+1])
			}
		}
		return vals
	}
	switch args[0] {
	case "fullreport":
		return out(map[string]any{"vg": []any{vgRow}, "pv": []any{pvRow}, "lv": lvRows, "pvseg": []any{}, "seg": []any{}})
	case "vgs":
		return out(map[string]any{"vg": []any{vgRow}})
	case "pvs":
		return out(map[string]any{"pv": []any{pvRow}})
	case "lvs":
		return out(map[string]any{"lv": lvRows})
	case "lvcreate":
		size, err := strconv.ParseInt(strings.TrimSuffix(opt("-L")[0], "b"), 10, 64)
		if err != nil {
			return fail("bad size")
		}
		n := opt("-n")[0]
		if s.lvs[n] != nil {
			return fail("Logical Volume %q already exists in volume group %q", n, s.vg)
		}
		if size > total-used {
			return fail("Volume group %q has insufficient free space", s.vg)
		}
		s.lvs[n] = &simLV{size: size, tags: opt("--addtag")}
		return nil, nil
	case "lvchange":
		l := s.lvs[strings.TrimPrefix(args[len(args)-1], s.vg+"/")]
		if l == nil {
			return fail("Failed to find logical volume %q", args[len(args)-1])
		}
		l.tags = append(l.tags, opt("--addtag")...)
		l.tags = slices.DeleteFunc(l.tags, func(t string) bool { return slices.Contains(opt("--deltag"), t) })
		return nil, nil
	}
	return fail("simLVM: %s is not simulated", args[0])
}

// TestPoolsConsistentUnderConcurrentCreates: pool reports taken while
// volumes are being created always agree with themselves: the free bytes
// are the total minus the volumes listed beside them. (Three separate
// reports, vgs then pvs then lvs, could list a new volume next to a free
// size measured before it existed.) Run it with -race.
func TestPoolsConsistentUnderConcurrentCreates(t *testing.T) {
	const volumes, volSize = 64, 4 * mi
	sim := &simLVM{vg: hdd, extent: 4 * mi, extents: 1000, delay: 200 * time.Microsecond, lvs: map[string]*simLV{}}
	b, err := New(Options{Runner: sim, VolumeGroups: map[string]string{hdd: hdd}})
	if err != nil {
		t.Fatal(err)
	}
	b.zero = func(context.Context, string, int64, int64, bool) error { return nil }
	ctx := context.Background()
	var creates sync.WaitGroup
	for i := range volumes {
		creates.Add(1)
		go func() {
			defer creates.Done()
			if _, err := b.CreateVolume(ctx, hdd, fmt.Sprintf("pvc-%03d", i), volSize, backend.CreateOptions{}); err != nil {
				t.Error(err)
			}
		}()
	}
	done := make(chan struct{})
	go func() { creates.Wait(); close(done) }()
	reports, bad := 0, 0
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		pools, err := b.Pools(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(pools) != 1 {
			t.Fatalf("Pools() = %+v, want one pool", pools)
		}
		p := pools[0]
		reports++
		if p.FreeBytes != p.TotalBytes-p.VolumeCount*volSize {
			if bad++; bad <= 3 {
				t.Errorf("report %d lists %d volumes of %d bytes beside %d free bytes of %d", reports, p.VolumeCount, volSize, p.FreeBytes, p.TotalBytes)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d reports were inconsistent", bad, reports)
	}
	if p, err := b.Pools(ctx); err != nil || p[0].VolumeCount != volumes {
		t.Errorf("after the creates: %+v, %v; want %d volumes", p, err, volumes)
	}
	t.Logf("%d reports during %d creates", reports, volumes)
}
