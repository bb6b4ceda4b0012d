// Package evictor turns `kubectl drain` into volume migrations. When a Node
// is cordoned (spec.unschedulable) it creates one LocalVolumeMigrate per
// volume group holding a replica on the node; a pod labelled
// hwameistor.io/eviction=start gets the groups of its own volumes migrated
// off its node. Nodes labelled hwameistor.io/eviction=disable keep their
// volumes, with a Warning Event saying what that means for their pods.
//
// Migrations have deterministic names (MigrateName), so a reconcile that runs
// twice, or a controller restarted mid-way, creates nothing twice. The
// evictor only creates migrations; the migrate controller carries them out,
// and a user stops one with spec.abort.
package evictor

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/internal/volumes"
)

// DisabledWarnedAnnotation on a Node holds the v1.EvictorCordonedAtAnnotation
// of the cordon the EvictionDisabled Event was recorded for (once per
// cordon). The evictor's other labels and annotations are in api/v1alpha1
// (MigrateTriggerLabel, MigrateSourceNodeLabel, EvictorRequestedAtAnnotation,
// EvictorCordonedAtAnnotation), shared with `kubectl hwameistor`.
const DisabledWarnedAnnotation = "hwameistor.io/evictor-disabled-warned"

// Event reasons.
const (
	// EventMigrationStarted (Normal) on the Node or the labelled pod: the
	// migrations created.
	EventMigrationStarted = "MigrationStarted"
	// EventVolumeMigrating (Normal) on each pod on the source node using a
	// volume that now migrates.
	EventVolumeMigrating = "VolumeMigrating"
	// EventEvictionDisabled (Warning) on a cordoned Node labelled
	// hwameistor.io/eviction=disable, or on a pod labelled
	// hwameistor.io/eviction=start on such a node.
	EventEvictionDisabled = "EvictionDisabled"
	// EventMigrationRecreated (Normal) on the Node or pod: a finished
	// migration of an earlier request was replaced by a new one.
	EventMigrationRecreated = "MigrationRecreated"
	// EventMigrationNotCreated (Warning) on the Node or the labelled pod:
	// a migration could not be created (the apiserver refused it); retried
	// with backoff.
	EventMigrationNotCreated = "MigrationNotCreated"
)

// Field indexes registered by SetupWithManager. The names carry the
// package's prefix so that another controller indexing the same field under
// its own name does not conflict in the shared cache.
const (
	// ReplicaNodeField indexes LocalVolumeReplicas by spec.nodeName.
	ReplicaNodeField = "evictor.spec.nodeName"
	// VolumeGroupField indexes LocalVolumes by spec.volumegroup.
	VolumeGroupField = "evictor.spec.volumegroup"
	// MigrateSourceField indexes LocalVolumeMigrates by spec.sourceNode.
	MigrateSourceField = "evictor.spec.sourceNode"
	// PodNodeField indexes Pods by spec.nodeName.
	PodNodeField = "evictor.spec.nodeName"
)

// cacheRetry is how soon a reconcile runs again when the cache has not yet
// caught up with what the apiserver said (an AlreadyExists for an object
// the cache does not show, or a migration still being deleted).
const cacheRetry = time.Second

// Reconciler creates LocalVolumeMigrates for cordoned nodes and for pods
// labelled hwameistor.io/eviction=start. One controller serves both: a
// request without a namespace is a Node, one with a namespace is a Pod.
//
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=pods;persistentvolumeclaims;persistentvolumes,verbs=get;list;watch
// +kubebuilder:rbac:groups=hwameistor.io,resources=localvolumes;localvolumereplicas,verbs=get;list;watch
// +kubebuilder:rbac:groups=hwameistor.io,resources=localvolumemigrates,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
type Reconciler struct {
	Client   client.Client
	Recorder record.EventRecorder
}

var _ reconcile.Reconciler = &Reconciler{}

