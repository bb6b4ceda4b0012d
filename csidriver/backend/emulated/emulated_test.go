package emulated

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"

	"hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/backend"
)

const (
	hdd = v1alpha1.PoolNameHDD
	ssd = v1alpha1.PoolNameSSD
	mi  = int64(1 << 20)
)

// fakeLoop stands in for the kernel's loop devices: its state outlives a
// Backend, as attachments outlive a process.
type fakeLoop struct {
	mu    sync.Mutex
	devs  map[string][]string // backing file -> devices
	next  int
	calls []string
}

func newFakeLoop() *fakeLoop { return &fakeLoop{devs: map[string][]string{}} }

func (f *fakeLoop) record(c string) { f.calls = append(f.calls, c) }

func (f *fakeLoop) Find(_ context.Context, file string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("find " + filepath.Base(file))
	return append([]string(nil), f.devs[file]...), nil
}

func (f *fakeLoop) Attach(_ context.Context, file string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("attach " + filepath.Base(file))
	dev := fmt.Sprintf("/dev/loop%d", f.next)
	f.next++
	f.devs[file] = append(f.devs[file], dev)
	return dev, nil
}

func (f *fakeLoop) Refresh(_ context.Context, dev string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("refresh " + dev)
	return nil
}

func (f *fakeLoop) Detach(_ context.Context, dev string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("detach " + dev)
	for file, devs := range f.devs {
		for i, d := range devs {
			if d == dev {
				f.devs[file] = append(devs[:i], devs[i+1:]...)
			}
		}
	}
	return nil
}

func (f *fakeLoop) takeCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

// hddPool is 40Mi in 4Mi extents, at most 3 volumes.
var hddPool = PoolConfig{Class: v1alpha1.PoolClassHDD, CapacityBytes: 40 * mi, ExtentSizeBytes: 4 * mi, VolumeCountLimit: 3}

func newBackend(t *testing.T, root string, opts ...Option) *Backend {
	t.Helper()
	b, err := New(root, []PoolConfig{hddPool}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// step is one call in a table test; the backend carries over between steps.
type step struct {
	op       string // create, expand, delete
	pool     string // hdd when empty
	name     string
	bytes    int64
	tags     []string
	wantSize int64
	wantErr  error
	wantMsg  string
}

func runSteps(t *testing.T, b *Backend, steps []step) {
	t.Helper()
	ctx := context.Background()
	for i, s := range steps {
		pool := s.pool
		if pool == "" {
			pool = hdd
		}
		var (
			v   backend.Volume
			err error
		)
		switch s.op {
		case "create":
			v, err = b.CreateVolume(ctx, pool, s.name, s.bytes, backend.CreateOptions{Tags: s.tags})
		case "expand":
			v, err = b.ExpandVolume(ctx, pool, s.name, s.bytes)
		case "delete":
			err = b.DeleteVolume(ctx, pool, s.name)
		default:
			t.Fatalf("step %d: unknown op %q", i, s.op)
		}
		if s.wantErr == nil && s.wantMsg == "" && err != nil {
			t.Fatalf("step %d (%s %s): %v", i, s.op, s.name, err)
		}
		if s.wantErr != nil && !errors.Is(err, s.wantErr) {
			t.Fatalf("step %d (%s %s): err = %v, want %v", i, s.op, s.name, err, s.wantErr)
		}
		if s.wantMsg != "" && (err == nil || !strings.Contains(err.Error(), s.wantMsg)) {
			t.Fatalf("step %d (%s %s): err = %v, want it to contain %q", i, s.op, s.name, err, s.wantMsg)
		}
		if err == nil && s.op != "delete" && v.SizeBytes != s.wantSize {
			t.Fatalf("step %d (%s %s): size %d, want %d", i, s.op, s.name, v.SizeBytes, s.wantSize)
		}
	}
}

// checkPool compares the pool's accounting with the files on disk.
func checkPool(t *testing.T, b *Backend, wantFree int64, wantVolumes ...string) {
	t.Helper()
	pools, err := b.Pools(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var p backend.Pool
	for _, q := range pools {
		if q.Name == hdd {
			p = q
		}
	}
	if p.FreeBytes != wantFree || !reflect.DeepEqual(p.Volumes, wantVolumes) || p.VolumeCount != int64(len(wantVolumes)) {
		t.Errorf("pool free %d, volumes %v (%d); want free %d, volumes %v", p.FreeBytes, p.Volumes, p.VolumeCount, wantFree, wantVolumes)
	}
	var onDisk int64
	entries, _ := os.ReadDir(filepath.Join(b.root, hdd, volumesDir))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), imgSuffix) {
			info, _ := e.Info()
			onDisk += info.Size()
		}
	}
	if used := p.TotalBytes - p.FreeBytes; onDisk != used {
		t.Errorf("files on disk hold %d bytes, the pool reports %d used", onDisk, used)
	}
}

