package placement

import (
	"fmt"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// Code says why volumes do not fit on a node: the one vocabulary of
// capacity verdicts. The scheduler plugin turns it into its message, its
// Event and its metric label; the controllers and the CLI into theirs.
type Code uint8

const (
	// Fits: the volumes fit.
	Fits Code = iota
	// NoStorageNode: the node has no LocalStorageNode (no node agent).
	NoStorageNode
	// NodeNotReady: the node's LocalStorageNode is not Ready (Reason.State).
	NodeNotReady
	// NoPool: the node has no pool of the volumes' class (Reason.Pool).
	NoPool
	// VolumeTooLarge: one volume is larger than the pool's
	// volumeCapacityBytesLimit (Need is its size, Limit the limit).
	VolumeTooLarge
	// InsufficientCapacity: the pool's free bytes, less reservations in
	// flight, are short (Need, Free, Reserved in bytes).
	InsufficientCapacity
	// NoVolumeSlot: the pool's free volume count is short (Need, Free,
	// Reserved in volumes).
	NoVolumeSlot
	// CapacityRefused: the node refused this size in this pool and has
	// not reported the pool since (Reason.Refusal).
	CapacityRefused
	// NoDRBD: an HA volume, and the node cannot replicate it (its
	// LocalStorageNode's DRBD condition is False; Reason.Message says why).
	NoDRBD
	// NumCodes counts the codes.
	NumCodes
)

var codeNames = [NumCodes]string{"Fits", "NoStorageNode", "NodeNotReady", "NoPool", "VolumeTooLarge",
	"InsufficientCapacity", "NoVolumeSlot", "CapacityRefused", "NoDRBD"}

func (c Code) String() string {
	if c < NumCodes {
		return codeNames[c]
	}
	return fmt.Sprintf("Code(%d)", c)
}

// Reason is a capacity verdict: a code plus the numbers behind it. The zero
// Reason fits. It is a value (no allocation on the Filter path) except
// for a refusal, which it points to a copy of.
type Reason struct {
	Code Code
	Pool Pool
	// State is the LocalStorageNode's state (NodeNotReady).
	State v1.State
	// Need, Free and Reserved are bytes (InsufficientCapacity) or volumes
	// (NoVolumeSlot): what the volumes need, what the pool reports free,
	// and what reservations in flight hold of it. VolumeTooLarge uses Need
	// (the volume's size) and Limit.
	Need, Free, Reserved, Limit int64
	// Refusal is the node's refusal (CapacityRefused).
	Refusal *Refusal
	// Message is the node agent's word on why it cannot replicate (NoDRBD).
	Message string
}

// Fits reports whether the verdict is that the volumes fit.
func (r Reason) Fits() bool { return r.Code == Fits }

// String is the message users see, "" when the volumes fit; tests and the
// docs quote these words.
func (r Reason) String() string {
	switch r.Code {
	case Fits:
		return ""
	case NoStorageNode:
		return "node has no LocalStorageNode (is the hwameistor node agent running there?)"
	case NodeNotReady:
		return fmt.Sprintf("LocalStorageNode is %s, not Ready", stateOrUnknown(r.State))
	case NoPool:
		return fmt.Sprintf("node has no pool %s", r.Pool.Name())
	case VolumeTooLarge:
		return fmt.Sprintf("pool %s takes volumes up to %s, %s requested", r.Pool.Name(), v1.FormatBytes(r.Limit), v1.FormatBytes(r.Need))
	case InsufficientCapacity:
		if r.Reserved > 0 {
			return fmt.Sprintf("pool %s: need %s, free %s (%s reserved in flight)", r.Pool.Name(), v1.FormatBytes(r.Need), v1.FormatBytes(r.Free-r.Reserved), v1.FormatBytes(r.Reserved))
		}
		return fmt.Sprintf("pool %s: need %s, free %s", r.Pool.Name(), v1.FormatBytes(r.Need), v1.FormatBytes(r.Free))
	case NoVolumeSlot:
		if r.Reserved > 0 {
			return fmt.Sprintf("pool %s: need %d volume(s), %d free (%d reserved in flight)", r.Pool.Name(), r.Need, r.Free-r.Reserved, r.Reserved)
		}
		return fmt.Sprintf("pool %s: need %d volume(s), %d free", r.Pool.Name(), r.Need, r.Free)
	case CapacityRefused:
		if r.Refusal == nil {
			return "refused by the node"
		}
		return r.Refusal.reason()
	case NoDRBD:
		if r.Message == "" {
			return "node cannot replicate HA volumes (no DRBD)"
		}
		return "node cannot replicate HA volumes: " + r.Message
	}
	return r.Code.String()
}

func stateOrUnknown(s v1.State) string {
	if s == "" {
		return "without state"
	}
	return string(s)
}

// NodeError is a Reserve that found the volumes no longer fit on Node.
type NodeError struct {
	Node string
	Reason
}

func (e *NodeError) Error() string { return fmt.Sprintf("node %s: %s", e.Node, e.Reason) }

// FitsPool is the verdict on one new volume of size bytes in pool as a
// LocalStorageNode reports it, with nothing in flight: the CSI
// controller's last check before it creates a volume the ledger placed
// (the ledger has already counted the volume's own reservation).
func FitsPool(lsn *v1.LocalStorageNode, pool Pool, size int64) Reason {
	p, ok := lsn.Status.Pools[pool.Name()]
	switch need := v1.RoundUpToExtent(size, p.ExtentSizeBytes); {
	case !ok:
		return Reason{Code: NoPool, Pool: pool}
	case p.VolumeCapacityBytesLimit > 0 && size > p.VolumeCapacityBytesLimit:
		return Reason{Code: VolumeTooLarge, Pool: pool, Need: size, Limit: p.VolumeCapacityBytesLimit}
	case need > p.FreeCapacityBytes:
		return Reason{Code: InsufficientCapacity, Pool: pool, Need: need, Free: p.FreeCapacityBytes}
	case p.FreeVolumeCount < 1:
		return Reason{Code: NoVolumeSlot, Pool: pool, Need: 1, Free: p.FreeVolumeCount}
	}
	return Reason{}
}
