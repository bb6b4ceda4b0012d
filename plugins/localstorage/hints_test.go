package localstorage

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/internal/placement"
)

// asUnstructured is how the scheduler's dynamic informers deliver the
// hwameistor.io kinds to queueing hints.
func asUnstructured(t *testing.T, obj runtime.Object) interface{} {
	t.Helper()
	if obj == nil {
		return nil
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: m}
}

func TestEventsToRegister(t *testing.T) {
	e := newTestEnv(t, nil)
	events, err := e.pl.EventsToRegister(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	type reg struct {
		Resource fwk.EventResource
		Action   fwk.ActionType
		Hint     bool
	}
	var got []reg
	for _, ev := range events {
		got = append(got, reg{ev.Event.Resource, ev.Event.ActionType, ev.QueueingHintFn != nil})
	}
	want := []reg{
		{"localstoragenodes.v1alpha1.hwameistor.io", fwk.Add | fwk.Update, true},
		{"localvolumes.v1alpha1.hwameistor.io", fwk.Add | fwk.Update, true},
		{"localvolumereplicas.v1alpha1.hwameistor.io", fwk.Add | fwk.Update, true},
		{fwk.PersistentVolumeClaim, fwk.Add | fwk.Update, true},
		{fwk.StorageClass, fwk.Add, false},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("EventsToRegister (-want +got):\n%s", diff)
	}
}

func TestQueueingHints(t *testing.T) {
	hdd := placement.PoolHDD
	node := makeLSN("node-a").pool(hdd, 100, 50)
	pod := makePod("p").withPVC("data").withEphemeral("scratch").Pod

	type hintFn func(pl *LocalStorage) fwk.QueueingHintFn
	nodeHint := func(pl *LocalStorage) fwk.QueueingHintFn { return pl.hintNode }
	volumeHint := func(pl *LocalStorage) fwk.QueueingHintFn { return pl.hintVolume }
	replicaHint := func(pl *LocalStorage) fwk.QueueingHintFn { return pl.hintReplica }
	claimHint := func(pl *LocalStorage) fwk.QueueingHintFn { return pl.hintClaim }

	tests := []struct {
		name           string
		hint           hintFn
		objs           []runtime.Object // in the plugin's informers
		oldObj, newObj runtime.Object   // hwameistor.io kinds are delivered unstructured
		want           fwk.QueueingHint
	}{
		// LocalStorageNode
		{name: "node added", hint: nodeHint, newObj: node.LocalStorageNode, want: fwk.Queue},
		{name: "node with more free bytes", hint: nodeHint, oldObj: node.LocalStorageNode, newObj: node.clone().pool(hdd, 100, 60).LocalStorageNode, want: fwk.Queue},
		{name: "node with less free bytes", hint: nodeHint, oldObj: node.LocalStorageNode, newObj: node.clone().pool(hdd, 100, 40).LocalStorageNode, want: fwk.QueueSkip},
		{name: "node unchanged", hint: nodeHint, oldObj: node.LocalStorageNode, newObj: node.clone().LocalStorageNode, want: fwk.QueueSkip},
		{name: "node with more free volume slots", hint: nodeHint, oldObj: node.clone().freeVolumes(hdd, 0).LocalStorageNode, newObj: node.LocalStorageNode, want: fwk.Queue},
		{name: "node with a new pool", hint: nodeHint, oldObj: node.LocalStorageNode, newObj: node.clone().pool(placement.PoolSSD, 10, 10).LocalStorageNode, want: fwk.Queue},
		{name: "node became Ready", hint: nodeHint, oldObj: node.clone().state(v1.StateNotReady).LocalStorageNode, newObj: node.LocalStorageNode, want: fwk.Queue},
		{name: "node became NotReady", hint: nodeHint, oldObj: node.LocalStorageNode, newObj: node.clone().state(v1.StateNotReady).LocalStorageNode, want: fwk.QueueSkip},
		// LocalVolume
		{name: "volume of another claim", hint: volumeHint, newObj: makeLV("pv-x", "other").LocalVolume, want: fwk.QueueSkip},
		{name: "volume of a claim with the pod's claim name in another namespace", hint: volumeHint, newObj: makeLV("pv-x", "data").claimNS("elsewhere").LocalVolume, want: fwk.QueueSkip},
		{name: "volume of the pod's claim", hint: volumeHint, oldObj: makeLV("pv-data", "data").migrating().LocalVolume, newObj: makeLV("pv-data", "data").LocalVolume, want: fwk.Queue},
		{name: "volume of the pod's ephemeral claim", hint: volumeHint, newObj: makeLV("pv-s", "p-scratch").LocalVolume, want: fwk.Queue},
		// LocalVolumeReplica
		{name: "replica of the pod's volume became Ready", hint: replicaHint, objs: []runtime.Object{makeLV("pv-data", "data").LocalVolume},
			oldObj: makeLVR("pv-data", "node-b", v1.StateCreating), newObj: makeLVR("pv-data", "node-b", v1.StateReady), want: fwk.Queue},
		{name: "replica of the pod's volume not Ready yet", hint: replicaHint, objs: []runtime.Object{makeLV("pv-data", "data").LocalVolume},
			newObj: makeLVR("pv-data", "node-b", v1.StateCreating), want: fwk.QueueSkip},
		{name: "Ready replica of another claim's volume", hint: replicaHint, objs: []runtime.Object{makeLV("pv-x", "other").LocalVolume},
			newObj: makeLVR("pv-x", "node-b", v1.StateReady), want: fwk.QueueSkip},
		{name: "Ready replica of a volume the plugin has not seen yet", hint: replicaHint,
			newObj: makeLVR("pv-new", "node-b", v1.StateReady), want: fwk.Queue},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logger, _ := ktesting.NewTestContext(t)
			e := newTestEnv(t, nil, tc.objs...)
			got, err := tc.hint(e.pl)(logger, pod, asUnstructured(t, tc.oldObj), asUnstructured(t, tc.newObj))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("hint = %v, want %v", got, tc.want)
			}
			// Typed objects (a future typed informer) give the same answer.
			var oldObj, newObj interface{}
			if tc.oldObj != nil {
				oldObj = tc.oldObj
			}
			if tc.newObj != nil {
				newObj = tc.newObj
			}
			if got, _ := tc.hint(e.pl)(logger, pod, oldObj, newObj); got != tc.want {
				t.Errorf("hint on typed objects = %v, want %v", got, tc.want)
			}
		})
	}

	claimTests := []struct {
		name string
		pvc  *corev1.PersistentVolumeClaim
		want fwk.QueueingHint
	}{
		{"claim of another pod", makePVC("other").PersistentVolumeClaim, fwk.QueueSkip},
		{"claim with the pod's claim name in another namespace", func() *corev1.PersistentVolumeClaim {
			c := makePVC("data").PersistentVolumeClaim
			c.Namespace = "elsewhere"
			return c
		}(), fwk.QueueSkip},
		{"the pod's claim", makePVC("data").PersistentVolumeClaim, fwk.Queue},
		{"the pod's ephemeral claim", makePVC("p-scratch").PersistentVolumeClaim, fwk.Queue},
	}
	for _, tc := range claimTests {
		t.Run(tc.name, func(t *testing.T) {
			logger, _ := ktesting.NewTestContext(t)
			e := newTestEnv(t, nil)
			got, err := claimHint(e.pl)(logger, pod, nil, tc.pvc)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("hint = %v, want %v", got, tc.want)
			}
		})
	}

	t.Run("objects the hints cannot read queue the pod", func(t *testing.T) {
		logger, _ := ktesting.NewTestContext(t)
		e := newTestEnv(t, nil)
		bad := &unstructured.Unstructured{Object: map[string]interface{}{"spec": "not an object"}}
		for name, h := range map[string]fwk.QueueingHintFn{"node": e.pl.hintNode, "volume": e.pl.hintVolume, "replica": e.pl.hintReplica, "claim": e.pl.hintClaim} {
			for _, obj := range []interface{}{nil, bad, "a string"} {
				if got, err := h(logger, pod, nil, obj); err != nil || got != fwk.Queue {
					t.Errorf("%s hint on %#v = %v, %v; want Queue", name, obj, got, err)
				}
			}
		}
	})
}
