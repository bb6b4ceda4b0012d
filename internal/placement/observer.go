package placement

import "time"

// EndReason says why a ledger entry ended.
type EndReason int

// The ways a ledger entry ends.
const (
	// EndCounted: the node's status lists the volume, so its bytes are
	// in the pool's used capacity (the normal end of a placement).
	EndCounted EndReason = iota
	// EndUnreserved: the scheduler's Unreserve gave an unpersisted entry
	// back (a later plugin or the binding failed).
	EndUnreserved
	// EndExpired: an unpersisted entry outlived the TTL (PreBind never
	// ran).
	EndExpired
	// EndReleased: the claim or the volume was deleted.
	EndReleased
	// EndMoved: a persisted placement put the volume on other nodes.
	EndMoved
	// NumEndReasons is the number of reasons (for tables).
	NumEndReasons
)

var endReasonNames = [NumEndReasons]string{"counted", "unreserved", "expired", "released", "moved"}

// String is the reason's metric label: counted, unreserved, expired,
// released or moved.
func (r EndReason) String() string {
	if r < 0 || r >= NumEndReasons {
		return "unknown"
	}
	return endReasonNames[r]
}

// ReservationEnd describes a ledger entry that ended.
type ReservationEnd struct {
	Node, Volume string
	Pool         Pool
	Bytes        int64
	Persisted    bool
	// Age is how long the entry held the bytes.
	Age    time.Duration
	Reason EndReason
}

// SetObserver has fn called for every ledger entry that ends (metrics);
// nil removes it. fn runs under the cache's lock: it must be quick and must
// not call the Cache.
func (c *Cache) SetObserver(fn func(ReservationEnd)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.observer = fn
}

// ended tells the observer about an entry being dropped. c.mu is held.
func (c *Cache) ended(node, volume string, e *entry, why EndReason) {
	if c.observer == nil {
		return
	}
	c.observer(ReservationEnd{Node: node, Volume: volume, Pool: e.pool, Bytes: e.bytes, Persisted: e.persisted,
		Age: c.now().Sub(e.created), Reason: why})
}

// Summary is the ledger in numbers, for metrics. Arrays indexed by a bool
// use 0 for unpersisted entries and 1 for persisted ones.
type Summary struct {
	// Count and Bytes of the entries by pool and persistence.
	Count, Bytes [NumPools][2]int64
	// Oldest is when the oldest entry of each persistence started; zero
	// when there is none. A restarted scheduler rebuilds the persisted
	// entries, which then start again.
	Oldest [2]time.Time
}

// Summarize walks the ledger under the read lock.
func (c *Cache) Summarize() Summary {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var s Summary
	for _, n := range c.nodes {
		for _, e := range n.entries {
			p := 0
			if e.persisted {
				p = 1
			}
			s.Count[e.pool][p]++
			s.Bytes[e.pool][p] += e.bytes
			if s.Oldest[p].IsZero() || e.created.Before(s.Oldest[p]) {
				s.Oldest[p] = e.created
			}
		}
	}
	return s
}
