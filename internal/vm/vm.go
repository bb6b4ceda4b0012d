// Package vm boots small Linux guests under qemu for tests that need a real
// kernel: device-mapper (activated LVM logical volumes), DRBD, file systems
// on them. The host machines of this project have no device-mapper and qemu
// with KVM does not start there, so guests run under software emulation
// (TCG) from a kernel and root disk built from Debian packages by
// hack/build-guest-image.sh.
//
// A Cluster is N guests on one bridge shared with the host: guest i has the
// address Subnet.(i+2), the host Subnet.1, so guests reach each other and
// services the test runs on the host. Each guest has its own sparse data
// disks (/dev/vdb, /dev/vdc, ...), the host folder Options.Share mounted at
// /mnt/host, and a command channel (Guest.Run) served by hwvm-guest over a
// virtio serial port, independent of the guest network (which tests may
// cut). Stop removes every qemu process, disk file, tap and bridge; Start
// first removes what an earlier run that was killed left behind.
package vm

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// QEMU is the emulator the harness runs.
const QEMU = "qemu-system-x86_64"

// GuestMountPoint is where a guest sees Options.Share.
const GuestMountPoint = "/mnt/host"

// stateRoot holds one folder per running Cluster (its owner's PID, qemu
// PIDs, interface names), so a later Start can clean up after a killed run.
var stateRoot = "/run/hwameistor-vm"

// Options configure a Cluster.
type Options struct {
	// Guests is the number of guests (at least 1).
	Guests int
	// MemoryMiB per guest; 1024 when zero.
	MemoryMiB int
	// DiskBytes are the sizes of each guest's data disks, which appear in
	// the guest as /dev/vdb, /dev/vdc, ... (sparse files on the host).
	DiskBytes []int64
	// Share is a host folder mounted read-write at GuestMountPoint in
	// every guest. It must hold the guest agent "hwvm-guest" (BuildAgent).
	Share string
	// Image is the folder hack/build-guest-image.sh printed.
	Image string
	// BootTimeout bounds each guest's boot up to its agent's first answer;
	// 5 minutes when zero.
	BootTimeout time.Duration
	// Logf receives progress lines; none when nil.
	Logf func(format string, args ...any)
}

// Cluster is a set of running guests.
type Cluster struct {
	Guests []*Guest
	// HostIP is the host's address on the guests' bridge.
	HostIP string
	// Bridge is the host's bridge interface.
	Bridge string

	dir    string // temporary files: disks, sockets, consoles
	state  string // stateRoot/<bridge>
	subnet string
	opts   Options
	logf   func(string, ...any)
	once   sync.Once
}

// Guest is one running guest.
type Guest struct {
	Name string
	// IP is the guest's address on the bridge.
	IP string
	// Console is the host file the guest's serial console is written to.
	Console string

	cmd    *exec.Cmd
	exited chan struct{}
	tap    string
	conn   net.Conn
	enc    *json.Encoder
	encMu  sync.Mutex
	nextID atomic.Int64
	mu     sync.Mutex
	wait   map[int64]chan Response
	err    error // set when the channel broke
}

