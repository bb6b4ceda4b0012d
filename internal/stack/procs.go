package stack

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
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
