package scheduler_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/volume"
	"hwameistor.io/local/csidriver/agent"
	"hwameistor.io/local/csidriver/backend"
	"hwameistor.io/local/csidriver/backend/backendtest"
	"hwameistor.io/local/csidriver/backend/emulated"
	"hwameistor.io/local/csidriver/driver"
)

// provisioner plays external-provisioner for the claims of a namespace:
// CreateVolume for each claim with a selected node and no volume; on
// ResourceExhausted it removes the selected-node annotation (its
// rescheduleProvisioning), on success it creates the PV and binds the claim
// (what kube-controller-manager's PV controller would then do). It counts
// the calls per claim and node.
type provisioner struct {
	ns    string
	class *storagev1.StorageClass
	ctrl  *driver.Controller

	// beforeCreate, when set, runs before CreateVolume is called for a
	// claim the first time, with the time its selected node was seen.
	beforeCreate func(claim, node string, selected time.Time)

	mu       sync.Mutex
	calls    map[string][]string // claim -> "node:code" per CreateVolume
	inFlight map[string]bool
	seen     map[string]bool
}

func (p *provisioner) run(ctx context.Context, t *testing.T) {
	for ctx.Err() == nil {
		list, err := cs.CoreV1().PersistentVolumeClaims(p.ns).List(ctx, metav1.ListOptions{})
		if err == nil {
			for i := range list.Items {
				pvc := list.Items[i]
				node := pvc.Annotations["volume.kubernetes.io/selected-node"]
				p.mu.Lock()
				busy := p.inFlight[pvc.Name]
				if node != "" && pvc.Spec.VolumeName == "" && !busy {
					p.inFlight[pvc.Name] = true
					first := !p.seen[pvc.Name]
					p.seen[pvc.Name] = true
					go func() {
						if first && p.beforeCreate != nil {
							p.beforeCreate(pvc.Name, node, time.Now())
						}
						p.provision(ctx, t, &pvc, node)
					}()
				}
				p.mu.Unlock()
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *provisioner) provision(ctx context.Context, t *testing.T, pvc *corev1.PersistentVolumeClaim, node string) {
	defer func() {
		p.mu.Lock()
		delete(p.inFlight, pvc.Name)
		p.mu.Unlock()
	}()
	params := map[string]string{driver.ParamPVCName: pvc.Name, driver.ParamPVCNamespace: pvc.Namespace}
	for k, v := range p.class.Parameters {
		params[k] = v
	}
	size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := p.ctrl.CreateVolume(cctx, &csi.CreateVolumeRequest{
		Name: "pvc-" + string(pvc.UID), Parameters: params, CapacityRange: &csi.CapacityRange{RequiredBytes: size.Value()},
		VolumeCapabilities: []*csi.VolumeCapability{{AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER}}},
		AccessibilityRequirements: &csi.TopologyRequirement{Preferred: []*csi.Topology{{Segments: map[string]string{v1.TopologyKey: node}}}},
	})
	p.mu.Lock()
	p.calls[pvc.Name] = append(p.calls[pvc.Name], node+":"+status.Code(err).String())
	p.mu.Unlock()
	switch {
	case status.Code(err) == codes.ResourceExhausted:
		t.Logf("CreateVolume for %s on %s: %v", pvc.Name, node, err)
		cur, gerr := cs.CoreV1().PersistentVolumeClaims(pvc.Namespace).Get(ctx, pvc.Name, metav1.GetOptions{})
		if gerr != nil {
			return
		}
		delete(cur.Annotations, "volume.kubernetes.io/selected-node")
		_, _ = cs.CoreV1().PersistentVolumeClaims(pvc.Namespace).Update(ctx, cur, metav1.UpdateOptions{})
	case err != nil:
		t.Logf("CreateVolume for %s on %s: %v", pvc.Name, node, err)
	default:
		if err := bindProvisioned(ctx, pvc, resp.Volume.VolumeId, p.class.Name); err != nil {
			t.Errorf("binding %s: %v", pvc.Name, err)
		}
	}
}

func (p *provisioner) callsOf(claim string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.calls[claim]...)
}

func bindProvisioned(ctx context.Context, pvc *corev1.PersistentVolumeClaim, volumeID, class string) error {
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: volumeID},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      pvc.Spec.Resources.Requests,
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			StorageClassName:              class,
			ClaimRef:                      &corev1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID},
			PersistentVolumeSource:        corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: v1.DriverName, VolumeHandle: volumeID}},
		},
	}
	if _, err := cs.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	cur, err := cs.CoreV1().PersistentVolumeClaims(pvc.Namespace).Get(ctx, pvc.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	cur.Spec.VolumeName = volumeID
	metav1.SetMetaDataAnnotation(&cur.ObjectMeta, "pv.kubernetes.io/bind-completed", "yes")
	if cur, err = cs.CoreV1().PersistentVolumeClaims(pvc.Namespace).Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		return err
	}
	cur.Status.Phase = corev1.ClaimBound
	cur.Status.Capacity = cur.Spec.Resources.Requests
	_, err = cs.CoreV1().PersistentVolumeClaims(pvc.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
	return err
}

