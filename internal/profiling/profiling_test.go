package profiling

import (
	"context"
	"flag"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestServe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, addr) }()

	var body string
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(body, "goroutine profile") {
		t.Fatalf("goroutine profile not served: %q", body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve after cancel: %v", err)
	}
}

func TestServeOffAndBadAddress(t *testing.T) {
	if err := Serve(context.Background(), ""); err != nil {
		t.Errorf("empty address: %v, want nil at once", err)
	}
	if err := Serve(context.Background(), "not-an-address"); err == nil {
		t.Error("bad address: no error")
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	addr := Flag(fs)
	if err := fs.Parse([]string{"--pprof-bind-address=127.0.0.1:1"}); err != nil || *addr != "127.0.0.1:1" {
		t.Errorf("flag: %q, %v", *addr, err)
	}
}
