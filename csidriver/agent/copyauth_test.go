package agent

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/backend"
	"hwameistor.io/local/csidriver/replication"
)

// target is the replica of volume on node as a migration from source
// marks its copy target.
func target(volume, node, source string) *v1.LocalVolumeReplica {
	r := replicaOn(volume, node, "")
	r.Annotations = map[string]string{v1.SyncPendingAnnotation: "mig-" + volume, v1.SyncSourceAnnotation: source}
	return r
}

// TestAuthorizeCopy: the source's agent serves a volume only to the node
// whose replica is the live target of its copy from a node it serves.
func TestAuthorizeCopy(t *testing.T) {
	synced := target("pvc-synced", "b", "a")
	synced.Status.Synced = true
	deleting := target("pvc-deleting", "b", "a")
	deleting.Finalizers, deleting.DeletionTimestamp = []string{v1.ReplicaFinalizer}, &metav1.Time{Time: time.Now()}
	a := &Agent{
		Client: fakeClient(t,
			target("pvc-live", "b", "a"),
			replicaOn("pvc-live", "a", ""),
			replicaOn("pvc-live", "c", ""), // c holds a replica, but no copy goes to it
			synced, deleting,
			target("pvc-elsewhere", "b", "z"),
		),
		Backends: map[string]backend.Backend{"a": noDevices{}}, // the source is served here
	}
	tests := []struct {
		name, pool, volume, node string
		wantMsg                  string // "": allowed
	}{
		{name: "the live target", pool: v1.PoolNameHDD, volume: "pvc-live", node: "b"},
		{name: "a node with no replica", pool: v1.PoolNameHDD, volume: "pvc-live", node: "d", wantMsg: "node d is not the target of a live copy of pvc-live: it has no replica of the volume"},
		{name: "a replica that waits for no copy", pool: v1.PoolNameHDD, volume: "pvc-live", node: "c", wantMsg: "waits for no copy"},
		{name: "the source itself", pool: v1.PoolNameHDD, volume: "pvc-live", node: "a", wantMsg: "waits for no copy"},
		{name: "synced, the operation still running", pool: v1.PoolNameHDD, volume: "pvc-synced", node: "b"},
		{name: "being deleted", pool: v1.PoolNameHDD, volume: "pvc-deleting", node: "b", wantMsg: "being deleted"},
		{name: "a copy from a node not served here", pool: v1.PoolNameHDD, volume: "pvc-elsewhere", node: "b", wantMsg: "source z is not served by this agent"},
		{name: "another pool", pool: "LocalStorage_PoolSSD", volume: "pvc-live", node: "b", wantMsg: "for pool LocalStorage_PoolHDD"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := a.authorizeCopy(context.Background(), tc.pool, tc.volume, tc.node)
			if tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, replication.ErrForbidden) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("err = %v; want ErrForbidden containing %q", err, tc.wantMsg)
			}
		})
	}
}
