package placement

import v1 "hwameistor.io/local/api/v1alpha1"

// FittingNodes appends to dst up to limit nodes (other than exclude) where
// vols fit, looking only at candidates when candidates is non-nil. It stops
// at the first limit found, so asking "is there a peer?" is cheap when the
// cluster has room.
func (c *Cache) FittingNodes(dst []string, vols []Volume, candidates []string, exclude string, limit int) []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	start := len(dst) // limit counts the nodes appended, not those already in dst
	if candidates != nil {
		for _, name := range candidates {
			if len(dst)-start >= limit {
				break
			}
			if name != exclude && c.check(name, vols, nil) {
				dst = append(dst, name)
			}
		}
		return dst
	}
	for name := range c.nodes {
		if len(dst)-start >= limit {
			break
		}
		if name != exclude && c.check(name, vols, nil) {
			dst = append(dst, name)
		}
	}
	return dst
}

// PickPeer chooses where the second replica of HA volumes goes when the first
// is on node: a node where vols fit, preferring another zone than node's, then
// the most free bytes left after placement (ties by name, for determinism).
// candidates, when non-nil, limits the choice (a group's existing peer).
func (c *Cache) PickPeer(node string, vols []Volume, candidates []string) (string, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	zone := ""
	if n := c.nodes[node]; n != nil {
		zone = n.zone
	}
	best, bestOtherZone, bestFree := "", false, int64(-1)
	consider := func(name string) {
		if name == node || !c.check(name, vols, nil) {
			return
		}
		n := c.nodes[name]
		otherZone := zone != "" && n.zone != "" && n.zone != zone
		free := c.freeAfter(n, vols)
		better := best == "" ||
			(otherZone && !bestOtherZone) ||
			(otherZone == bestOtherZone && (free > bestFree || (free == bestFree && name < best)))
		if better {
			best, bestOtherZone, bestFree = name, otherZone, free
		}
	}
	if candidates != nil {
		for _, name := range candidates {
			consider(name)
		}
	} else {
		for name := range c.nodes {
			consider(name)
		}
	}
	return best, best != ""
}

// freeAfter is the free bytes left in the pools vols use, after placing them.
func (c *Cache) freeAfter(n *nodeState, vols []Volume) int64 {
	var used [NumPools]bool
	var need [NumPools]int64
	for _, v := range vols {
		used[v.Pool] = true
		if _, held := n.entries[v.Key]; !held {
			need[v.Pool] += v1.RoundUpToExtent(v.Bytes, n.pools[v.Pool].extent)
		}
	}
	var free int64
	for i := range used {
		if used[i] {
			p := &n.pools[i]
			free += p.free - p.reservedBytes - need[i]
		}
	}
	return free
}

// Utilization is the fraction (0..1) of the pools vols use that would be
// taken after placing vols on node, each pool weighted by weights[pool] times
// the bytes requested from it. ok is false when the node has no such pools.
func (c *Cache) Utilization(node string, vols []Volume, weights *[NumPools]int64) (u float64, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n := c.nodes[node]
	if n == nil {
		return 0, false
	}
	var need [NumPools]int64
	for _, v := range vols {
		if _, held := n.entries[v.Key]; !held {
			need[v.Pool] += v1.RoundUpToExtent(v.Bytes, n.pools[v.Pool].extent)
		}
	}
	var sum, wsum float64
	for _, v := range vols {
		p := &n.pools[v.Pool]
		if !p.exists || p.total <= 0 {
			return 0, false
		}
		taken := p.total - (p.free - p.reservedBytes - need[v.Pool])
		frac := float64(taken) / float64(p.total)
		if frac > 1 {
			frac = 1
		}
		w := float64(weights[v.Pool]) * float64(v.Bytes)
		sum += frac * w
		wsum += w
	}
	if wsum == 0 {
		return 0, false
	}
	return sum / wsum, true
}
