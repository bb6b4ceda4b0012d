package sim

import (
	"context"
	"sort"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/kwok/report"
)

// measureThroughput turns the times pods were first seen bound and running
// into pods/s (pods over the time to the last one) and the progress curves.
func (r *runner) measureThroughput() (report.Throughput, *report.Progress) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var t report.Throughput
	bound, running := curve(r.t0, r.bound), curve(r.t0, r.running)
	if n := len(bound); n > 0 && bound[n-1].Seconds > 0 {
		t.SchedulingPodsPerSec = float64(bound[n-1].Count) / bound[n-1].Seconds
	}
	if n := len(running); n > 0 && running[n-1].Seconds > 0 {
		t.EndToEndPodsPerSec = float64(running[n-1].Count) / running[n-1].Seconds
	}
	return t, &report.Progress{Bound: bound, Running: running}
}

// curve is the cumulative count of times, one point per distinct time.
func curve[K comparable](t0 time.Time, seen map[K]time.Time) []report.Point {
	ts := make([]float64, 0, len(seen))
	for _, t := range seen {
		ts = append(ts, t.Sub(t0).Seconds())
	}
	sort.Float64s(ts)
	var out []report.Point
	for i, s := range ts {
		if n := len(out); n > 0 && out[n-1].Seconds == s {
			out[n-1].Count = i + 1
			continue
		}
		out = append(out, report.Point{Seconds: s, Count: i + 1})
	}
	return out
}

// overcommits remembers every placement a pool could not hold, as the
// report defines it: pools seen with more used than total bytes, replicas
// whose allocation failed for capacity, and claims whose CreateVolume
// failed with ResourceExhausted. Seen at any moment, not only at the end.
type overcommits struct {
	mu       sync.Mutex
	overfull map[string]bool // node/pool
	short    map[string]bool // replica or claim
}

func (o *overcommits) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.overfull) + len(o.short)
}

// sample looks at the cluster once.
func (o *overcommits) sample(ctx context.Context, c client.Client, cs kubernetes.Interface) error {
	lsns := &v1.LocalStorageNodeList{}
	if err := c.List(ctx, lsns); err != nil {
		return err
	}
	lvrs := &v1.LocalVolumeReplicaList{}
	if err := c.List(ctx, lvrs); err != nil {
		return err
	}
	events, err := cs.CoreV1().Events(Namespace).List(ctx, metav1.ListOptions{FieldSelector: "reason=ProvisioningFailed"})
	if err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.overfull == nil {
		o.overfull, o.short = map[string]bool{}, map[string]bool{}
	}
	for _, n := range lsns.Items {
		for name, p := range n.Status.Pools {
			if p.UsedCapacityBytes > p.TotalCapacityBytes {
				o.overfull[n.Name+"/"+name] = true
			}
		}
	}
	for _, lvr := range lvrs.Items {
		if lvr.Status.State == v1.StateNotReady && strings.Contains(lvr.Status.Message, "insufficient capacity") {
			o.short["replica/"+lvr.Name] = true
		}
	}
	for _, e := range events.Items {
		if e.InvolvedObject.Kind == "PersistentVolumeClaim" && strings.Contains(e.Message, "code = ResourceExhausted") {
			o.short["claim/"+e.InvolvedObject.Name] = true
		}
	}
	return nil
}

// sampleOvercommits samples until ctx ends; less often on big clusters, so
// the measurement does not load the apiserver it measures.
func (r *runner) sampleOvercommits(ctx context.Context) {
	every := 2 * time.Second
	if n := len(r.s.Nodes); n > 200 {
		every = time.Duration(n/100) * time.Second
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
		_ = r.overcommits.sample(ctx, r.s.Client, r.s.Clientset)
	}
}
