package vm_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"hwameistor.io/local/internal/vm"
)

// TestHarness checks what every other test here relies on: commands run
// with their exit status and output, the kernel has device-mapper and DRBD,
// the data disks are there, and the guests reach each other and the host.
func TestHarness(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	g1, g2 := cluster.Guests[0], cluster.Guests[1]

	res, err := g1.Run(ctx, []string{"HWVM_X=42"}, "sh", "-c", "echo out $HWVM_X; echo err >&2; exit 3")
	if err == nil || res.ExitCode != 3 || res.Stdout != "out 42\n" || res.Stderr != "err\n" {
		t.Errorf("exit 3 command: %+v, %v", res, err)
	}
	if _, err := g1.Run(ctx, nil, "/no/such/program"); err == nil {
		t.Error("a missing program ran")
	}
	tctx, tcancel := context.WithTimeout(ctx, 2*time.Second)
	_, err = g1.Run(tctx, nil, "sleep", "30")
	tcancel()
	if err == nil {
		t.Error("sleep 30 with a 2s deadline returned no error")
	}

	res, err = g1.Sh(ctx, "uname -r; cat /proc/modules | cut -d' ' -f1; ls /dev/vdb /dev/vdc; cat /proc/drbd | head -1")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"dm_mod", "dm_snapshot", "drbd", "/dev/vdb", "/dev/vdc", "version: 8.4"} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("guest lacks %q:\n%s", want, res.Stdout)
		}
	}

	if _, err := g1.Run(ctx, nil, "ping", "-c", "1", "-W", "5", g2.IP); err != nil {
		// busybox ping when iputils is absent
		if _, err := g1.Run(ctx, nil, "busybox", "ping", "-c", "1", "-W", "5", g2.IP); err != nil {
			t.Errorf("%s cannot reach %s: %v", g1.Name, g2.Name, err)
		}
	}
	// The host reaches a guest service: a listener in g2, dialled from here.
	pid, err := g2.Start(ctx, nil, "/tmp/nc.log", "busybox", "nc", "-l", "-p", "7777", "-e", "echo", "hello")
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Run(context.Background(), nil, "kill", fmt.Sprint(pid))
	var reply string
	for i := 0; i < 50 && reply == ""; i++ {
		if c, err := net.DialTimeout("tcp", g2.IP+":7777", time.Second); err == nil {
			b := make([]byte, 16)
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, _ := c.Read(b)
			reply = strings.TrimSpace(string(b[:n]))
			c.Close()
		}
		time.Sleep(200 * time.Millisecond)
	}
	if reply != "hello" {
		t.Errorf("host to %s:7777: got %q", g2.IP, reply)
	}

	// The shared folder is writable from a guest.
	if _, err := g2.Sh(ctx, "echo from-guest > "+guestPath("probe")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(share + "/probe"); err != nil || string(b) != "from-guest\n" {
		t.Errorf("shared folder: %q, %v", b, err)
	}
}

// checkNoLeftovers says what a stopped cluster left on the host.
func checkNoLeftovers(c *vm.Cluster) error {
	var err error
	if _, e := net.InterfaceByName(c.Bridge); e == nil {
		err = errors.Join(err, fmt.Errorf("bridge %s still exists", c.Bridge))
	}
	for _, g := range c.Guests {
		if _, e := os.Stat(g.Console); e == nil {
			err = errors.Join(err, fmt.Errorf("%s's files are still there", g.Name))
		}
	}
	return err
}
