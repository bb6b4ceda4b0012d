package backend

import (
	"errors"
	"fmt"
	"hwameistor.io/local/api/v1alpha1"
)

// Sentinel errors. Backends wrap them with the details, so callers test with
// errors.Is and the CSI layer maps each to one gRPC code (in parentheses).
var (
	// ErrNotFound: the volume does not exist (NotFound).
	ErrNotFound = errors.New("volume not found")
	// ErrPoolNotFound: the pool is not configured or its storage is
	// missing on this node (NotFound / FailedPrecondition).
	ErrPoolNotFound = errors.New("pool not found")
	// ErrInsufficientCapacity: the pool is short of bytes or of volume
	// slots (ResourceExhausted). The concrete error is a *CapacityError.
	ErrInsufficientCapacity = errors.New("insufficient capacity")
	// ErrAlreadyExists: a volume of that name exists with another size
	// (AlreadyExists).
	ErrAlreadyExists = errors.New("volume already exists with a different size")
	// ErrNotOwned: a volume of that name exists but was not created by
	// this backend, so it is neither reported nor touched (AlreadyExists on
	// create, FailedPrecondition otherwise).
	ErrNotOwned = errors.New("volume exists but is not managed by hwameistor")
	// ErrInvalidArgument: a bad name, tag or size (InvalidArgument).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrAttachUnsupported: Attach on a backend built without loop devices.
	ErrAttachUnsupported = errors.New("attaching volumes is not enabled in this backend")
)

// CapacityError says how short a pool is. It Is ErrInsufficientCapacity.
type CapacityError struct {
	Pool string
	// NeedBytes and FreeBytes are set when bytes are short.
	NeedBytes, FreeBytes int64
	// VolumeCountLimit is set when the pool holds its maximum number of
	// volumes.
	VolumeCountLimit int64
}

func (e *CapacityError) Error() string {
	if e.VolumeCountLimit > 0 {
		return fmt.Sprintf("pool %s: insufficient capacity: volume count limit %d reached", e.Pool, e.VolumeCountLimit)
	}
	return fmt.Sprintf("pool %s: insufficient capacity: need %s, free %s", e.Pool, v1alpha1.FormatBytes(e.NeedBytes), v1alpha1.FormatBytes(e.FreeBytes))
}

// Is makes errors.Is(err, ErrInsufficientCapacity) true.
func (e *CapacityError) Is(target error) bool { return target == ErrInsufficientCapacity }
