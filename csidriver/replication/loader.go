package replication

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// Defaults of SecretLoader.
const (
	// DefaultRefresh: how often a loaded certificate's Secret is read
	// again. The controllers renew a certificate weeks before it
	// expires, so minutes are plenty.
	DefaultRefresh = 5 * time.Minute
	// DefaultRetry: how often a missing one is looked for.
	DefaultRetry = 5 * time.Second
)

// SecretLoader keeps Store filled with the certificates of Nodes, read
// from their Secrets (NodeSecretName) in Namespace: the ones not issued
// yet every Retry, with a log line saying which, the others every Refresh,
// so that a renewal is used without a restart. It reads with Get only
// (the agents' Role names the Secrets), never lists.
type SecretLoader struct {
	Client    client.Reader
	Namespace string
	Nodes     []string
	Store     *Store
	Refresh   time.Duration // DefaultRefresh when zero
	Retry     time.Duration // DefaultRetry when zero
	Now       func() time.Time
	Log       logr.Logger
}

var (
	_ manager.Runnable               = (*SecretLoader)(nil)
	_ manager.LeaderElectionRunnable = (*SecretLoader)(nil)
)

// NeedLeaderElection is false: every agent serves its own nodes.
func (l *SecretLoader) NeedLeaderElection() bool { return false }

// Start loads until ctx ends.
func (l *SecretLoader) Start(ctx context.Context) error {
	refresh, retry := l.Refresh, l.Retry
	if refresh <= 0 {
		refresh = DefaultRefresh
	}
	if retry <= 0 {
		retry = DefaultRetry
	}
	due := map[string]time.Time{}
	var lastWaiting []string
	var lastLog time.Time
	for {
		var waiting, loaded []string
		var reason error
		for _, n := range l.Nodes {
			if time.Now().Before(due[n]) {
				continue
			}
			changed, err := l.Load(ctx, n)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				waiting, reason = append(waiting, n), err
				due[n] = time.Now().Add(retry)
				continue
			}
			// Spread the reads of many nodes over the interval.
			due[n] = time.Now().Add(refresh - time.Duration(rand.Int64N(int64(refresh)/10+1)))
			if changed {
				loaded = append(loaded, n)
			}
		}
		l.report(loaded, waiting, reason, &lastWaiting, &lastLog)
		next := time.Now().Add(refresh)
		for _, t := range due {
			if t.Before(next) {
				next = t
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Until(next)):
		}
	}
}

// report logs the certificates loaded in a pass and, when the set changed
// or once a minute, the nodes still waiting for theirs.
func (l *SecretLoader) report(loaded, waiting []string, reason error, lastWaiting *[]string, lastLog *time.Time) {
	if len(loaded) > 0 {
		kv := []any{"nodes", len(loaded), "secret", l.Namespace + "/" + NodeSecretName(loaded[0])}
		if len(loaded) <= 8 {
			kv = append(kv, "names", loaded, "notAfter", l.Store.NotAfter(loaded[0]).UTC().Format(time.RFC3339))
		}
		l.Log.Info("Loaded replication certificates (new or renewed)", kv...)
	}
	if len(waiting) == 0 {
		*lastWaiting = nil
		return
	}
	if slices.Equal(waiting, *lastWaiting) && time.Since(*lastLog) < time.Minute {
		return
	}
	*lastWaiting, *lastLog = waiting, time.Now()
	l.Log.Info("Waiting for the replication certificates of nodes: hwameistor-controllers issue one per LocalStorageNode; copies to and from these nodes fail until it is loaded",
		"nodes", len(waiting), "first", waiting[:min(len(waiting), 5)], "secret", l.Namespace+"/"+NodeSecretName(waiting[0]), "reason", reason.Error())
}

// Load reads node's Secret into the Store once and reports whether the
// certificate changed.
func (l *SecretLoader) Load(ctx context.Context, node string) (bool, error) {
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	s := &corev1.Secret{}
	key := client.ObjectKey{Namespace: l.Namespace, Name: NodeSecretName(node)}
	if err := l.Client.Get(ctx, key, s); err != nil {
		return false, fmt.Errorf("reading Secret %s: %w", key, err)
	}
	changed, err := l.Store.Set(node, s.Data[SecretCertField], s.Data[SecretKeyField], s.Data[SecretCAField], now())
	if err != nil {
		return false, fmt.Errorf("Secret %s: %w", key, err)
	}
	return changed, nil
}
