// Package backendtest has backends for tests of the layers above
// backend.Backend.
package backendtest

import (
	"context"
	"sync"

	"hwameistor.io/local/csidriver/backend"
)

// LaggingReport is a node's storage whose pool report lags: until CatchUp,
// Pools returns the stale pools it was made with instead of what the pools
// have, as when a pool shrank (space taken outside the system) and the
// node's report has not reached the apiserver yet. Everything else is the
// wrapped backend's.
type LaggingReport struct {
	backend.Backend
	mu    sync.Mutex
	stale []backend.Pool
}

var _ backend.Backend = (*LaggingReport)(nil)

// NewLaggingReport reports stale for be's pools until CatchUp.
func NewLaggingReport(be backend.Backend, stale []backend.Pool) *LaggingReport {
	return &LaggingReport{Backend: be, stale: stale}
}

// Pools implements backend.Backend.
func (l *LaggingReport) Pools(ctx context.Context) ([]backend.Pool, error) {
	l.mu.Lock()
	stale := l.stale
	l.mu.Unlock()
	if stale != nil {
		return stale, nil
	}
	return l.Backend.Pools(ctx)
}

// SetStale makes Pools report stale until CatchUp.
func (l *LaggingReport) SetStale(stale []backend.Pool) {
	l.mu.Lock()
	l.stale = stale
	l.mu.Unlock()
}

// CatchUp makes Pools report the wrapped backend's pools from now on.
func (l *LaggingReport) CatchUp() { l.SetStale(nil) }
