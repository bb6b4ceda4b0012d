package localstorage

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	fwk "k8s.io/kube-scheduler/framework"
)

// TestPreFilterWaitsForSync: until the hwameistor.io informers have synced
// (and so rebuilt the ledger), pods with claims are held back; pods without
// claims are not.
func TestPreFilterWaitsForSync(t *testing.T) {
	e := newTestEnv(t, nil, append(classes(), []runtime.Object{makePVC("data").PersistentVolumeClaim}...)...)
	e.pl.synced = func() bool { return false }

	_, st := e.cycle(makePod("p").withPVC("data").Pod).preFilter()
	if st.Code() != fwk.Unschedulable || !strings.Contains(st.Message(), ReasonNotSynced) {
		t.Errorf("PreFilter before sync: %v, want Unschedulable %q", st, ReasonNotSynced)
	}
	if _, st := e.cycle(makePod("q").Pod).preFilter(); st.Code() != fwk.Skip {
		t.Errorf("PreFilter of a pod without claims before sync: %v, want Skip", st)
	}
	e.pl.synced = func() bool { return true }
	if _, st := e.cycle(makePod("p").withPVC("data").Pod).preFilter(); !st.IsSuccess() {
		t.Errorf("PreFilter after sync: %v", st)
	}
}
