package localstorage

import (
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	fwk "k8s.io/kube-scheduler/framework"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/internal/placement"
)

// groupObjs: claim data is HA (6Gi HDD), claim logs is single-replica (4Gi
// SSD). node-a (z1) has both pools, node-b (z2) HDD only, node-c (z1) HDD
// only and fuller: data's peer must be node-b.
func groupObjs() []runtime.Object {
	hdd, ssd := placement.PoolHDD, placement.PoolSSD
	return append(classes(),
		makePVC("data").withClass("hdd-ha").PersistentVolumeClaim,
		makePVC("logs").withClass("ssd").withSize("4Gi").PersistentVolumeClaim,
		makeLSN("node-a").zone("z1").pool(hdd, 100, 100).pool(ssd, 100, 100).LocalStorageNode,
		makeLSN("node-b").zone("z2").pool(hdd, 100, 50).LocalStorageNode,
		makeLSN("node-c").zone("z1").pool(hdd, 100, 90).LocalStorageNode,
	)
}

// schedule runs a pod through the whole cycle on node up to PreBind.
func (c *cycle) schedule(t *testing.T, node string) *fwk.Status {
	t.Helper()
	checkStatus(t, "Reserve", c.toReserve(t, node), nil)
	checkStatus(t, "PreBindPreFlight", c.preBindPreFlight(node), nil)
	return c.preBind(node)
}

func TestPreBindCreatesTheGroup(t *testing.T) {
	e := newTestEnv(t, nil, groupObjs()...)
	c := e.cycle(makePod("p").withPVC("data", "logs").Pod)
	checkStatus(t, "PreBind", c.schedule(t, "node-a"), nil)

	writes := e.api.writes()
	if len(writes) != 1 || writes[0].verb != http.MethodPost {
		t.Fatalf("API writes %+v, want one POST", writes)
	}
	got := writes[0].body
	if got.Name != "lvg-uid-data" {
		t.Errorf("group name %q, want lvg-uid-data (named after the pod's first claim)", got.Name)
	}
	if got.APIVersion != v1.GroupVersion.String() || got.Kind != "LocalVolumeGroup" {
		t.Errorf("group type %s %s", got.APIVersion, got.Kind)
	}
	want := v1.LocalVolumeGroupSpec{
		Namespace: testNS,
		Volumes: []v1.VolumeInfo{
			{PersistentVolumeClaimName: "data", LocalVolumeName: "pvc-uid-data", Nodes: []string{"node-a", "node-b"}, PoolName: v1.PoolNameHDD, RequiredCapacityBytes: 6 * gi},
			{PersistentVolumeClaimName: "logs", LocalVolumeName: "pvc-uid-logs", Nodes: []string{"node-a"}, PoolName: v1.PoolNameSSD, RequiredCapacityBytes: 4 * gi},
		},
		Accessibility: v1.AccessibilityTopology{Nodes: []string{"node-a", "node-b"}},
		Pods:          []string{"p"},
	}
	if diff := cmp.Diff(want, got.Spec); diff != "" {
		t.Errorf("group spec (-want +got):\n%s", diff)
	}

	// The ledger holds the placement as persisted.
	for _, r := range e.pl.Cache().Reservations() {
		if !r.Persisted {
			t.Errorf("reservation %+v is not persisted after PreBind", r)
		}
	}
	e.checkHeld(t, "after PreBind", placement.PoolHDD, map[string]held{"node-a": {6, 1}, "node-b": {6, 1}, "node-c": {0, 0}})
	e.checkHeld(t, "after PreBind", placement.PoolSSD, map[string]held{"node-a": {4, 1}})
}

