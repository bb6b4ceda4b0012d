package agent

import (
	"context"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/source"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/drbd"
)

// minorKey is a DRBD minor on one served node.
type minorKey struct {
	node  string
	minor int
}

// watchDRBD has every served node's kernel DRBD state watched
// (drbd.Manager.Watch, every interval): a replica whose state changes is
// reconciled at once. It matters most for a Primary that lost its peer,
// whose I/O stays frozen until its agent has recorded the peer outdated
// (arbitrate); without it that waits for the replica's next periodic
// pass, up to drbdSteady. The minors come from the replicas replicate
// brought up.
func (a *Agent) watchDRBD(mgr manager.Manager, interval time.Duration) (source.Source, error) {
	events := make(chan event.TypedGenericEvent[*v1.LocalVolumeReplica], 64)
	for node, m := range a.DRBD {
		if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
			a.watchNode(ctx, node, m, interval, events)
			return nil
		})); err != nil {
			return nil, err
		}
	}
	return source.Channel(events, &handler.TypedEnqueueRequestForObject[*v1.LocalVolumeReplica]{}), nil
}

// watchNode sends an event for the replica of each minor of node whose
// kernel state changed, until ctx ends; minors of no known replica are
// left out.
func (a *Agent) watchNode(ctx context.Context, node string, m *drbd.Manager, interval time.Duration, events chan<- event.TypedGenericEvent[*v1.LocalVolumeReplica]) {
	m.Watch(ctx, interval, func(minor int) {
		name, ok := a.drbdMinors.Load(minorKey{node, minor})
		if !ok {
			return
		}
		rep := &v1.LocalVolumeReplica{}
		rep.Name = name.(string)
		select {
		case events <- event.TypedGenericEvent[*v1.LocalVolumeReplica]{Object: rep}:
		case <-ctx.Done():
		}
	})
}

// noteMinor remembers which replica a node's minor belongs to (watchDRBD).
func (a *Agent) noteMinor(rep *v1.LocalVolumeReplica, minor int) {
	a.drbdMinors.Store(minorKey{rep.Spec.NodeName, minor}, rep.Name)
}

// forgetMinors drops the minors of a replica that is going (unreplicate),
// so the map does not grow with every HA replica the agent ever served.
func (a *Agent) forgetMinors(rep *v1.LocalVolumeReplica) {
	a.drbdMinors.Range(func(k, v any) bool {
		if key := k.(minorKey); key.node == rep.Spec.NodeName && v == rep.Name {
			a.drbdMinors.Delete(k)
		}
		return true
	})
}
