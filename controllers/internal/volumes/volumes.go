// Package volumes holds the LocalVolume and LocalVolumeGroup edits that the
// operation controllers (migrate, convert) make the same way: read the
// current object, apply a change, write it back, retry on conflicts.
package volumes

import (
	"context"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/internal/placement"
)

// MaxGroupNodes is the most nodes a LocalVolumeGroup entry lists (the
// CRD's maxItems).
const MaxGroupNodes = 2

// Edit applies change to the current volume and updates it when it changed,
// retrying on conflicts. With always it updates even when change changed
// nothing: a rollback undoing this process's own recent edit, which the
// cache may not show yet, must write with the resourceVersion it read so a
// stale copy fails with a conflict instead of looking already undone.
func Edit(ctx context.Context, c client.Client, name string, always bool, change func(*v1.LocalVolume)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		lv := &v1.LocalVolume{}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, lv); err != nil {
			return err
		}
		before := lv.DeepCopy()
		change(lv)
		if !always && equality.Semantic.DeepEqual(before, lv) {
			return nil
		}
		return c.Update(ctx, lv)
	})
}

// EditGroupNodes changes the persisted placement (nodes) of lv's entry in
// its LocalVolumeGroup, which the scheduler's ledger and CreateVolume read;
// always as in Edit. An entry never ends up empty.
func EditGroupNodes(ctx context.Context, c client.Client, lv *v1.LocalVolume, always bool, change func([]string) []string) error {
	if lv.Spec.VolumeGroup == "" {
		return nil
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		g := &v1.LocalVolumeGroup{}
		if err := c.Get(ctx, client.ObjectKey{Name: lv.Spec.VolumeGroup}, g); err != nil {
			return client.IgnoreNotFound(err)
		}
		changed := false
		for i := range g.Spec.Volumes {
			e := &g.Spec.Volumes[i]
			if e.LocalVolumeName != lv.Name || len(e.Nodes) == 0 {
				continue
			}
			nodes := change(slices.Clone(e.Nodes))
			if !slices.Equal(nodes, e.Nodes) && len(nodes) > 0 {
				e.Nodes, changed = nodes, true
			}
		}
		if !changed && !always {
			return nil
		}
		return c.Update(ctx, g)
	})
}

// ReplaceNode puts node to in the place of node from in the volume's
// replicas (a new replica id, at the same position, so DRBD 9 node ids
// stay), its accessibility and its group entry: the scheduler's ledger
// reserves to's space from this write on. change, when set, edits the
// volume in the same write. Nothing changes where from is not listed;
// always is Edit's.
func ReplaceNode(ctx context.Context, c client.Client, lv *v1.LocalVolume, from, to string, always bool, change func(*v1.LocalVolume)) error {
	replace := func(nodes []string) []string {
		if i := slices.Index(nodes, from); i >= 0 && !slices.Contains(nodes, to) {
			nodes[i] = to
		}
		return nodes
	}
	if err := EditGroupNodes(ctx, c, lv, always, replace); err != nil {
		return err
	}
	return Edit(ctx, c, lv.Name, always, func(lv *v1.LocalVolume) {
		if cfg := lv.Spec.Config; cfg != nil && slices.Contains(lv.ReplicaNodes(), from) && !slices.Contains(lv.ReplicaNodes(), to) {
			next := int64(0)
			for _, rep := range cfg.Replicas {
				next = max(next, rep.ID)
			}
			for i := range cfg.Replicas {
				if rep := &cfg.Replicas[i]; rep.Hostname == from {
					*rep = v1.VolumeReplica{ID: next + 1, Hostname: to, Primary: rep.Primary}
				}
			}
		}
		lv.Spec.Accessibility.Nodes = replace(lv.Spec.Accessibility.Nodes)
		if change != nil {
			change(lv)
		}
	})
}

// LoadCapacity lists LocalStorageNodes, LocalVolumes, LocalVolumeGroups and
// LocalVolumeReplicas through r and builds the scheduler's capacity view
// from them (placement.View, as the CLI does).
func LoadCapacity(ctx context.Context, r client.Reader) (*placement.View, error) {
	lsns := &v1.LocalStorageNodeList{}
	if err := r.List(ctx, lsns); err != nil {
		return nil, err
	}
	lvs := &v1.LocalVolumeList{}
	if err := r.List(ctx, lvs); err != nil {
		return nil, err
	}
	groups := &v1.LocalVolumeGroupList{}
	if err := r.List(ctx, groups); err != nil {
		return nil, err
	}
	reps := &v1.LocalVolumeReplicaList{}
	if err := r.List(ctx, reps); err != nil {
		return nil, err
	}
	return placement.NewView(lsns.Items, lvs.Items, groups.Items, reps.Items), nil
}

// PodVolumes returns the LocalVolume names behind a pod's claims (claim ->
// bound PV -> spec.csi.volumeHandle of driver lvm.hwameistor.io; generic
// ephemeral volumes too). Claims not found or not bound are left out.
func PodVolumes(ctx context.Context, c client.Reader, pod *corev1.Pod) ([]string, error) {
	var out []string
	for _, vol := range pod.Spec.Volumes {
		var claim string
		switch {
		case vol.PersistentVolumeClaim != nil:
			claim = vol.PersistentVolumeClaim.ClaimName
		case vol.Ephemeral != nil:
			claim = pod.Name + "-" + vol.Name
		default:
			continue
		}
		pvc := &corev1.PersistentVolumeClaim{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: claim}, pvc); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return nil, err
		}
		if pvc.Spec.VolumeName == "" {
			continue
		}
		pv := &corev1.PersistentVolume{}
		if err := c.Get(ctx, client.ObjectKey{Name: pvc.Spec.VolumeName}, pv); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return nil, err
		}
		if csi := pv.Spec.CSI; csi != nil && csi.Driver == v1.DriverName && csi.VolumeHandle != "" {
			out = append(out, csi.VolumeHandle)
		}
	}
	return out, nil
}
