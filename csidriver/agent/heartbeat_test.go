package agent

import (
	"context"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// TestHeartbeatRenews: a Lease per node, created on the first round and
// renewed on each next one; a Lease someone else changed meanwhile (the
// agent's copy is stale) is read again and renewed on the round after.
func TestHeartbeatRenews(t *testing.T) {
	ctx := context.Background()
	hb := &Heartbeat{Client: env.Client, Namespace: metav1.NamespaceDefault, Nodes: []string{"hb-a", "hb-b"}, Holder: "agent-0", Interval: 2 * time.Second}
	lease := func(node string) *coordinationv1.Lease {
		t.Helper()
		l := &coordinationv1.Lease{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: metav1.NamespaceDefault, Name: v1.AgentLeaseName(node)}, l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	hb.RenewAll(ctx)
	first := lease("hb-a")
	if *first.Spec.HolderIdentity != "agent-0" || *first.Spec.LeaseDurationSeconds != 8 || first.Spec.RenewTime == nil {
		t.Fatalf("lease spec %+v", first.Spec)
	}
	lease("hb-b")

	time.Sleep(10 * time.Millisecond)
	hb.RenewAll(ctx)
	if second := lease("hb-a"); !second.Spec.RenewTime.After(first.Spec.RenewTime.Time) {
		t.Errorf("not renewed: %v then %v", first.Spec.RenewTime, second.Spec.RenewTime)
	}

	// Changed by someone else: this round fails, the next one renews.
	other := lease("hb-a")
	other.Labels = map[string]string{"touched": "yes"}
	if err := env.Client.Update(ctx, other); err != nil {
		t.Fatal(err)
	}
	hb.RenewAll(ctx)
	hb.RenewAll(ctx)
	if got := lease("hb-a"); !got.Spec.RenewTime.After(other.Spec.RenewTime.Time) {
		t.Errorf("not renewed after a conflicting change: %v then %v", other.Spec.RenewTime, got.Spec.RenewTime)
	}
}
