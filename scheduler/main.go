// Command hwameistor-scheduler is the upstream kube-scheduler with the
// hwameistor local-storage plugins and the scheduler-plugins that help
// stateful workloads compiled in. main is wiring only: one WithPlugin line per
// out-of-tree plugin.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // build version metric
	"k8s.io/kubernetes/cmd/kube-scheduler/app"

	// Registers the scheduler-plugins argument types (CoschedulingArgs,
	// CapacitySchedulingArgs, ...) so KubeSchedulerConfiguration decodes them.
	_ "sigs.k8s.io/scheduler-plugins/apis/config/scheme"
	"sigs.k8s.io/scheduler-plugins/pkg/capacityscheduling"
	"sigs.k8s.io/scheduler-plugins/pkg/coscheduling"
)

func main() {
	command := app.NewSchedulerCommand(
		app.WithPlugin(coscheduling.Name, coscheduling.New),
		app.WithPlugin(capacityscheduling.Name, capacityscheduling.New),
	)
	os.Exit(cli.Run(command))
}
