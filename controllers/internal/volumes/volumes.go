// Package volumes holds the LocalVolume and LocalVolumeGroup edits that the
// operation controllers (migrate, convert) make the same way: read the
// current object, apply a change, write it back, retry on conflicts.
package volumes

import (
	"context"
	"slices"

	"k8s.io/apimachinery/pkg/api/equality"
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

// Capacity is the scheduler's capacity view rebuilt from the cluster: the
// nodes' pools net of every persisted placement (LocalVolumes and
// LocalVolumeGroups), as the scheduler's ledger counts them, plus the
// objects it was built from.
type Capacity struct {
	Cache   *placement.Cache
	Nodes   []v1.LocalStorageNode
	Volumes []v1.LocalVolume
}

// LoadCapacity lists LocalStorageNodes, LocalVolumes and LocalVolumeGroups
// through r and feeds a fresh placement cache with them.
func LoadCapacity(ctx context.Context, r client.Reader) (*Capacity, error) {
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
	c := &Capacity{Cache: placement.NewCache(0), Nodes: lsns.Items, Volumes: lvs.Items}
	for i := range lsns.Items {
		c.Cache.UpsertNode(&lsns.Items[i])
	}
	for i := range lvs.Items {
		c.Cache.UpsertVolume(&lvs.Items[i])
	}
	for i := range groups.Items {
		c.Cache.UpsertGroup(&groups.Items[i])
	}
	return c, nil
}
