// Package volumegroup reconciles LocalVolumeGroups, the sets of volumes one
// pod uses and that must stay on the same nodes. The scheduler writes a group
// at PreBind (one entry per claim, with the placement); this controller keeps
// it current afterwards: it records each claim's LocalVolume once the claim is
// bound, drops entries whose claim and volume are both gone, deletes the group
// when nothing is left, and folds the volumes' state into the group's.
//
// It never drops an entry while its claim or its LocalVolume exists, and it
// never deletes a group that still holds an entry: absences seen in the cache
// are confirmed with a live read, and the group is deleted with a
// resourceVersion precondition, so an entry the scheduler adds meanwhile
// keeps the group. Once a claim is bound it drops the capacity refusals its
// entry recorded (CreateVolume's, which kept its pod off refusing nodes).
package volumegroup

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
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
)

// Field indexes on LocalVolumeGroups, registered by SetupWithManager.
const (
	// ClaimField indexes groups by "namespace/claim" of every entry.
	ClaimField = "spec.volumes.pvc"
	// VolumeField indexes groups by the LocalVolume name of every entry.
	VolumeField = "spec.volumes.localvolume"
)

// ConditionVolumesReady says whether every volume of the group exists and is
// Ready.
const ConditionVolumesReady = "VolumesReady"

// Condition reasons.
const (
	ReasonAllVolumesReady = "AllVolumesReady"
	ReasonVolumeNotReady  = "VolumeNotReady"
)

// Event reasons.
const (
	EventVolumeDropped = "VolumeDropped"
	EventGroupDeleted  = "GroupDeleted"
)

// conflictRetry is how soon a reconcile that lost an optimistic-concurrency
// race runs again (the watch event of the newer version usually comes first).
const conflictRetry = time.Second

// Reconciler reconciles LocalVolumeGroups.
//
// +kubebuilder:rbac:groups=hwameistor.io,resources=localvolumegroups,verbs=get;list;watch;update;delete
// +kubebuilder:rbac:groups=hwameistor.io,resources=localvolumegroups/status,verbs=get;update
// +kubebuilder:rbac:groups=hwameistor.io,resources=localvolumes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
type Reconciler struct {
	Client client.Client
	// APIReader reads past the cache. An entry is only dropped when its
	// claim and volume are absent from the apiserver itself, since a cache can
	// lag a claim created a moment ago. Nil means Client.
	APIReader client.Reader
	Recorder  record.EventRecorder
}

var _ reconcile.Reconciler = &Reconciler{}

// ClaimKey is the ClaimField value of a claim.
func ClaimKey(namespace, name string) string { return namespace + "/" + name }

// SetupWithManager registers the indexes and the controller: LocalVolumeGroups,
// and the claims and LocalVolumes they name.
func (r *Reconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &v1.LocalVolumeGroup{}, ClaimField, claimKeys); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &v1.LocalVolumeGroup{}, VolumeField, volumeKeys); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("localvolumegroup").
		For(&v1.LocalVolumeGroup{}).
		Watches(&corev1.PersistentVolumeClaim{}, handler.EnqueueRequestsFromMapFunc(r.groupsOfClaim),
			builder.WithPredicates(claimChanged)).
		Watches(&v1.LocalVolume{}, handler.EnqueueRequestsFromMapFunc(r.groupsOfVolume)).
		Complete(r)
}

func claimKeys(o client.Object) []string {
	g := o.(*v1.LocalVolumeGroup)
	keys := make([]string, 0, len(g.Spec.Volumes))
	for _, e := range g.Spec.Volumes {
		keys = append(keys, ClaimKey(g.Spec.Namespace, e.PersistentVolumeClaimName))
	}
	return keys
}

func volumeKeys(o client.Object) []string {
	g := o.(*v1.LocalVolumeGroup)
	var keys []string
	for _, e := range g.Spec.Volumes {
		if e.LocalVolumeName != "" {
			keys = append(keys, e.LocalVolumeName)
		}
	}
	return keys
}

// claimChanged lets through what can change a group: a claim appearing,
// going, or being bound.
var claimChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, ok1 := e.ObjectOld.(*corev1.PersistentVolumeClaim)
		n, ok2 := e.ObjectNew.(*corev1.PersistentVolumeClaim)
		if !ok1 || !ok2 {
			return true
		}
		return o.Spec.VolumeName != n.Spec.VolumeName || o.Status.Phase != n.Status.Phase ||
			(o.DeletionTimestamp == nil) != (n.DeletionTimestamp == nil)
	},
}

func (r *Reconciler) groupsOfClaim(ctx context.Context, o client.Object) []reconcile.Request {
	return r.groupsBy(ctx, ClaimField, ClaimKey(o.GetNamespace(), o.GetName()))
}

