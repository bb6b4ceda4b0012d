package sim

import (
	"context"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"os"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/backend/emulated"
	"hwameistor.io/local/csidriver/replication"
	"hwameistor.io/local/kwok/report"
)

// awaitMigrationState blocks until some migration is in state (listing,
// then watching from the list, so short states are seen); empty state
// returns at once. It fails when every migration has been finished for
// idle with no new one, or at the scenario timeout.
func (r *runner) awaitMigrationState(ctx context.Context, i int, state string) error {
	if state == "" {
		return nil
	}
	const idle = 15 * time.Second
	r.o.Log("action %d: waiting for a migration in state %s", i, state)
	wc, err := client.NewWithWatch(r.s.Config, client.Options{Scheme: r.s.Client.Scheme()})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.sc.TimeoutOrDefault())
	defer cancel()
	list := &v1.LocalVolumeMigrateList{}
	if err := wc.List(ctx, list); err != nil {
		return err
	}
	busy := map[string]bool{}
	for j := range list.Items {
		m := &list.Items[j]
		if string(m.Status.State) == state {
			r.o.Log("action %d: migration %s is in %s", i, m.Name, state)
			return nil
		}
		busy[m.Name] = !m.Status.State.Finished()
	}
	w, err := wc.Watch(ctx, &v1.LocalVolumeMigrateList{}, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})
	if err != nil {
		return err
	}
	defer w.Stop()
	allDone := func() bool {
		for _, b := range busy {
			if b {
				return false
			}
		}
		return true
	}
	for {
		var idleC <-chan time.Time
		if allDone() {
			idleC = time.After(idle)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no migration reached state %s within %s", state, r.sc.TimeoutOrDefault())
		case <-idleC:
			return fmt.Errorf("no migration reached state %s: all %d finished", state, len(busy))
		case ev, ok := <-w.ResultChan():
			if !ok {
				return fmt.Errorf("watching migrations: the watch closed")
			}
			m, ok := ev.Object.(*v1.LocalVolumeMigrate)
			if !ok || ev.Type == watch.Error {
				continue
			}
			if string(m.Status.State) == state {
				r.o.Log("action %d: migration %s is in %s", i, m.Name, state)
				return nil
			}
			busy[m.Name] = !m.Status.State.Finished() && ev.Type != watch.Deleted
		}
	}
}

// abort sets spec.abort on the unfinished migrations away from node.
func (r *runner) abort(ctx context.Context, i int, node string) error {
	list := &v1.LocalVolumeMigrateList{}
	if err := r.s.Client.List(ctx, list); err != nil {
		return err
	}
	n := 0
	for j := range list.Items {
		m := &list.Items[j]
		if m.Spec.SourceNode != node || m.Status.State.Finished() {
			continue
		}
		patch := client.MergeFrom(m.DeepCopy())
		m.Spec.Abort = true
		if err := r.s.Client.Patch(ctx, m, patch); err != nil {
			return fmt.Errorf("aborting %s: %w", m.Name, err)
		}
		n++
	}
	r.o.Log("action %d: aborted %d migration(s) from %s", i, n, node)
	return nil
}

// settleAfterActions waits for every migration to finish and then for the
// pods to settle again, within the scenario timeout.
func (r *runner) settleAfterActions(ctx context.Context, expected int) error {
	deadline := time.Now().Add(r.sc.TimeoutOrDefault())
	r.o.Log("phase: waiting for migrations to finish")
	lastLog, idleSince := time.Time{}, time.Time{}
	err := wait.PollUntilContextTimeout(ctx, time.Second, time.Until(deadline), true, func(ctx context.Context) (bool, error) {
		list := &v1.LocalVolumeMigrateList{}
		if err := r.s.Client.List(ctx, list); err != nil {
			return false, nil
		}
		counts := map[v1.State]int{}
		busy := 0
		for j := range list.Items {
			counts[list.Items[j].Status.State]++
			if !list.Items[j].Status.State.Finished() {
				busy++
			}
		}
		if time.Since(lastLog) >= 5*time.Second || busy == 0 {
			r.o.Log("migrations: %d total, %d running %v", len(list.Items), busy, counts)
			lastLog = time.Now()
		}
		if busy > 0 {
			idleSince = time.Time{}
			return false, nil
		}
		if idleSince.IsZero() {
			idleSince = time.Now()
		}
		// The evictor may not have created a drained node's migrations
		// yet (a second drain right after the first): wait while a
		// cordoned node that allows eviction still holds replicas, for a
		// while, since a failed migration leaves its volume there.
		left, err := r.replicasOnCordonedNodes(ctx)
		return err == nil && (left == 0 || time.Since(idleSince) >= evictorGrace), nil
	})
	if err != nil && ctx.Err() == nil {
		r.o.Log("phase: migrations did not finish within the scenario timeout")
	}
	done := make(chan struct{})
	close(done)
	return r.await(ctx, expected, done, deadline)
}

