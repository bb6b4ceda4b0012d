package agent

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/drbd"
)

// TestDRBDCondition: a node whose agent replicates says so, one asked to
// and unable says why (the scheduler keeps HA replicas off it), and one
// that does not replicate has no condition (a stale one goes).
func TestDRBDCondition(t *testing.T) {
	a := &Agent{
		DRBD:   map[string]*drbd.Manager{"with": {Version: drbd.V84}},
		NoDRBD: map[string]string{"missing": "the drbd kernel module is not loaded"},
	}
	stale := []metav1.Condition{{Type: v1.ConditionDRBD, Status: metav1.ConditionTrue, Reason: v1.ReasonDRBDLoaded}}
	for _, tt := range []struct {
		node       string
		before     []metav1.Condition
		wantStatus metav1.ConditionStatus // "" for none
		wantMsg    string
	}{
		{"with", nil, metav1.ConditionTrue, "DRBD 8.4 replicates HA volumes"},
		{"missing", nil, metav1.ConditionFalse, "the drbd kernel module is not loaded"},
		{"plain", stale, "", ""},
	} {
		st := &v1.LocalStorageNodeStatus{Conditions: tt.before}
		a.drbdCondition(tt.node, st)
		c := meta.FindStatusCondition(st.Conditions, v1.ConditionDRBD)
		switch {
		case tt.wantStatus == "" && c != nil:
			t.Errorf("%s: condition %+v, want none", tt.node, c)
		case tt.wantStatus != "" && (c == nil || c.Status != tt.wantStatus || c.Message != tt.wantMsg):
			t.Errorf("%s: condition %+v, want %s %q", tt.node, c, tt.wantStatus, tt.wantMsg)
		}
	}
}