// SetupWithManager registers the field indexes and the controller: Nodes,
// labelled Pods, and the LocalVolumeReplicas and LocalVolumeMigrates that
// change what a cordoned node needs.
func (r *Reconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	indexes := []struct {
		obj   client.Object
		field string
		key   func(client.Object) string
	}{
		{&v1.LocalVolumeReplica{}, ReplicaNodeField, func(o client.Object) string { return o.(*v1.LocalVolumeReplica).Spec.NodeName }},
		{&v1.LocalVolume{}, VolumeGroupField, func(o client.Object) string { return o.(*v1.LocalVolume).Spec.VolumeGroup }},
		{&v1.LocalVolumeMigrate{}, MigrateSourceField, func(o client.Object) string { return o.(*v1.LocalVolumeMigrate).Spec.SourceNode }},
		{&corev1.Pod{}, PodNodeField, func(o client.Object) string { return o.(*corev1.Pod).Spec.NodeName }},
	}
	for _, ix := range indexes {
		key := ix.key
		err := idx.IndexField(ctx, ix.obj, ix.field, func(o client.Object) []string {
			if k := key(o); k != "" {
				return []string{k}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("indexing %T by %s: %w", ix.obj, ix.field, err)
		}
	}
	labelled, err := predicate.LabelSelectorPredicate(metav1.LabelSelector{MatchLabels: map[string]string{v1.EvictionLabel: v1.EvictionStart}})
	if err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("evictor").
		For(&corev1.Node{}, builder.WithPredicates(nodeChanged)).
		Watches(&corev1.Pod{}, &handler.EnqueueRequestForObject{}, builder.WithPredicates(labelled, podChanged)).
		Watches(&v1.LocalVolumeReplica{}, handler.EnqueueRequestsFromMapFunc(r.cordonedNodeOfReplica),
			builder.WithPredicates(predicate.Funcs{
				UpdateFunc: func(event.UpdateEvent) bool { return false },
				DeleteFunc: func(event.DeleteEvent) bool { return false },
			})).
		Watches(&v1.LocalVolumeMigrate{}, handler.EnqueueRequestsFromMapFunc(r.requestersOfMigration),
			builder.WithPredicates(migrationEnded)).
		Complete(r)
}

// nodeChanged lets through Node updates that can change the decision: a
// cordon or uncordon, or a label change (hwameistor.io/eviction); not the
// kubelet's status heartbeats.
var nodeChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, ok1 := e.ObjectOld.(*corev1.Node)
		n, ok2 := e.ObjectNew.(*corev1.Node)
		if !ok1 || !ok2 {
			return true
		}
		return o.Spec.Unschedulable != n.Spec.Unschedulable || !equality.Semantic.DeepEqual(o.Labels, n.Labels)
	},
}

// podChanged lets through a labelled pod when it appears, is labelled or is
// scheduled; not its status updates.
var podChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, ok1 := e.ObjectOld.(*corev1.Pod)
		n, ok2 := e.ObjectNew.(*corev1.Pod)
		if !ok1 || !ok2 {
			return true
		}
		return o.Spec.NodeName != n.Spec.NodeName || !equality.Semantic.DeepEqual(o.Labels, n.Labels)
	},
	DeleteFunc: func(event.DeleteEvent) bool { return false },
}

// migrationEnded lets through a migration that finishes or goes: a group it
// covered may need a migration of the evictor's now.
var migrationEnded = predicate.Funcs{
	CreateFunc: func(event.CreateEvent) bool { return false },
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, ok1 := e.ObjectOld.(*v1.LocalVolumeMigrate)
		n, ok2 := e.ObjectNew.(*v1.LocalVolumeMigrate)
		if !ok1 || !ok2 {
			return true
		}
		return o.Status.State.Finished() != n.Status.State.Finished()
	},
}