// groupsOfVolume maps a LocalVolume to the groups naming it, the group it
// names (spec.volumegroup), and the groups of its claim (whose entry may not
// record the volume yet).
func (r *Reconciler) groupsOfVolume(ctx context.Context, o client.Object) []reconcile.Request {
	reqs := r.groupsBy(ctx, VolumeField, o.GetName())
	if lv, ok := o.(*v1.LocalVolume); ok {
		if lv.Spec.VolumeGroup != "" {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: lv.Spec.VolumeGroup}})
		}
		if lv.Spec.PersistentVolumeClaimName != "" {
			reqs = append(reqs, r.groupsBy(ctx, ClaimField, ClaimKey(lv.Spec.PersistentVolumeClaimNamespace, lv.Spec.PersistentVolumeClaimName))...)
		}
	}
	return dedup(reqs)
}

func (r *Reconciler) groupsBy(ctx context.Context, field, value string) []reconcile.Request {
	list := &v1.LocalVolumeGroupList{}
	if err := r.Client.List(ctx, list, client.MatchingFields{field: value}); err != nil {
		log.FromContext(ctx).Error(err, "Cannot list volume groups", "field", field, "value", value)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, g := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: g.Name}})
	}
	return reqs
}

func dedup(reqs []reconcile.Request) []reconcile.Request {
	seen := map[reconcile.Request]bool{}
	out := reqs[:0]
	for _, r := range reqs {
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out
}

func (r *Reconciler) live() client.Reader {
	if r.APIReader != nil {
		return r.APIReader
	}
	return r.Client
}

// Reconcile brings one group up to date.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	logger := log.FromContext(ctx)
	g := &v1.LocalVolumeGroup{}
	if err := r.Client.Get(ctx, req.NamespacedName, g); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if g.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}

	keep := make([]v1.VolumeInfo, 0, len(g.Spec.Volumes))
	var dropped []v1.VolumeInfo
	changed := false
	for _, e := range g.Spec.Volumes {
		pvc, err := r.claim(ctx, g.Spec.Namespace, e.PersistentVolumeClaimName)
		if err != nil {
			return ctrl.Result{}, err
		}
		if pvc == nil {
			gone, err := r.volumeGone(ctx, e.LocalVolumeName)
			if err != nil {
				return ctrl.Result{}, err
			}
			if gone {
				dropped = append(dropped, e)
				changed = true
				continue
			}
		} else if bound := boundVolume(pvc); bound != "" {
			if bound != e.LocalVolumeName {
				logger.Info("Recording the claim's volume", "group", g.Name, "claim", ClaimKey(g.Spec.Namespace, e.PersistentVolumeClaimName), "volume", bound, "was", e.LocalVolumeName)
				e.LocalVolumeName = bound
				changed = true
			}
			if len(e.Refusals) > 0 {
				// The volume exists now: the capacity refusals that moved
				// its pod have done their work.
				e.Refusals = nil
				changed = true
			}
		}
		keep = append(keep, e)
	}

	if len(keep) == 0 {
		return r.deleteGroup(ctx, g, dropped)
	}
	if changed {
		g.Spec.Volumes = keep
		if err := r.Client.Update(ctx, g); err != nil {
			if apierrors.IsConflict(err) {
				return ctrl.Result{RequeueAfter: conflictRetry}, nil
			}
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
		for _, e := range dropped {
			r.Recorder.Eventf(g, corev1.EventTypeNormal, EventVolumeDropped, "Dropped %s: %s", describe(g.Spec.Namespace, e), goneWhy(e))
		}
	}
	return r.updateStatus(ctx, g)
}

// claim returns the claim, or nil when it does not exist. A claim missing
// from the cache is looked up live before it counts as gone.
func (r *Reconciler) claim(ctx context.Context, namespace, name string) (*corev1.PersistentVolumeClaim, error) {
	pvc := &corev1.PersistentVolumeClaim{}
	key := client.ObjectKey{Namespace: namespace, Name: name}
	err := r.Client.Get(ctx, key, pvc)
	if apierrors.IsNotFound(err) {
		err = r.live().Get(ctx, key, pvc)
	}
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return pvc, nil
}

// volumeGone reports whether the named LocalVolume is absent from the cache
// and from the apiserver (an entry without a volume name has none).
func (r *Reconciler) volumeGone(ctx context.Context, name string) (bool, error) {
	if name == "" {
		return true, nil
	}
	key := client.ObjectKey{Name: name}
	err := r.Client.Get(ctx, key, &v1.LocalVolume{})
	if apierrors.IsNotFound(err) {
		err = r.live().Get(ctx, key, &v1.LocalVolume{})
	}
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	return false, err
}

