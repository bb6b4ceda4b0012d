// Package localstorage is the hwameistor-scheduler plugin that places pods
// whose claims use lvm.hwameistor.io: it checks LVM pool capacity net of
// in-flight reservations, keeps pods next to their volumes' replicas, keeps
// all volumes of a pod together, picks the peer node of HA volumes, and
// persists the decision on the claims before the volume is provisioned.
package localstorage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/util/wait"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"hwameistor.io/local/internal/hwinformers"
	"hwameistor.io/local/internal/placement"
	"hwameistor.io/local/plugins/localstorage/apis/config"
	"hwameistor.io/local/plugins/localstorage/apis/config/validation"
	"hwameistor.io/local/plugins/localstorage/metrics"
)

// Name is the plugin's name in KubeSchedulerConfiguration.
const Name = "LocalStorage"

// The extension points, as a table of contents.
var (
	_ framework.PreFilterPlugin   = &LocalStorage{}
	_ framework.FilterPlugin      = &LocalStorage{}
	_ framework.PreScorePlugin    = &LocalStorage{}
	_ framework.ScorePlugin       = &LocalStorage{}
	_ framework.ScoreExtensions   = &LocalStorage{}
	_ framework.ReservePlugin     = &LocalStorage{}
	_ framework.PreBindPlugin     = &LocalStorage{}
	_ framework.EnqueueExtensions = &LocalStorage{}
)

// LocalStorage is the plugin.
type LocalStorage struct {
	handle    framework.Handle
	args      *config.LocalStorageArgs
	cache     *placement.Cache
	informers *hwinformers.Factory
	rest      rest.Interface
	pvcLister corelisters.PersistentVolumeClaimLister
	pvLister  corelisters.PersistentVolumeLister
	scLister  storagelisters.StorageClassLister
	score     scorer
	weights   [placement.NumPools]int64
	// synced reports whether the hwameistor.io informers (and so the
	// ledger) are complete.
	synced func() bool
	// keptOff are the pods Filter kept off nodes for capacity refusals.
	keptOff keptOff
}

// New builds the plugin: it validates its args, starts informers for the
// hwameistor.io kinds and wires the ledger to them and to claims. It does not
// wait for them: PreFilter holds back pods with claims until every informer
// has synced (the ledger is rebuilt by then), so a scheduler started before
// the CRDs are installed comes up and catches up instead of failing.
func New(ctx context.Context, obj runtime.Object, h framework.Handle) (framework.Plugin, error) {
	args, err := getArgs(obj)
	if err != nil {
		return nil, err
	}
	rc, err := hwinformers.NewRESTClient(h.KubeConfig())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	informers := hwinformers.NewFactory(rc, 0)
	pl, err := newPlugin(args, h, informers, rc)
	if err != nil {
		return nil, err
	}
	pl.registerHandlers()
	pl.exportMetrics()
	informers.Start(ctx)
	go wait.UntilWithContext(ctx, func(context.Context) {
		if n := pl.cache.Expire(); n > 0 {
			klog.FromContext(ctx).V(2).Info("Expired reservations that were never persisted", "count", n)
		}
	}, time.Duration(args.ReservationTTLSeconds)*time.Second/4)
	return pl, nil
}

// newPlugin builds the plugin around given informers, without starting them
// (tests drive the informers' stores directly).
func newPlugin(args *config.LocalStorageArgs, h framework.Handle, informers *hwinformers.Factory, rc rest.Interface) (*LocalStorage, error) {
	sc, err := newScorer(args.ScoringStrategy)
	if err != nil {
		return nil, err
	}
	pl := &LocalStorage{
		handle:    h,
		args:      args,
		cache:     placement.NewCache(time.Duration(args.ReservationTTLSeconds) * time.Second),
		informers: informers,
		rest:      rc,
		pvcLister: h.SharedInformerFactory().Core().V1().PersistentVolumeClaims().Lister(),
		pvLister:  h.SharedInformerFactory().Core().V1().PersistentVolumes().Lister(),
		scLister:  h.SharedInformerFactory().Storage().V1().StorageClasses().Lister(),
		score:     sc,
		synced:    informers.HasSynced,
	}
	for i := placement.Pool(0); i < placement.NumPools; i++ {
		pl.weights[i] = args.PoolClassWeights[string(i.Class())]
		if pl.weights[i] == 0 {
			pl.weights[i] = 1
		}
	}
	return pl, nil
}

func getArgs(obj runtime.Object) (*config.LocalStorageArgs, error) {
	if obj == nil {
		return nil, fmt.Errorf("%s: no args; the scheduler's defaulting should have set them", Name)
	}
	args, ok := obj.(*config.LocalStorageArgs)
	if !ok {
		return nil, fmt.Errorf("%s: want args of type LocalStorageArgs, got %T", Name, obj)
	}
	if err := validation.ValidateLocalStorageArgs(field.NewPath("args"), args); err != nil {
		return nil, fmt.Errorf("%s: invalid args: %w", Name, err)
	}
	return args, nil
}

// Name returns the plugin's name.
func (pl *LocalStorage) Name() string { return Name }

// exportMetrics registers the plugin's metrics (package metrics) and points
// the ledger's at this plugin's cache. With several profiles (one plugin
// each) the ledger metrics show the last one's.
func (pl *LocalStorage) exportMetrics() {
	metrics.Register()
	metrics.SetLedger(pl.cache)
}

// Cache exposes the capacity view and ledger (metrics, tests).
func (pl *LocalStorage) Cache() *placement.Cache { return pl.cache }

// stateKey is the CycleState key of this plugin's per-pod state.
const stateKey fwk.StateKey = Name

// podState is computed once per pod in PreFilter; Filter and Score only read
// it; Reserve records the chosen peer in it for Unreserve and PreBind.
type podState struct {
	claims []claimInfo
	// vols are the claims' volumes that must fit on the pod's node (new
	// volumes, and placed-but-unprovisioned ones, which count as fitting
	// where they are already held).
	vols []placement.Volume
	// haVols are the volumes that also need a peer node.
	haVols []placement.Volume
	// allowed, when non-nil, are the only nodes the pod may use.
	allowed []string
	// peerCandidates, when non-nil, are the only nodes an HA peer may be
	// (the other replica node of HA claims already placed).
	peerCandidates []string
	// peers are up to two nodes that can take haVols (chosen in PreFilter,
	// so Filter needs no scan).
	peers []string
	// group is the pod's LocalVolumeGroup, existing or to be created.
	group string

	// Set by Reserve: the nodes, and the keys Reserve added on each (what
	// Unreserve may release).
	node, peer               string
	addedOnNode, addedOnPeer []string
}

// Clone returns the state itself: after PreFilter only Reserve writes to it,
// and Reserve runs once, outside the parallel filter phases.
func (s *podState) Clone() fwk.StateData { return s }

func getState(cs fwk.CycleState) (*podState, error) {
	d, err := cs.Read(stateKey)
	if err != nil {
		return nil, fmt.Errorf("reading %q from cycle state: %w", stateKey, err)
	}
	return asState(d)
}

// optionalState returns nil when PreFilter skipped the pod (no state).
func optionalState(cs fwk.CycleState) (*podState, error) {
	d, err := cs.Read(stateKey)
	if errors.Is(err, fwk.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return asState(d)
}

func asState(d fwk.StateData) (*podState, error) {
	s, ok := d.(*podState)
	if !ok {
		return nil, fmt.Errorf("%+v is not a %s state", d, Name)
	}
	return s, nil
}