// cordonedNodeOfReplica maps a new replica to its node when that node is
// cordoned (a replica that appears there late must move too).
func (r *Reconciler) cordonedNodeOfReplica(ctx context.Context, o client.Object) []reconcile.Request {
	rep, ok := o.(*v1.LocalVolumeReplica)
	if !ok || rep.Spec.NodeName == "" {
		return nil
	}
	node := &corev1.Node{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: rep.Spec.NodeName}, node); err != nil || !node.Spec.Unschedulable {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: node.Name}}}
}

// requestersOfMigration maps a migration to its source node and to the
// pods on that node labelled hwameistor.io/eviction=start.
func (r *Reconciler) requestersOfMigration(ctx context.Context, o client.Object) []reconcile.Request {
	m, ok := o.(*v1.LocalVolumeMigrate)
	if !ok || m.Spec.SourceNode == "" {
		return nil
	}
	reqs := []reconcile.Request{{NamespacedName: types.NamespacedName{Name: m.Spec.SourceNode}}}
	pods := &corev1.PodList{}
	if err := r.Client.List(ctx, pods, client.MatchingFields{PodNodeField: m.Spec.SourceNode},
		client.MatchingLabels{v1.EvictionLabel: v1.EvictionStart}); err != nil {
		log.FromContext(ctx).Error(err, "Cannot list labelled pods", "node", m.Spec.SourceNode)
		return reqs
	}
	for _, p := range pods.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&p)})
	}
	return reqs
}

// Reconcile handles a Node (no namespace) or a Pod.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var res ctrl.Result
	var err error
	if req.Namespace == "" {
		res, err = r.reconcileNode(ctx, req.Name)
	} else {
		res, err = r.reconcilePod(ctx, req.NamespacedName)
	}
	if apierrors.IsConflict(err) {
		// A Node patch made from a cache that lags: decide again from a
		// fresher one (our own patch does not pass the watch's filter).
		return ctrl.Result{RequeueAfter: cacheRetry}, nil
	}
	return res, err
}