func TestVolumes(t *testing.T) {
	tests := []struct {
		name        string
		steps       []step
		wantFree    int64
		wantVolumes []string
	}{
		{
			name:        "sizes round up to whole extents",
			steps:       []step{{op: "create", name: "a", bytes: 1, wantSize: 4 * mi}, {op: "create", name: "b", bytes: 5 * mi, wantSize: 8 * mi}},
			wantFree:    28 * mi,
			wantVolumes: []string{"a", "b"},
		},
		{
			name: "create is idempotent for the same rounded size",
			steps: []step{
				{op: "create", name: "a", bytes: 5 * mi, wantSize: 8 * mi},
				{op: "create", name: "a", bytes: 8 * mi, wantSize: 8 * mi},
				{op: "create", name: "a", bytes: 7 * mi, wantSize: 8 * mi},
				{op: "create", name: "a", bytes: 12 * mi, wantErr: backend.ErrAlreadyExists, wantMsg: "volume a has 8Mi, requested 12Mi"},
			},
			wantFree:    32 * mi,
			wantVolumes: []string{"a"},
		},
		{
			name: "the pool fills exactly and refuses one byte more",
			steps: []step{
				{op: "create", name: "a", bytes: 40 * mi, wantSize: 40 * mi},
				{op: "create", name: "b", bytes: 1, wantErr: backend.ErrInsufficientCapacity, wantMsg: "need 4Mi, free 0"},
			},
			wantFree:    0,
			wantVolumes: []string{"a"},
		},
		{
			name: "refused when the rounded size exceeds free bytes",
			steps: []step{
				{op: "create", name: "a", bytes: 32 * mi, wantSize: 32 * mi},
				{op: "create", name: "b", bytes: 8*mi + 1, wantErr: backend.ErrInsufficientCapacity, wantMsg: "pool LocalStorage_PoolHDD: insufficient capacity: need 12Mi, free 8Mi"},
				{op: "create", name: "b", bytes: 8 * mi, wantSize: 8 * mi},
			},
			wantFree:    0,
			wantVolumes: []string{"a", "b"},
		},
		{
			name: "volume count limit",
			steps: []step{
				{op: "create", name: "a", bytes: 1, wantSize: 4 * mi},
				{op: "create", name: "b", bytes: 1, wantSize: 4 * mi},
				{op: "create", name: "c", bytes: 1, wantSize: 4 * mi},
				{op: "create", name: "d", bytes: 1, wantErr: backend.ErrInsufficientCapacity, wantMsg: "volume count limit 3 reached"},
			},
			wantFree:    28 * mi,
			wantVolumes: []string{"a", "b", "c"},
		},
		{
			name: "expand grows to whole extents and never shrinks",
			steps: []step{
				{op: "create", name: "a", bytes: 4 * mi, wantSize: 4 * mi},
				{op: "expand", name: "a", bytes: 9 * mi, wantSize: 12 * mi},
				{op: "expand", name: "a", bytes: 4 * mi, wantSize: 12 * mi},
				{op: "expand", name: "a", bytes: 12 * mi, wantSize: 12 * mi},
			},
			wantFree:    28 * mi,
			wantVolumes: []string{"a"},
		},
		{
			name: "expand beyond free bytes",
			steps: []step{
				{op: "create", name: "a", bytes: 4 * mi, wantSize: 4 * mi},
				{op: "create", name: "b", bytes: 32 * mi, wantSize: 32 * mi},
				{op: "expand", name: "a", bytes: 16 * mi, wantErr: backend.ErrInsufficientCapacity, wantMsg: "need 12Mi, free 4Mi"},
				{op: "expand", name: "a", bytes: 8 * mi, wantSize: 8 * mi},
			},
			wantFree:    0,
			wantVolumes: []string{"a", "b"},
		},
		{
			name:     "expand a missing volume",
			steps:    []step{{op: "expand", name: "a", bytes: 4 * mi, wantErr: backend.ErrNotFound}},
			wantFree: 40 * mi,
		},
		{
			name: "delete frees the bytes and is idempotent",
			steps: []step{
				{op: "create", name: "a", bytes: 8 * mi, wantSize: 8 * mi, tags: []string{"x=1"}},
				{op: "create", name: "b", bytes: 8 * mi, wantSize: 8 * mi},
				{op: "delete", name: "a"},
				{op: "delete", name: "a"},
				{op: "delete", name: "never-existed"},
			},
			wantFree:    32 * mi,
			wantVolumes: []string{"b"},
		},
		{
			name: "bad input",
			steps: []step{
				{op: "create", pool: "LocalStorage_PoolTape", name: "a", bytes: 1, wantErr: backend.ErrPoolNotFound},
				{op: "create", pool: ssd, name: "a", bytes: 1, wantErr: backend.ErrPoolNotFound, wantMsg: "(pools: LocalStorage_PoolHDD)"},
				{op: "create", name: "../../etc/x", bytes: 1, wantErr: backend.ErrInvalidArgument},
				{op: "create", name: ".hidden", bytes: 1, wantErr: backend.ErrInvalidArgument},
				{op: "create", name: "a", bytes: 0, wantErr: backend.ErrInvalidArgument},
				{op: "create", name: "a", bytes: 1, tags: []string{"no spaces"}, wantErr: backend.ErrInvalidArgument},
				{op: "delete", name: "a/b", wantErr: backend.ErrInvalidArgument},
			},
			wantFree: 40 * mi,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t, t.TempDir(), WithoutLoop())
			runSteps(t, b, tc.steps)
			checkPool(t, b, tc.wantFree, tc.wantVolumes...)
		})
	}
}

