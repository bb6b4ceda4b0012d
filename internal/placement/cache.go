package placement

import (
	"cmp"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// DefaultTTL bounds how long a reservation that was never persisted holds
// capacity (a Reserve whose PreBind never ran).
const DefaultTTL = 5 * time.Minute

type poolState struct {
	exists        bool
	total         int64
	free          int64
	freeCount     int64
	extent        int64
	limit         int64 // volumeCapacityBytesLimit, 0 for none
	reservedBytes int64
	reservedCount int64
}

type entry struct {
	pool      Pool
	bytes     int64 // rounded to the pool's extent when reserved
	persisted bool
	expires   time.Time
	created   time.Time // when the entry started (metrics)
}

type nodeState struct {
	zone    string
	known   bool // a LocalStorageNode exists
	state   v1.State
	pools   [NumPools]poolState
	present map[string]struct{} // volumes the node's status already counts
	// noDRBD says why the node cannot replicate HA volumes ("" when it
	// can, or when its agent does not replicate at all).
	noDRBD  string
	entries map[string]*entry // in-flight reservations by volume key
	// refusals are the node's capacity refusals (refusal.go); few, and
	// only those whose report still matches the pool count.
	refusals []Refusal
}

// Cache is the capacity view plus the reservation ledger. It is safe for
// concurrent use; reads take a shared lock and do not allocate.
type Cache struct {
	mu       sync.RWMutex
	nodes    map[string]*nodeState
	byVolume map[string]map[string]struct{} // volume key -> nodes with an entry
	// refusedBy maps a volume key to the nodes holding a refusal of it.
	refusedBy map[string][]string
	ttl       time.Duration
	now       func() time.Time
	observer  func(ReservationEnd) // see SetObserver
}

// NewCache returns an empty cache whose unpersisted reservations live for ttl.
func NewCache(ttl time.Duration) *Cache {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &Cache{
		nodes:     map[string]*nodeState{},
		byVolume:  map[string]map[string]struct{}{},
		refusedBy: map[string][]string{},
		ttl:       ttl,
		now:       time.Now,
	}
}

func (c *Cache) node(name string) *nodeState {
	n := c.nodes[name]
	if n == nil {
		n = &nodeState{present: map[string]struct{}{}, entries: map[string]*entry{}}
		c.nodes[name] = n
	}
	return n
}

// UpsertNode takes a LocalStorageNode's status as the truth for that node's
// pools and ends every reservation whose volume the status now lists.
func (c *Cache) UpsertNode(lsn *v1.LocalStorageNode) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.node(lsn.Name)
	n.known = true
	n.zone = lsn.Spec.Topo.Zone
	n.state = lsn.Status.State
	n.noDRBD = ""
	if c := meta.FindStatusCondition(lsn.Status.Conditions, v1.ConditionDRBD); c != nil && c.Status == metav1.ConditionFalse {
		n.noDRBD = cmp.Or(c.Message, c.Reason)
	}
	present := make(map[string]struct{}, len(n.present))
	var pools [NumPools]poolState
	for key, p := range lsn.Status.Pools {
		i, ok := PoolByName(key)
		if !ok {
			continue
		}
		pools[i] = poolState{exists: true, total: p.TotalCapacityBytes, free: p.FreeCapacityBytes, freeCount: p.FreeVolumeCount, extent: p.ExtentSizeBytes, limit: p.VolumeCapacityBytesLimit}
		for _, v := range p.Volumes {
			present[v] = struct{}{}
		}
	}
	n.present = present
	for i := range pools {
		pools[i].reservedBytes, pools[i].reservedCount = 0, 0
	}
	for vol, e := range n.entries {
		if _, ok := present[vol]; ok {
			c.dropEntry(lsn.Name, n, vol, EndCounted)
			continue
		}
		// An entry made before the pool was known (SetPlacement on start)
		// was not rounded to its extent yet; rounding again is a no-op.
		e.bytes = v1.RoundUpToExtent(e.bytes, pools[e.pool].extent)
		pools[e.pool].reservedBytes += e.bytes
		pools[e.pool].reservedCount++
	}
	n.pools = pools
}

// DeleteNode forgets a node's pools; its reservations stay until released.
func (c *Cache) DeleteNode(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.nodes[name]; n != nil {
		n.known = false
		n.present = map[string]struct{}{}
		for i := range n.pools {
			n.pools[i].exists = false
		}
		if len(n.entries) == 0 && len(n.refusals) == 0 {
			delete(c.nodes, name)
		}
	}
}