// CheckHost says what this machine lacks to run guests, with the fix.
func CheckHost() error {
	if _, err := exec.LookPath(QEMU); err != nil {
		return fmt.Errorf("%s not found: install the Debian package qemu-system-x86 (make deps does)", QEMU)
	}
	if os.Geteuid() != 0 {
		return errors.New("booting test guests needs root (tap devices, a bridge, the guest image build)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("ip not found: install the Debian package iproute2")
	}
	return nil
}

// Start boots the guests in parallel and returns once every guest agent
// answers. On error nothing is left running.
func Start(ctx context.Context, o Options) (c *Cluster, err error) {
	if err := CheckHost(); err != nil {
		return nil, err
	}
	if o.Guests < 1 || o.Guests > 200 {
		return nil, fmt.Errorf("vm: %d guests: want 1 to 200", o.Guests)
	}
	if o.MemoryMiB == 0 {
		o.MemoryMiB = 1024
	}
	if o.BootTimeout == 0 {
		o.BootTimeout = 5 * time.Minute
	}
	for _, f := range []string{"vmlinuz", "initrd.gz", "root.img"} {
		if _, err := os.Stat(filepath.Join(o.Image, f)); err != nil {
			return nil, fmt.Errorf("vm: guest image %q incomplete (run hack/build-guest-image.sh): %w", o.Image, err)
		}
	}
	if _, err := os.Stat(filepath.Join(o.Share, "hwvm-guest")); err != nil {
		return nil, fmt.Errorf("vm: the shared folder has no guest agent (vm.BuildAgent): %w", err)
	}
	Sweep()
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	subnet, bridge, err := pickSubnet()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "hwvm-")
	if err != nil {
		return nil, err
	}
	c = &Cluster{HostIP: subnet + ".1", Bridge: bridge, dir: dir, state: filepath.Join(stateRoot, bridge), subnet: subnet, opts: o, logf: logf}
	defer func() {
		if err != nil {
			_ = c.Stop()
			c = nil
		}
	}()
	if err := os.MkdirAll(c.state, 0o755); err != nil {
		return c, err
	}
	if err := os.WriteFile(filepath.Join(c.state, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return c, err
	}
	if err := ipCmd("link", "add", bridge, "type", "bridge"); err != nil {
		return c, err
	}
	if err := ipCmd("addr", "add", c.HostIP+"/24", "dev", bridge); err != nil {
		return c, err
	}
	if err := ipCmd("link", "set", bridge, "up"); err != nil {
		return c, err
	}
	for i := 0; i < o.Guests; i++ {
		g, err := c.launch(i, subnet, o)
		if g != nil {
			c.Guests = append(c.Guests, g)
		}
		if err != nil {
			return c, err
		}
	}
	errs := make(chan error, len(c.Guests))
	for _, g := range c.Guests {
		go func() { errs <- g.connect(ctx, filepath.Join(dir, g.Name+".sock"), o.BootTimeout) }()
	}
	start := time.Now()
	var bootErr error
	for range c.Guests {
		bootErr = errors.Join(bootErr, <-errs)
	}
	if bootErr != nil {
		return c, bootErr
	}
	logf("vm: %d guests up in %s", len(c.Guests), time.Since(start).Round(time.Second))
	return c, nil
}

// launch starts guest i's qemu.
func (c *Cluster) launch(i int, subnet string, o Options) (*Guest, error) {
	name := fmt.Sprintf("hwvm%d", i+1)
	g := &Guest{Name: name, IP: fmt.Sprintf("%s.%d", subnet, i+2), Console: filepath.Join(c.dir, name+".console"),
		tap: fmt.Sprintf("%st%d", c.Bridge, i+1), wait: map[int64]chan Response{}, exited: make(chan struct{})}
	if !linkExists(g.tap) {
		if err := appendLine(filepath.Join(c.state, "taps"), g.tap); err != nil {
			return nil, err
		}
		if err := ipCmd("tuntap", "add", "dev", g.tap, "mode", "tap"); err != nil {
			return nil, err
		}
	}
	if err := ipCmd("link", "set", g.tap, "master", c.Bridge, "up"); err != nil {
		return nil, err
	}
	args := []string{
		"-name", name, "-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", strconv.Itoa(o.MemoryMiB),
		"-nodefaults", "-display", "none", "-no-reboot",
		"-kernel", filepath.Join(o.Image, "vmlinuz"), "-initrd", filepath.Join(o.Image, "initrd.gz"),
		"-append", fmt.Sprintf("console=ttyS0 panic=-1 quiet hwvm.name=%s hwvm.ip=%s/24 hwvm.gw=%s", name, g.IP, c.HostIP),
		"-serial", "file:" + g.Console,
		// The cached root disk is shared read-only: writes go to a
		// temporary overlay qemu deletes itself.
		"-drive", "file=" + filepath.Join(o.Image, "root.img") + ",if=virtio,format=raw,snapshot=on",
		"-virtfs", "local,path=" + o.Share + ",mount_tag=hwshare,security_model=none",
		"-netdev", "tap,id=net0,ifname=" + g.tap + ",script=no,downscript=no",
		"-device", fmt.Sprintf("virtio-net-pci,netdev=net0,mac=52:54:00:%02x:%02x:%02x", i+1, time.Now().Nanosecond()%256, os.Getpid()%256),
		"-device", "virtio-serial-pci",
		"-chardev", "socket,id=cmd,path=" + filepath.Join(c.dir, name+".sock") + ",server=on,wait=off",
		"-device", "virtserialport,chardev=cmd,name=" + PortName,
	}
	for d, size := range o.DiskBytes {
		// A restarted guest finds its disks as it left them.
		disk := filepath.Join(c.dir, fmt.Sprintf("%s-disk%d.img", name, d+1))
		if _, err := os.Stat(disk); errors.Is(err, os.ErrNotExist) {
			if err := createSparse(disk, size); err != nil {
				return nil, err
			}
		}
		args = append(args, "-drive", fmt.Sprintf("file=%s,if=virtio,format=raw,cache=unsafe", disk))
	}
	g.cmd = exec.Command(QEMU, args...)
	out, err := os.Create(filepath.Join(c.dir, name+".qemu.log"))
	if err != nil {
		return nil, err
	}
	g.cmd.Stdout, g.cmd.Stderr = out, out
	// qemu dies with the test process, whatever kills it.
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := g.cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("vm: starting %s: %w", QEMU, err)
	}
	go func() {
		_ = g.cmd.Wait()
		out.Close()
		close(g.exited)
	}()
	if err := appendLine(filepath.Join(c.state, "pids"), strconv.Itoa(g.cmd.Process.Pid)); err != nil {
		return g, err
	}
	c.logf("vm: started %s (%s, pid %d)", name, g.IP, g.cmd.Process.Pid)
	return g, nil
}

