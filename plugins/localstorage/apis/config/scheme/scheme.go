// Package scheme registers the LocalStorage plugin's argument types with the
// kube-scheduler's configuration scheme. Import it for side effects in the
// scheduler's main (and in tests that load a KubeSchedulerConfiguration).
package scheme

import (
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	schedconfigv1 "k8s.io/kube-scheduler/config/v1"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	kubeschedulerscheme "k8s.io/kubernetes/pkg/scheduler/apis/config/scheme"

	_ "hwameistor.io/local/plugins/localstorage/apis/config"    // registers the internal type
	_ "hwameistor.io/local/plugins/localstorage/apis/config/v1" // registers the v1 type
)

func init() {
	// The scheduler's scheme may have been built before our packages
	// registered into its builders; add them again (idempotent).
	utilruntime.Must(schedconfig.AddToScheme(kubeschedulerscheme.Scheme))
	utilruntime.Must(schedconfigv1.AddToScheme(kubeschedulerscheme.Scheme))
}
