// Command hwameistor-csi-controller serves the CSI identity and controller
// services of lvm.hwameistor.io on a unix socket, for external-provisioner
// and external-resizer running beside it. It reads LocalVolumeGroups and
// LocalStorageNodes from an informer cache and writes LocalVolumes.
package main

import (
	"context"
	"flag"
	"os"

	"hwameistor.io/local/internal/profiling"
	"hwameistor.io/local/internal/restconfig"

	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/driver"
)

func main() {
	endpoint := flag.String("csi-address", "unix:///csi/csi.sock", "CSI endpoint (unix:///path or tcp://host:port)")
	var apiFlags restconfig.Flags
	apiFlags.Bind(flag.CommandLine)
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	pprofAddr := profiling.Flag(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("csi-controller")

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1.AddToScheme(scheme))
	cfg, err := apiFlags.Config()
	if err != nil {
		log.Error(err, "Bad flags")
		os.Exit(2)
	}
	c, err := cluster.New(cfg, func(o *cluster.Options) { o.Scheme = scheme })
	if err != nil {
		log.Error(err, "Cannot create the client")
		os.Exit(1)
	}
	ctx := ctrl.SetupSignalHandler()
	go func() {
		if err := profiling.Serve(ctx, *pprofAddr); err != nil {
			ctrl.Log.Error(err, "Cannot serve pprof", "address", *pprofAddr)
		}
	}()
	ctx = ctrl.LoggerInto(ctx, log)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.Start(ctx) })
	g.Go(func() error {
		if !c.GetCache().WaitForCacheSync(ctx) {
			return context.Canceled
		}
		ids := &driver.Identity{Ready: func() bool { return true }}
		return driver.Serve(ctx, *endpoint, ids, &driver.Controller{Client: c.GetClient()}, nil)
	})
	if err := g.Wait(); err != nil && ctx.Err() == nil {
		log.Error(err, "Stopped")
		os.Exit(1)
	}
}
