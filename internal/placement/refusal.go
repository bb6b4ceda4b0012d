package placement

import (
	"fmt"
	"slices"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// Refusal is a node's capacity refusal of a volume as the ledger keeps it:
// the node could not take Bytes in Pool while it reported the pool as
// Report. Until the node reports that pool differently, Check rejects the
// node for volumes of Bytes or more in that pool (every volume when the
// refusal was for the volume count), so the scheduler does not send the
// same demand back to a node that just refused it. A new report ends it:
// then the pool's reported figures decide again.
//
// Refusals come from the LocalVolumeGroup entry of the refused claim
// (v1alpha1.VolumeInfo.Refusals), where CreateVolume records them.
type Refusal struct {
	Node string
	// Volume is the key of the refused volume (whose entry records it).
	Volume string
	Pool   Pool
	v1.CapacityRefusal
}

// RefusalsOf converts the refusals a group entry records for volume.
// Refusals of unknown pools are left out.
func RefusalsOf(volume string, refusals []v1.CapacityRefusal) []Refusal {
	if len(refusals) == 0 {
		return nil
	}
	out := make([]Refusal, 0, len(refusals))
	for _, r := range refusals {
		p, ok := PoolByName(r.PoolName)
		if !ok || r.NodeName == "" {
			continue
		}
		out = append(out, Refusal{Node: r.NodeName, Volume: volume, Pool: p, CapacityRefusal: r})
	}
	return out
}

// holds reports whether the node still reports the pool as it did when it
// refused.
func (r *Refusal) holds(p *poolState) bool {
	cur := v1.PoolReport{}
	if p.exists {
		cur = v1.PoolReport{TotalCapacityBytes: p.total, FreeCapacityBytes: p.free, FreeVolumeCount: p.freeCount}
	}
	return r.CapacityRefusal.Holds(cur)
}

// covers reports whether the refusal also refuses a demand of need bytes.
func (r *Refusal) covers(need int64) bool { return r.CapacityRefusal.Covers(need) }

// reason is Check's message: "refused 10Gi in LocalStorage_PoolHDD: 2Gi
// free at allocation, the node reports 40Gi free; kept off this node until
// it reports the pool again".
func (r *Refusal) reason() string {
	return fmt.Sprintf("refused %s in %s: %s; kept off this node until it reports the pool again",
		v1.FormatBytes(r.RequiredCapacityBytes), r.Pool.Name(), r.Shortage())
}

// SetRefusals replaces the refusals recorded for volume (nil clears them).
func (c *Cache) SetRefusals(volume string, refusals []Refusal) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setRefusals(volume, refusals)
}

func (c *Cache) setRefusals(volume string, refusals []Refusal) {
	if len(refusals) == 0 && len(c.refusedBy[volume]) == 0 {
		return
	}
	for _, name := range c.refusedBy[volume] {
		n := c.nodes[name]
		if n == nil {
			continue
		}
		n.refusals = slices.DeleteFunc(n.refusals, func(r Refusal) bool { return r.Volume == volume })
		if !n.known && len(n.entries) == 0 && len(n.refusals) == 0 {
			delete(c.nodes, name)
		}
	}
	delete(c.refusedBy, volume)
	for _, r := range refusals {
		r.Volume = volume
		n := c.node(r.Node)
		n.refusals = append(n.refusals, r)
		if !slices.Contains(c.refusedBy[volume], r.Node) {
			c.refusedBy[volume] = append(c.refusedBy[volume], r.Node)
		}
	}
}

// Refusals lists the node's refusals that still hold (its report is
// unchanged), for messages and tests.
func (c *Cache) Refusals(node string) []Refusal {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n := c.nodes[node]
	if n == nil {
		return nil
	}
	var out []Refusal
	for i := range n.refusals {
		if n.refusals[i].holds(&n.pools[n.refusals[i].Pool]) {
			out = append(out, n.refusals[i])
		}
	}
	return out
}

// HasRefusals reports whether the node has any refusal recorded (holding
// or not): a change of its report may make room for pods it refused.
func (c *Cache) HasRefusals(node string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n := c.nodes[node]
	return n != nil && len(n.refusals) > 0
}
