package nodecerts

import (
	"context"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"hwameistor.io/local/csidriver/replication"
)

// roleSyncer keeps the Role replication.NodeCertRole granting get on
// exactly the node Secrets that exist (RBAC cannot grant a name prefix,
// and a grant on every Secret of the namespace would hand the agents the
// CA's key). The manifests bind it to the agents' ServiceAccount. The
// controllers may write it because they hold get on those Secrets
// themselves (RBAC's escalation check).
//
// It runs after node Secrets were created or deleted, at most every
// minSyncInterval (thousands of nodes issued at once make one update, not
// thousands), and every minute to repair a Role changed by hand.
type roleSyncer struct {
	r       *Reconciler
	trigger chan struct{}
}

const (
	minSyncInterval = 2 * time.Second
	roleResync      = time.Minute
)

var (
	_ manager.Runnable               = &roleSyncer{}
	_ manager.LeaderElectionRunnable = &roleSyncer{}
)

func (s *roleSyncer) NeedLeaderElection() bool { return true }

// kick asks for a sync soon.
func (s *roleSyncer) kick() {
	if s.trigger == nil {
		return
	}
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// Start syncs until ctx ends.
func (s *roleSyncer) Start(ctx context.Context) error {
	logger := log.FromContext(ctx).WithName("nodecerts-role")
	ctx = log.IntoContext(ctx, logger)
	for {
		if err := s.r.SyncRole(ctx); err != nil {
			logger.Error(err, "Cannot update the Role that lets the node agents read their certificates; new nodes cannot copy volumes until it is", "role", s.r.Namespace+"/"+replication.NodeCertRole)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(minSyncInterval):
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.trigger:
		case <-time.After(roleResync):
		}
	}
}

// SyncRole makes the Role grant get on the node Secrets there are now.
func (r *Reconciler) SyncRole(ctx context.Context) error {
	secrets := &corev1.SecretList{}
	if err := r.Client.List(ctx, secrets, client.InNamespace(r.Namespace), client.MatchingLabels(NodeCertLabels())); err != nil {
		return err
	}
	names := make([]string, 0, len(secrets.Items))
	for _, s := range secrets.Items {
		if s.DeletionTimestamp == nil {
			names = append(names, s.Name)
		}
	}
	slices.Sort(names)
	// No rule at all without Secrets: a rule with no resourceNames
	// would grant every Secret of the namespace.
	var rules []rbacv1.PolicyRule
	if len(names) > 0 {
		rules = []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}, ResourceNames: names}}
	}
	role := &rbacv1.Role{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: replication.NodeCertRole}, role)
	if apierrors.IsNotFound(err) {
		role = &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: replication.NodeCertRole,
			Labels: map[string]string{managedBy: "hwameistor-controllers"}}, Rules: rules}
		return r.Client.Create(ctx, role)
	}
	if err != nil {
		return err
	}
	if rulesEqual(role.Rules, rules) {
		return nil
	}
	role.Rules = rules
	if err := r.Client.Update(ctx, role); err != nil {
		return err
	}
	log.FromContext(ctx).V(1).Info("Updated the node agents' certificate Role", "secrets", len(names))
	return nil
}

func rulesEqual(a, b []rbacv1.PolicyRule) bool {
	return slices.EqualFunc(a, b, func(x, y rbacv1.PolicyRule) bool {
		return slices.Equal(x.APIGroups, y.APIGroups) && slices.Equal(x.Resources, y.Resources) &&
			slices.Equal(x.Verbs, y.Verbs) && slices.Equal(x.ResourceNames, y.ResourceNames) && len(x.NonResourceURLs) == 0 && len(y.NonResourceURLs) == 0
	})
}