// evictorGrace is how long settleAfterActions waits for the evictor once no
// migration runs but a cordoned node still holds replicas.
const evictorGrace = 30 * time.Second

// replicasOnCordonedNodes counts the replicas on cordoned nodes whose
// volumes the evictor moves (not labelled hwameistor.io/eviction=disable).
func (r *runner) replicasOnCordonedNodes(ctx context.Context) (int, error) {
	nodes, err := r.s.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, err
	}
	cordoned := map[string]bool{}
	for _, n := range nodes.Items {
		if n.Spec.Unschedulable && n.Labels[v1.EvictionLabel] != v1.EvictionDisable {
			cordoned[n.Name] = true
		}
	}
	reps := &v1.LocalVolumeReplicaList{}
	if err := r.s.Client.List(ctx, reps); err != nil {
		return 0, err
	}
	n := 0
	for _, rep := range reps.Items {
		if cordoned[rep.Spec.NodeName] && rep.DeletionTimestamp == nil {
			n++
		}
	}
	return n, nil
}

// migrations counts the migrations by outcome; bytesVerified are the bytes
// of the completed ones (their copies were checksummed), volumesLost the
// volumes whose written data no replica holds any more.
func (r *runner) migrations(ctx context.Context) (report.Migrations, error) {
	var m report.Migrations
	list := &v1.LocalVolumeMigrateList{}
	if err := r.s.Client.List(ctx, list); err != nil {
		return m, err
	}
	var first, last time.Time
	for _, x := range list.Items {
		m.Started++
		if c := x.CreationTimestamp.Time; first.IsZero() || c.Before(first) {
			first = c
		}
		if x.Status.CompletionTime != nil && x.Status.CompletionTime.After(last) {
			last = x.Status.CompletionTime.Time
		}
		switch x.Status.State {
		case v1.OperationStateCompleted:
			m.Completed++
			m.BytesVerified += x.Status.TotalBytes
		case v1.OperationStateFailed:
			m.Failed++
		case v1.OperationStateAborted:
			m.Aborted++
		}
	}
	if !last.IsZero() {
		m.DurationSeconds = last.Sub(first).Seconds()
	}
	lost, err := r.verifyData(ctx)
	m.VolumesLost = lost
	return m, err
}

