package emulated

import (
	"fmt"
	"sort"
	"time"

	"hwameistor.io/local/csidriver/drbd"
)

// settle applies what happened since the state was stored: a finished
// resync, a link that broke (a node failed or was isolated, a side went
// down or StandAlone), a link that can form (both sides up, each naming
// the other, reachable). Every access to a resource settles it first, so
// whoever looks next (an agent reading /proc/drbd, a command, the
// simulator) moves the state machine on; nothing runs in the background.
func (c *Cluster) settle(r *resource) error {
	now := c.now()
	if r.Sync != nil && len(r.Link) == 2 && r.Sync.done(now) >= r.Sync.Total {
		if err := c.finish(r); err != nil {
			return err
		}
	}
	if len(r.Link) == 2 && !c.linkable(r.Sides[r.Link[0]], r.Sides[r.Link[1]]) {
		c.drop(r, now)
	}
	if len(r.Link) == 0 {
		for _, a := range sides(r) {
			if b := r.Sides[a.Peer]; a.Node < a.Peer && c.linkable(a, b) {
				c.handshake(r, a, b, now)
				break
			}
		}
	}
	if r.Sync != nil && r.Sync.done(now) >= r.Sync.Total {
		return c.finish(r)
	}
	return nil
}

// unsettled says whether settle would change r: a resync is due to
// finish, the link broke, or a link can form.
func (c *Cluster) unsettled(r *resource) bool {
	if r.Sync != nil && r.Sync.done(c.now()) >= r.Sync.Total {
		return true
	}
	if len(r.Link) == 2 {
		return !c.linkable(r.Sides[r.Link[0]], r.Sides[r.Link[1]])
	}
	for _, a := range r.Sides {
		if a.Node < a.Peer && c.linkable(a, r.Sides[a.Peer]) {
			return true
		}
	}
	return false
}

