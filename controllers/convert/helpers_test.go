package convert

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
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

// startController runs the convert Reconciler and the volume controller
// (which creates replicas for every node of spec.config.replicas, so a
// test sees that it never creates the new replica unmarked) in one
// manager until stop is called or the test ends. Events go to the
// apiserver, as in the binary.
func startController(t *testing.T) (stop func()) {
	t.Helper()
	return env.StartManager(t, func(ctx context.Context, mgr ctrl.Manager) error {
		vc := &volume.Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorderFor("hwameistor-volume")}
		if err := vc.SetupWithManager(ctx, mgr); err != nil {
			return err
		}
		r := &Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorderFor("hwameistor-convert"), RetryInterval: 200 * time.Millisecond}
		return r.SetupWithManager(mgr)
	})
}

// The kinds of the shared fixture, under the names the tests use.
type (
	node = fixture.Node
	vol  = fixture.Volume
)

func createConvert(t *testing.T, name, volume string) {
	t.Helper()
	fixture.Create(t, env.Client, &v1.LocalVolumeConvert{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.LocalVolumeConvertSpec{VolumeName: volume, ReplicaNumber: 2}})
}

// waitConvert waits until cond holds and returns the conversion; on a
// timeout it logs the last status seen.
func waitConvert(t *testing.T, name, what string, cond func(*v1.LocalVolumeConvert) bool) *v1.LocalVolumeConvert {
	t.Helper()
	return fixture.Wait(t, env.Client, name, what, cond)
}

func waitState(t *testing.T, name string, state v1.State) *v1.LocalVolumeConvert {
	t.Helper()
	return waitConvert(t, name, "state "+string(state), func(c *v1.LocalVolumeConvert) bool { return c.Status.State == state })
}

// waitEvents waits for Events with each of reasons about the conversion.
func waitEvents(t *testing.T, name string, reasons ...string) {
	t.Helper()
	fixture.WaitEvents[*v1.LocalVolumeConvert](t, env.Client, name, reasons...)
}

// volumeSnapshot is what a refused or rolled-back conversion must leave as
// it was.
func volumeSnapshot(lv *v1.LocalVolume) string {
	var reps []string
	if lv.Spec.Config != nil {
		for _, r := range lv.Spec.Config.Replicas {
			reps = append(reps, fmt.Sprintf("%s/primary=%v", r.Hostname, r.Primary))
		}
	}
	return fmt.Sprintf("replicaNumber=%d replicas=%v accessibility=%v", lv.Spec.ReplicaNumber, reps, lv.Spec.Accessibility.Nodes)
}

// guard watches every LocalVolumeReplica for the whole test (a watch, so
// it sees each change in order) and records each replica object ever
// created (by UID) with the annotations it was first seen with.
type guard struct {
	mu      sync.Mutex
	first   map[string]*v1.LocalVolumeReplica // by UID, as first seen
	deleted map[string]bool                   // by UID
	stop    func()
}

func watchReplicas(t *testing.T) *guard {
	t.Helper()
	g := &guard{first: map[string]*v1.LocalVolumeReplica{}, deleted: map[string]bool{}}
	g.stop = fixture.Watch(t, env.Config, env.Scheme, &v1.LocalVolumeReplicaList{}, g.replicaEvent, nil)
	return g
}

func (g *guard) replicaEvent(ev watch.Event) {
	rep, ok := ev.Object.(*v1.LocalVolumeReplica)
	if !ok {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, seen := g.first[string(rep.UID)]; !seen {
		g.first[string(rep.UID)] = rep
	}
	if ev.Type == watch.Deleted {
		g.deleted[string(rep.UID)] = true
	}
}

// created lists "node" for each replica object of volume ever created, and
// "node(unmarked)" for one on a node other than the original ones that
// appeared without a sync-pending annotation (the volume controller made
// it before the conversion did: its data would be taken as synced).
func (g *guard) created(volume string, original ...string) []string {
	time.Sleep(200 * time.Millisecond) // let the watch catch up
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for _, rep := range g.first {
		if rep.Spec.VolumeName != volume {
			continue
		}
		s := rep.Spec.NodeName
		if !slices.Contains(original, s) && rep.Annotations[v1.SyncPendingAnnotation] == "" {
			s += "(unmarked)"
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func hasPrefix(s string) func(*v1.LocalVolumeConvert) bool {
	return func(c *v1.LocalVolumeConvert) bool { return strings.HasPrefix(c.Status.Message, s) }
}
