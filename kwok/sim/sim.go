// Package sim runs a scenario (kwok/scenario) on the whole system
// (internal/stack) and measures it (kwok/report): `hwameistor-sim run` and
// test/sim call Run.
package sim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	kubeinformers "k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"sigs.k8s.io/yaml"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/internal/stack"
	"hwameistor.io/local/internal/testenv"
	"hwameistor.io/local/kwok/report"
	"hwameistor.io/local/kwok/scenario"
)

// Namespace holds every workload of a scenario.
const Namespace = "sim"

// Scheduler is the scheduler the workloads' pods are routed to (the
// webhook sets it; the pods name none); Baseline is the stock one.
const (
	Scheduler = "hwameistor-scheduler"
	Baseline  = "default-scheduler"
)

// Options say how to run.
type Options struct {
	// Name and Ports are the stack's work folder (_output/<Name>) and port
	// block (internal/stack).
	Name  string
	Ports int
	// Assets is the control-plane binaries folder (KUBEBUILDER_ASSETS).
	Assets string
	// Keep leaves the stack running after the run (the caller stops it
	// with the returned Stack's Down).
	Keep bool
	// Settle ends the wait once no pod changed for this long and every pod
	// not Running is unschedulable; 10s when zero.
	Settle time.Duration
	// Scheduler is Scheduler (default) or Baseline.
	Scheduler string
	// Pprof serves the components' pprof endpoints (internal/stack).
	Pprof bool
	// Log receives progress lines; nil discards them.
	Log func(format string, args ...any)
}

// Run brings the stack up, applies sc, waits, runs the actions and returns
// the report. The stack is torn down before Run returns (also on error or
// when ctx is cancelled) unless o.Keep; then it is returned running.
func Run(ctx context.Context, sc *scenario.Scenario, o Options) (rep *report.Report, s *stack.Stack, err error) {
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	if o.Settle == 0 {
		o.Settle = 10 * time.Second
	}
	if o.Scheduler == "" {
		o.Scheduler = Scheduler
	}
	nodes := sc.NodeNames()
	nodePools := map[string]string{}
	nodeLabels := map[string]map[string]string{}
	cordoned := map[string]bool{}
	for _, g := range sc.Nodes {
		for i := 0; i < g.Count; i++ {
			n := fmt.Sprintf("%s-%d", g.NamePrefix, i)
			nodePools[n] = g.PoolsFlag()
			nodeLabels[n] = g.Labels
			cordoned[n] = g.Cordoned
		}
	}
	o.Log("phase: starting the stack (%d nodes)", len(nodes))
	s, err = stack.Up(stack.Options{Context: ctx, Name: o.Name, Ports: o.Ports, Assets: o.Assets, Nodes: nodes,
		Pools: sc.Nodes[0].PoolsFlag(), NodePools: nodePools, NodeLabels: nodeLabels, Cordoned: cordoned, Baseline: o.Scheduler == Baseline, CopyRate: string(sc.CopyRate), MigrationsPerNode: sc.MigrationsPerNode, Pprof: o.Pprof,
		DRBD: sc.DRBD, OwnAgent: sc.FailedNodes(), RebuildAfter: sc.RebuildAfter.Duration, Log: func(f string, a ...any) { o.Log("stack: "+f, a...) }})
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if !o.Keep {
			o.Log("phase: tearing down")
			s.Down()
			s = nil
		} else {
			o.Log("kept running: export KUBECONFIG=%s (logs in %s)", s.Kubeconfig, s.Work)
		}
	}()
	r := &runner{sc: sc, s: s, o: o, bound: map[types.UID]time.Time{}, running: map[types.UID]time.Time{}}
	// The pods are watched, not listed over and over: at thousands of pods
	// the lists would load the apiserver the run measures.
	informers := kubeinformers.NewSharedInformerFactoryWithOptions(s.Clientset, 0, kubeinformers.WithNamespace(Namespace))
	r.pods = informers.Core().V1().Pods().Lister()
	ictx, stopInformers := context.WithCancel(ctx)
	defer stopInformers()
	informers.Start(ictx.Done())
	informers.WaitForCacheSync(ictx.Done())
	rep, err = r.run(ctx)
	if err != nil && ctx.Err() == nil {
		err = fmt.Errorf("%w\n%s", err, s.Logs())
	}
	return rep, s, err
}

