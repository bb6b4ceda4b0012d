// Package fence makes the API server the tie-breaker between the two
// replicas of a DRBD 8.4 resource, which has no quorum: when they lose each
// other (a node stops, the network splits), each may go on alone only after
// it recorded the other as outdated on the LocalVolume
// (v1.DRBDOutdatedAnnotation), in one compare-and-swap. The first to record
// wins; the other finds itself recorded and must neither write (a Primary
// keeps its I/O frozen) nor be promoted. A replica cut off from the API
// server as well cannot record anything, so it stays frozen: a partition
// never ends with two Primaries accepting writes.
package fence

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// Outdate records on volume that the replica on node loser misses writes,
// so that the replica on winner may go on (or start) serving alone. won is
// false, with no error, when the volume already records winner as
// outdated: its peer recorded first. The volume is read from r (the API
// server itself, not a cache: a stale read would only conflict) and
// patched through w with its resourceVersion, so two replicas racing for
// it cannot both win.
func Outdate(ctx context.Context, r client.Reader, w client.Writer, volume, winner, loser string) (won bool, err error) {
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		lv := &v1.LocalVolume{}
		if err := r.Get(ctx, client.ObjectKey{Name: volume}, lv); err != nil {
			return err
		}
		switch lv.DRBDOutdated() {
		case winner:
			won = false
			return nil
		case loser:
			won = true
			return nil
		}
		patch := client.MergeFromWithOptions(lv.DeepCopy(), client.MergeFromWithOptimisticLock{})
		metav1.SetMetaDataAnnotation(&lv.ObjectMeta, v1.DRBDOutdatedAnnotation, loser)
		if err := w.Patch(ctx, lv, patch); err != nil {
			return err
		}
		won = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("recording the replica on %s outdated on volume %s: %w", loser, volume, err)
	}
	return won, nil
}

// Clear removes the record that node's replica is outdated, once DRBD has
// resynced it from its peer (connected, both UpToDate). A record naming
// another node, or none, is left as it is.
func Clear(ctx context.Context, r client.Reader, w client.Writer, volume, node string) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		lv := &v1.LocalVolume{}
		if err := r.Get(ctx, client.ObjectKey{Name: volume}, lv); err != nil {
			return err
		}
		if lv.DRBDOutdated() != node {
			return nil
		}
		patch := client.MergeFromWithOptions(lv.DeepCopy(), client.MergeFromWithOptimisticLock{})
		delete(lv.Annotations, v1.DRBDOutdatedAnnotation)
		return w.Patch(ctx, lv, patch)
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("clearing the outdated record of %s on volume %s: %w", node, volume, err)
	}
	return nil
}
