// Package restconfig gives every component the same way to set its API
// client's rate limits (--kube-api-qps, --kube-api-burst). client-go's
// defaults (5/10, controller-runtime's 20/30) throttle a node agent that
// serves many nodes, or a webhook under a burst of pod creations, into
// timeouts long before the apiserver is busy.
package restconfig

import (
	"flag"
	"fmt"

	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
)

// Defaults of the flags.
const (
	DefaultQPS   = 50
	DefaultBurst = 100
)

// Flags are the client-side rate limits.
type Flags struct {
	QPS   float64
	Burst int
}

// Bind registers --kube-api-qps and --kube-api-burst on fs.
func (f *Flags) Bind(fs *flag.FlagSet) {
	fs.Float64Var(&f.QPS, "kube-api-qps", DefaultQPS, "queries per second to the API server (client-side limit)")
	fs.IntVar(&f.Burst, "kube-api-burst", DefaultBurst, "burst of queries to the API server above --kube-api-qps")
}

// Config is the kubeconfig/in-cluster configuration with the limits set.
func (f *Flags) Config() (*rest.Config, error) {
	if f.QPS <= 0 || f.Burst <= 0 {
		return nil, fmt.Errorf("--kube-api-qps %v and --kube-api-burst %d must be positive", f.QPS, f.Burst)
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = float32(f.QPS), f.Burst
	return cfg, nil
}