// refusalCluster is two nodes served by a node agent in the test, with the
// volume controller, the CSI controller service (behind a provisioner the
// test plays) and the real scheduler: NODE-big's pool has 4Gi but its
// report says 40Gi until catchUp (the pool shrank, the report lags);
// NODE-small has 20Gi and says so.
type refusalCluster struct {
	ns, big, small string
	lag            *backendtest.LaggingReport
	agent          *agent.Agent
	prov           *provisioner
}

func startRefusalCluster(t *testing.T, ctx context.Context, name string) *refusalCluster {
	t.Helper()
	c := &refusalCluster{ns: createNamespace(t, name), big: name + "-big", small: name + "-small"}
	cleanupNamespace(t, c.ns)
	for _, n := range []string{c.big, c.small} {
		createNode(t, n, "a", 20*gi)
	}
	t.Cleanup(func() { deleteNodes(t, c.big, c.small) })

	newPool := func(node string, size int64) backend.Backend {
		be, err := emulated.New(filepath.Join(t.TempDir(), node), []emulated.PoolConfig{{Class: v1.PoolClassHDD, CapacityBytes: size}}, emulated.WithoutLoop())
		if err != nil {
			t.Fatal(err)
		}
		return be
	}
	c.lag = backendtest.NewLaggingReport(newPool(c.big, 4*gi), nil)
	stale, err := c.lag.Backend.Pools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stale[0].TotalBytes, stale[0].FreeBytes = 40*gi, 40*gi
	c.lag.SetStale(stale)
	c.agent = &agent.Agent{Backends: map[string]backend.Backend{c.big: c.lag, c.small: newPool(c.small, 20*gi)},
		Zones: map[string]string{c.big: "a", c.small: "a"}}
	env.StartManager(t, func(ctx context.Context, mgr ctrl.Manager) error {
		rec := record.NewFakeRecorder(1000)
		c.agent.Client, c.agent.Recorder = mgr.GetClient(), rec
		if err := (&volume.Reconciler{Client: mgr.GetClient(), Recorder: rec}).SetupWithManager(ctx, mgr); err != nil {
			return err
		}
		return c.agent.SetupWithManager(mgr)
	})
	for n, total := range map[string]int64{c.big: 40 * gi, c.small: 20 * gi} {
		waitFor(t, "the agent's report of "+n, 30*time.Second, func() (bool, error) {
			return c.report(ctx, n) == total, nil
		})
	}
	createStorageClass(t, name+"-hdd", map[string]string{"poolClass": "HDD"})
	class, err := cs.StorageV1().StorageClasses().Get(ctx, name+"-hdd", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.prov = &provisioner{ns: c.ns, class: class, ctrl: &driver.Controller{Client: env.Client, PollInterval: 50 * time.Millisecond},
		calls: map[string][]string{}, inFlight: map[string]bool{}, seen: map[string]bool{}}
	return c
}

// report has the agent report node now and returns the pool total the
// apiserver then holds (0 on errors).
func (c *refusalCluster) report(ctx context.Context, node string) int64 {
	if err := c.agent.ReportNode(ctx, node); err != nil {
		return 0
	}
	lsn := &v1.LocalStorageNode{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: node}, lsn); err != nil {
		return 0
	}
	return lsn.Status.Pools[v1.PoolNameHDD].TotalCapacityBytes
}

// catchUp lets NODE-big's true report (4Gi) reach the apiserver, no
// sooner than a second after since.
func (c *refusalCluster) catchUp(t *testing.T, ctx context.Context, since time.Time) {
	if d := time.Since(since); d < time.Second {
		time.Sleep(time.Second - d)
	}
	c.lag.CatchUp()
	waitFor(t, "the true report of "+c.big, 30*time.Second, func() (bool, error) { return c.report(ctx, c.big) == 4*gi, nil })
}