type runner struct {
	sc *scenario.Scenario
	s  *stack.Stack
	o  Options

	t0             time.Time
	created        sync.WaitGroup
	errMu          sync.Mutex
	createErr      error
	mu             sync.Mutex
	bound, running map[types.UID]time.Time
	pods           corelisters.PodLister

	// throughput and timeline are measured when the workloads settle,
	// before the actions (their pods are new ones).
	throughput report.Throughput
	progress   *report.Progress
	// overcommits are seen by sampleOvercommits during the run.
	overcommits overcommits
	// written are the checksums of the data writeData put in each volume.
	written map[string]string
	// requestsBefore are the apiserver's request counters at t0.
	requestsBefore map[string]float64
	// failed are the pods of HA volumes on the nodes fail actions stopped.
	failed []failedPod
}

func (r *runner) run(ctx context.Context) (*report.Report, error) {
	o, s := r.o, r.s
	o.Log("phase: waiting for the node agents to report %d nodes", len(s.Nodes))
	// Thousands of nodes take the agents minutes to report on 2 cores.
	reportWait := max(120*time.Second, time.Duration(len(s.Nodes))*60*time.Millisecond)
	err := wait.PollUntilContextTimeout(ctx, time.Second, reportWait, true, func(ctx context.Context) (bool, error) {
		list := &v1.LocalStorageNodeList{}
		if err := s.Client.List(ctx, list); err != nil {
			return false, nil
		}
		ready := 0
		for _, n := range list.Items {
			if n.Status.State == v1.StateReady {
				ready++
			}
		}
		return ready == len(s.Nodes), nil
	})
	if err != nil {
		return nil, fmt.Errorf("node agents did not report every node: %w", err)
	}
	if err := r.install(ctx); err != nil {
		return nil, err
	}
	if o.Scheduler == Baseline {
		if err := r.awaitCapacity(ctx); err != nil {
			return nil, err
		}
	}
	expected := 0
	for _, w := range r.sc.Workloads {
		expected += replicas(w)
	}
	o.Log("phase: creating %d workloads (%d pods)", len(r.sc.Workloads), expected)
	// A failed reading leaves the report without its request counts.
	r.requestsBefore, _ = apiRequests(ctx, s.Clientset)
	r.t0 = time.Now()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, w := range r.sc.Workloads {
		r.created.Add(1)
		go func(w scenario.Workload) {
			defer r.created.Done()
			if err := r.create(cctx, w); err != nil {
				r.errMu.Lock()
				if r.createErr == nil {
					r.createErr = fmt.Errorf("workload %s: %w", w.Name, err)
				}
				r.errMu.Unlock()
				cancel()
			}
		}(w)
	}
	createdAll := make(chan struct{})
	go func() { r.created.Wait(); close(createdAll) }()
	go r.sampleOvercommits(cctx)
	if err := r.await(ctx, expected, createdAll, r.t0.Add(r.sc.TimeoutOrDefault())); err != nil {
		return nil, err
	}
	<-createdAll
	if r.createErr != nil {
		return nil, r.createErr
	}
	r.throughput, r.progress = r.measureThroughput()
	if err := r.writeData(ctx); err != nil {
		return nil, fmt.Errorf("writing data into the volumes: %w", err)
	}
	for i, a := range r.sc.Actions {
		if err := r.act(ctx, i, a); err != nil {
			return nil, fmt.Errorf("actions[%d]: %w", i, err)
		}
	}
	if len(r.sc.Actions) > 0 {
		if err := r.settleAfterActions(ctx, expected); err != nil {
			return nil, err
		}
	}
	o.Log("phase: collecting the report")
	return r.collect(ctx)
}