func (c *Cache) addEntry(nodeName string, n *nodeState, vol Volume, persisted bool) {
	b := v1.RoundUpToExtent(vol.Bytes, n.pools[vol.Pool].extent)
	now := c.now()
	e := &entry{pool: vol.Pool, bytes: b, persisted: persisted, created: now}
	if !persisted {
		e.expires = now.Add(c.ttl)
	}
	n.entries[vol.Key] = e
	n.pools[vol.Pool].reservedBytes += b
	n.pools[vol.Pool].reservedCount++
	nodes := c.byVolume[vol.Key]
	if nodes == nil {
		nodes = map[string]struct{}{}
		c.byVolume[vol.Key] = nodes
	}
	nodes[nodeName] = struct{}{}
}

func (c *Cache) dropEntry(nodeName string, n *nodeState, volume string, why EndReason) {
	e, ok := n.entries[volume]
	if !ok {
		return
	}
	c.ended(nodeName, volume, e, why)
	delete(n.entries, volume)
	n.pools[e.pool].reservedBytes -= e.bytes
	n.pools[e.pool].reservedCount--
	if nodes := c.byVolume[volume]; nodes != nil {
		delete(nodes, nodeName)
		if len(nodes) == 0 {
			delete(c.byVolume, volume)
		}
	}
	if !n.known && len(n.entries) == 0 && len(n.refusals) == 0 {
		delete(c.nodes, nodeName)
	}
}

// Check reports whether vols fit on node, counting reservations in flight.
// A volume already reserved on this node counts as fitting (its bytes are
// held). Its verdict is typed: the zero Reason when they fit.
func (c *Cache) Check(node string, vols []Volume) Reason {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var why Reason
	c.check(node, vols, &why)
	return why
}

// check reports whether vols fit on node; when they do not and why is not
// nil, it says why there. The verdict is a bool so that the loops over
// every node (FittingNodes, PickPeer) and Filter's success path do not
// build a Reason.
func (c *Cache) check(node string, vols []Volume, why *Reason) bool {
	n := c.nodes[node]
	if n == nil || !n.known {
		return fail(why, Reason{Code: NoStorageNode})
	}
	if n.state != v1.StateReady {
		return fail(why, Reason{Code: NodeNotReady, State: n.state})
	}
	var needBytes, needCount [NumPools]int64
	for _, v := range vols {
		if _, held := n.entries[v.Key]; held {
			continue
		}
		p := &n.pools[v.Pool]
		if !p.exists {
			return fail(why, Reason{Code: NoPool, Pool: v.Pool})
		}
		if v.Replicated && n.noDRBD != "" {
			return fail(why, Reason{Code: NoDRBD, Message: n.noDRBD})
		}
		if p.limit > 0 && v.Bytes > p.limit {
			return fail(why, Reason{Code: VolumeTooLarge, Pool: v.Pool, Need: v.Bytes, Limit: p.limit})
		}
		needBytes[v.Pool] += v1.RoundUpToExtent(v.Bytes, p.extent)
		needCount[v.Pool]++
	}
	for i := Pool(0); i < NumPools; i++ {
		if needCount[i] == 0 {
			continue
		}
		p := &n.pools[i]
		if avail := p.free - p.reservedBytes; avail < needBytes[i] {
			return fail(why, Reason{Code: InsufficientCapacity, Pool: i, Need: needBytes[i], Free: p.free, Reserved: p.reservedBytes})
		}
		if p.freeCount-p.reservedCount < needCount[i] {
			return fail(why, Reason{Code: NoVolumeSlot, Pool: i, Need: needCount[i], Free: p.freeCount, Reserved: p.reservedCount})
		}
	}
	for j := range n.refusals {
		r := &n.refusals[j]
		if needCount[r.Pool] > 0 && r.holds(&n.pools[r.Pool]) && r.covers(needBytes[r.Pool]) {
			if why != nil {
				refusal := *r
				*why = Reason{Code: CapacityRefused, Pool: r.Pool, Need: needBytes[r.Pool], Refusal: &refusal}
			}
			return false
		}
	}
	return true
}

// fail records r in why (when asked) and says the volumes do not fit.
func fail(why *Reason, r Reason) bool {
	if why != nil {
		*why = r
	}
	return false
}

// Reserve holds vols on node, all or nothing, and returns the keys it added.
// Volumes already reserved there are left as they are, so Reserve is
// idempotent and a caller's Unreserve of the returned keys never drops
// another pod's hold on a shared claim. It fails with a *NodeError when the
// volumes no longer fit.
func (c *Cache) Reserve(node string, vols []Volume) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var why Reason
	if !c.check(node, vols, &why) {
		return nil, &NodeError{Node: node, Reason: why}
	}
	n := c.nodes[node]
	var added []string
	for _, v := range vols {
		if _, held := n.entries[v.Key]; !held {
			c.addEntry(node, n, v, false)
			added = append(added, v.Key)
		}
	}
	return added, nil
}

