// Package hwinformers builds typed shared informers for the hwameistor.io
// kinds from a plain REST client, so the scheduler plugin and the agents get
// indexed, typed caches without a generated clientset.
package hwinformers

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// Indexes: LocalVolumeReplicas by spec.volumeName, LocalVolumeGroups by the
// "namespace/claim" of each of their volumes.
const (
	IndexByVolume = "volume"
	IndexByClaim  = "claim"
)

// Scheme knows the hwameistor.io kinds (and the meta types list/watch need).
var Scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := v1.AddToScheme(s); err != nil {
		panic(err)
	}
	metav1.AddToGroupVersion(s, metav1.SchemeGroupVersion)
	return s
}()

// NewRESTClient returns a client for hwameistor.io/v1alpha1.
func NewRESTClient(cfg *rest.Config) (*rest.RESTClient, error) {
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &v1.GroupVersion
	c.APIPath = "/apis"
	c.ContentType = runtime.ContentTypeJSON
	c.NegotiatedSerializer = serializer.NewCodecFactory(Scheme).WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	return rest.RESTClientFor(c)
}

// Factory holds one shared informer per kind.
type Factory struct {
	client rest.Interface
	resync time.Duration

	LocalStorageNodes   cache.SharedIndexInformer
	LocalVolumes        cache.SharedIndexInformer
	LocalVolumeReplicas cache.SharedIndexInformer
	LocalVolumeGroups   cache.SharedIndexInformer
}

// NewFactory creates (but does not start) the informers.
func NewFactory(client rest.Interface, resync time.Duration) *Factory {
	f := &Factory{client: client, resync: resync}
	f.LocalStorageNodes = f.informer("localstoragenodes", &v1.LocalStorageNode{}, &v1.LocalStorageNodeList{}, nil)
	f.LocalVolumes = f.informer("localvolumes", &v1.LocalVolume{}, &v1.LocalVolumeList{}, nil)
	f.LocalVolumeReplicas = f.informer("localvolumereplicas", &v1.LocalVolumeReplica{}, &v1.LocalVolumeReplicaList{}, cache.Indexers{
		IndexByVolume: func(obj interface{}) ([]string, error) {
			r, ok := obj.(*v1.LocalVolumeReplica)
			if !ok {
				return nil, fmt.Errorf("unexpected %T", obj)
			}
			return []string{r.Spec.VolumeName}, nil
		},
	})
	f.LocalVolumeGroups = f.informer("localvolumegroups", &v1.LocalVolumeGroup{}, &v1.LocalVolumeGroupList{}, cache.Indexers{
		IndexByClaim: func(obj interface{}) ([]string, error) {
			g, ok := obj.(*v1.LocalVolumeGroup)
			if !ok {
				return nil, fmt.Errorf("unexpected %T", obj)
			}
			keys := make([]string, 0, len(g.Spec.Volumes))
			for _, v := range g.Spec.Volumes {
				keys = append(keys, g.Spec.Namespace+"/"+v.PersistentVolumeClaimName)
			}
			return keys, nil
		},
	})
	return f
}

func (f *Factory) informer(resource string, obj, list runtime.Object, indexers cache.Indexers) cache.SharedIndexInformer {
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			out := list.DeepCopyObject()
			err := f.client.Get().Resource(resource).VersionedParams(&opts, metav1.ParameterCodec).Do(ctx).Into(out)
			return out, err
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.Watch = true
			return f.client.Get().Resource(resource).VersionedParams(&opts, metav1.ParameterCodec).Watch(ctx)
		},
	}
	if indexers == nil {
		indexers = cache.Indexers{}
	}
	return cache.NewSharedIndexInformer(lw, obj, f.resync, indexers)
}

// Start runs every informer until ctx ends.
func (f *Factory) Start(ctx context.Context) {
	for _, i := range f.all() {
		go i.RunWithContext(ctx)
	}
}

// HasSynced reports whether every informer has listed once.
func (f *Factory) HasSynced() bool {
	for _, i := range f.all() {
		if !i.HasSynced() {
			return false
		}
	}
	return true
}

// WaitForCacheSync blocks until every informer has listed once.
func (f *Factory) WaitForCacheSync(ctx context.Context) bool {
	var synced []cache.InformerSynced
	for _, i := range f.all() {
		synced = append(synced, i.HasSynced)
	}
	return cache.WaitForCacheSync(ctx.Done(), synced...)
}

func (f *Factory) all() []cache.SharedIndexInformer {
	return []cache.SharedIndexInformer{f.LocalStorageNodes, f.LocalVolumes, f.LocalVolumeReplicas, f.LocalVolumeGroups}
}

// GetLocalVolume returns the cached LocalVolume (not a copy: do not modify).
func (f *Factory) GetLocalVolume(name string) (*v1.LocalVolume, bool) {
	o, ok, _ := f.LocalVolumes.GetStore().GetByKey(name)
	if !ok {
		return nil, false
	}
	lv, ok := o.(*v1.LocalVolume)
	return lv, ok
}

// ReplicasOf returns the cached replicas of a volume (not copies).
func (f *Factory) ReplicasOf(volume string) []*v1.LocalVolumeReplica {
	objs, _ := f.LocalVolumeReplicas.GetIndexer().ByIndex(IndexByVolume, volume)
	out := make([]*v1.LocalVolumeReplica, 0, len(objs))
	for _, o := range objs {
		if r, ok := o.(*v1.LocalVolumeReplica); ok {
			out = append(out, r)
		}
	}
	return out
}

// GroupOfClaim returns the cached group holding a claim and the claim's entry
// in it (not copies).
func (f *Factory) GroupOfClaim(namespace, claim string) (*v1.LocalVolumeGroup, *v1.VolumeInfo) {
	objs, _ := f.LocalVolumeGroups.GetIndexer().ByIndex(IndexByClaim, namespace+"/"+claim)
	for _, o := range objs {
		g, ok := o.(*v1.LocalVolumeGroup)
		if !ok {
			continue
		}
		for i := range g.Spec.Volumes {
			if g.Spec.Volumes[i].PersistentVolumeClaimName == claim {
				return g, &g.Spec.Volumes[i]
			}
		}
	}
	return nil, nil
}

// GetLocalVolumeGroup returns the cached group (not a copy).
func (f *Factory) GetLocalVolumeGroup(name string) (*v1.LocalVolumeGroup, bool) {
	o, ok, _ := f.LocalVolumeGroups.GetStore().GetByKey(name)
	if !ok {
		return nil, false
	}
	g, ok := o.(*v1.LocalVolumeGroup)
	return g, ok
}
