// Package nodecerts issues the certificates the node agents copy volumes
// with (csidriver/replication): it keeps the replication CA in a Secret of
// the components' namespace, a certificate per node signed by it in a
// Secret per node, renewed before it expires and deleted when the node
// goes away, and the Role that lets the agents read exactly those
// Secrets (never the CA's).
package nodecerts

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/replication"
)

// Defaults: a node certificate lives 90 days and is renewed with 30 left
// (an agent reads its Secret every few minutes, so it always has weeks);
// the CA lives ten years and is replaced with one left.
const (
	DefaultValidity      = 90 * 24 * time.Hour
	DefaultRenewBefore   = 30 * 24 * time.Hour
	DefaultCAValidity    = 10 * 365 * 24 * time.Hour
	DefaultCARenewBefore = 365 * 24 * time.Hour
)

const managedBy = "app.kubernetes.io/managed-by"

// Reconciler keeps the certificate Secret of one LocalStorageNode (the
// request's name) in Namespace: issued while the LocalStorageNode and its
// Node exist, reissued when it is not a valid certificate of the node from
// the current CA with the current trust bundle for at least RenewBefore,
// and deleted when either is gone. It runs on the leader only.
type Reconciler struct {
	// Client reads LocalStorageNodes, Nodes and the node Secrets from the
	// cache (the Secrets: Namespace and NodeCertLabels only, see
	// CacheOptions) and writes.
	Client client.Client
	// APIReader reads the CA Secret and the Role, which are not cached.
	APIReader client.Reader
	Namespace string

	Validity, RenewBefore     time.Duration
	CAValidity, CARenewBefore time.Duration
	Now                       func() time.Time

	mu    sync.Mutex
	ca    caState
	roles roleSyncer
}

var _ reconcile.Reconciler = &Reconciler{}

// NodeCertLabels are the labels of every node Secret: what the controllers'
// cache of Secrets selects.
func NodeCertLabels() map[string]string {
	return map[string]string{replication.ComponentLabel: replication.NodeCertComponent, managedBy: "hwameistor-controllers"}
}

func (r *Reconciler) defaults() {
	if r.Validity == 0 {
		r.Validity = DefaultValidity
	}
	if r.RenewBefore == 0 {
		r.RenewBefore = DefaultRenewBefore
	}
	if r.CAValidity == 0 {
		r.CAValidity = DefaultCAValidity
	}
	if r.CARenewBefore == 0 {
		r.CARenewBefore = DefaultCARenewBefore
	}
}

func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// SetupWithManager watches LocalStorageNodes (created and deleted), Nodes
// (created and deleted) and the node Secrets, and adds the Role syncer.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.defaults()
	r.roles = roleSyncer{r: r, trigger: make(chan struct{}, 1)}
	byName := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: o.GetName()}}}
	})
	lifecycle := predicate.Funcs{UpdateFunc: func(event.UpdateEvent) bool { return false }}
	if err := mgr.Add(&r.roles); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).Named("nodecerts").
		For(&v1.LocalStorageNode{}, builder.WithPredicates(lifecycle)).
		Owns(&corev1.Secret{}).
		Watches(&corev1.Node{}, byName, builder.WithPredicates(lifecycle)).
		Complete(r)
}

// Reconcile keeps one node's Secret.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	r.defaults()
	node := req.Name
	key := client.ObjectKey{Namespace: r.Namespace, Name: replication.NodeSecretName(node)}
	lsn := &v1.LocalStorageNode{}
	err := r.Client.Get(ctx, client.ObjectKey{Name: node}, lsn)
	if err == nil && lsn.DeletionTimestamp == nil {
		err = r.Client.Get(ctx, client.ObjectKey{Name: node}, &corev1.Node{})
	} else if err == nil {
		err = apierrors.NewNotFound(v1.GroupVersion.WithResource("localstoragenodes").GroupResource(), node)
	}
	if apierrors.IsNotFound(err) {
		return reconcile.Result{}, r.remove(ctx, key, node)
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	ca, err := r.currentCA(ctx)
	if err != nil {
		return reconcile.Result{}, err
	}
	now := r.now()
	s := &corev1.Secret{}
	err = r.Client.Get(ctx, key, s)
	if err != nil && !apierrors.IsNotFound(err) {
		return reconcile.Result{}, err
	}
	exists := err == nil
	var why error = fmt.Errorf("no Secret %s", key)
	if exists {
		why = replication.CheckNode(ca.ca, node, s.Data[replication.SecretCertField], s.Data[replication.SecretKeyField], now, r.RenewBefore)
		if why == nil && !bytes.Equal(s.Data[replication.SecretCAField], ca.bundle) {
			why = fmt.Errorf("the trust bundle changed")
		}
		if why == nil {
			return reconcile.Result{RequeueAfter: r.untilRenewal(s, now)}, nil
		}
	}
	cert, certKey, err := ca.ca.IssueNode(node, now, r.Validity)
	if err != nil {
		return reconcile.Result{}, err
	}
	data := map[string][]byte{replication.SecretCertField: cert, replication.SecretKeyField: certKey, replication.SecretCAField: ca.bundle}
	if !exists {
		s = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, Labels: NodeCertLabels(),
				Annotations: map[string]string{replication.NodeAnnotation: node},
				// Garbage collected with the LocalStorageNode too.
				OwnerReferences: []metav1.OwnerReference{{APIVersion: v1.GroupVersion.String(), Kind: "LocalStorageNode",
					Name: lsn.Name, UID: lsn.UID, Controller: ptr.To(true)}}},
			Type: corev1.SecretTypeTLS,
			Data: data,
		}
		if err := r.Client.Create(ctx, s); apierrors.IsAlreadyExists(err) {
			// Created by the previous pass, not in the cache yet.
			return reconcile.Result{RequeueAfter: time.Second}, nil
		} else if err != nil {
			return reconcile.Result{}, fmt.Errorf("creating Secret %s: %w", key, err)
		}
		log.FromContext(ctx).Info("Issued the node's replication certificate", "node", node, "secret", key.String())
		r.roles.kick()
	} else {
		s.Data = data
		if err := r.Client.Update(ctx, s); err != nil {
			return reconcile.Result{}, fmt.Errorf("renewing Secret %s: %w", key, err)
		}
		log.FromContext(ctx).Info("Renewed the node's replication certificate", "node", node, "secret", key.String(), "reason", why.Error())
	}
	return reconcile.Result{RequeueAfter: r.untilRenewal(s, now)}, nil
}

// untilRenewal is when s's certificate is due for renewal, at most a day
// away (so a CA or settings change is caught up with).
func (r *Reconciler) untilRenewal(s *corev1.Secret, now time.Time) time.Duration {
	wait := 24 * time.Hour
	if leaf, err := leafOf(s.Data[replication.SecretCertField]); err == nil {
		wait = min(wait, leaf.NotAfter.Add(-r.RenewBefore).Sub(now)+time.Second)
	}
	return max(wait, time.Second)
}

// remove deletes the Secret of a node that went away: its certificate is
// not renewed, and nothing reads it any more.
func (r *Reconciler) remove(ctx context.Context, key client.ObjectKey, node string) error {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	if err := r.Client.Delete(ctx, s); err != nil {
		return client.IgnoreNotFound(err)
	}
	log.FromContext(ctx).Info("Deleted the replication certificate of a node that is gone", "node", node, "secret", key.String())
	r.roles.kick()
	return nil
}
