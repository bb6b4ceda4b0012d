package scheduler_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/plugins/localstorage"
)

func cleanupNamespace(t *testing.T, ns string) {
	t.Cleanup(func() {
		zero := int64(0)
		ctx := context.Background()
		_ = cs.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
	})
}

// TestBurstNoOvercommit: 3 nodes x 20Gi, 10 pods x one 6Gi claim created at
// once. Exactly 9 are placed, at most 3 per node, and the 10th stays Pending
// with a reason carrying the numbers. Then the scheduler restarts with the
// 9 placements in flight (nothing provisioned) and must not book them twice.
func TestBurstNoOvercommit(t *testing.T) {
	ns := createNamespace(t, "burst")
	cleanupNamespace(t, ns)
	nodes := []string{"burst-0", "burst-1", "burst-2"}
	for i, n := range nodes {
		createNode(t, n, fmt.Sprintf("zone-%d", i), 20*gi)
	}
	t.Cleanup(func() { deleteNodes(t, nodes...) })
	createStorageClass(t, "burst-hdd", map[string]string{"poolClass": "HDD"})

	stop := startScheduler(t)
	for i := 0; i < 10; i++ {
		createClaim(t, ns, fmt.Sprintf("data-%d", i), "burst-hdd", 6*gi)
	}
	for i := 0; i < 10; i++ {
		createPod(t, ns, fmt.Sprintf("db-%d", i), fmt.Sprintf("data-%d", i))
	}

	waitFor(t, "9 placements", 60*time.Second, func() (bool, error) { return len(placements(t, ns)) >= 9, nil })
	pending := ""
	waitFor(t, "the 10th pod to be reported unschedulable", 60*time.Second, func() (bool, error) {
		for i := 0; i < 10; i++ {
			name := fmt.Sprintf("db-%d", i)
			if _, placed := placements(t, ns)[fmt.Sprintf("data-%d", i)]; !placed && unschedulableMessage(t, ns, name) != "" {
				pending = name
				return true, nil
			}
		}
		return false, nil
	})
	checkPerNode(t, placements(t, ns), 9, 3)
	waitFor(t, "VolumeBinding to select the same nodes", 30*time.Second, func() (bool, error) {
		sel := selectedNodes(t, ns)
		for claim, nodes := range placements(t, ns) {
			if sel[claim] != nodes[0] {
				return false, nil
			}
		}
		return len(sel) == 9, nil
	})
	msg := unschedulableMessage(t, ns, pending)
	for _, want := range []string{"pool LocalStorage_PoolHDD: need 6Gi, free 2Gi (18Gi reserved in flight)", "0/3 nodes are available"} {
		if !strings.Contains(msg, want) {
			t.Errorf("pending pod's message %q lacks %q", msg, want)
		}
	}

	// Restart with the reservations only persisted on the claims.
	stop()
	stop = startScheduler(t)
	defer stop()
	createClaim(t, ns, "late", "burst-hdd", 6*gi)
	createPod(t, ns, "late", "late")
	waitFor(t, "the late pod to be reported unschedulable", 60*time.Second, func() (bool, error) {
		return strings.Contains(unschedulableMessage(t, ns, "late"), "need 6Gi"), nil
	})
	// Give the new scheduler time to re-place the 9 in-flight pods too.
	time.Sleep(3 * time.Second)
	p := placements(t, ns)
	if _, ok := p["late"]; ok {
		t.Errorf("after restart the late claim was placed on %v: the pools were already full", p["late"])
	}
	checkPerNode(t, p, 9, 3)
}

// checkPerNode asserts total placements and at most max per node.
func checkPerNode(t *testing.T, p map[string][]string, total, max int) {
	t.Helper()
	if len(p) != total {
		t.Errorf("%d claims placed, want %d: %v", len(p), total, p)
	}
	per := map[string]int{}
	for _, nodes := range p {
		for _, n := range nodes {
			per[n]++
		}
	}
	for n, c := range per {
		if c > max {
			t.Errorf("node %s got %d volumes, at most %d fit", n, c, max)
		}
	}
}

