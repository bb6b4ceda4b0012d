// Package registry lists the out-of-tree plugins compiled into
// hwameistor-scheduler, so the binary and the integration tests build the
// scheduler from the same list.
package registry

import (
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
	"k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	// Register the plugins' argument types with the scheduler's scheme so a
	// KubeSchedulerConfiguration decodes, defaults and converts them.
	_ "hwameistor.io/local/plugins/localstorage/apis/config/scheme"
	_ "sigs.k8s.io/scheduler-plugins/apis/config/scheme"

	"hwameistor.io/local/plugins/localstorage"
	"sigs.k8s.io/scheduler-plugins/pkg/capacityscheduling"
	"sigs.k8s.io/scheduler-plugins/pkg/coscheduling"
)

// Registry returns the out-of-tree plugin factories by name.
func Registry() runtime.Registry {
	return runtime.Registry{
		localstorage.Name:       localstorage.New,
		coscheduling.Name:       coscheduling.New,
		capacityscheduling.Name: capacityscheduling.New,
	}
}

// Options turns Registry into kube-scheduler command options.
func Options() []app.Option {
	var opts []app.Option
	for name, factory := range Registry() {
		opts = append(opts, app.WithPlugin(name, factory))
	}
	return opts
}