// reconcileNode creates the migrations of a cordoned node.
func (r *Reconciler) reconcileNode(ctx context.Context, name string) (ctrl.Result, error) {
	node := &corev1.Node{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, node); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !node.Spec.Unschedulable {
		// Migrations already created go on; only the bookkeeping of the
		// cordon goes, so the next cordon is a request of its own.
		return ctrl.Result{}, r.patchAnnotations(ctx, node, map[string]*string{v1.EvictorCordonedAtAnnotation: nil, DisabledWarnedAnnotation: nil})
	}
	onNode, err := r.replicaVolumes(ctx, node.Name)
	if err != nil {
		return ctrl.Result{}, err
	}
	vols, err := r.liveVolumes(ctx, sortedKeys(onNode))
	if err != nil || len(vols) == 0 {
		return ctrl.Result{}, err // a node without local volumes is left alone
	}
	since, err := r.cordonedAt(ctx, node)
	if err != nil {
		return ctrl.Result{}, err
	}
	if disabled(node) {
		return ctrl.Result{}, r.warnDisabled(ctx, node, len(vols))
	}
	res, err := r.ensure(ctx, request{node: node.Name, trigger: v1.MigrateTriggerDrain, at: since, about: node}, vols)
	if err != nil {
		r.warnNotCreated(node, err)
		return ctrl.Result{}, err
	}
	if len(res.created) > 0 {
		r.Recorder.Eventf(node, corev1.EventTypeNormal, EventMigrationStarted,
			"Node %s is cordoned: created %d LocalVolumeMigrate(s) to move %d local volume(s) off it: %s",
			node.Name, len(res.created), res.volumeCount(), res.names())
		if err := r.notifyPods(ctx, node.Name, res.created, types.NamespacedName{}); err != nil {
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{RequeueAfter: res.retry}, nil
}

// warnNotCreated tells the owner of the request (the drained Node or the
// labelled pod) why its volumes are not moving. A conflict is the cache
// lagging, not a failure: Reconcile retries it quietly.
func (r *Reconciler) warnNotCreated(about client.Object, err error) {
	if apierrors.IsConflict(err) {
		return
	}
	r.Recorder.Eventf(about, corev1.EventTypeWarning, EventMigrationNotCreated,
		"Local volumes cannot be moved off node yet, retrying: %v", err)
}

// reconcilePod creates the migrations a labelled pod asks for.
func (r *Reconciler) reconcilePod(ctx context.Context, key types.NamespacedName) (ctrl.Result, error) {
	pod := &corev1.Pod{}
	if err := r.Client.Get(ctx, key, pod); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if pod.Labels[v1.EvictionLabel] != v1.EvictionStart || pod.Spec.NodeName == "" {
		return ctrl.Result{}, nil
	}
	nodeName := pod.Spec.NodeName
	node := &corev1.Node{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: nodeName}, node); err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, err
	} else if err == nil && disabled(node) {
		r.Recorder.Eventf(pod, corev1.EventTypeWarning, EventEvictionDisabled,
			"The pod is labelled %s=%s but node %s is labelled %s=%s: its volumes stay on the node and are not migrated",
			v1.EvictionLabel, v1.EvictionStart, nodeName, v1.EvictionLabel, v1.EvictionDisable)
		return ctrl.Result{}, nil
	}

	// The pod's volumes and the other volumes of their groups, as far as
	// they have a replica on the pod's node.
	claimed, err := volumes.PodVolumes(ctx, r.Client, pod)
	if err != nil {
		return ctrl.Result{}, err
	}
	want := map[string]bool{}
	for _, name := range claimed {
		want[name] = true
		lv := &v1.LocalVolume{}
		if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, lv); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return ctrl.Result{}, err
		}
		members, err := r.groupMembers(ctx, lv.Spec.VolumeGroup)
		if err != nil {
			return ctrl.Result{}, err
		}
		for _, m := range members {
			want[m] = true
		}
	}
	onNode, err := r.replicaVolumes(ctx, nodeName)
	if err != nil {
		return ctrl.Result{}, err
	}
	var names []string
	for name := range want {
		if onNode[name] {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	vols, err := r.liveVolumes(ctx, names)
	if err != nil {
		return ctrl.Result{}, err
	}
	res, err := r.ensure(ctx, request{node: nodeName, trigger: v1.MigrateTriggerPod, at: pod.CreationTimestamp.Time, about: pod}, vols)
	if err != nil {
		r.warnNotCreated(pod, err)
		return ctrl.Result{}, err
	}
	if len(res.created) > 0 {
		r.Recorder.Eventf(pod, corev1.EventTypeNormal, EventMigrationStarted,
			"The pod is labelled %s=%s: created LocalVolumeMigrate %s to move %d local volume(s) off node %s",
			v1.EvictionLabel, v1.EvictionStart, res.names(), res.volumeCount(), nodeName)
		if err := r.notifyPods(ctx, nodeName, res.created, key); err != nil {
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{RequeueAfter: res.retry}, nil
}

func disabled(node *corev1.Node) bool {
	return node.Labels[v1.EvictionLabel] == v1.EvictionDisable
}

// cordonedAt returns when the evictor first saw the node cordoned, stamping
// the node the first time.
func (r *Reconciler) cordonedAt(ctx context.Context, node *corev1.Node) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, node.Annotations[v1.EvictorCordonedAtAnnotation]); err == nil {
		return t, nil
	}
	now := time.Now().UTC()
	stamp := now.Format(time.RFC3339Nano)
	if err := r.patchAnnotations(ctx, node, map[string]*string{v1.EvictorCordonedAtAnnotation: &stamp}); err != nil {
		return time.Time{}, err
	}
	return now, nil
}

// warnDisabled records, once per cordon, that a node labelled
// hwameistor.io/eviction=disable keeps its volumes.
func (r *Reconciler) warnDisabled(ctx context.Context, node *corev1.Node, volumes int) error {
	stamp := node.Annotations[v1.EvictorCordonedAtAnnotation]
	if node.Annotations[DisabledWarnedAnnotation] == stamp {
		return nil
	}
	// Recorded only once the annotation is written: a reconcile from a cache
	// that lags fails the patch's resourceVersion check instead of warning
	// twice.
	if err := r.patchAnnotations(ctx, node, map[string]*string{DisabledWarnedAnnotation: &stamp}); err != nil {
		return err
	}
	r.Recorder.Eventf(node, corev1.EventTypeWarning, EventEvictionDisabled,
		"Node %s is cordoned but labelled %s=%s: its %d local volume(s) stay on it and are not migrated; "+
			"pods using them that are drained stay Pending until the node is uncordoned",
		node.Name, v1.EvictionLabel, v1.EvictionDisable, volumes)
	return nil
}

// patchAnnotations sets (or, for nil, removes) annotations with a merge
// patch that touches nothing else; it writes nothing when they already are
// so. node is updated in place. The patch carries node's resourceVersion, so
// a decision made from a cache that lags fails with a conflict instead of
// stamping a cordon twice.
func (r *Reconciler) patchAnnotations(ctx context.Context, node *corev1.Node, set map[string]*string) error {
	before := node.DeepCopy()
	changed := false
	for k, v := range set {
		cur, ok := node.Annotations[k]
		switch {
		case v == nil && ok:
			delete(node.Annotations, k)
			changed = true
		case v != nil && (!ok || cur != *v):
			if node.Annotations == nil {
				node.Annotations = map[string]string{}
			}
			node.Annotations[k] = *v
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return client.IgnoreNotFound(r.Client.Patch(ctx, node, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})))
}

// replicaVolumes returns the volumes with a replica on node that is not
// being deleted (neither deletionTimestamp nor spec.delete).
func (r *Reconciler) replicaVolumes(ctx context.Context, node string) (map[string]bool, error) {
	list := &v1.LocalVolumeReplicaList{}
	if err := r.Client.List(ctx, list, client.MatchingFields{ReplicaNodeField: node}); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, rep := range list.Items {
		if rep.DeletionTimestamp == nil && !rep.Spec.Delete {
			out[rep.Spec.VolumeName] = true
		}
	}
	return out, nil
}

// liveVolumes returns the named LocalVolumes that exist and are not being
// deleted, in the order given.
func (r *Reconciler) liveVolumes(ctx context.Context, names []string) ([]*v1.LocalVolume, error) {
	out := make([]*v1.LocalVolume, 0, len(names))
	for _, name := range names {
		lv := &v1.LocalVolume{}
		if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, lv); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return nil, err
		}
		if lv.DeletionTimestamp == nil && !lv.Spec.Delete {
			out = append(out, lv)
		}
	}
	return out, nil
}