// install creates the namespace and the default storage classes the
// workloads use. Only those: with capacity tracking (the baseline) every
// class costs a CSIStorageCapacity object per node.
func (r *runner) install(ctx context.Context) error {
	used := r.storageClasses()
	cs := r.s.Clientset
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	raw, err := os.ReadFile(filepath.Join(testenv.RootDir(), "manifests", "base", "storageclasses.yaml"))
	if err != nil {
		return err
	}
	for _, doc := range strings.Split(string(raw), "\n---") {
		sc := &storagev1.StorageClass{}
		if err := yaml.Unmarshal([]byte(doc), sc); err != nil {
			return fmt.Errorf("storageclasses.yaml: %w", err)
		}
		if sc.Name == "" || !used[sc.Name] {
			continue
		}
		if _, err := cs.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	return nil
}

// awaitCapacity waits until csi-provisioner has published a
// CSIStorageCapacity object for every storage class and node: until then
// the baseline's VolumeBinding finds "not enough free storage" everywhere,
// which would measure the sidecar's start, not the scheduler.
func (r *runner) awaitCapacity(ctx context.Context) error {
	want := len(r.storageClasses()) * len(r.s.Nodes)
	r.o.Log("phase: waiting for csi-provisioner to publish %d CSIStorageCapacity objects", want)
	last := time.Time{}
	return wait.PollUntilContextTimeout(ctx, 2*time.Second, 10*time.Minute, true, func(ctx context.Context) (bool, error) {
		list, err := r.s.Clientset.StorageV1().CSIStorageCapacities(metav1.NamespaceAll).List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		if err != nil {
			return false, nil
		}
		if time.Since(last) >= 10*time.Second {
			r.o.Log("capacity: %d of %d CSIStorageCapacity objects", len(list.Items), want)
			last = time.Now()
		}
		return len(list.Items) >= want, nil
	})
}

// storageClasses are the classes the scenario's workloads use.
func (r *runner) storageClasses() map[string]bool {
	used := map[string]bool{}
	for _, w := range r.sc.Workloads {
		if w.StorageClass != "" {
			used[w.StorageClass] = true
		}
	}
	return used
}

func replicas(w scenario.Workload) int {
	if w.Replicas == 0 {
		return 1
	}
	return w.Replicas
}

// WorkloadLabel on a claim names the scenario workload it belongs to.
const WorkloadLabel = "sim.hwameistor.io/workload"

// claim is a workload's claim (a template when name is empty).
func claim(w scenario.Workload, name string, size scenario.Size) corev1.PersistentVolumeClaim {
	class := w.StorageClass
	return corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: Namespace, Labels: map[string]string{WorkloadLabel: w.Name}},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: &class,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(string(size))}},
		},
	}
}

// podSpec is a workload's pod. Pods with claims name no scheduler (the
// webhook routes them); pods without name the scheduler under test, which
// the webhook would leave to default-scheduler (the no-volumes scenarios
// measure our profile on them).
func podSpec(w scenario.Workload, scheduler string, claim func(j int) string) corev1.PodSpec {
	spec := corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "busybox"}}}
	if len(w.Volumes) == 0 {
		spec.SchedulerName = scheduler
	}
	for j := range w.Volumes {
		name := fmt.Sprintf("vol%d", j)
		spec.Containers[0].VolumeMounts = append(spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: name, MountPath: "/" + name})
		if claim != nil {
			spec.Volumes = append(spec.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim(j)}}})
		}
	}
	return spec
}

// pace calls step(i) for i in [0, n): all at once for a burst, else
// spaced by 1/rate.
func pace(ctx context.Context, w scenario.Workload, n int, step func(i int) error) error {
	var tick time.Duration
	if w.Arrival.Rate > 0 {
		tick = time.Duration(float64(time.Second) / w.Arrival.Rate)
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		if tick > 0 {
			if d := time.Until(start.Add(time.Duration(i) * tick)); d > 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(d):
				}
			}
		}
		if err := step(i); err != nil {
			return err
		}
	}
	return nil
}

