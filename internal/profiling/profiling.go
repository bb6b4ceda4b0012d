// Package profiling serves Go's pprof endpoints for a component when asked
// (--pprof-bind-address), so a slow run can be profiled where it happens:
// docs/benchmarks.md found its bottlenecks this way. Off by default: the
// endpoints expose internals and cost a little.
package profiling

import (
	"context"
	"errors"
	"flag"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// Flag registers --pprof-bind-address on fs and returns its value.
func Flag(fs *flag.FlagSet) *string {
	return fs.String("pprof-bind-address", "", "address to serve /debug/pprof on (e.g. 127.0.0.1:6060); empty disables it")
}

// Serve serves /debug/pprof on addr until ctx ends; an empty addr serves
// nothing and returns at once. A bad address is an error at once.
func Serve(ctx context.Context, addr string) error {
	if addr == "" {
		return nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