// TestVolumeGroupOneNode: a pod with two claims gets one node for both, and
// both claims name the same LocalVolumeGroup, which lists them.
func TestVolumeGroupOneNode(t *testing.T) {
	ns := createNamespace(t, "group")
	cleanupNamespace(t, ns)
	nodes := []string{"group-0", "group-1", "group-2"}
	// Each node can hold one 6Gi volume but not two: the group must still land
	// on a single node, so only the node with 14Gi works.
	createNode(t, nodes[0], "a", 8*gi)
	createNode(t, nodes[1], "b", 14*gi)
	createNode(t, nodes[2], "c", 8*gi)
	t.Cleanup(func() { deleteNodes(t, nodes...) })
	createStorageClass(t, "group-hdd", map[string]string{"poolClass": "HDD"})
	stop := startScheduler(t)
	defer stop()

	createClaim(t, ns, "data", "group-hdd", 6*gi)
	createClaim(t, ns, "log", "group-hdd", 6*gi)
	createPod(t, ns, "db", "data", "log")
	waitFor(t, "both claims placed", 60*time.Second, func() (bool, error) { return len(placements(t, ns)) == 2, nil })
	p := placements(t, ns)
	if len(p["data"]) != 1 || len(p["log"]) != 1 || p["data"][0] != "group-1" || p["log"][0] != "group-1" {
		t.Fatalf("group split or misplaced: %v (want both on group-1)", p)
	}
	groups := &v1.LocalVolumeGroupList{}
	if err := env.Client.List(context.Background(), groups); err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, g := range groups.Items {
		if g.Spec.Namespace == ns {
			found++
			if len(g.Spec.Volumes) != 2 || len(g.Spec.Pods) != 1 || g.Spec.Pods[0] != "db" || len(g.Spec.Accessibility.Nodes) != 1 || g.Spec.Accessibility.Nodes[0] != "group-1" {
				t.Errorf("LocalVolumeGroup %s: %+v", g.Name, g.Spec)
			}
		}
	}
	if found != 1 {
		t.Errorf("%d LocalVolumeGroups for the pod, want 1", found)
	}
}

// TestHAGetsTwoNodes: a replicaNumber "2" claim gets two different nodes,
// the second in another zone.
func TestHAGetsTwoNodes(t *testing.T) {
	ns := createNamespace(t, "ha")
	cleanupNamespace(t, ns)
	nodes := []string{"ha-0", "ha-1", "ha-2"}
	createNode(t, nodes[0], "a", 20*gi)
	createNode(t, nodes[1], "a", 20*gi)
	createNode(t, nodes[2], "b", 20*gi)
	t.Cleanup(func() { deleteNodes(t, nodes...) })
	createStorageClass(t, "ha-hdd", map[string]string{"poolClass": "HDD", "replicaNumber": "2"})
	stop := startScheduler(t)
	defer stop()

	createClaim(t, ns, "data", "ha-hdd", 6*gi)
	createPod(t, ns, "db", "data")
	waitFor(t, "the HA claim placed", 60*time.Second, func() (bool, error) { return len(placements(t, ns)) == 1, nil })
	got := placements(t, ns)["data"]
	if len(got) != 2 || got[0] == got[1] {
		t.Fatalf("HA claim placed on %v, want two different nodes", got)
	}
	zone := map[string]string{"ha-0": "a", "ha-1": "a", "ha-2": "b"}
	if zone[got[0]] == zone[got[1]] {
		t.Errorf("HA replicas on %v share zone %s; another zone was free", got, zone[got[0]])
	}
}

// TestBadStorageClass: a mistyped parameter leaves the pod Pending with a
// reason that names the parameter.
func TestBadStorageClass(t *testing.T) {
	ns := createNamespace(t, "badsc")
	cleanupNamespace(t, ns)
	createNode(t, "badsc-0", "a", 20*gi)
	t.Cleanup(func() { deleteNodes(t, "badsc-0") })
	createStorageClass(t, "bad-class", map[string]string{"poolClass": "TAPE"})
	createStorageClass(t, "bad-replicas", map[string]string{"poolClass": "HDD", "replicaNumber": "3"})
	createStorageClass(t, "mistyped", map[string]string{"poolClass": "HDD", "replicaNumbr": "2"})
	stop := startScheduler(t)
	defer stop()

	createClaim(t, ns, "tape", "bad-class", gi)
	createPod(t, ns, "tape", "tape")
	createClaim(t, ns, "three", "bad-replicas", gi)
	createPod(t, ns, "three", "three")
	createClaim(t, ns, "typo", "mistyped", gi)
	createPod(t, ns, "typo", "typo")
	for pod, want := range map[string]string{
		"tape":  `parameter poolClass: unknown poolClass "TAPE"`,
		"three": `parameter replicaNumber is "3": use "1" or "2"`,
		"typo":  `unknown parameter "replicaNumbr": did you mean replicaNumber?`,
	} {
		waitFor(t, pod+" reported unschedulable", 60*time.Second, func() (bool, error) {
			return strings.Contains(unschedulableMessage(t, ns, pod), want), nil
		})
		// The claim carries it too, where `kubectl describe pvc` shows it.
		waitFor(t, "a Warning Event on claim "+pod, 60*time.Second, func() (bool, error) {
			list, err := cs.EventsV1().Events(ns).List(context.Background(), metav1.ListOptions{})
			if err != nil {
				return false, err
			}
			for _, e := range list.Items {
				if e.Regarding.Kind == "PersistentVolumeClaim" && e.Regarding.Name == pod && e.Type == corev1.EventTypeWarning &&
					e.Reason == localstorage.ReasonInvalidStorageClass && strings.Contains(e.Note, want) {
					return true, nil
				}
			}
			return false, nil
		})
	}
}