// volumeReplicas resolves a workload's bound claims to their LocalVolumes.
func (r *runner) volumesOf(ctx context.Context, workload string) ([]*v1.LocalVolume, error) {
	pvcs, err := r.s.Clientset.CoreV1().PersistentVolumeClaims(Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(labels.Set{WorkloadLabel: workload}).String()})
	if err != nil {
		return nil, err
	}
	var out []*v1.LocalVolume
	for _, pvc := range pvcs.Items {
		if pvc.Status.Phase != corev1.ClaimBound {
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

// writeData plays the application: it writes writeBytes of random data
// into every replica of every provisioned volume of the workloads that ask
// for it (through the emulated backend, as a pod would through its mount)
// and remembers each volume's checksum.
func (r *runner) writeData(ctx context.Context) error {
	r.written = map[string]string{}
	if err := r.promote(ctx); err != nil {
		return err
	}
	var mu sync.Mutex
	var jobs []func() error
	for _, w := range r.sc.Workloads {
		if w.WriteBytes == "" {
			continue
		}
		q := resource.MustParse(string(w.WriteBytes))
		n := q.Value()
		vols, err := r.volumesOf(ctx, w.Name)
		if err != nil {
			return err
		}
		r.o.Log("phase: writing %s into each of %d volumes of %s", w.WriteBytes, len(vols), w.Name)
		for _, lv := range vols {
			data := make([]byte, n)
			seeded := mathrand.NewChaCha8([32]byte([]byte(fmt.Sprintf("%-32.32s", lv.Name))))
			_, _ = seeded.Read(data)
			if r.sc.DRBD && lv.Replicated() {
				jobs = append(jobs, func() error {
					sum, err := r.writeReplicated(ctx, lv, data)
					if err != nil {
						return err
					}
					mu.Lock()
					r.written[lv.Name] = sum
					mu.Unlock()
					return nil
				})
				continue
			}
			for _, node := range lv.ReplicaNodes() {
				lv, node := lv, node
				jobs = append(jobs, func() error {
					sum, err := r.writeVolume(ctx, node, lv, data)
					if err != nil {
						return fmt.Errorf("volume %s on %s: %w", lv.Name, node, err)
					}
					mu.Lock()
					r.written[lv.Name] = sum
					mu.Unlock()
					return nil
				})
			}
		}
	}
	return runAll(jobs, 8)
}

// openReplica opens the data of the volume's replica on node through the
// emulated backend, as the application would see it, and returns its size.
func (r *runner) openReplica(ctx context.Context, node string, lv *v1.LocalVolume, write bool) (*os.File, int64, error) {
	be, err := emulated.New(r.s.PoolDir(node), nil, emulated.WithoutLoop())
	if err != nil {
		return nil, 0, err
	}
	vol, err := be.GetVolume(ctx, lv.Spec.PoolName, lv.Name)
	if err != nil {
		return nil, 0, err
	}
	f, err := be.OpenData(ctx, lv.Spec.PoolName, lv.Name, write)
	return f, vol.SizeBytes, err
}

// writeVolume writes data at the start of the volume's replica on node and
// returns the replica's checksum.
func (r *runner) writeVolume(ctx context.Context, node string, lv *v1.LocalVolume, data []byte) (string, error) {
	f, size, err := r.openReplica(ctx, node, lv, true)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := f.WriteAt(data, 0); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	return replication.Checksum(f, size)
}

// readChecksum is the checksum of the volume's replica on node.
func (r *runner) readChecksum(ctx context.Context, node string, lv *v1.LocalVolume) (string, error) {
	f, size, err := r.openReplica(ctx, node, lv, false)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return replication.Checksum(f, size)
}

// verifyData counts the written volumes none of whose current replicas
// holds the data written into it.
func (r *runner) verifyData(ctx context.Context) (int, error) {
	lost := 0
	for name, want := range r.written {
		lv := &v1.LocalVolume{}
		if err := r.s.Client.Get(ctx, client.ObjectKey{Name: name}, lv); err != nil {
			r.o.Log("data: volume %s: %v", name, err)
			lost++
			continue
		}
		ok := false
		nodes := lv.ReplicaNodes()
		if at := r.runningOn(ctx, lv); slices.Contains(nodes, at) {
			// Where the application reads it now.
			nodes = []string{at}
		}
		for _, node := range nodes {
			got, err := r.readChecksum(ctx, node, lv)
			if err == nil && got == want {
				ok = true
				break
			}
			r.o.Log("data: volume %s on %s: checksum %s, want %s (%v)", name, node, got, want, err)
		}
		if !ok {
			lost++
		}
	}
	return lost, nil
}

// runningOn is the node a Running pod using lv's claim is on, "" when none.
func (r *runner) runningOn(ctx context.Context, lv *v1.LocalVolume) string {
	pods, err := r.pods.Pods(Namespace).List(labels.Everything())
	if err != nil {
		return ""
	}
	for _, p := range pods {
		if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil || p.Spec.NodeName == "" {
			continue
		}
		for _, v := range p.Spec.Volumes {
			if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == lv.Spec.PersistentVolumeClaimName && p.Namespace == lv.Spec.PersistentVolumeClaimNamespace {
				if n, err := r.s.Clientset.CoreV1().Nodes().Get(ctx, p.Spec.NodeName, metav1.GetOptions{}); err == nil && n.Annotations[kwokNodeAnnotation] == "fake" {
					return p.Spec.NodeName
				}
			}
		}
	}
	return ""
}

// runAll runs jobs on n workers and returns the first error.
func runAll(jobs []func() error, n int) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	ch := make(chan func() error)
	for k := 0; k < n; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for job := range ch {
				if err := job(); err != nil {
					mu.Lock()
					first = errors.Join(first, err)
					mu.Unlock()
				}
			}
		}()
	}
	for _, j := range jobs {
		ch <- j
	}
	close(ch)
	wg.Wait()
	return first
}
