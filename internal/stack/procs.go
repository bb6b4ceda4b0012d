package stack

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Component names, as scenarios (restart actions) and reports use them,
// and the stack's processes (log file names) behind each.
const (
	ComponentScheduler     = "hwameistor-scheduler"
	ComponentControllers   = "hwameistor-controllers"
	ComponentCSIController = "csi-controller"
	ComponentNodeAgent     = "node-agent"
)

// processes returns the stack processes of a component name.
func (h *Stack) processes(component string) []*proc {
	var names []string
	switch component {
	case ComponentScheduler:
		names = []string{"scheduler"}
	case ComponentControllers:
		names = []string{"controllers"}
	case ComponentCSIController:
		names = []string{"csi-controller"}
	case ComponentNodeAgent:
		names = h.agents
	default:
		names = []string{component}
	}
	var out []*proc
	for _, p := range h.procs {
		for _, n := range names {
			if p.name == n {
				out = append(out, p)
			}
		}
	}
	return out
}

// Restart kills a component's processes (SIGKILL: a crash, so nothing is
// cleaned up on the way out) and starts them again with the same command
// line. It is the simulator's fault injection.
func (h *Stack) Restart(component string) error {
	ps := h.processes(component)
	if len(ps) == 0 {
		return fmt.Errorf("no running component %q", component)
	}
	for _, p := range ps {
		if p.cmd == nil || p.cmd.Process == nil {
			continue
		}
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		_ = p.cmd.Wait()
		p.past = p.past.add(exited(p))
		p.restarts++
		if err := h.launch(p); err != nil {
			return err
		}
		h.Log("restarted %s (pid %d, restart %d)", p.name, p.cmd.Process.Pid, p.restarts)
	}
	return nil
}

// StopAgent kills (SIGKILL) the node agent process serving node, which
// must be in Options.OwnAgent: the node's heartbeat stops and its
// replicas are no longer served.
func (h *Stack) StopAgent(node string) error {
	p, err := h.ownAgent(node)
	if err != nil {
		return err
	}
	if p.cmd != nil && p.cmd.Process != nil && p.cmd.ProcessState == nil {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		_ = p.cmd.Wait()
		p.past = p.past.add(exited(p))
	}
	h.Log("stopped %s (the agent of node %s)", p.name, node)
	return nil
}

// StartAgent starts the node agent of node again after StopAgent.
func (h *Stack) StartAgent(node string) error {
	p, err := h.ownAgent(node)
	if err != nil {
		return err
	}
	if p.cmd != nil && p.cmd.ProcessState == nil {
		return fmt.Errorf("the agent of node %s is running", node)
	}
	p.restarts++
	if err := h.launch(p); err != nil {
		return err
	}
	h.Log("started %s (the agent of node %s) again", p.name, node)
	return nil
}

func (h *Stack) ownAgent(node string) (*proc, error) {
	if !slices.Contains(h.OwnAgent, node) {
		return nil, fmt.Errorf("node %s has no node agent of its own (Options.OwnAgent)", node)
	}
	ps := h.processes(h.agentOf[node])
	if len(ps) != 1 {
		return nil, fmt.Errorf("no node agent process for node %s", node)
	}
	return ps[0], nil
}

// Usage is what a component cost: CPU seconds (user+system, every
// incarnation) and the peak resident set of its largest incarnation, or the
// sum over processes for components with many (node agents).
type Usage struct {
	CPUSeconds   float64
	PeakRSSBytes int64
}

func (u Usage) add(v Usage) Usage {
	return Usage{CPUSeconds: u.CPUSeconds + v.CPUSeconds, PeakRSSBytes: max(u.PeakRSSBytes, v.PeakRSSBytes)}
}

// Usage measures every component now: ours, the CSI sidecars and the
// control plane (kube-apiserver, etcd, kube-controller-manager, kwok).
func (h *Stack) Usage() map[string]Usage {
	out := map[string]Usage{}
	names := map[string]string{"scheduler": ComponentScheduler, "controllers": ComponentControllers, "csi-controller": ComponentCSIController}
	for _, a := range h.agents {
		names[a] = ComponentNodeAgent
	}
	for _, p := range h.procs {
		name := p.name
		if n, ok := names[name]; ok {
			name = n
		}
		u := p.past
		if p.cmd != nil && p.cmd.Process != nil {
			if live, ok := procUsage(p.cmd.Process.Pid); ok {
				u = u.add(live)
			}
		}
		if name == ComponentNodeAgent {
			// Separate processes: their memory adds up.
			cur := out[name]
			out[name] = Usage{CPUSeconds: cur.CPUSeconds + u.CPUSeconds, PeakRSSBytes: cur.PeakRSSBytes + u.PeakRSSBytes}
			continue
		}
		out[name] = out[name].add(u)
	}
	// The control plane's processes are in cluster-up.sh's pid file.
	if f, err := os.Open(filepath.Join(h.Work, "cluster", "pids")); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			pid, name, ok := strings.Cut(sc.Text(), " ")
			n, err := strconv.Atoi(pid)
			if !ok || err != nil {
				continue
			}
			if u, ok := procUsage(n); ok {
				out[name] = out[name].add(u)
			}
		}
	}
	return out
}

// RestartKwok stops the kwok controller and starts it again with the same
// command line. kwok decides which nodes it serves (their Leases, their
// pods) when it sees them first, so a node whose kwok.x-k8s.io/node
// annotation changed is taken up or dropped only by a new kwok: the
// simulator's way to stop a node's "kubelet" and to bring it back.
func (h *Stack) RestartKwok() error {
	pidsFile := filepath.Join(h.Work, "cluster", "pids")
	b, err := os.ReadFile(pidsFile)
	if err != nil {
		return err
	}
	var lines []string
	old := 0
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if pid, name, ok := strings.Cut(line, " "); ok && name == "kwok" {
			old, _ = strconv.Atoi(pid)
			continue
		}
		lines = append(lines, line)
	}
	if old == 0 {
		return errors.New("no kwok in the cluster's pid file")
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", old))
	if err != nil {
		return fmt.Errorf("reading kwok's command line: %w", err)
	}
	argv := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
	_ = syscall.Kill(old, syscall.SIGKILL)
	for i := 0; i < 50 && syscall.Kill(old, 0) == nil; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	logf, err := os.OpenFile(filepath.Join(h.Work, "cluster", "logs", "kwok.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting kwok again: %w", err)
	}
	go func() { _ = cmd.Wait() }()
	lines = append(lines, fmt.Sprintf("%d kwok", cmd.Process.Pid))
	h.Log("restarted kwok (pid %d)", cmd.Process.Pid)
	return os.WriteFile(pidsFile, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

// exited is the usage of p's process after Wait.
func exited(p *proc) Usage {
	if p.cmd == nil || p.cmd.ProcessState == nil {
		return Usage{}
	}
	ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return Usage{}
	}
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return Usage{CPUSeconds: cpu.Seconds(), PeakRSSBytes: ru.Maxrss * 1024}
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times (100 on Linux).
const clockTicks = 100

// procUsage reads a live process's CPU time (/proc/PID/stat utime+stime)
// and peak RSS (/proc/PID/status VmHWM).
func procUsage(pid int) (Usage, bool) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Usage{}, false
	}
	// The command name may hold spaces: fields start after the last ')'.
	i := strings.LastIndexByte(string(raw), ')')
	if i < 0 {
		return Usage{}, false
	}
	f := strings.Fields(string(raw[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return Usage{}, false
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	u := Usage{CPUSeconds: (ut + st) / clockTicks}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, true
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			u.PeakRSSBytes = kb * 1024
		}
	}
	return u, true
}
