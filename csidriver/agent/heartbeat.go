package agent

import (
	"context"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// Heartbeat renews one Lease per served node (v1.AgentLeaseName) every
// Interval, valid for four intervals: the LocalStorageNode controller marks
// a node whose Lease expired NotReady, so a stopped agent does not leave
// its node looking Ready while its volumes wait. Pool reports cannot serve
// for this: they write only when something changed.
type Heartbeat struct {
	// Client reads and writes the Leases directly (no cache: an agent needs
	// its own few Leases, not a watch on all of them).
	Client    client.Client
	Namespace string
	Nodes     []string
	// Holder names this agent in the Leases (its pod).
	Holder   string
	Interval time.Duration

	leases map[string]*coordinationv1.Lease
}

var _ manager.Runnable = &Heartbeat{}

// DefaultHeartbeatInterval is kubelet's node lease renewal, a quarter of
// its 40s lease.
const DefaultHeartbeatInterval = 10 * time.Second

// Start renews the Leases until ctx ends.
func (h *Heartbeat) Start(ctx context.Context) error {
	if h.Interval <= 0 {
		h.Interval = DefaultHeartbeatInterval
	}
	for {
		h.RenewAll(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(h.Interval):
		}
	}
}

// RenewAll renews every node's Lease once; a failure is logged and the
// next round tries again.
func (h *Heartbeat) RenewAll(ctx context.Context) {
	if h.leases == nil {
		h.leases = map[string]*coordinationv1.Lease{}
	}
	for _, node := range h.Nodes {
		if ctx.Err() != nil {
			return
		}
		if err := h.renew(ctx, node); err != nil {
			log.FromContext(ctx).Error(err, "Cannot renew the node agent's heartbeat", "node", node, "lease", h.Namespace+"/"+v1.AgentLeaseName(node))
		}
	}
}

// renew updates the node's Lease from the copy it last wrote (one write a
// round), reading it again only when that copy is missing or stale.
func (h *Heartbeat) renew(ctx context.Context, node string) error {
	now := metav1.NewMicroTime(time.Now())
	lease := h.leases[node]
	if lease == nil {
		lease = &coordinationv1.Lease{}
		err := h.Client.Get(ctx, client.ObjectKey{Namespace: h.Namespace, Name: v1.AgentLeaseName(node)}, lease)
		if apierrors.IsNotFound(err) {
			lease = &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Namespace: h.Namespace, Name: v1.AgentLeaseName(node),
					Labels:      map[string]string{"app.kubernetes.io/name": "hwameistor-node"},
					Annotations: map[string]string{v1.AgentLeaseNodeAnnotation: node}},
				Spec: h.spec(node, now),
			}
			if err := h.Client.Create(ctx, lease); err != nil {
				return err
			}
			h.leases[node] = lease
			return nil
		}
		if err != nil {
			return err
		}
	}
	lease.Spec = h.spec(node, now)
	if err := h.Client.Update(ctx, lease); err != nil {
		delete(h.leases, node) // read it again next round
		return err
	}
	h.leases[node] = lease
	return nil
}

func (h *Heartbeat) spec(node string, now metav1.MicroTime) coordinationv1.LeaseSpec {
	return coordinationv1.LeaseSpec{
		HolderIdentity:       ptr.To(h.Holder),
		LeaseDurationSeconds: ptr.To(max(1, int32(4*h.Interval/time.Second))),
		RenewTime:            &now,
	}
}