// checkMoved: the claim's pod runs on NODE-small after exactly one refused
// CreateVolume on NODE-big, which keeps nothing of the volume.
func (c *refusalCluster) checkMoved(t *testing.T, ctx context.Context, claim, pod string) {
	t.Helper()
	waitFor(t, "pod "+pod+" bound to a node", 60*time.Second, func() (bool, error) {
		p, err := cs.CoreV1().Pods(c.ns).Get(ctx, pod, metav1.GetOptions{})
		return err == nil && p.Spec.NodeName != "", nil
	})
	p, _ := cs.CoreV1().Pods(c.ns).Get(ctx, pod, metav1.GetOptions{})
	if p.Spec.NodeName != c.small {
		t.Errorf("pod %s bound to %s, want %s", pod, p.Spec.NodeName, c.small)
	}
	want := c.big + ":ResourceExhausted," + c.small + ":OK"
	if calls := c.prov.callsOf(claim); strings.Join(calls, ",") != want {
		t.Errorf("CreateVolume calls for %s: %v, want %s (before the fix: DeadlineExceeded after the deadline, "+
			"or ResourceExhausted again and again on %s: the group entry kept the claim there)", claim, calls, want, c.big)
	}
	pvc, err := cs.CoreV1().PersistentVolumeClaims(c.ns).Get(ctx, claim, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vol := "pvc-" + string(pvc.UID)
	if _, err := c.lag.GetVolume(ctx, v1.PoolNameHDD, vol); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("%s keeps data of %s (%v)", c.big, vol, err)
	}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(vol, c.big)}, &v1.LocalVolumeReplica{}); !apierrors.IsNotFound(err) {
		t.Errorf("a replica on %s is left (%v)", c.big, err)
	}
	lv := &v1.LocalVolume{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: vol}, lv); err != nil || strings.Join(lv.ReplicaNodes(), ",") != c.small {
		t.Errorf("volume %s on %v (%v), want %s", vol, lv.ReplicaNodes(), err, c.small)
	}
	t.Cleanup(func() {
		// Leave no volume behind for the other tests.
		_ = env.Client.Delete(context.Background(), &v1.LocalVolume{ObjectMeta: metav1.ObjectMeta{Name: vol}})
	})
}

// TestCapacityRefusalMovesThePod (issue 14 item 6) with the real scheduler:
// a node refuses a claim for capacity after the scheduler placed it there;
// the pod must land on the other node, which fits, after one refusal, or
// stay Pending with the numbers, never cycling.
//
//   - agent refusal: NODE-big's agent finds its pool short at allocation
//     (its true report comes later). CreateVolume answers ResourceExhausted
//     at once (it was DeadlineExceeded after the caller's deadline, and
//     retried on the same node), leaves nothing behind and clears the
//     placement; the claim's selected node is reset (as external-provisioner
//     does) and the pod moves. A 12Gi claim then fits only the stale report:
//     the node's refusal keeps the pod off it, Pending with the numbers,
//     CreateVolume never called; the true report ends the refusal and the
//     figures decide.
//   - report after the claim is bound: NODE-big's true report reaches the
//     apiserver more than a second after the claim was bound to the node,
//     before CreateVolume runs; CreateVolume's own check refuses. Before the
//     fix the group entry kept pinning the claim to NODE-big and the pod
//     came back to it on every retry.
func TestCapacityRefusalMovesThePod(t *testing.T) {
	t.Run("agent refusal", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c := startRefusalCluster(t, ctx, "refusal-agent")
		go c.prov.run(ctx, t)
		stop := startScheduler(t)
		defer stop()

		createClaim(t, c.ns, "data", c.prov.class.Name, 10*gi)
		createPod(t, c.ns, "db", "data")
		c.checkMoved(t, ctx, "data", "db")
		bound := time.Now()

		createClaim(t, c.ns, "more", c.prov.class.Name, 12*gi)
		createPod(t, c.ns, "db2", "more")
		waitFor(t, "the second pod reported unschedulable with the refusal", 60*time.Second, func() (bool, error) {
			msg := unschedulableMessage(t, c.ns, "db2")
			return strings.Contains(msg, "refused 10Gi in LocalStorage_PoolHDD: 4Gi free at allocation, the node reports 40Gi free") &&
				strings.Contains(msg, "need 12Gi, free 10Gi"), nil
		})
		time.Sleep(3 * time.Second)
		if calls := c.prov.callsOf("more"); len(calls) != 0 {
			t.Errorf("CreateVolume called for the claim that fits nowhere: %v", calls)
		}

		c.catchUp(t, ctx, bound)
		// The true report's pool is 4Gi, so it takes volumes up to 4Gi:
		// the ledger says so (it ignored the pool's size limit before).
		waitFor(t, "the second pod's reason to follow the new report", 60*time.Second, func() (bool, error) {
			msg := unschedulableMessage(t, c.ns, "db2")
			return strings.Contains(msg, "takes volumes up to 4Gi, 12Gi requested") && !strings.Contains(msg, "refused"), nil
		})
		if calls := c.prov.callsOf("more"); len(calls) != 0 {
			t.Errorf("CreateVolume called for the claim that fits nowhere: %v", calls)
		}
		t.Logf("pending pod: %s", unschedulableMessage(t, c.ns, "db2"))
	})

	t.Run("report after the claim is bound", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c := startRefusalCluster(t, ctx, "refusal-late")
		c.prov.beforeCreate = func(claim, node string, selected time.Time) {
			if node == c.big {
				c.catchUp(t, ctx, selected)
			}
		}
		go c.prov.run(ctx, t)
		stop := startScheduler(t)
		defer stop()

		createClaim(t, c.ns, "data", c.prov.class.Name, 10*gi)
		createPod(t, c.ns, "db", "data")
		c.checkMoved(t, ctx, "data", "db")
	})
}