func TestPreBindUpdatesTheGroupForASecondPod(t *testing.T) {
	e := newTestEnv(t, nil, append(classes(),
		makePVC("shared").PersistentVolumeClaim,
		makeLSN("node-a").pool(placement.PoolHDD, 100, 100).LocalStorageNode,
		makeLSN("node-b").pool(placement.PoolHDD, 100, 100).LocalStorageNode,
	)...)
	first := e.cycle(makePod("p").withPVC("shared").Pod)
	checkStatus(t, "PreBind of the first pod", first.schedule(t, "node-a"), nil)
	// The group reaches the plugin's informer.
	e.add(e.api.get("lvg-uid-shared"))

	second := e.cycle(makePod("q").withPVC("shared").Pod)
	res, st := second.preFilter()
	checkStatus(t, "PreFilter of the second pod", st, nil)
	if res == nil || !res.NodeNames.Equal(sets.New("node-a")) {
		t.Fatalf("second pod may go to %v, want node-a only", res)
	}
	checkStatus(t, "PreBind of the second pod", second.schedule(t, "node-a"), nil)

	writes := e.api.writes()
	if len(writes) != 2 || writes[0].verb != http.MethodPost || writes[1].verb != http.MethodPut {
		t.Fatalf("API writes %+v, want POST then PUT", writes)
	}
	got := e.api.get("lvg-uid-shared").Spec
	want := v1.LocalVolumeGroupSpec{
		Namespace: testNS,
		Volumes: []v1.VolumeInfo{
			{PersistentVolumeClaimName: "shared", LocalVolumeName: "pvc-uid-shared", Nodes: []string{"node-a"}, PoolName: v1.PoolNameHDD, RequiredCapacityBytes: 6 * gi},
		},
		Accessibility: v1.AccessibilityTopology{Nodes: []string{"node-a"}},
		Pods:          []string{"p", "q"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("group spec (-want +got):\n%s", diff)
	}
	e.checkHeld(t, "after both PreBinds", placement.PoolHDD, map[string]held{"node-a": {6, 1}, "node-b": {0, 0}})

	// The same pod scheduled again changes nothing: no write.
	again := e.cycle(makePod("q").withPVC("shared").Pod)
	e.add(e.api.get("lvg-uid-shared"))
	checkStatus(t, "PreBind of the same pod again", again.schedule(t, "node-a"), nil)
	if n := len(e.api.writes()); n != 2 {
		t.Errorf("%d API writes, want no new one", n)
	}
}

func TestPreBindWithAProvisionedClaimInTheGroup(t *testing.T) {
	hdd := placement.PoolHDD
	e := newTestEnv(t, nil, append(classes(),
		makePVC("data").boundTo("pv-data").PersistentVolumeClaim,
		makePV("pv-data", v1.DriverName),
		makeLV("pv-data", "data").inGroup("lvg-existing").LocalVolume,
		makeLVR("pv-data", "node-b", v1.StateReady),
		makePVC("logs").withSize("4Gi").PersistentVolumeClaim,
		makeLSN("node-a").pool(hdd, 100, 100).LocalStorageNode,
		makeLSN("node-b").pool(hdd, 100, 100).LocalStorageNode,
	)...)
	e.api.put(makeLVG("lvg-existing").placed("data", "pv-data", hdd, 0).pods("old").LocalVolumeGroup)

	c := e.cycle(makePod("p").withPVC("data", "logs").Pod)
	res, st := c.preFilter()
	checkStatus(t, "PreFilter", st, nil)
	if res == nil || !res.NodeNames.Equal(sets.New("node-b")) {
		t.Fatalf("PreFilterResult %v, want node-b", res)
	}
	checkStatus(t, "PreBind", c.schedule(t, "node-b"), nil)
	got := e.api.get("lvg-existing").Spec
	want := v1.LocalVolumeGroupSpec{
		Namespace: testNS,
		Volumes: []v1.VolumeInfo{
			{PersistentVolumeClaimName: "data", LocalVolumeName: "pv-data"},
			{PersistentVolumeClaimName: "logs", LocalVolumeName: "pvc-uid-logs", Nodes: []string{"node-b"}, PoolName: v1.PoolNameHDD, RequiredCapacityBytes: 4 * gi},
		},
		Accessibility: v1.AccessibilityTopology{Nodes: []string{"node-b"}},
		Pods:          []string{"old", "p"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("group spec (-want +got):\n%s", diff)
	}
	e.checkHeld(t, "after PreBind", hdd, map[string]held{"node-a": {0, 0}, "node-b": {4, 1}})
}

func TestPreBindRetriesWhenTheGroupAppearsConcurrently(t *testing.T) {
	e := newTestEnv(t, nil, append(classes(),
		makePVC("data").PersistentVolumeClaim,
		makeLSN("node-a").pool(placement.PoolHDD, 100, 100).LocalStorageNode,
	)...)
	e.api.beforePost = func(a *fakeGroupAPI) {
		a.put(makeLVG("lvg-uid-data").placed("data", "pvc-uid-data", placement.PoolHDD, 6, "node-a").pods("other").LocalVolumeGroup)
	}
	c := e.cycle(makePod("p").withPVC("data").Pod)
	checkStatus(t, "PreBind", c.schedule(t, "node-a"), nil)
	var verbs []string
	for _, w := range e.api.writes() {
		verbs = append(verbs, w.verb)
	}
	if diff := cmp.Diff([]string{http.MethodPost, http.MethodPut}, verbs); diff != "" {
		t.Errorf("API writes (-want +got):\n%s", diff)
	}
	if got := e.api.get("lvg-uid-data").Spec.Pods; !cmp.Equal(got, []string{"other", "p"}) {
		t.Errorf("group pods %v, want [other p]", got)
	}
}

func TestPreBindFailsWhenTheAPIFails(t *testing.T) {
	e := newTestEnv(t, nil, append(classes(),
		makePVC("data").PersistentVolumeClaim,
		makeLSN("node-a").pool(placement.PoolHDD, 100, 100).LocalStorageNode,
	)...)
	e.api.failWith = apierrors.NewInternalError(errTest("etcd is down"))
	c := e.cycle(makePod("p").withPVC("data").Pod)
	checkStatus(t, "PreBind", c.schedule(t, "node-a"), wantCode(fwk.Error, "persisting placement in LocalVolumeGroup lvg-uid-data", "etcd is down"))
	for _, r := range e.pl.Cache().Reservations() {
		if r.Persisted {
			t.Errorf("reservation %+v persisted although PreBind failed", r)
		}
	}
	c.unreserve("node-a") // the framework unreserves after a failed PreBind
	e.checkHeld(t, "after Unreserve", placement.PoolHDD, map[string]held{"node-a": {0, 0}})
}

// TestPreBindPersistsTheReservation runs in a synctest bubble, whose clock
// the cache reads: time.Sleep advances it without waiting.
func TestPreBindPersistsTheReservation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		args := defaultArgs()
		args.ReservationTTLSeconds = 1
		e := newTestEnv(t, args, append(classes(),
			makePVC("bound").PersistentVolumeClaim,
			makePVC("abandoned").PersistentVolumeClaim,
			makeLSN("node-a").pool(placement.PoolHDD, 100, 100).LocalStorageNode,
		)...)
		bound := e.cycle(makePod("p").withPVC("bound").Pod)
		checkStatus(t, "PreBind", bound.schedule(t, "node-a"), nil)
		abandoned := e.cycle(makePod("q").withPVC("abandoned").Pod)
		checkStatus(t, "Reserve without PreBind", abandoned.toReserve(t, "node-a"), nil)
		e.checkHeld(t, "before the TTL", placement.PoolHDD, map[string]held{"node-a": {12, 2}})

		if n := e.pl.Cache().Expire(); n != 0 {
			t.Errorf("Expire before the TTL dropped %d reservations", n)
		}
		time.Sleep(2 * time.Second)
		if n := e.pl.Cache().Expire(); n != 1 {
			t.Errorf("Expire after the TTL dropped %d reservations, want the unpersisted one", n)
		}
		want := []placement.Reservation{{Node: "node-a", Volume: "pvc-uid-bound", Pool: placement.PoolHDD, Bytes: 6 * gi, Persisted: true}}
		if diff := cmp.Diff(want, e.pl.Cache().Reservations()); diff != "" {
			t.Errorf("ledger after the TTL (-want +got):\n%s", diff)
		}
	})
}

