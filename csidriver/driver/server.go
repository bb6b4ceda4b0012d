package driver

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"k8s.io/klog/v2"
)

// Serve runs the given CSI services on endpoint (unix:///path or
// tcp://host:port) until ctx ends. Nil services are not registered.
func Serve(ctx context.Context, endpoint string, ids csi.IdentityServer, cs csi.ControllerServer, ns csi.NodeServer) error {
	u, err := url.Parse(endpoint)
	if err != nil {
		return fmt.Errorf("endpoint %q: %w", endpoint, err)
	}
	addr := u.Host
	if u.Scheme == "unix" {
		addr = u.Path
		if err := os.MkdirAll(filepath.Dir(addr), 0o750); err != nil {
			return err
		}
		if err := os.Remove(addr); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("removing the old socket %s: %w", addr, err)
		}
	}
	lis, err := net.Listen(u.Scheme, addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", endpoint, err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(logCalls))
	if ids != nil {
		csi.RegisterIdentityServer(srv, ids)
	}
	if cs != nil {
		csi.RegisterControllerServer(srv, cs)
	}
	if ns != nil {
		csi.RegisterNodeServer(srv, ns)
	}
	go func() { <-ctx.Done(); srv.GracefulStop() }()
	klog.FromContext(ctx).Info("Serving CSI", "endpoint", endpoint)
	return srv.Serve(lis)
}

// logCalls logs every call's method and, on failure, its error; requests are
// not logged (they may carry secrets in other drivers' parameters).
func logCalls(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	if err != nil {
		klog.FromContext(ctx).Error(err, "CSI call failed", "method", info.FullMethod)
	} else {
		klog.FromContext(ctx).V(4).Info("CSI call", "method", info.FullMethod)
	}
	return resp, err
}