// groupMembers returns the names of the volumes of a group ("" has none).
func (r *Reconciler) groupMembers(ctx context.Context, group string) ([]string, error) {
	if group == "" {
		return nil, nil
	}
	list := &v1.LocalVolumeList{}
	if err := r.Client.List(ctx, list, client.MatchingFields{VolumeGroupField: group}); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(list.Items))
	for _, lv := range list.Items {
		names = append(names, lv.Name)
	}
	return names, nil
}

// request is one reason to migrate volumes off a node: a cordon or a
// labelled pod.
type request struct {
	node    string
	trigger string
	// at is when the request began; a finished migration of the same name
	// requested earlier is replaced.
	at time.Time
	// about is the object Events about replacements go to.
	about client.Object
}

// migration is one LocalVolumeMigrate the evictor created.
type migration struct {
	name    string
	volumes []string // the group's volumes on the source node
}

type result struct {
	created []migration
	retry   time.Duration
}

func (res result) names() string {
	names := make([]string, 0, len(res.created))
	for _, m := range res.created {
		names = append(names, m.name)
	}
	return strings.Join(names, ", ")
}

func (res result) volumeCount() int {
	n := 0
	for _, m := range res.created {
		n += len(m.volumes)
	}
	return n
}

// group is a volume group with replicas on the source node, or a volume
// without a group.
type group struct {
	key     string   // spec.volumegroup, or the volume's name
	onNode  []string // its volumes on the source node, sorted
	grouped bool
}