// connect dials the guest's command socket and polls until its agent
// answers.
func (g *Guest) connect(ctx context.Context, sock string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for g.conn == nil {
		conn, err := net.Dial("unix", sock)
		if err == nil {
			g.conn = conn
			break
		}
		select {
		case <-g.exited:
			return g.bootError("qemu exited")
		case <-ctx.Done():
			return g.bootError("no command socket")
		case <-time.After(100 * time.Millisecond):
		}
	}
	g.enc = json.NewEncoder(g.conn)
	go g.readLoop()
	for {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := g.do(pctx, Request{Ping: true})
		pcancel()
		if err == nil {
			return nil
		}
		select {
		case <-g.exited:
			return g.bootError("qemu exited")
		case <-ctx.Done():
			return g.bootError(fmt.Sprintf("the guest agent did not answer within %s", timeout))
		default:
		}
	}
}

func (g *Guest) bootError(what string) error {
	return fmt.Errorf("vm: guest %s: %s; qemu said:\n%s\nits console ends:\n%s", g.Name, what,
		tail(strings.TrimSuffix(g.Console, ".console")+".qemu.log", 10), tail(g.Console, 25))
}

func (g *Guest) readLoop() {
	sc := bufio.NewScanner(g.conn)
	sc.Buffer(make([]byte, 1<<20), 256<<20)
	for sc.Scan() {
		var resp Response
		if err := json.Unmarshal(sc.Bytes(), &resp); err != nil {
			continue
		}
		g.mu.Lock()
		ch := g.wait[resp.ID]
		delete(g.wait, resp.ID)
		g.mu.Unlock()
		if ch != nil {
			ch <- resp
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.err = fmt.Errorf("vm: guest %s: command channel closed: %v", g.Name, sc.Err())
	for id, ch := range g.wait {
		close(ch)
		delete(g.wait, id)
	}
}

// do sends one request and waits for its answer.
func (g *Guest) do(ctx context.Context, req Request) (Response, error) {
	req.ID = g.nextID.Add(1)
	ch := make(chan Response, 1)
	g.mu.Lock()
	if g.err != nil {
		g.mu.Unlock()
		return Response{}, g.err
	}
	g.wait[req.ID] = ch
	g.mu.Unlock()
	g.encMu.Lock()
	err := g.enc.Encode(req)
	g.encMu.Unlock()
	if err != nil {
		return Response{}, fmt.Errorf("vm: guest %s: sending a command: %w", g.Name, err)
	}
	select {
	case resp, ok := <-ch:
		if !ok {
			return Response{}, g.err
		}
		return resp, nil
	case <-ctx.Done():
		g.mu.Lock()
		delete(g.wait, req.ID)
		g.mu.Unlock()
		return Response{}, fmt.Errorf("vm: guest %s: %w", g.Name, ctx.Err())
	case <-g.exited:
		return Response{}, g.bootError("qemu exited")
	}
}

// Result is what a command run in a guest did.
type Result struct {
	ExitCode       int
	Stdout, Stderr string
}

// Run runs argv in the guest and waits for it. The error is non-nil when the
// command could not run or exited non-zero; it then holds the command's
// stderr. env entries are KEY=VALUE.
func (g *Guest) Run(ctx context.Context, env []string, argv ...string) (Result, error) {
	req := Request{Argv: argv, Env: env}
	if dl, ok := ctx.Deadline(); ok {
		req.TimeoutSeconds = max(1, int(time.Until(dl).Seconds()))
	}
	resp, err := g.do(ctx, req)
	if err != nil {
		return Result{ExitCode: -1}, err
	}
	res := Result{ExitCode: resp.ExitCode, Stdout: string(resp.Stdout), Stderr: string(resp.Stderr)}
	switch {
	case resp.Error != "":
		return res, fmt.Errorf("%s on %s: %s", strings.Join(argv, " "), g.Name, resp.Error)
	case resp.ExitCode != 0:
		return res, fmt.Errorf("%s on %s: exit status %d: %s", strings.Join(argv, " "), g.Name, resp.ExitCode, strings.TrimSpace(lastLines(res.Stderr, 15)))
	}
	return res, nil
}

// Sh runs a shell script in the guest (sh -ec script).
func (g *Guest) Sh(ctx context.Context, script string) (Result, error) {
	return g.Run(ctx, nil, "sh", "-ec", script)
}

// Start starts argv in the background in its own session, its output
// appended to logPath (a guest path), and returns its PID.
func (g *Guest) Start(ctx context.Context, env []string, logPath string, argv ...string) (int, error) {
	resp, err := g.do(ctx, Request{Argv: argv, Env: env, Background: true, LogPath: logPath})
	if err != nil {
		return 0, err
	}
	if resp.Error != "" {
		return 0, fmt.Errorf("%s on %s: %s", strings.Join(argv, " "), g.Name, resp.Error)
	}
	return resp.PID, nil
}

// Stop powers every guest off and removes the bridge, the taps and the
// temporary files. It is safe to call more than once.
func (c *Cluster) Stop() error {
	var err error
	c.once.Do(func() {
		for _, g := range c.Guests {
			if g.cmd != nil && g.cmd.Process != nil {
				_ = syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL)
				select {
				case <-g.exited:
				case <-time.After(10 * time.Second):
					err = errors.Join(err, fmt.Errorf("vm: qemu of %s did not exit", g.Name))
				}
			}
			if g.conn != nil {
				_ = g.conn.Close()
			}
		}
		err = errors.Join(err, cleanState(c.state))
		if c.dir != "" {
			err = errors.Join(err, os.RemoveAll(c.dir))
		}
	})
	return err
}

// Kill powers guest i off at once, as a pulled plug would: no flush, no
// shutdown. Its disks stay for Restart.
func (c *Cluster) Kill(i int) error {
	g := c.Guests[i]
	if g.cmd == nil || g.cmd.Process == nil {
		return nil
	}
	_ = syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-g.exited:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("vm: qemu of %s did not exit", g.Name)
	}
	if g.conn != nil {
		_ = g.conn.Close()
	}
	c.logf("vm: killed %s", g.Name)
	return nil
}