// create makes one workload's objects at its arrival rate.
func (r *runner) create(ctx context.Context, w scenario.Workload) error {
	cs := r.s.Clientset
	n := replicas(w)
	labels := map[string]string{"app": w.Name}
	meta := metav1.ObjectMeta{Name: w.Name, Namespace: Namespace, Labels: labels}
	switch w.Kind {
	case scenario.KindPod:
		return pace(ctx, w, n, func(i int) error {
			name := fmt.Sprintf("%s-%d", w.Name, i)
			for j, size := range w.Volumes {
				pvc := claim(w, fmt.Sprintf("%s-vol%d", name, j), size)
				if _, err := cs.CoreV1().PersistentVolumeClaims(Namespace).Create(ctx, &pvc, metav1.CreateOptions{}); err != nil {
					return err
				}
			}
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: Namespace, Labels: labels},
				Spec: podSpec(w, r.o.Scheduler, func(j int) string { return fmt.Sprintf("%s-vol%d", name, j) })}
			_, err := cs.CoreV1().Pods(Namespace).Create(ctx, pod, metav1.CreateOptions{})
			return err
		})
	case scenario.KindStatefulSet, scenario.KindDeployment:
		initial := int32(n)
		if w.Arrival.Rate > 0 {
			initial = 0
		}
		tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}}
		var err error
		if w.Kind == scenario.KindStatefulSet {
			tmpl.Spec = podSpec(w, r.o.Scheduler, nil)
			sts := &appsv1.StatefulSet{ObjectMeta: meta, Spec: appsv1.StatefulSetSpec{
				Replicas: &initial, Selector: &metav1.LabelSelector{MatchLabels: labels}, ServiceName: w.Name,
				PodManagementPolicy: appsv1.ParallelPodManagement, Template: tmpl}}
			for j, size := range w.Volumes {
				tmpl := claim(w, fmt.Sprintf("vol%d", j), size)
				tmpl.Namespace = ""
				sts.Spec.VolumeClaimTemplates = append(sts.Spec.VolumeClaimTemplates, tmpl)
			}
			_, err = cs.AppsV1().StatefulSets(Namespace).Create(ctx, sts, metav1.CreateOptions{})
		} else {
			for j, size := range w.Volumes {
				pvc := claim(w, fmt.Sprintf("%s-vol%d", w.Name, j), size)
				if _, err := cs.CoreV1().PersistentVolumeClaims(Namespace).Create(ctx, &pvc, metav1.CreateOptions{}); err != nil {
					return err
				}
			}
			tmpl.Spec = podSpec(w, r.o.Scheduler, func(j int) string { return fmt.Sprintf("%s-vol%d", w.Name, j) })
			dep := &appsv1.Deployment{ObjectMeta: meta, Spec: appsv1.DeploymentSpec{
				Replicas: &initial, Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl}}
			_, err = cs.AppsV1().Deployments(Namespace).Create(ctx, dep, metav1.CreateOptions{})
		}
		if err != nil || initial > 0 {
			return err
		}
		return pace(ctx, w, n, func(i int) error {
			patch := []byte(fmt.Sprintf(`{"spec":{"replicas":%d}}`, i+1))
			var err error
			if w.Kind == scenario.KindStatefulSet {
				_, err = cs.AppsV1().StatefulSets(Namespace).Patch(ctx, w.Name, types.MergePatchType, patch, metav1.PatchOptions{})
			} else {
				_, err = cs.AppsV1().Deployments(Namespace).Patch(ctx, w.Name, types.MergePatchType, patch, metav1.PatchOptions{})
			}
			return err
		})
	}
	return fmt.Errorf("unknown kind %q", w.Kind)
}

