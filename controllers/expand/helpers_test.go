package expand

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/internal/fixture"
	"hwameistor.io/local/controllers/volume"
	"hwameistor.io/local/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	testenv.Main(m, &env)
}

const gi = fixture.Gi

// startController runs the expand Reconciler and the volume controller
// (which grows the replicas' spec when the volume grows) in one manager
// until stop is called or the test ends. Events go to the apiserver, as in
// the binary.
func startController(t *testing.T) (stop func()) {
	t.Helper()
	return env.StartManager(t, func(ctx context.Context, mgr ctrl.Manager) error {
		vc := &volume.Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorderFor("hwameistor-volume")}
		if err := vc.SetupWithManager(ctx, mgr); err != nil {
			return err
		}
		r := &Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorderFor("hwameistor-expand"), RetryInterval: 200 * time.Millisecond}
		return r.SetupWithManager(mgr)
	})
}

// The kinds of the shared fixture, under the names the tests use.
type (
	node = fixture.Node
	vol  = fixture.Volume
)

func createExpand(t *testing.T, name, volume string, size int64) {
	t.Helper()
	fixture.Create(t, env.Client, &v1.LocalVolumeExpand{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.LocalVolumeExpandSpec{VolumeName: volume, RequiredCapacityBytes: size}})
}

func getExpand(t *testing.T, name string) *v1.LocalVolumeExpand {
	t.Helper()
	return fixture.Get[*v1.LocalVolumeExpand](t, env.Client, name)
}

// waitExpand waits until cond holds and returns the expansion; on a
// timeout it logs the last status seen.
func waitExpand(t *testing.T, name, what string, cond func(*v1.LocalVolumeExpand) bool) *v1.LocalVolumeExpand {
	t.Helper()
	return fixture.Wait(t, env.Client, name, what, cond)
}

func waitState(t *testing.T, name string, state v1.State) *v1.LocalVolumeExpand {
	t.Helper()
	return waitExpand(t, name, "state "+string(state), func(e *v1.LocalVolumeExpand) bool { return e.Status.State == state })
}

// waitEvents waits for Events with each of reasons about the expansion.
func waitEvents(t *testing.T, name string, reasons ...string) {
	t.Helper()
	fixture.WaitEvents[*v1.LocalVolumeExpand](t, env.Client, name, reasons...)
}

// agentGrows plays the node agent of node: once the volume controller has
// grown the replica's spec to size, the logical volume is extended and the
// replica reports it.
func agentGrows(t *testing.T, volume, node string, size int64) {
	t.Helper()
	testenv.Eventually(t, fmt.Sprintf("replica of %s on %s grown to %d by the volume controller", volume, node, size), func() bool {
		return fixture.GetReplica(t, env.Client, volume, node).Spec.RequiredCapacityBytes == size
	})
	fixture.SetReplicaStatus(t, env.Client, volume, node, func(st *v1.LocalVolumeReplicaStatus) { st.AllocatedCapacityBytes, st.Message = size, "" })
}

// volumeSnapshot is what a refused expansion must leave as it was: the
// volume's sizes and its replicas' sizes.
func volumeSnapshot(t *testing.T, volume string) string {
	t.Helper()
	lv := fixture.GetVolume(t, env.Client, volume)
	out := fmt.Sprintf("spec=%d config=%d", lv.Spec.RequiredCapacityBytes, lv.Spec.Config.RequiredCapacityBytes)
	for _, n := range fixture.ReplicaObjectNodes(t, env.Client, volume) {
		out += fmt.Sprintf(" %s=%d", n, fixture.GetReplica(t, env.Client, volume, n).Spec.RequiredCapacityBytes)
	}
	return out
}
