package placement

import (
	"fmt"
	"slices"
	"sort"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// MigrationTarget is a LocalVolumeMigrate's target choice: among the nodes
// with a Ready LocalStorageNode whose Node is schedulable and that hold no
// replica of vols (only suggested ones, when given), one where the whole
// group fits net of capacity's reservations, preferring another zone than
// the replica of lv that stays (HA), then the most free space. why says, in
// the words the migration's status uses, why there is none. The migrate
// controller chooses with it; `kubectl hwameistor drain-check` predicts
// with it.
func MigrationTarget(capacity *Cache, storageNodes []v1.LocalStorageNode, schedulable func(node string) bool,
	source string, lv *v1.LocalVolume, vols []*v1.LocalVolume, suggested []string) (target, why string) {
	holding := map[string]bool{}
	var pvols []Volume
	for _, v := range vols {
		for _, n := range v.ReplicaNodes() {
			holding[n] = true
		}
		pool, ok := PoolByName(v.Spec.PoolName)
		if !ok {
			return "", fmt.Sprintf("volume %s has unknown pool %s", v.Name, v.Spec.PoolName)
		}
		pvols = append(pvols, Volume{Key: v.Name, Pool: pool, Bytes: v.Spec.RequiredCapacityBytes})
	}
	var candidates []string
	for i := range storageNodes {
		n := storageNodes[i].Name
		if holding[n] || !schedulable(n) || storageNodes[i].Status.State != v1.StateReady {
			continue
		}
		if len(suggested) > 0 && !slices.Contains(suggested, n) {
			continue
		}
		candidates = append(candidates, n)
	}
	sort.Strings(candidates)
	if len(candidates) == 0 {
		return "", "no Ready, schedulable node without a replica of the volumes"
	}
	// The replica that stays anchors the zone preference (HA); else the source.
	anchor := source
	for _, n := range lv.ReplicaNodes() {
		if n != source {
			anchor = n
		}
	}
	if target, ok := capacity.PickPeer(anchor, pvols, candidates); ok {
		return target, ""
	}
	return "", fmt.Sprintf("no candidate node (%d checked) can hold %s", len(candidates), Demand(pvols))
}