// await polls the pods until every expected pod runs, the pods settle
// (nothing changed for o.Settle and every pod not running is
// unschedulable), or the scenario timeout; it records when each pod was
// first seen bound and running.
func (r *runner) await(ctx context.Context, expected int, createdAll <-chan struct{}, deadline time.Time) error {
	lastChange, lastLog := time.Now(), time.Time{}
	prev := ""
	for {
		pods, err := r.pods.Pods(Namespace).List(labels.Everything())
		if err != nil {
			return err
		}
		now := time.Now()
		boundN, runningN, unschedulable := 0, 0, 0
		r.mu.Lock()
		for _, p := range pods {
			if p.Spec.NodeName != "" {
				boundN++
				if _, ok := r.bound[p.UID]; !ok {
					r.bound[p.UID] = now
				}
			}
			if p.Status.Phase == corev1.PodRunning {
				runningN++
				if _, ok := r.running[p.UID]; !ok {
					r.running[p.UID] = now
				}
			} else if c := podScheduled(p); c != nil && c.Status == corev1.ConditionFalse {
				unschedulable++
			}
		}
		r.mu.Unlock()
		done := false
		select {
		case <-createdAll:
			done = true
		default:
		}
		state := fmt.Sprintf("%d/%d/%d/%d", len(pods), boundN, runningN, unschedulable)
		if state != prev {
			prev, lastChange = state, now
		}
		if now.Sub(lastLog) >= 5*time.Second || (done && runningN == expected) {
			r.o.Log("pods: %d created, %d scheduled, %d running of %d; %d unschedulable", len(pods), boundN, runningN, expected, unschedulable)
			lastLog = now
		}
		r.errMu.Lock()
		failed := r.createErr != nil
		r.errMu.Unlock()
		switch {
		case failed:
			return nil
		case done && runningN == expected && len(pods) == expected:
			r.o.Log("phase: every pod is running")
			return nil
		case done && len(pods) == expected && runningN+unschedulable == expected && now.Sub(lastChange) >= r.o.Settle:
			r.o.Log("phase: settled, %d pods unschedulable", unschedulable)
			return nil
		case now.After(deadline):
			r.o.Log("phase: scenario timeout %s reached", r.sc.TimeoutOrDefault())
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func podScheduled(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodScheduled {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// act runs one action.
func (r *runner) act(ctx context.Context, i int, a scenario.Action) error {
	cs := r.s.Clientset
	switch {
	case a.Wait != nil:
		r.o.Log("action %d: wait %s", i, a.Wait.Duration)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(a.Wait.Duration):
		}
		return nil
	case a.Uncordon != "":
		r.o.Log("action %d: uncordon %s", i, a.Uncordon)
		_, err := cs.CoreV1().Nodes().Patch(ctx, a.Uncordon, types.MergePatchType, []byte(`{"spec":{"unschedulable":false}}`), metav1.PatchOptions{})
		return err
	case a.Drain != "":
		return r.drain(ctx, i, a.Drain)
	case a.Restart != "":
		if err := r.awaitMigrationState(ctx, i, a.At); err != nil {
			return err
		}
		r.o.Log("action %d: restart %s", i, a.Restart)
		return r.s.Restart(a.Restart)
	case a.Fail != "":
		return r.fail(ctx, i, a.Fail)
	case a.Recover != "":
		return r.recover(ctx, i, a.Recover)
	case a.Abort != "":
		if err := r.awaitMigrationState(ctx, i, a.At); err != nil {
			return err
		}
		return r.abort(ctx, i, a.Abort)
	}
	return errors.New("empty action")
}

// drain cordons the node and evicts its pods through the eviction API, as
// kubectl drain does, then waits for them to be gone. The cordon starts
// the migration of the node's volumes (the evictor); the pods controllers
// make again are Pending until their volumes have moved.
func (r *runner) drain(ctx context.Context, i int, node string) error {
	cs := r.s.Clientset
	r.o.Log("action %d: drain %s (cordon, evict)", i, node)
	if _, err := cs.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, []byte(`{"spec":{"unschedulable":true}}`), metav1.PatchOptions{}); err != nil {
		return err
	}
	pods, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		return err
	}
	var evicted []corev1.Pod
	for _, p := range pods.Items {
		if owner := metav1.GetControllerOf(&p); owner != nil && owner.Kind == "DaemonSet" {
			continue
		}
		ev := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace}}
		err := wait.PollUntilContextTimeout(ctx, time.Second, 60*time.Second, true, func(ctx context.Context) (bool, error) {
			err := cs.PolicyV1().Evictions(p.Namespace).Evict(ctx, ev)
			switch {
			case err == nil || apierrors.IsNotFound(err):
				return true, nil
			case apierrors.IsTooManyRequests(err):
				return false, nil // a disruption budget: retry, as kubectl drain does
			}
			return false, err
		})
		if err != nil {
			return fmt.Errorf("evicting %s/%s: %w", p.Namespace, p.Name, err)
		}
		evicted = append(evicted, p)
	}
	r.o.Log("action %d: evicted %d pods from %s; waiting for them to go", i, len(evicted), node)
	if n, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{}); err == nil && n.Labels[v1.EvictionLabel] == v1.EvictionDisable {
		defer r.logNodeWarnings(ctx, i, node)
	}
	err = wait.PollUntilContextTimeout(ctx, time.Second, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		for _, p := range evicted {
			cur, err := cs.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
			if err == nil && cur.UID == p.UID {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	return r.demote(ctx, node, evicted)
}

// logNodeWarnings shows the Warning Events on a node (why a drain moves
// nothing, e.g. EvictionDisabled), waiting a little for the evictor.
func (r *runner) logNodeWarnings(ctx context.Context, i int, node string) {
	_ = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 5*time.Second, true, func(ctx context.Context) (bool, error) {
		events, err := r.s.Clientset.CoreV1().Events("").List(ctx, metav1.ListOptions{
			FieldSelector: "involvedObject.kind=Node,involvedObject.name=" + node + ",type=Warning"})
		if err != nil || len(events.Items) == 0 {
			return false, nil
		}
		for _, e := range events.Items {
			r.o.Log("action %d: node %s: %s: %s", i, node, e.Reason, e.Message)
		}
		return true, nil
	})
}

// collect measures the cluster for the report.
func (r *runner) collect(ctx context.Context) (*report.Report, error) {
	cs, c := r.s.Clientset, r.s.Client
	rep := report.New(r.sc.Name, r.o.Scheduler)
	rep.Nodes = len(r.s.Nodes)
	pods, err := cs.CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	rep.Pods.Total = len(pods.Items)
	for _, p := range pods.Items {
		switch p.Status.Phase {
		case corev1.PodRunning:
			rep.Pods.Running++
		case corev1.PodPending:
			rep.Pods.Pending++
			reason := "bound, not running yet"
			if cond := podScheduled(&p); cond != nil && cond.Status == corev1.ConditionFalse {
				reason = cond.Message
				if reason == "" {
					reason = cond.Reason
				}
			} else if p.Spec.NodeName == "" {
				reason = "not scheduled yet"
			}
			rep.Pods.PendingReasons[reason]++
		}
	}

	pvcs, err := cs.CoreV1().PersistentVolumeClaims(Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	events, err := cs.CoreV1().Events(Namespace).List(ctx, metav1.ListOptions{FieldSelector: "reason=ProvisioningFailed"})
	if err != nil {
		return nil, err
	}
	failedClaims := map[string]bool{}
	for _, e := range events.Items {
		if e.InvolvedObject.Kind == "PersistentVolumeClaim" {
			failedClaims[e.InvolvedObject.Name] = true
		}
	}
	rep.Volumes.Requested = len(pvcs.Items)
	for _, pvc := range pvcs.Items {
		if pvc.Status.Phase == corev1.ClaimBound {
			rep.Volumes.Provisioned++
		} else if failedClaims[pvc.Name] {
			rep.Volumes.Failed++
		}
	}

	if err := r.overcommits.sample(ctx, c, cs); err != nil {
		return nil, err
	}
	rep.Overcommits = r.overcommits.count()
	lsns := &v1.LocalStorageNodeList{}
	if err := c.List(ctx, lsns); err != nil {
		return nil, err
	}
	first := true
	for _, n := range lsns.Items {
		names := make([]string, 0, len(n.Status.Pools))
		for k := range n.Status.Pools {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			p := n.Status.Pools[k]
			if p.TotalCapacityBytes <= 0 {
				continue
			}
			rep.PoolUse = append(rep.PoolUse, report.PoolUse{Node: n.Name, Pool: k, UsedBytes: p.UsedCapacityBytes, TotalBytes: p.TotalCapacityBytes})
			u := float64(p.UsedCapacityBytes) / float64(p.TotalCapacityBytes)
			if first || u < rep.Pools.UtilizationMin {
				rep.Pools.UtilizationMin = u
			}
			if first || u > rep.Pools.UtilizationMax {
				rep.Pools.UtilizationMax = u
			}
			first = false
			if p.UsedCapacityBytes > p.TotalCapacityBytes {
				rep.Pools.Overfull++
			}
		}
	}
	rep.Failover = r.failover()
	if rep.Migrations, err = r.migrations(ctx); err != nil {
		return nil, err
	}
	for name, u := range r.s.Usage() {
		rep.Components[name] = report.Component{CPUSeconds: u.CPUSeconds, PeakRSSBytes: u.PeakRSSBytes}
	}
	if r.requestsBefore != nil {
		if after, err := apiRequests(ctx, cs); err == nil {
			rep.APIRequests = requestsSince(r.requestsBefore, after)
		}
	}
	rep.Throughput = r.throughput
	rep.Progress = r.progress
	rep.DurationSeconds = time.Since(r.t0).Seconds()
	return rep, nil
}
