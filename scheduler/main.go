// Command hwameistor-scheduler is the upstream kube-scheduler with the
// hwameistor LocalStorage plugin and the scheduler-plugins that help stateful
// workloads (Coscheduling, CapacityScheduling) compiled in. main is wiring
// only; the plugin list is in package registry.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // build version metric
	"k8s.io/kubernetes/cmd/kube-scheduler/app"

	"hwameistor.io/local/scheduler/registry"
)

func main() {
	os.Exit(cli.Run(app.NewSchedulerCommand(registry.Options()...)))
}