// sides are r's sides in node order.
func sides(r *resource) []*side {
	out := make([]*side, 0, len(r.Sides))
	for _, s := range r.Sides {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}

// linkable: both sides are up and want a connection, their files name each
// other, and their nodes can reach each other.
func (c *Cluster) linkable(a, b *side) bool {
	return a != nil && b != nil && a.Up && b.Up && !a.StandAlone && !b.StandAlone &&
		a.Peer == b.Node && b.Peer == a.Node && c.reachable(a.Node, b.Node)
}

// peerOf is the side s is connected to, nil when it is not connected.
func (r *resource) peerOf(s *side) *side {
	if len(r.Link) != 2 {
		return nil
	}
	switch s.Node {
	case r.Link[0]:
		return r.Sides[r.Link[1]]
	case r.Link[1]:
		return r.Sides[r.Link[0]]
	}
	return nil
}

// connection is s's connection state in 8.4's words.
func (r *resource) connection(s *side) string {
	switch {
	case s.StandAlone:
		return "StandAlone"
	case r.peerOf(s) == nil:
		return "WFConnection"
	case r.Sync != nil && r.Sync.Source == s.Node:
		return "SyncSource"
	case r.Sync != nil && r.Sync.Target == s.Node:
		return "SyncTarget"
	}
	return "Connected"
}

// drop breaks the link. A resync target keeps what is left to copy; a
// Primary that goes on alone starts a new data generation (its node alive:
// a failed node saw nothing).
func (c *Cluster) drop(r *resource, now time.Time) {
	for _, n := range r.Link {
		s := r.Sides[n]
		if s == nil {
			continue
		}
		if r.Sync != nil && r.Sync.Target == n {
			s.Pending = max(r.Sync.Total-r.Sync.done(now), 1)
		}
		if s.Up && s.Role == drbd.RolePrimary && !c.Failed(n) {
			s.moveOn()
		}
	}
	r.Link, r.Sync = nil, nil
}

// handshake is what DRBD 8.4 decides when two sides connect, from their
// disk states and data generations: connect in sync, resync from the side
// with newer data, or refuse (split brain, unrelated data) and stay
// StandAlone.
func (c *Cluster) handshake(r *resource, a, b *side, now time.Time) {
	link := func() {
		r.Link = []string{a.Node, b.Node}
		sort.Strings(r.Link)
	}
	startSync := func(src, dst *side, total int64) {
		if dst.Role == drbd.RolePrimary {
			// "I shall become SyncTarget, but I am primary!"
			dst.StandAlone = true
			return
		}
		link()
		dst.Consistent, dst.Outdated, dst.Discard = false, false, false
		r.Sync = &resync{Source: src.Node, Target: dst.Node, Total: min(total, dst.Size, src.Size), Start: now, Rate: c.rate}
	}
	switch {
	case !a.Consistent && !b.Consistent:
		// A new pair: connected, both Inconsistent, until the agent
		// marks them identical or one side is forced Primary.
		link()
	case !a.Consistent:
		startSync(b, a, pending(a))
	case !b.Consistent:
		startSync(a, b, pending(b))
	case a.Gen == b.Gen:
		link()
		for _, s := range []*side{a, b} {
			s.Outdated, s.Changes, s.Parent, s.Crashed = false, 0, 0, false
		}
	case a.Parent == 0 && b.Parent == a.Gen:
		startSync(b, a, behind(a, b))
	case b.Parent == 0 && a.Parent == b.Gen:
		startSync(a, b, behind(b, a))
	case a.Parent != 0 && b.Parent != 0:
		loser := splitBrainLoser(a, b)
		if loser == nil {
			// after-sb-2pri disconnect (or both changed as
			// Secondaries): nothing is discarded, a person decides.
			a.StandAlone, b.StandAlone, a.SplitBrain, b.SplitBrain = true, true, true, true
			return
		}
		winner := a
		if loser == a {
			winner = b
		}
		startSync(winner, loser, a.Changes+b.Changes)
	default:
		// Unrelated data: the generations share no history.
		a.StandAlone, b.StandAlone = true, true
	}
}

// pending is what an Inconsistent side needs copied: what an interrupted
// resync left, else everything.
func pending(s *side) int64 {
	if s.Pending > 0 {
		return s.Pending
	}
	return s.Size
}

// behind is what a side behind src needs: src's changes, everything if it
// crashed as Primary (the real kernel resynced the whole device then).
func behind(dst, src *side) int64 {
	if dst.Crashed {
		return dst.Size
	}
	return src.Changes + dst.Pending
}

// splitBrainLoser applies the resource file's after-sb policies to two
// sides that both moved on apart, nil when neither may be discarded.
func splitBrainLoser(a, b *side) *side {
	pa, pb := a.Role == drbd.RolePrimary, b.Role == drbd.RolePrimary
	switch {
	case a.Discard != b.Discard: // connect --discard-my-data
		if a.Discard {
			return a
		}
		return b
	case pa && pb: // after-sb-2pri disconnect
		return nil
	case pa: // after-sb-1pri discard-secondary
		return b
	case pb:
		return a
	case a.Changes == 0: // after-sb-0pri discard-zero-changes
		return a
	case b.Changes == 0:
		return b
	}
	return nil
}

// finish completes the resync: the target's backing file gets the
// source's data, and both are UpToDate in one generation.
func (c *Cluster) finish(r *resource) error {
	src, dst := r.Sides[r.Sync.Source], r.Sides[r.Sync.Target]
	if src == nil || dst == nil {
		r.Sync = nil
		return nil
	}
	if err := copyData(src.File, dst.File); err != nil {
		return fmt.Errorf("resync of %s from %s to %s: %w", r.Name, src.Node, dst.Node, err)
	}
	dst.Gen, dst.Consistent, dst.Outdated = src.Gen, true, false
	for _, s := range []*side{src, dst} {
		s.Parent, s.Changes, s.Pending, s.Crashed = 0, 0, 0, false
	}
	r.Sync = nil
	return nil
}