func TestVolumeFilesAreSparse(t *testing.T) {
	b := newBackend(t, t.TempDir(), WithoutLoop())
	v, err := b.CreateVolume(context.Background(), hdd, "a", 32*mi, backend.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(b.root, hdd, volumesDir, "a.img"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != v.SizeBytes || st.Blocks*512 >= st.Size {
		t.Errorf("file size %d, %d bytes allocated; want %d, sparse", st.Size, st.Blocks*512, v.SizeBytes)
	}
}

func TestGetListAndTags(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t, t.TempDir(), WithoutLoop())
	if _, err := b.CreateVolume(ctx, hdd, "b", 1, backend.CreateOptions{Tags: []string{"z=1", "hwameistor.io/volume=b", "z=1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateVolume(ctx, hdd, "a", 1, backend.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wantB := backend.Volume{Name: "b", Pool: hdd, SizeBytes: 4 * mi, Tags: []string{"hwameistor.io/volume=b", "z=1"}}
	if got, err := b.GetVolume(ctx, hdd, "b"); err != nil || !reflect.DeepEqual(got, wantB) {
		t.Errorf("GetVolume = %+v, %v; want %+v", got, err, wantB)
	}
	if _, err := b.GetVolume(ctx, hdd, "c"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("GetVolume(missing) = %v, want ErrNotFound", err)
	}
	list, err := b.ListVolumes(ctx, hdd)
	want := []backend.Volume{{Name: "a", Pool: hdd, SizeBytes: 4 * mi}, wantB}
	if err != nil || !reflect.DeepEqual(list, want) {
		t.Errorf("ListVolumes = %+v, %v; want %+v", list, err, want)
	}
	if _, err := b.ListVolumes(ctx, ssd); !errors.Is(err, backend.ErrPoolNotFound) {
		t.Errorf("ListVolumes(unconfigured) = %v, want ErrPoolNotFound", err)
	}
}

func TestPools(t *testing.T) {
	root := t.TempDir()
	b, err := New(root, []PoolConfig{
		// Out of class order on purpose; capacity not a whole number of
		// extents; default extent and limit.
		{Class: v1alpha1.PoolClassNVMe, CapacityBytes: 10*mi + 5, Disks: []backend.Disk{{DevPath: "/dev/nvme0n1", CapacityBytes: 10 * mi}}},
		hddPool,
	}, WithoutLoop())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateVolume(context.Background(), v1alpha1.PoolNameNVMe, "n", 1, backend.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pools, err := b.Pools(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []backend.Pool{
		{Name: hdd, Class: v1alpha1.PoolClassHDD, TotalBytes: 40 * mi, FreeBytes: 40 * mi, ExtentSizeBytes: 4 * mi,
			VolumeCountLimit: 3, Disks: []backend.Disk{{DevPath: filepath.Join(b.root, hdd), CapacityBytes: 40 * mi}}},
		{Name: v1alpha1.PoolNameNVMe, Class: v1alpha1.PoolClassNVMe, TotalBytes: 8 * mi, FreeBytes: 4 * mi, ExtentSizeBytes: DefaultExtentSize,
			VolumeCount: 1, VolumeCountLimit: v1alpha1.DefaultVolumeCountLimit,
			Disks: []backend.Disk{{DevPath: "/dev/nvme0n1", CapacityBytes: 10 * mi}}, Volumes: []string{"n"}},
	}
	if !reflect.DeepEqual(pools, want) {
		t.Errorf("Pools() =\n%+v\nwant\n%+v", pools, want)
	}
}

func TestRestart(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	loops := newFakeLoop()
	b := newBackend(t, root, WithLoop(loops))
	runSteps(t, b, []step{
		{op: "create", name: "a", bytes: 4 * mi, wantSize: 4 * mi, tags: []string{"hwameistor.io/volume=a"}},
		{op: "create", name: "b", bytes: 4 * mi, wantSize: 4 * mi},
		{op: "create", name: "c", bytes: 4 * mi, wantSize: 4 * mi, tags: []string{"t"}},
		{op: "expand", name: "b", bytes: 8 * mi, wantSize: 8 * mi},
		{op: "delete", name: "c"},
	})
	dev, err := b.Attach(ctx, hdd, "a")
	if err != nil {
		t.Fatal(err)
	}
	// What a crash in the middle of changes leaves behind.
	vdir := filepath.Join(root, hdd, volumesDir)
	for _, f := range []string{".d.img.123.tmp", ".d.tags.json.456.tmp", "d.tags.json"} {
		if err := os.WriteFile(filepath.Join(vdir, f), []byte(`["x"]`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	poolTmp := filepath.Join(root, hdd, ".pool.json.789.tmp")
	if err := os.WriteFile(poolTmp, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	before, _ := b.Pools(ctx)

	// A new process: no configuration given, everything from the files.
	b2, err := New(root, nil, WithLoop(loops))
	if err != nil {
		t.Fatal(err)
	}
	after, _ := b2.Pools(ctx)
	if !reflect.DeepEqual(before, after) {
		t.Errorf("pools after restart\n%+v\nwant\n%+v", after, before)
	}
	list, _ := b2.ListVolumes(ctx, hdd)
	want := []backend.Volume{
		{Name: "a", Pool: hdd, SizeBytes: 4 * mi, Tags: []string{"hwameistor.io/volume=a"}},
		{Name: "b", Pool: hdd, SizeBytes: 8 * mi},
	}
	if !reflect.DeepEqual(list, want) {
		t.Errorf("volumes after restart %+v, want %+v", list, want)
	}
	entries, _ := os.ReadDir(vdir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"a.img", "a.tags.json", "b.img"}; !reflect.DeepEqual(names, want) {
		t.Errorf("files after restart %v, want %v (leftovers removed)", names, want)
	}
	if _, err := os.Stat(poolTmp); !os.IsNotExist(err) {
		t.Errorf("temporary pool.json left behind: %v", err)
	}
	// The loop device attached by the first process is found again.
	loops.takeCalls()
	if got, err := b2.Attach(ctx, hdd, "a"); err != nil || got != dev {
		t.Errorf("Attach after restart = %q, %v; want %q", got, err, dev)
	}
	if calls := loops.takeCalls(); !reflect.DeepEqual(calls, []string{"find a.img", "refresh " + dev}) {
		t.Errorf("loop calls %v, want find and refresh only", calls)
	}

	// Reconfigured: more capacity is taken, less than allocated is refused.
	bigger := hddPool
	bigger.CapacityBytes = 80 * mi
	b3, err := New(root, []PoolConfig{bigger}, WithLoop(loops))
	if err != nil {
		t.Fatal(err)
	}
	checkPool(t, b3, 68*mi, "a", "b")
	smaller := hddPool
	smaller.CapacityBytes = 8 * mi
	if _, err := New(root, []PoolConfig{smaller}); err == nil || !strings.Contains(err.Error(), "more than its capacity") {
		t.Errorf("New with a capacity below the allocation = %v, want an error", err)
	}
}

func TestAttach(t *testing.T) {
	ctx := context.Background()
	loops := newFakeLoop()
	b := newBackend(t, t.TempDir(), WithLoop(loops))
	runSteps(t, b, []step{{op: "create", name: "a", bytes: 4 * mi, wantSize: 4 * mi}})
	loops.takeCalls()

	dev, err := b.Attach(ctx, hdd, "a")
	if err != nil || dev != "/dev/loop0" {
		t.Fatalf("Attach = %q, %v", dev, err)
	}
	if again, err := b.Attach(ctx, hdd, "a"); err != nil || again != dev {
		t.Errorf("second Attach = %q, %v; want %q", again, err, dev)
	}
	if v, _ := b.GetVolume(ctx, hdd, "a"); v.DevicePath != dev {
		t.Errorf("DevicePath = %q while attached, want %q", v.DevicePath, dev)
	}
	if v, err := b.ExpandVolume(ctx, hdd, "a", 8*mi); err != nil || v.SizeBytes != 8*mi {
		t.Errorf("ExpandVolume = %+v, %v", v, err)
	}
	if err := b.Detach(ctx, hdd, "a"); err != nil {
		t.Fatal(err)
	}
	if err := b.Detach(ctx, hdd, "a"); err != nil {
		t.Fatal(err)
	}
	if v, _ := b.GetVolume(ctx, hdd, "a"); v.DevicePath != "" {
		t.Errorf("DevicePath = %q after Detach, want empty", v.DevicePath)
	}
	// Deleting an attached volume detaches it first.
	if _, err := b.Attach(ctx, hdd, "a"); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteVolume(ctx, hdd, "a"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"find a.img", "attach a.img", // first Attach
		"find a.img", "refresh /dev/loop0", // second Attach finds it
		"find a.img", "refresh /dev/loop0", // ExpandVolume tells the device
		"find a.img", "detach /dev/loop0", // Detach
		"find a.img",                 // Detach again: nothing attached
		"find a.img", "attach a.img", // Attach
		"find a.img", "detach /dev/loop1", // DeleteVolume
	}
	if calls := loops.takeCalls(); !reflect.DeepEqual(calls, want) {
		t.Errorf("loop calls\n%q\nwant\n%q", calls, want)
	}
	if _, err := b.Attach(ctx, hdd, "a"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Attach(deleted) = %v, want ErrNotFound", err)
	}

	noLoop := newBackend(t, t.TempDir(), WithoutLoop())
	runSteps(t, noLoop, []step{{op: "create", name: "a", bytes: 4 * mi, wantSize: 4 * mi}})
	if _, err := noLoop.Attach(ctx, hdd, "a"); !errors.Is(err, backend.ErrAttachUnsupported) {
		t.Errorf("Attach without loop devices = %v, want ErrAttachUnsupported", err)
	}
	if err := noLoop.Detach(ctx, hdd, "a"); err != nil {
		t.Errorf("Detach without loop devices = %v, want nil", err)
	}
}

// TestConcurrentCreate runs many CreateVolume calls at once (run with
// -race): the pool never gives out more than its capacity, and concurrent
// creates of one name make one volume.
func TestConcurrentCreate(t *testing.T) {
	ctx := context.Background()
	b, err := New(t.TempDir(), []PoolConfig{{Class: v1alpha1.PoolClassHDD, CapacityBytes: 100 * mi, ExtentSizeBytes: mi}}, WithoutLoop())
	if err != nil {
		t.Fatal(err)
	}
	const workers = 64
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		granted int64
		refused int
	)
	for i := range workers {
		wg.Go(func() {
			size := int64(i%5+1) * mi
			_, err := b.CreateVolume(ctx, hdd, fmt.Sprintf("v%02d", i), size, backend.CreateOptions{})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				granted += size
			case errors.Is(err, backend.ErrInsufficientCapacity):
				refused++
			default:
				t.Errorf("create v%02d: %v", i, err)
			}
		})
		wg.Go(func() {
			if _, err := b.CreateVolume(ctx, hdd, "same", mi, backend.CreateOptions{}); err != nil && !errors.Is(err, backend.ErrInsufficientCapacity) {
				t.Errorf("create same: %v", err)
			}
		})
	}
	wg.Wait()
	pools, _ := b.Pools(ctx)
	p := pools[0]
	same := int64(0)
	if _, err := b.GetVolume(ctx, hdd, "same"); err == nil {
		same = mi
	}
	if used := p.TotalBytes - p.FreeBytes; used != granted+same || used > p.TotalBytes {
		t.Errorf("pool used %d, granted %d (+%d for 'same'), total %d", used, granted, same, p.TotalBytes)
	}
	// 64 volumes of 1..5 Mi ask for 192Mi of 100Mi: some must be refused.
	if refused == 0 {
		t.Errorf("no create was refused")
	}
	checkPool(t, b, p.FreeBytes, p.Volumes...)
}

func TestManyNodesInOneProcess(t *testing.T) {
	ctx := context.Background()
	n1 := newBackend(t, filepath.Join(t.TempDir(), "node-1"), WithoutLoop())
	n2 := newBackend(t, filepath.Join(t.TempDir(), "node-2"), WithoutLoop())
	runSteps(t, n1, []step{{op: "create", name: "a", bytes: 40 * mi, wantSize: 40 * mi}})
	runSteps(t, n2, []step{{op: "create", name: "a", bytes: 8 * mi, wantSize: 8 * mi}})
	checkPool(t, n1, 0, "a")
	checkPool(t, n2, 32*mi, "a")
	if v, _ := n2.GetVolume(ctx, hdd, "a"); v.SizeBytes != 8*mi {
		t.Errorf("node-2 sees %+v", v)
	}
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name  string
		pools []PoolConfig
		want  string
	}{
		{"unknown class", []PoolConfig{{Class: "Tape", CapacityBytes: 40 * mi}}, `unknown poolClass "Tape"`},
		{"extent not a multiple of 512", []PoolConfig{{Class: "HDD", CapacityBytes: 40 * mi, ExtentSizeBytes: 1000}}, "multiple of 512"},
		{"capacity below one extent", []PoolConfig{{Class: "HDD", CapacityBytes: mi}}, "less than one extent"},
		{"class twice", []PoolConfig{hddPool, hddPool}, "configured twice"},
	}
	for _, tc := range tests {
		if _, err := New(t.TempDir(), tc.pools, WithoutLoop()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New = %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}
