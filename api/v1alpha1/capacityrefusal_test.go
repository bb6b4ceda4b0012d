package v1alpha1

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const gib = int64(1) << 30

// TestCapacityRefusal: when a refusal holds, what it covers, and how it
// reads.
func TestCapacityRefusal(t *testing.T) {
	report := PoolReport{TotalCapacityBytes: 40 * gib, FreeCapacityBytes: 40 * gib, FreeVolumeCount: 1000}
	agent := CapacityRefusal{NodeName: "n1", PoolName: PoolNameHDD, RequiredCapacityBytes: 10 * gib, FreeCapacityBytes: 2 * gib,
		Report: report, By: RefusedByNodeAgent}
	csi := agent
	csi.By, csi.Report.FreeCapacityBytes, csi.FreeCapacityBytes = RefusedByCSIController, 2*gib, 2*gib
	count := agent
	count.VolumeCountLimit = 1000
	tests := []struct {
		name    string
		r       CapacityRefusal
		current PoolReport
		bytes   int64
		holds   bool
		covers  bool
		text    string
	}{
		{"agent, same report, same size", agent, report, 10 * gib, true, true,
			"node n1 refused 10Gi in LocalStorage_PoolHDD: 2Gi free at allocation, the node reports 40Gi free"},
		{"agent, smaller volume", agent, report, 9 * gib, true, false, ""},
		{"agent, free bytes reported anew", agent, PoolReport{TotalCapacityBytes: 40 * gib, FreeCapacityBytes: 2 * gib, FreeVolumeCount: 1000}, 10 * gib, false, true, ""},
		{"agent, pool grown", agent, PoolReport{TotalCapacityBytes: 80 * gib, FreeCapacityBytes: 40 * gib, FreeVolumeCount: 1000}, 10 * gib, false, true, ""},
		{"agent, slots reported anew", agent, PoolReport{TotalCapacityBytes: 40 * gib, FreeCapacityBytes: 40 * gib, FreeVolumeCount: 999}, 10 * gib, false, true, ""},
		{"agent, pool gone from the report", agent, PoolReport{}, 10 * gib, false, true, ""},
		{"CSI controller", csi, csi.Report, 10 * gib, true, true, "node n1 refused 10Gi in LocalStorage_PoolHDD: 2Gi free in the node's report"},
		{"volume count: every size", count, report, 1, true, true, "node n1 refused 10Gi in LocalStorage_PoolHDD: volume count limit 1000 reached"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.r.Holds(tc.current); got != tc.holds {
				t.Errorf("Holds = %v, want %v", got, tc.holds)
			}
			if got := tc.r.Covers(tc.bytes); got != tc.covers {
				t.Errorf("Covers(%d) = %v, want %v", tc.bytes, got, tc.covers)
			}
			if tc.text != "" && tc.r.String() != tc.text {
				t.Errorf("String = %q, want %q", tc.r.String(), tc.text)
			}
		})
	}
}

func TestPoolReportOfAndSetRefusal(t *testing.T) {
	lsn := &LocalStorageNode{Status: LocalStorageNodeStatus{Pools: map[string]LocalPool{
		PoolNameHDD: {TotalCapacityBytes: 40 * gib, FreeCapacityBytes: 30 * gib, FreeVolumeCount: 7, UsedCapacityBytes: 10 * gib},
	}}}
	if got, want := PoolReportOf(lsn, PoolNameHDD), (PoolReport{TotalCapacityBytes: 40 * gib, FreeCapacityBytes: 30 * gib, FreeVolumeCount: 7}); got != want {
		t.Errorf("PoolReportOf(HDD) = %+v, want %+v", got, want)
	}
	if got := PoolReportOf(lsn, PoolNameSSD); got != (PoolReport{}) {
		t.Errorf("PoolReportOf(SSD) = %+v, want zero", got)
	}
	if got := PoolReportOf(nil, PoolNameHDD); got != (PoolReport{}) {
		t.Errorf("PoolReportOf(nil) = %+v, want zero", got)
	}
	var list []CapacityRefusal
	list = SetRefusal(list, CapacityRefusal{NodeName: "a", RequiredCapacityBytes: 1})
	list = SetRefusal(list, CapacityRefusal{NodeName: "b", RequiredCapacityBytes: 2})
	list = SetRefusal(list, CapacityRefusal{NodeName: "a", RequiredCapacityBytes: 3})
	if len(list) != 2 || list[0].RequiredCapacityBytes != 3 || list[1].NodeName != "b" {
		t.Errorf("SetRefusal kept %+v: want one refusal per node, the latest", list)
	}
	list = nil
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i := range MaxRefusals + 3 {
		list = SetRefusal(list, CapacityRefusal{NodeName: fmt.Sprintf("n%d", i), Time: metav1.NewTime(start.Add(time.Duration(i) * time.Minute))})
	}
	if len(list) != MaxRefusals || list[0].NodeName != "n3" || list[MaxRefusals-1].NodeName != fmt.Sprintf("n%d", MaxRefusals+2) {
		t.Errorf("SetRefusal beyond %d kept %d, first %s: want the latest", MaxRefusals, len(list), list[0].NodeName)
	}
}