// boundVolume is the PV (= LocalVolume) name of a bound claim, "" otherwise.
func boundVolume(pvc *corev1.PersistentVolumeClaim) string {
	if pvc.Status.Phase != corev1.ClaimBound {
		return ""
	}
	return pvc.Spec.VolumeName
}

// deleteGroup deletes a group none of whose claims and volumes exist any
// more. The precondition on the resourceVersion the decision was made from
// makes the delete fail if the group changed since (say the scheduler added
// a claim), and the next reconcile decides again.
func (r *Reconciler) deleteGroup(ctx context.Context, g *v1.LocalVolumeGroup, dropped []v1.VolumeInfo) (ctrl.Result, error) {
	uid, rv := g.UID, g.ResourceVersion
	err := r.Client.Delete(ctx, g, client.Preconditions{UID: &uid, ResourceVersion: &rv})
	switch {
	case apierrors.IsNotFound(err):
		return ctrl.Result{}, nil
	case apierrors.IsConflict(err):
		return ctrl.Result{RequeueAfter: conflictRetry}, nil
	case err != nil:
		return ctrl.Result{}, err
	}
	names := make([]string, 0, len(dropped))
	for _, e := range dropped {
		names = append(names, describe(g.Spec.Namespace, e))
	}
	r.Recorder.Eventf(g, corev1.EventTypeNormal, EventGroupDeleted, "Deleted the group: none of its claims and volumes exist any more (%s)", strings.Join(names, ", "))
	log.FromContext(ctx).Info("Deleted an empty volume group", "group", g.Name)
	return ctrl.Result{}, nil
}

func describe(namespace string, e v1.VolumeInfo) string {
	s := "claim " + ClaimKey(namespace, e.PersistentVolumeClaimName)
	if e.LocalVolumeName != "" {
		s += " (volume " + e.LocalVolumeName + ")"
	}
	return s
}

func goneWhy(e v1.VolumeInfo) string {
	if e.LocalVolumeName == "" {
		return "the claim no longer exists and no volume was provisioned for it"
	}
	return "neither the claim nor its LocalVolume exists any more"
}

// updateStatus sets the group Ready when every entry's LocalVolume exists
// and is Ready, and NotReady naming the first one that is not.
func (r *Reconciler) updateStatus(ctx context.Context, g *v1.LocalVolumeGroup) (ctrl.Result, error) {
	ready, first := 0, ""
	for _, e := range g.Spec.Volumes {
		why, err := r.notReady(ctx, g.Spec.Namespace, e)
		if err != nil {
			return ctrl.Result{}, err
		}
		if why == "" {
			ready++
		} else if first == "" {
			first = why
		}
	}
	st := g.Status.DeepCopy()
	cond := metav1.Condition{Type: ConditionVolumesReady, ObservedGeneration: g.Generation}
	if first == "" {
		st.State, st.Message = v1.StateReady, ""
		cond.Status, cond.Reason = metav1.ConditionTrue, ReasonAllVolumesReady
		cond.Message = fmt.Sprintf("%d/%d volumes ready", ready, len(g.Spec.Volumes))
	} else {
		st.State, st.Message = v1.StateNotReady, first
		cond.Status, cond.Reason = metav1.ConditionFalse, ReasonVolumeNotReady
		cond.Message = fmt.Sprintf("%d/%d volumes ready; %s", ready, len(g.Spec.Volumes), first)
	}
	meta.SetStatusCondition(&st.Conditions, cond)
	if equality.Semantic.DeepEqual(&g.Status, st) {
		return ctrl.Result{}, nil
	}
	g.Status = *st
	if err := r.Client.Status().Update(ctx, g); err != nil {
		if apierrors.IsConflict(err) {
			return ctrl.Result{RequeueAfter: conflictRetry}, nil
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	return ctrl.Result{}, nil
}

// notReady says why an entry's volume is not ready, "" when it is.
func (r *Reconciler) notReady(ctx context.Context, namespace string, e v1.VolumeInfo) (string, error) {
	claim := ClaimKey(namespace, e.PersistentVolumeClaimName)
	if e.LocalVolumeName == "" {
		return fmt.Sprintf("claim %s has no volume yet", claim), nil
	}
	lv := &v1.LocalVolume{}
	err := r.Client.Get(ctx, client.ObjectKey{Name: e.LocalVolumeName}, lv)
	if apierrors.IsNotFound(err) {
		return fmt.Sprintf("volume %s of claim %s does not exist (yet)", e.LocalVolumeName, claim), nil
	}
	if err != nil {
		return "", err
	}
	if lv.Status.State == v1.StateReady {
		return "", nil
	}
	state := string(lv.Status.State)
	if state == "" {
		state = "pending"
	}
	why := fmt.Sprintf("volume %s of claim %s is %s", lv.Name, claim, state)
	if lv.Status.Message != "" {
		why += ": " + lv.Status.Message
	}
	return why, nil
}