// Restart kills guest i if it runs and boots it again on the same disks,
// address and tap; c.Guests[i] is the new Guest.
func (c *Cluster) Restart(ctx context.Context, i int) error {
	if err := c.Kill(i); err != nil {
		return err
	}
	g, err := c.launch(i, c.subnet, c.opts)
	if err != nil {
		return err
	}
	c.Guests[i] = g
	return g.connect(ctx, filepath.Join(c.dir, g.Name+".sock"), c.opts.BootTimeout)
}

// Isolate cuts guest i off the network (its tap goes down: no peer, no
// host) until Reconnect, as a failed switch port would.
func (c *Cluster) Isolate(i int) error { return ipCmd("link", "set", c.Guests[i].tap, "down") }

// Reconnect undoes Isolate.
func (c *Cluster) Reconnect(i int) error { return ipCmd("link", "set", c.Guests[i].tap, "up") }

// Sweep removes what Clusters of processes that no longer run left behind:
// their qemu processes, taps and bridges.
func Sweep() {
	dirs, _ := filepath.Glob(filepath.Join(stateRoot, "*"))
	for _, d := range dirs {
		b, _ := os.ReadFile(filepath.Join(d, "owner"))
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && syscall.Kill(pid, 0) == nil {
			continue // its owner still runs
		}
		_ = cleanState(d)
	}
}

// cleanState kills the qemu processes and deletes the interfaces a state
// folder lists, then the folder.
func cleanState(dir string) error {
	if dir == "" {
		return nil
	}
	pids, _ := os.ReadFile(filepath.Join(dir, "pids"))
	for _, p := range strings.Fields(string(pids)) {
		if pid, err := strconv.Atoi(p); err == nil && isQEMU(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	var err error
	taps, _ := os.ReadFile(filepath.Join(dir, "taps"))
	for _, ifc := range append(strings.Fields(string(taps)), filepath.Base(dir)) {
		if linkExists(ifc) {
			err = errors.Join(err, ipCmd("link", "del", ifc))
		}
	}
	return errors.Join(err, os.RemoveAll(dir))
}

func isQEMU(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.HasPrefix(string(b), QEMU)
}

func linkExists(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}

// pickSubnet chooses a /24 in 10.213.0.0/16 and a bridge name no interface
// on this host uses.
func pickSubnet() (subnet, bridge string, err error) {
	used := map[string]bool{}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			ip := ipn.IP.To4()
			used[fmt.Sprintf("%d.%d.%d", ip[0], ip[1], ip[2])] = true
		}
	}
	for k := 0; k < 250; k++ {
		n := (os.Getpid()+k)%250 + 1
		subnet, bridge = fmt.Sprintf("10.213.%d", n), fmt.Sprintf("hwvm%d", n)
		if !used[subnet] && !linkExists(bridge) {
			return subnet, bridge, nil
		}
	}
	return "", "", errors.New("vm: no free subnet in 10.213.0.0/16")
}

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func createSparse(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(f, line)
	return errors.Join(err, f.Close())
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return lastLines(string(b), n)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
