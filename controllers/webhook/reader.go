package webhook

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CacheFirstReader reads from the informer cache and asks the API server only
// when the cache has no such object. Reading only the cache would miss a PVC
// created a moment before its pod (a StatefulSet does exactly that) and send
// the pod to default-scheduler; reading only the API server would cost
// several requests per pod creation, which a burst of pods turns into
// client-side throttling and webhook timeouts.
type CacheFirstReader struct {
	Cache client.Reader
	Live  client.Reader
}

var _ client.Reader = CacheFirstReader{}

// Get implements client.Reader.
func (r CacheFirstReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	err := r.Cache.Get(ctx, key, obj, opts...)
	if apierrors.IsNotFound(err) {
		return r.Live.Get(ctx, key, obj, opts...)
	}
	return err
}

// List implements client.Reader. It lists from the cache only: lists serve
// the default StorageClass lookup, where a few seconds of lag do no harm.
func (r CacheFirstReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return r.Cache.List(ctx, list, opts...)
}
