package v1alpha1

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CapacityRefusalSource says who found a pool short.
// +kubebuilder:validation:Enum=NodeAgent;CSIController
type CapacityRefusalSource string

const (
	// RefusedByNodeAgent: the node agent's allocation (lvcreate) found the
	// pool short.
	RefusedByNodeAgent CapacityRefusalSource = "NodeAgent"
	// RefusedByCSIController: CreateVolume's last check found the node's
	// reported pool short.
	RefusedByCSIController CapacityRefusalSource = "CSIController"
)

// ReasonInsufficientCapacity is the reason of a replica's Allocated=False
// condition when its node refused it for capacity (status.capacityRefusal
// has the numbers).
const ReasonInsufficientCapacity = "InsufficientCapacity"

// CapacityRefusal records that a node could not take a new volume in one
// of its pools. The node agent sets it on the replica it could not allocate
// (status.capacityRefusal); CreateVolume then clears the claim's placement,
// records the refusal in the claim's LocalVolumeGroup entry
// (spec.volumes[].refusals) and answers ResourceExhausted, so the pod is
// scheduled again. The scheduler keeps volumes of RequiredCapacityBytes or
// more (any volume after a volume-count refusal) off that pool of that node
// for as long as the node reports the pool as Report says.
type CapacityRefusal struct {
	// NodeName is the node that refused.
	// +kubebuilder:validation:MinLength=1
	NodeName string `json:"nodeName"`
	// PoolName is the pool that was short.
	// +kubebuilder:validation:Enum=LocalStorage_PoolHDD;LocalStorage_PoolSSD;LocalStorage_PoolNVMe
	PoolName string `json:"poolName"`
	// RequiredCapacityBytes is the size that did not fit.
	// +kubebuilder:validation:Minimum=0
	RequiredCapacityBytes int64 `json:"requiredCapacityBytes"`
	// FreeCapacityBytes is what the refusing side found free: the volume
	// group at allocation time (NodeAgent), or the node's report
	// (CSIController).
	// +kubebuilder:validation:Minimum=0
	// +optional
	FreeCapacityBytes int64 `json:"freeCapacityBytes,omitempty"`
	// VolumeCountLimit is set when the pool holds its maximum number of
	// volumes (then no volume of any size fits).
	// +kubebuilder:validation:Minimum=0
	// +optional
	VolumeCountLimit int64 `json:"volumeCountLimit,omitempty"`
	// Report is the pool as the node's LocalStorageNode reported it when
	// the node refused. The refusal holds while the node reports the pool
	// the same; a new report (other figures) ends it.
	Report PoolReport `json:"report"`
	// By is who found the pool short.
	By CapacityRefusalSource `json:"by"`
	// Time is when.
	Time metav1.Time `json:"time"`
}

// PoolReport is what identifies one report of a node's pool: its figures.
// All zero for a pool the node does not report.
type PoolReport struct {
	// +kubebuilder:validation:Minimum=0
	// +optional
	TotalCapacityBytes int64 `json:"totalCapacityBytes,omitempty"`
	// +kubebuilder:validation:Minimum=0
	// +optional
	FreeCapacityBytes int64 `json:"freeCapacityBytes,omitempty"`
	// +kubebuilder:validation:Minimum=0
	// +optional
	FreeVolumeCount int64 `json:"freeVolumeCount,omitempty"`
}

// Report returns the pool's report figures.
func (p *LocalPool) Report() PoolReport {
	return PoolReport{TotalCapacityBytes: p.TotalCapacityBytes, FreeCapacityBytes: p.FreeCapacityBytes, FreeVolumeCount: p.FreeVolumeCount}
}

// PoolReportOf returns the report of pool in the node's status (zero when
// the node does not report that pool, or lsn is nil).
func PoolReportOf(lsn *LocalStorageNode, pool string) PoolReport {
	if lsn == nil {
		return PoolReport{}
	}
	p, ok := lsn.Status.Pools[pool]
	if !ok {
		return PoolReport{}
	}
	return p.Report()
}

// Holds reports whether the refusal still stands for a node that reports
// its pool as cur: it has not reported the pool differently since.
func (r *CapacityRefusal) Holds(cur PoolReport) bool { return r.Report == cur }

// Covers reports whether the refusal also refuses a new volume of bytes in
// the same pool (while it holds): any size after a volume-count refusal,
// else the refused size or more.
func (r *CapacityRefusal) Covers(bytes int64) bool {
	return r.VolumeCountLimit > 0 || bytes >= r.RequiredCapacityBytes
}

// Shortage says what was short, with the numbers: "2Gi free at
// allocation, the node reports 40Gi free" (NodeAgent), "2Gi free in the
// node's report" (CSIController), "volume count limit 1000 reached".
func (r *CapacityRefusal) Shortage() string {
	switch {
	case r.VolumeCountLimit > 0:
		return fmt.Sprintf("volume count limit %d reached", r.VolumeCountLimit)
	case r.By == RefusedByNodeAgent:
		return fmt.Sprintf("%s free at allocation, the node reports %s free",
			FormatBytes(r.FreeCapacityBytes), FormatBytes(r.Report.FreeCapacityBytes))
	}
	return fmt.Sprintf("%s free in the node's report", FormatBytes(r.FreeCapacityBytes))
}

// String describes the refusal: "node N refused 10Gi in
// LocalStorage_PoolHDD: 2Gi free at allocation, the node reports 40Gi
// free".
func (r *CapacityRefusal) String() string {
	return fmt.Sprintf("node %s refused %s in %s: %s", r.NodeName, FormatBytes(r.RequiredCapacityBytes), r.PoolName, r.Shortage())
}

// MaxRefusals is how many refusals a LocalVolumeGroup entry keeps (the
// validation's maxItems): the latest ones.
const MaxRefusals = 32

// SetRefusal adds r to refusals, replacing an earlier one of the same node;
// when MaxRefusals are kept already, the oldest goes.
func SetRefusal(refusals []CapacityRefusal, r CapacityRefusal) []CapacityRefusal {
	for i := range refusals {
		if refusals[i].NodeName == r.NodeName {
			refusals[i] = r
			return refusals
		}
	}
	for len(refusals) >= MaxRefusals {
		oldest := 0
		for i := range refusals {
			if refusals[i].Time.Before(&refusals[oldest].Time) {
				oldest = i
			}
		}
		refusals = append(refusals[:oldest], refusals[oldest+1:]...)
	}
	return append(refusals, r)
}
