package sim

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/drbd"
	drbdemulated "hwameistor.io/local/csidriver/drbd/emulated"
	"hwameistor.io/local/csidriver/driver"
	"hwameistor.io/local/kwok/report"
)

// kwokNodeAnnotation selects the nodes kwok serves (hack/cluster-up.sh
// --manage-nodes-with-annotation-selector): a failed node loses it, so its
// Lease is no longer renewed, as if its kubelet had died.
const kwokNodeAnnotation = "kwok.x-k8s.io/node"

// failedPod is a pod of an HA volume that ran on a node a fail action
// stopped.
type failedPod struct {
	namespace, name string
	uid             types.UID
	node            string
	// leaseExpiry is when the node's Lease expired: its last renewal plus
	// its duration.
	leaseExpiry time.Time
}

// fail stops node as a crash would: kwok stops renewing its Lease, its node
// agent is killed and its emulated DRBD replicas become unreachable. Then
// it waits for the pods of HA volumes that ran there to run elsewhere.
func (r *runner) fail(ctx context.Context, i int, node string) error {
	pods, err := r.haPodsOn(ctx, node)
	if err != nil {
		return err
	}
	r.o.Log("action %d: fail %s (%d pods of HA volumes there)", i, node, len(pods))
	if err := r.setKwokManaged(ctx, node, false); err != nil {
		return err
	}
	if err := r.s.StopAgent(node); err != nil {
		return err
	}
	if r.sc.DRBD {
		c, err := drbdemulated.Open(r.s.DRBDRoot())
		if err != nil {
			return err
		}
		if err := c.Fail(node); err != nil {
			return err
		}
	}
	lease, err := r.s.Clientset.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading the Lease of node %s: %w", node, err)
	}
	expiry := time.Now()
	if lease.Spec.RenewTime != nil && lease.Spec.LeaseDurationSeconds != nil {
		expiry = lease.Spec.RenewTime.Add(time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second)
	}
	for _, p := range pods {
		p.leaseExpiry = expiry
		r.failed = append(r.failed, p)
	}
	r.o.Log("action %d: node %s's Lease expires at %s; waiting for its pods to fail over", i, node, expiry.Format(time.RFC3339))
	err = wait.PollUntilContextTimeout(ctx, time.Second, r.sc.TimeoutOrDefault(), true, func(ctx context.Context) (bool, error) {
		for _, p := range pods {
			if _, ok := r.replacement(p); !ok {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil && ctx.Err() == nil {
		r.o.Log("action %d: not every pod of an HA volume on %s failed over within the scenario timeout", i, node)
		return nil
	}
	if err == nil {
		return r.promote(ctx)
	}
	return err
}

// recover brings a failed node back: its emulated DRBD replicas are
// reachable again (and resync), its agent starts, kwok renews its Lease.
func (r *runner) recover(ctx context.Context, i int, node string) error {
	r.o.Log("action %d: recover %s", i, node)
	if r.sc.DRBD {
		c, err := drbdemulated.Open(r.s.DRBDRoot())
		if err != nil {
			return err
		}
		if err := c.Recover(node); err != nil {
			return err
		}
	}
	if err := r.s.StartAgent(node); err != nil {
		return err
	}
	return r.setKwokManaged(ctx, node, true)
}

// setKwokManaged gives node to kwok or takes it away, and restarts kwok,
// which picks the nodes it serves when it starts.
func (r *runner) setKwokManaged(ctx context.Context, node string, managed bool) error {
	value := "fake"
	if !managed {
		value = "failed"
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, kwokNodeAnnotation, value)
	if _, err := r.s.Clientset.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		return err
	}
	return r.s.RestartKwok()
}

// haPodsOn lists the pods on node that use an HA volume.
func (r *runner) haPodsOn(ctx context.Context, node string) ([]failedPod, error) {
	pods, err := r.s.Clientset.CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		return nil, err
	}
	var out []failedPod
	for _, p := range pods.Items {
		vols, err := r.podVolumes(ctx, &p)
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(vols, func(lv *v1.LocalVolume) bool { return lv.Spec.ReplicaNumber >= 2 }) {
			out = append(out, failedPod{namespace: p.Namespace, name: p.Name, uid: p.UID, node: node})
		}
	}
	return out, nil
}

// podVolumes resolves a pod's claims to their LocalVolumes.
func (r *runner) podVolumes(ctx context.Context, p *corev1.Pod) ([]*v1.LocalVolume, error) {
	var out []*v1.LocalVolume
	for _, vol := range p.Spec.Volumes {
		if vol.PersistentVolumeClaim == nil {
			continue
		}
		pvc, err := r.s.Clientset.CoreV1().PersistentVolumeClaims(p.Namespace).Get(ctx, vol.PersistentVolumeClaim.ClaimName, metav1.GetOptions{})
		if err != nil || pvc.Spec.VolumeName == "" {
			continue
		}
		pv, err := r.s.Clientset.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
		if err != nil || pv.Spec.CSI == nil {
			continue
		}
		lv := &v1.LocalVolume{}
		if err := r.s.Client.Get(ctx, client.ObjectKey{Name: pv.Spec.CSI.VolumeHandle}, lv); err != nil {
			continue
		}
		out = append(out, lv)
	}
	return out, nil
}

// replacement is the pod that took p's place (same name, another UID)
// once it runs on another node, and when it was first seen Running.
func (r *runner) replacement(p failedPod) (time.Time, bool) {
	cur, err := r.pods.Pods(p.namespace).Get(p.name)
	if err != nil || cur.UID == p.uid || cur.Spec.NodeName == p.node || cur.Status.Phase != corev1.PodRunning {
		return time.Time{}, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.running[cur.UID]
	if !ok {
		at = time.Now()
		r.running[cur.UID] = at
	}
	return at, true
}

// failover measures the failed nodes' pods for the report.
func (r *runner) failover() *report.Failover {
	if len(r.failed) == 0 {
		return nil
	}
	f := &report.Failover{}
	var secs []float64
	for _, p := range r.failed {
		at, ok := r.replacement(p)
		if !ok {
			f.Stranded++
			continue
		}
		f.Pods++
		secs = append(secs, max(0, at.Sub(p.leaseExpiry).Seconds()))
	}
	if len(secs) > 0 {
		sort.Float64s(secs)
		f.SecondsMedian, f.SecondsMax = secs[len(secs)/2], secs[len(secs)-1]
	}
	return f
}

// promote plays the kubelet's part, which fake nodes lack: the CSI node
// service promotes an HA volume's replica where its pod runs (NodeStage),
// with the node service's own code.
// Without emulated DRBD there is nothing to promote.
func (r *runner) promote(ctx context.Context) error {
	if !r.sc.DRBD {
		return nil
	}
	c, err := drbdemulated.Open(r.s.DRBDRoot())
	if err != nil {
		return err
	}
	pods, err := r.pods.Pods(Namespace).List(labels.Everything())
	if err != nil {
		return err
	}
	for _, p := range pods {
		if p.Spec.NodeName == "" || p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil || c.Failed(p.Spec.NodeName) {
			continue
		}
		vols, err := r.podVolumes(ctx, p)
		if err != nil {
			return err
		}
		for _, lv := range vols {
			if !lv.Replicated() {
				continue
			}
			m := c.Node(p.Spec.NodeName).Manager(filepath.Join(r.s.Work, "drbd", "resources", p.Spec.NodeName))
			if _, err := m.Detect(); err != nil {
				return err
			}
			// The CSI node service's own promotion: it waits until the
			// replica may serve, and without its peer takes over through
			// the API (package fence) as on a real node.
			replicas := driver.DRBDReplicas{Client: r.s.Client, Node: p.Spec.NodeName, DRBD: m}
			var last error
			err := wait.PollUntilContextTimeout(ctx, time.Second, time.Minute, true, func(ctx context.Context) (bool, error) {
				_, last = replicas.Promote(ctx, lv.Name)
				return last == nil, nil
			})
			if err != nil && last != nil {
				err = last
			}
			if err != nil {
				return fmt.Errorf("promoting %s on %s: %w", lv.Name, p.Spec.NodeName, err)
			}
		}
	}
	return nil
}

// demote plays the kubelet's part when a drain evicts pods from node: the
// CSI node service demotes the node's replicas of the HA volumes they
// used (NodeUnstage), so that a migration can move those replicas online.
func (r *runner) demote(ctx context.Context, node string, pods []corev1.Pod) error {
	if !r.sc.DRBD {
		return nil
	}
	c, err := drbdemulated.Open(r.s.DRBDRoot())
	if err != nil {
		return err
	}
	m := c.Node(node).Manager(filepath.Join(r.s.Work, "drbd", "resources", node))
	if _, err := m.Detect(); err != nil {
		return err
	}
	for i := range pods {
		vols, err := r.podVolumes(ctx, &pods[i])
		if err != nil {
			return err
		}
		for _, lv := range vols {
			if !lv.Replicated() {
				continue
			}
			st, err := m.Status(ctx, &drbd.Resource{Name: lv.Name, Minor: v1.DRBDMinor(lv.Spec.Config.ResourceID)})
			if err != nil {
				return err
			}
			if st.Configured && st.Role == drbd.RolePrimary {
				if err := m.Secondary(ctx, lv.Name); err != nil {
					return fmt.Errorf("demoting %s on %s: %w", lv.Name, node, err)
				}
			}
		}
	}
	return nil
}

// writeReplicated writes data through the HA volume's Primary once both
// replicas are connected and UpToDate (so the write reaches both, as
// protocol C acknowledges it), and returns the Primary's checksum.
func (r *runner) writeReplicated(ctx context.Context, lv *v1.LocalVolume, data []byte) (string, error) {
	c, err := drbdemulated.Open(r.s.DRBDRoot())
	if err != nil {
		return "", err
	}
	err = wait.PollUntilContextTimeout(ctx, time.Second, time.Minute, true, func(context.Context) (bool, error) {
		reps, err := c.Replicas(lv.Name)
		if err != nil || len(reps) != 2 {
			return false, nil
		}
		for _, rep := range reps {
			if rep.Status.Connection != "Connected" || rep.Status.Disk != drbd.DiskUpToDate || rep.Status.PeerDisk != drbd.DiskUpToDate {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return "", fmt.Errorf("volume %s: its DRBD replicas are not connected and UpToDate: %w", lv.Name, err)
	}
	node, err := c.Write(lv.Name, 0, data)
	if err != nil {
		return "", err
	}
	return r.readChecksum(ctx, node, lv)
}
