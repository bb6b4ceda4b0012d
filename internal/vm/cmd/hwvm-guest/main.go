// Command hwvm-guest is the command agent of a test guest (internal/vm): the
// guest's init (hack/vm/hwvm-init) runs it from the host's shared folder. It
// reads requests from the virtio serial port internal/vm.PortName, runs each
// command and writes the answer back on the same port.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"hwameistor.io/local/internal/vm"
)

func main() {
	dev, err := findPort(vm.PortName)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hwvm-guest:", err)
		os.Exit(1)
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hwvm-guest:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "hwvm-guest: serving on %s\n", dev)
	serve(&patientReader{f}, f)
}

// findPort returns the device of the virtio serial port with that name
// (no udev runs in the guest, so there is no /dev/virtio-ports link).
func findPort(name string) (string, error) {
	for i := 0; i < 100; i++ {
		ports, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
		for _, p := range ports {
			if b, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(b)) == name {
				return "/dev/" + filepath.Base(filepath.Dir(p)), nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "", fmt.Errorf("no virtio serial port named %q", name)
}

// patientReader turns the end of file a virtio port reports while the host
// is not connected into a wait.
type patientReader struct{ r io.Reader }

func (p *patientReader) Read(b []byte) (int, error) {
	for {
		n, err := p.r.Read(b)
		if n > 0 || (err != nil && !errors.Is(err, io.EOF)) {
			return n, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func serve(r io.Reader, w io.Writer) {
	var mu sync.Mutex
	enc := json.NewEncoder(w)
	reply := func(resp vm.Response) {
		mu.Lock()
		defer mu.Unlock()
		if err := enc.Encode(resp); err != nil {
			fmt.Fprintln(os.Stderr, "hwvm-guest: write:", err)
		}
	}
	var inFlight sync.WaitGroup
	defer inFlight.Wait() // answer what was asked before the port failed
	br := bufio.NewReaderSize(r, 1<<20)
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			fmt.Fprintln(os.Stderr, "hwvm-guest: read:", err)
			return
		}
		var req vm.Request
		if err := json.Unmarshal(line, &req); err != nil {
			// Garbage before the host connected (or a torn line): skip it.
			continue
		}
		inFlight.Add(1)
		go func() {
			defer inFlight.Done()
			reply(run(req))
		}()
	}
}

func run(req vm.Request) vm.Response {
	resp := vm.Response{ID: req.ID}
	if req.Ping {
		return resp
	}
	if len(req.Argv) == 0 {
		resp.Error, resp.ExitCode = "empty command", -1
		return resp
	}
	ctx := context.Background()
	if req.TimeoutSeconds > 0 && !req.Background {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutSeconds)*time.Second)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, req.Argv[0], req.Argv[1:]...)
	cmd.Env = append(os.Environ(), req.Env...)
	cmd.Dir = req.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// Kill the whole session, so a timed-out test takes its children along.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if req.Background {
		logf, err := os.OpenFile(req.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			resp.Error, resp.ExitCode = err.Error(), -1
			return resp
		}
		defer logf.Close()
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			resp.Error, resp.ExitCode = err.Error(), -1
			return resp
		}
		resp.PID = cmd.Process.Pid
		go func() { _ = cmd.Wait() }()
		return resp
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdin = bytes.NewReader(req.Stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	resp.Stdout, resp.Stderr = stdout.Bytes(), stderr.Bytes()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		resp.Error, resp.ExitCode = fmt.Sprintf("timed out after %ds", req.TimeoutSeconds), -1
	case errors.As(err, &exitErr):
		resp.ExitCode = exitErr.ExitCode()
	default:
		resp.Error, resp.ExitCode = err.Error(), -1
	}
	return resp
}