// Unreserve drops the unpersisted reservations of volumes on node. Persisted
// ones stay: their placement is recorded (a LocalVolumeGroup entry or a
// LocalVolume) and ends only when the volume is counted or released.
func (c *Cache) Unreserve(node string, volumes []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.nodes[node]; n != nil {
		for _, v := range volumes {
			if e, ok := n.entries[v]; ok && !e.persisted {
				c.dropEntry(node, n, v, EndUnreserved)
			}
		}
	}
}

// SetPlacement records a persisted placement: vol lives on exactly nodes.
// Entries on other nodes are dropped, and nodes whose status already counts
// the volume get none. Persisted entries do not expire.
func (c *Cache) SetPlacement(vol Volume, nodes []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for old := range c.byVolume[vol.Key] {
		if !contains(nodes, old) {
			c.dropEntry(old, c.nodes[old], vol.Key, EndMoved)
		}
	}
	for _, name := range nodes {
		n := c.node(name)
		if _, counted := n.present[vol.Key]; counted {
			continue
		}
		if e, held := n.entries[vol.Key]; held {
			e.persisted, e.expires = true, time.Time{}
			continue
		}
		c.addEntry(name, n, vol, true)
	}
}

// Release drops every reservation of a volume (its claim or volume is gone).
// The refusals of the volume stay: they are facts about the nodes, kept
// until the group entry that records them changes (SetRefusals) or the
// claim is gone (Forget).
func (c *Cache) Release(volume string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.release(volume)
}

func (c *Cache) release(volume string) {
	for name := range c.byVolume[volume] {
		c.dropEntry(name, c.nodes[name], volume, EndReleased)
	}
}

// Forget drops every reservation and every refusal of a volume: its claim
// is gone.
func (c *Cache) Forget(volume string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.release(volume)
	c.setRefusals(volume, nil)
}

// Expire drops unpersisted reservations older than the TTL and returns how
// many it dropped.
func (c *Cache) Expire() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	dropped := 0
	for name, n := range c.nodes {
		for vol, e := range n.entries {
			if !e.persisted && now.After(e.expires) {
				c.dropEntry(name, n, vol, EndExpired)
				dropped++
			}
		}
	}
	return dropped
}

// Reserved returns the bytes and volume count reserved in flight in a pool.
func (c *Cache) Reserved(node string, p Pool) (bytes, count int64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if n := c.nodes[node]; n != nil {
		return n.pools[p].reservedBytes, n.pools[p].reservedCount
	}
	return 0, 0
}

// Reservation describes one ledger entry, for metrics and debugging.
type Reservation struct {
	Node, Volume string
	Pool         Pool
	Bytes        int64
	Persisted    bool
}

// Reservations lists the ledger.
func (c *Cache) Reservations() []Reservation {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []Reservation
	for name, n := range c.nodes {
		for vol, e := range n.entries {
			out = append(out, Reservation{Node: name, Volume: vol, Pool: e.pool, Bytes: e.bytes, Persisted: e.persisted})
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// UpsertVolume records where a LocalVolume's replicas are (spec.config, else
// spec.accessibility), or releases it when it is being deleted. The
// scheduler and the migration controller feed their caches with it.
func (c *Cache) UpsertVolume(lv *v1.LocalVolume) {
	if lv.Spec.Delete || lv.DeletionTimestamp != nil || lv.Status.State == v1.StateDeleted {
		c.Release(lv.Name)
		return
	}
	pool, ok := PoolByName(lv.Spec.PoolName)
	if !ok {
		return
	}
	var nodes []string
	if lv.Spec.Config != nil {
		for _, r := range lv.Spec.Config.Replicas {
			nodes = append(nodes, r.Hostname)
		}
	}
	if len(nodes) == 0 {
		nodes = lv.Spec.Accessibility.Nodes
	}
	if len(nodes) > 0 {
		c.SetPlacement(Volume{Key: lv.Name, Pool: pool, Bytes: lv.Spec.RequiredCapacityBytes}, nodes)
	}
}

// UpsertGroup turns the placements persisted in a LocalVolumeGroup into
// reservations (a no-op for volumes the nodes' status already counts), and
// takes the capacity refusals its entries record.
func (c *Cache) UpsertGroup(g *v1.LocalVolumeGroup) {
	for _, vi := range g.Spec.Volumes {
		if vi.LocalVolumeName == "" {
			continue
		}
		c.SetRefusals(vi.LocalVolumeName, RefusalsOf(vi.LocalVolumeName, vi.Refusals))
		pool, ok := PoolByName(vi.PoolName)
		if !ok || len(vi.Nodes) == 0 {
			continue
		}
		c.SetPlacement(Volume{Key: vi.LocalVolumeName, Pool: pool, Bytes: vi.RequiredCapacityBytes}, vi.Nodes)
	}
}
