package v1alpha1

import (
	"slices"

	"k8s.io/apimachinery/pkg/api/resource"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ReplicaNodes are the nodes of the volume's replica configuration
// (spec.config.replicas), in order.
func (lv *LocalVolume) ReplicaNodes() []string {
	if lv.Spec.Config == nil {
		return nil
	}
	out := make([]string, 0, len(lv.Spec.Config.Replicas))
	for _, r := range lv.Spec.Config.Replicas {
		out = append(out, r.Hostname)
	}
	return out
}

// AddReplicaNode adds node to the volume's replicas (a new config
// version) and accessibility; a node already there changes nothing.
func (lv *LocalVolume) AddReplicaNode(node string) {
	if lv.Spec.Config == nil {
		lv.Spec.Config = &VolumeConfig{VolumeName: lv.Name, RequiredCapacityBytes: lv.Spec.RequiredCapacityBytes}
	}
	if slices.Contains(lv.ReplicaNodes(), node) {
		return
	}
	var id int64
	for _, r := range lv.Spec.Config.Replicas {
		id = max(id, r.ID)
	}
	lv.Spec.Config.Replicas = append(lv.Spec.Config.Replicas, VolumeReplica{ID: id + 1, Hostname: node})
	lv.Spec.Config.Version++
	if !slices.Contains(lv.Spec.Accessibility.Nodes, node) {
		lv.Spec.Accessibility.Nodes = append(lv.Spec.Accessibility.Nodes, node)
	}
}

// RemoveReplicaNode drops node from the replicas (a new config version)
// and accessibility; the first remaining replica becomes primary if node
// was.
func (lv *LocalVolume) RemoveReplicaNode(node string) {
	if lv.Spec.Config == nil || !slices.Contains(lv.ReplicaNodes(), node) {
		return
	}
	wasPrimary := false
	lv.Spec.Config.Replicas = slices.DeleteFunc(lv.Spec.Config.Replicas, func(r VolumeReplica) bool {
		if r.Hostname == node {
			wasPrimary = r.Primary
			return true
		}
		return false
	})
	if wasPrimary && len(lv.Spec.Config.Replicas) > 0 {
		lv.Spec.Config.Replicas[0].Primary = true
	}
	lv.Spec.Config.Version++
	lv.Spec.Accessibility.Nodes = slices.DeleteFunc(lv.Spec.Accessibility.Nodes, func(n string) bool { return n == node })
}

// HoldsCopySlot says whether an operation in state s has started and not
// ended: a migration in it counts against the copy limits, and another
// move of its volumes waits for it.
func (s State) HoldsCopySlot() bool {
	switch s {
	case OperationStateAddReplica, OperationStateSyncReplica, OperationStatePruneReplica, OperationStateAborting:
		return true
	}
	return false
}

// Moves says whether m moves one of volumes (spec.volumeName, or
// status.volumes: the whole group).
func (m *LocalVolumeMigrate) Moves(volumes ...string) bool {
	if slices.Contains(volumes, m.Spec.VolumeName) {
		return true
	}
	for _, v := range m.Status.Volumes {
		if slices.Contains(volumes, v) {
			return true
		}
	}
	return false
}

// Finished says whether an operation state (migrate, convert, expand) is
// final: Completed, Failed or Aborted.
func (s State) Finished() bool {
	switch s {
	case OperationStateCompleted, OperationStateFailed, OperationStateAborted:
		return true
	}
	return false
}

// OperationBefore orders operations on a volume by creation, then kind
// (a migration, which a drain waits for, before a conversion before an
// expansion), then name: a total order, so of two operations exactly one
// goes first.
func OperationBefore(a metav1.Object, aKind string, b metav1.Object, bKind string) bool {
	ta, tb := a.GetCreationTimestamp(), b.GetCreationTimestamp()
	if !ta.Equal(&tb) {
		return ta.Before(&tb)
	}
	if aKind != bKind {
		return kindRank(aKind) < kindRank(bKind)
	}
	return a.GetName() < b.GetName()
}

// FormatBytes prints bytes the way users write sizes (6Gi, 512Mi), in every
// message of the scheduler, the driver and the controllers, so a user can
// compare them.
func FormatBytes(b int64) string {
	return resource.NewQuantity(b, resource.BinarySI).String()
}

// RoundUpToExtent rounds bytes up to a multiple of extent: the size LVM
// allocates. An extent of 0 or 1 leaves bytes as they are.
func RoundUpToExtent(bytes, extent int64) int64 {
	if extent <= 1 {
		return bytes
	}
	return (bytes + extent - 1) / extent * extent
}

func kindRank(kind string) int {
	switch kind {
	case KindMigrate:
		return 0
	case KindConvert:
		return 1
	case KindExpand:
		return 2
	}
	return 3
}