// groupVolumes groups volumes by spec.volumegroup, in the order of their
// keys.
func groupVolumes(vols []*v1.LocalVolume) []*group {
	byKey := map[string]*group{}
	var out []*group
	for _, lv := range vols {
		key := lv.Spec.VolumeGroup
		if key == "" {
			key = lv.Name
		}
		g := byKey[key]
		if g == nil {
			g = &group{key: key, grouped: lv.Spec.VolumeGroup != ""}
			byKey[key] = g
			out = append(out, g)
		}
		g.onNode = append(g.onNode, lv.Name)
	}
	for _, g := range out {
		sort.Strings(g.onNode)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

// ensure makes sure every group of vols (volumes with a replica on
// req.node) is covered by an unfinished LocalVolumeMigrate off req.node,
// creating the missing ones.
func (r *Reconciler) ensure(ctx context.Context, req request, vols []*v1.LocalVolume) (result, error) {
	var res result
	if len(vols) == 0 {
		return res, nil
	}
	busy, err := r.migratingVolumes(ctx, req.node)
	if err != nil {
		return res, err
	}
	for _, g := range groupVolumes(vols) {
		members := g.onNode
		if g.grouped {
			all, err := r.groupMembers(ctx, g.key)
			if err != nil {
				return res, err
			}
			members = append(all, members...)
		}
		if covered(members, busy) {
			continue
		}
		created, retry, err := r.create(ctx, req, g)
		if err != nil {
			return res, err
		}
		if retry {
			res.retry = cacheRetry
		}
		if created != "" {
			res.created = append(res.created, migration{name: created, volumes: g.onNode})
		}
	}
	return res, nil
}

func covered(volumes []string, busy map[string]bool) bool {
	for _, v := range volumes {
		if busy[v] {
			return true
		}
	}
	return false
}

// migratingVolumes returns the volumes that unfinished migrations off node
// name, by spec.volumeName or status.volumes, whoever created them.
func (r *Reconciler) migratingVolumes(ctx context.Context, node string) (map[string]bool, error) {
	list := &v1.LocalVolumeMigrateList{}
	if err := r.Client.List(ctx, list, client.MatchingFields{MigrateSourceField: node}); err != nil {
		return nil, err
	}
	busy := map[string]bool{}
	for i := range list.Items {
		m := &list.Items[i]
		if m.Status.State.Finished() {
			continue
		}
		busy[m.Spec.VolumeName] = true
		for _, v := range m.Status.Volumes {
			busy[v] = true
		}
	}
	return busy, nil
}

// create creates the migration of group g, or replaces a finished one of
// the same name that an earlier request left. It returns the name when it
// created one, and retry when the cache has not caught up yet.
func (r *Reconciler) create(ctx context.Context, req request, g *group) (created string, retry bool, err error) {
	logger := log.FromContext(ctx)
	name := v1.MigrateName(g.key, req.node)
	old := &v1.LocalVolumeMigrate{}
	err = r.Client.Get(ctx, client.ObjectKey{Name: name}, old)
	switch {
	case apierrors.IsNotFound(err):
		old = nil
	case err != nil:
		return "", false, err
	case old.DeletionTimestamp != nil:
		return "", true, nil // being replaced (or deleted by a user): wait until it is gone
	case !old.Status.State.Finished():
		return "", false, nil // migrating already (listed under another source node?)
	case old.Labels[v1.MigrateTriggerLabel] == "" || !requestedAt(old).Before(req.at):
		// Finished for this request (or not ours): it stays as it ended; a
		// user who wants another attempt deletes it or cordons the node anew.
		return "", false, nil
	default:
		uid, rv := old.UID, old.ResourceVersion
		if err := r.Client.Delete(ctx, old, client.Preconditions{UID: &uid, ResourceVersion: &rv}); err != nil && !apierrors.IsNotFound(err) {
			if apierrors.IsConflict(err) {
				return "", true, nil
			}
			return "", false, fmt.Errorf("deleting finished LocalVolumeMigrate %s: %w", name, err)
		}
		r.Recorder.Eventf(req.about, corev1.EventTypeNormal, EventMigrationRecreated,
			"Replacing LocalVolumeMigrate %s (%s, requested at %s) with a new one for this request",
			name, old.Status.State, requestedAt(old).Format(time.RFC3339))
		logger.Info("Replacing a finished migration of an earlier request", "migration", name, "state", old.Status.State)
	}

	m := &v1.LocalVolumeMigrate{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Labels:      map[string]string{v1.MigrateTriggerLabel: req.trigger, v1.MigrateSourceNodeLabel: v1.SourceNodeLabelValue(req.node)},
			Annotations: map[string]string{v1.EvictorRequestedAtAnnotation: req.at.UTC().Format(time.RFC3339Nano)},
		},
		Spec: v1.LocalVolumeMigrateSpec{SourceNode: req.node, VolumeName: g.onNode[0], MigrateAllVols: true},
	}
	if err := r.Client.Create(ctx, m); err != nil {
		if apierrors.IsAlreadyExists(err) {
			// Created by an earlier pass the cache does not show yet, or the
			// replaced one is still going: look again shortly.
			return "", true, nil
		}
		return "", false, fmt.Errorf("creating LocalVolumeMigrate %s: %w", name, err)
	}
	logger.Info("Created a migration", "migration", name, "sourceNode", req.node, "volumes", g.onNode, "trigger", req.trigger)
	return name, false, nil
}

// requestedAt is when the request a migration serves began: its
// v1.EvictorRequestedAtAnnotation, else its creation.
func requestedAt(m *v1.LocalVolumeMigrate) time.Time {
	if t, err := time.Parse(time.RFC3339Nano, m.Annotations[v1.EvictorRequestedAtAnnotation]); err == nil {
		return t
	}
	return m.CreationTimestamp.Time
}

// notifyPods records VolumeMigrating on every running pod on node (but
// skip) that uses a volume of the created migrations.
func (r *Reconciler) notifyPods(ctx context.Context, node string, created []migration, skip types.NamespacedName) error {
	migrationOf := map[string]string{}
	for _, m := range created {
		for _, v := range m.volumes {
			migrationOf[v] = m.name
		}
	}
	pods := &corev1.PodList{}
	if err := r.Client.List(ctx, pods, client.MatchingFields{PodNodeField: node}); err != nil {
		return err
	}
	for i := range pods.Items {
		pod := &pods.Items[i]
		if client.ObjectKeyFromObject(pod) == skip || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			continue
		}
		vols, err := volumes.PodVolumes(ctx, r.Client, pod)
		if err != nil {
			return err
		}
		var moving, by []string
		for _, v := range vols {
			if m, ok := migrationOf[v]; ok {
				moving = append(moving, v)
				by = append(by, m)
			}
		}
		if len(moving) == 0 {
			continue
		}
		r.Recorder.Eventf(pod, corev1.EventTypeNormal, EventVolumeMigrating,
			"Volume(s) %s migrating off node %s (LocalVolumeMigrate %s); once evicted, the pod stays Pending until the migration completes",
			strings.Join(moving, ", "), node, strings.Join(dedupSorted(by), ", "))
	}
	return nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func dedupSorted(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
