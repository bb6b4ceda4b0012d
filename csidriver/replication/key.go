package replication

import (
	"context"
	"crypto/rand"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// KeyField is the Secret data field holding the shared key.
const KeyField = "key"

// KeyBytes is the length of a key LoadOrCreateKey creates.
const KeyBytes = 32

// MinKeyBytes is the shortest key LoadOrCreateKey accepts from a Secret.
const MinKeyBytes = 16

// LoadOrCreateKey returns the shared replication key from the Secret
// namespace/name (data field KeyField), creating the Secret with KeyBytes
// random bytes when it does not exist. When several agents start at once,
// one Create wins and the others read its key (AlreadyExists), so every agent
// ends with the same key. A Secret without a key of at least MinKeyBytes is
// an error, never overwritten.
func LoadOrCreateKey(ctx context.Context, c client.Client, namespace, name string) ([]byte, error) {
	key, err := loadKey(ctx, c, namespace, name)
	if err == nil || !apierrors.IsNotFound(err) {
		return key, err
	}
	key = make([]byte, KeyBytes)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{KeyField: key},
	}
	err = c.Create(ctx, s)
	switch {
	case apierrors.IsAlreadyExists(err):
		return loadKey(ctx, c, namespace, name)
	case err != nil:
		return nil, fmt.Errorf("create replication key Secret %s/%s: %w", namespace, name, err)
	}
	return key, nil
}

func loadKey(ctx context.Context, c client.Client, namespace, name string) ([]byte, error) {
	var s corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, err
		}
		return nil, fmt.Errorf("read replication key Secret %s/%s: %w", namespace, name, err)
	}
	key := s.Data[KeyField]
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("replication key Secret %s/%s: data field %q has %d bytes, want at least %d", namespace, name, KeyField, len(key), MinKeyBytes)
	}
	return key, nil
}