// TestPodFollowsItsReplica: a pod whose volume exists lands on the node
// holding its ready replica, never elsewhere.
func TestPodFollowsItsReplica(t *testing.T) {
	ns := createNamespace(t, "bound")
	cleanupNamespace(t, ns)
	nodes := []string{"bound-0", "bound-1", "bound-2"}
	for _, n := range nodes {
		createNode(t, n, "a", 20*gi)
	}
	t.Cleanup(func() { deleteNodes(t, nodes...) })
	createStorageClass(t, "bound-hdd", map[string]string{"poolClass": "HDD"})
	createBoundVolume(t, ns, "data", "bound-hdd", "pvc-bound-data", "bound-1", 6*gi)
	stop := startScheduler(t)
	defer stop()

	createPod(t, ns, "db", "data")
	waitFor(t, "the pod bound to a node", 60*time.Second, func() (bool, error) {
		pod, err := cs.CoreV1().Pods(ns).Get(context.Background(), "db", metav1.GetOptions{})
		return err == nil && pod.Spec.NodeName != "", err
	})
	pod, _ := cs.CoreV1().Pods(ns).Get(context.Background(), "db", metav1.GetOptions{})
	if pod.Spec.NodeName != "bound-1" {
		t.Errorf("pod bound to %s, its replica is on bound-1", pod.Spec.NodeName)
	}
}

// createBoundVolume creates a claim already bound to a PV of our driver, its
// LocalVolume and a Ready replica on node.
func createBoundVolume(t *testing.T, ns, claim, class, volume, node string, bytes int64) {
	t.Helper()
	ctx := context.Background()
	pvc := createClaim(t, ns, claim, class, bytes)
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: volume},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      pvc.Spec.Resources.Requests,
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			StorageClassName:              class,
			ClaimRef:                      &corev1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: ns, Name: claim, UID: pvc.UID},
			PersistentVolumeSource:        corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: v1.DriverName, VolumeHandle: volume}},
		},
	}
	pv, err := cs.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pv.Status.Phase = corev1.VolumeBound
	if _, err := cs.CoreV1().PersistentVolumes().UpdateStatus(ctx, pv, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	pvc.Spec.VolumeName = volume
	metav1.SetMetaDataAnnotation(&pvc.ObjectMeta, "pv.kubernetes.io/bind-completed", "yes")
	pvc, err = cs.CoreV1().PersistentVolumeClaims(ns).Update(ctx, pvc, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pvc.Status.Phase = corev1.ClaimBound
	pvc.Status.Capacity = pvc.Spec.Resources.Requests
	if _, err := cs.CoreV1().PersistentVolumeClaims(ns).UpdateStatus(ctx, pvc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	lv := &v1.LocalVolume{ObjectMeta: metav1.ObjectMeta{Name: volume}, Spec: v1.LocalVolumeSpec{
		PoolName: v1.PoolNameHDD, RequiredCapacityBytes: bytes, ReplicaNumber: 1,
		PersistentVolumeClaimNamespace: ns, PersistentVolumeClaimName: claim,
		Accessibility: v1.AccessibilityTopology{Nodes: []string{node}},
		Config:        &v1.VolumeConfig{Replicas: []v1.VolumeReplica{{ID: 1, Hostname: node, Primary: true}}},
	}}
	if err := env.Client.Create(ctx, lv); err != nil {
		t.Fatal(err)
	}
	lvr := &v1.LocalVolumeReplica{ObjectMeta: metav1.ObjectMeta{Name: volume + "-" + node}, Spec: v1.LocalVolumeReplicaSpec{
		VolumeName: volume, NodeName: node, PoolName: v1.PoolNameHDD, RequiredCapacityBytes: bytes}}
	if err := env.Client.Create(ctx, lvr); err != nil {
		t.Fatal(err)
	}
	lvr.Status.State, lvr.Status.Synced = v1.StateReady, true // as the node agent reports a new replica
	if err := env.Client.Status().Update(ctx, lvr); err != nil {
		t.Fatal(err)
	}
	lv.Status.State = v1.StateReady
	if err := env.Client.Status().Update(ctx, lv); err != nil {
		t.Fatal(err)
	}
}