// TestRescheduleAfterPreBind: a pod whose binding failed after PreBind (say
// VolumeBinding timed out) comes back; the group now pins its claims. It must
// be schedulable again on the same node with the same peer.
func TestRescheduleAfterPreBind(t *testing.T) {
	t.Run("HA claim alone", func(t *testing.T) {
		e := newTestEnv(t, nil, groupObjs()...)
		first := e.cycle(makePod("p").withPVC("data").Pod)
		checkStatus(t, "first PreBind", first.schedule(t, "node-a"), nil)
		e.add(e.api.get("lvg-uid-data"))

		again := e.cycle(makePod("p").withPVC("data").Pod)
		checkStatus(t, "second PreBind", again.schedule(t, "node-a"), nil)
		if s := again.state(t); s.peer != "node-b" {
			t.Errorf("peer %q, want node-b as before", s.peer)
		}
		e.checkHeld(t, "after the second PreBind", placement.PoolHDD, map[string]held{"node-a": {6, 1}, "node-b": {6, 1}})
	})
	t.Run("HA claim with a single-replica claim", func(t *testing.T) {
		e := newTestEnv(t, nil, groupObjs()...)
		first := e.cycle(makePod("p").withPVC("data", "logs").Pod)
		checkStatus(t, "first PreBind", first.schedule(t, "node-a"), nil)
		e.add(e.api.get("lvg-uid-data"))

		again := e.cycle(makePod("p").withPVC("data", "logs").Pod)
		checkStatus(t, "second PreBind", again.schedule(t, "node-a"), nil)
		if s := again.state(t); s.peer != "node-b" {
			t.Errorf("peer %q, want node-b as before", s.peer)
		}
	})
	t.Run("new HA claim next to a provisioned single-replica volume", func(t *testing.T) {
		e := newTestEnv(t, nil, append(groupObjs(),
			makePVC("old").boundTo("pv-old").PersistentVolumeClaim,
			makePV("pv-old", v1.DriverName),
			makeLV("pv-old", "old").LocalVolume,
			makeLVR("pv-old", "node-a", v1.StateReady),
		)...)
		c := e.cycle(makePod("p").withPVC("old", "data").Pod)
		checkStatus(t, "PreBind", c.schedule(t, "node-a"), nil)
		if s := c.state(t); s.peer != "node-b" {
			t.Errorf("peer %q, want node-b", s.peer)
		}
	})
}

type errTest string

func (e errTest) Error() string { return string(e) }
