package localstorage

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/internal/placement"
	"hwameistor.io/local/internal/scparams"
	"hwameistor.io/local/plugins/localstorage/metrics"
)

// StorageClass parameters (HwameiStor's names), parsed by internal/scparams.
const (
	ParamPoolClass     = scparams.PoolClass
	ParamPoolType      = scparams.PoolType
	ParamVolumeKind    = scparams.VolumeKind
	ParamReplicaNumber = scparams.ReplicaNumber
)

// classParams are the parsed parameters of one of our StorageClasses.
type classParams struct {
	pool     placement.Pool
	replicas int
}

// parseClass validates the parameters a user wrote in the StorageClass; the
// error names the class, the parameter and the accepted values.
func parseClass(sc *storagev1.StorageClass) (classParams, error) {
	p, err := scparams.Parse(sc.Parameters)
	if err != nil {
		return classParams{}, fmt.Errorf("storageclass %s: %w", sc.Name, err)
	}
	pool, _ := placement.PoolByClass(p.PoolClass)
	return classParams{pool: pool, replicas: p.Replicas}, nil
}

// claimInfo is one of the pod's hwameistor claims, as PreFilter resolved it.
type claimInfo struct {
	namespace, name string
	uid             string
	volume          placement.Volume
	replicas        int
	group           string
	// nodes is non-nil when the claim's nodes are fixed: a provisioned
	// volume's ready replicas, or a placement already persisted on the claim.
	nodes []string
	// provisioned is true when a LocalVolume holds the data already.
	provisioned bool
}

// claimError is a claim the pod cannot be scheduled with, for the user
// (its message) and for the metrics (its reason).
type claimError struct {
	reason metrics.Reason
	err    error
}

func (e *claimError) Error() string { return e.err.Error() }
func (e *claimError) Unwrap() error { return e.err }

func claimErrorf(reason metrics.Reason, format string, args ...any) error {
	return &claimError{reason: reason, err: fmt.Errorf(format, args...)}
}

// resolveClaims finds the pod's claims that use our driver. It returns
// claims == nil when there are none. err is for the user: a *claimError
// (a missing claim, a bad StorageClass, a missing volume), else a lister's
// error.
func (pl *LocalStorage) resolveClaims(pod *corev1.Pod) ([]claimInfo, error) {
	var claims []claimInfo
	for i := range pod.Spec.Volumes {
		name := claimName(pod, &pod.Spec.Volumes[i])
		if name == "" {
			continue
		}
		pvc, err := pl.pvcLister.PersistentVolumeClaims(pod.Namespace).Get(name)
		if err != nil {
			if apierrors.IsNotFound(err) {
				return nil, claimErrorf(metrics.ClaimNotFound, "persistentvolumeclaim %q not found", name)
			}
			return nil, err
		}
		if pvc.DeletionTimestamp != nil {
			return nil, claimErrorf(metrics.ClaimDeleting, "persistentvolumeclaim %q is being deleted", name)
		}
		c, ours, err := pl.resolveClaim(pvc)
		if err != nil {
			return nil, err
		}
		if ours {
			claims = append(claims, c)
		}
	}
	return claims, nil
}

func claimName(pod *corev1.Pod, vol *corev1.Volume) string {
	switch {
	case vol.PersistentVolumeClaim != nil:
		return vol.PersistentVolumeClaim.ClaimName
	case vol.Ephemeral != nil:
		return pod.Name + "-" + vol.Name // generic ephemeral volume naming
	}
	return ""
}

func (pl *LocalStorage) resolveClaim(pvc *corev1.PersistentVolumeClaim) (claimInfo, bool, error) {
	c := claimInfo{namespace: pvc.Namespace, name: pvc.Name, uid: string(pvc.UID)}
	group, entry := pl.informers.GroupOfClaim(pvc.Namespace, pvc.Name)
	if group != nil {
		c.group = group.Name
	}
	if pvc.Spec.VolumeName != "" {
		return pl.resolveBound(pvc, c)
	}
	scName := ""
	if pvc.Spec.StorageClassName != nil {
		scName = *pvc.Spec.StorageClassName
	}
	if scName == "" {
		return c, false, nil // default class is resolved by admission; an empty class is not ours
	}
	sc, err := pl.scLister.Get(scName)
	if err != nil {
		if apierrors.IsNotFound(err) {
			// Not necessarily ours; VolumeBinding reports the missing class.
			return c, false, nil
		}
		return c, false, err
	}
	if sc.Provisioner != v1.DriverName {
		return c, false, nil
	}
	params, err := parseClass(sc)
	if err != nil {
		pl.warnInvalidClass(pvc, sc, err)
		return c, true, claimErrorf(metrics.BadStorageClass, "persistentvolumeclaim %q: %w", pvc.Name, err)
	}
	size, ok := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	if !ok || size.Value() <= 0 {
		return c, true, claimErrorf(metrics.BadClaim, "persistentvolumeclaim %q requests no storage size", pvc.Name)
	}
	c.volume = placement.Volume{Key: VolumeKey(pvc), Pool: params.pool, Bytes: size.Value(), Replicated: params.replicas >= 2}
	c.replicas = params.replicas
	if entry != nil && len(entry.Nodes) > 0 && entry.LocalVolumeName == c.volume.Key {
		// Placed by an earlier cycle whose binding has not finished (or a
		// scheduler that restarted): keep the decision. An entry of an
		// earlier claim of the same name (a recreated claim) does not count.
		c.nodes = entry.Nodes
	}
	return c, true, nil
}

// resolveBound handles a claim bound to a PV: ours if the PV is our CSI
// driver's, and then its LocalVolume says where the data is.
func (pl *LocalStorage) resolveBound(pvc *corev1.PersistentVolumeClaim, c claimInfo) (claimInfo, bool, error) {
	pv, err := pl.pvLister.Get(pvc.Spec.VolumeName)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return c, false, nil // VolumeBinding reports a missing PV
		}
		return c, false, err
	}
	if pv.Spec.CSI == nil || pv.Spec.CSI.Driver != v1.DriverName {
		return c, false, nil
	}
	lv, ok := pl.informers.GetLocalVolume(pv.Spec.CSI.VolumeHandle)
	if !ok {
		return c, true, claimErrorf(metrics.VolumeNotFound, "persistentvolumeclaim %q: LocalVolume %s not found", pvc.Name, pv.Spec.CSI.VolumeHandle)
	}
	c.provisioned = true
	c.replicas = int(lv.Spec.ReplicaNumber)
	if lv.Spec.VolumeGroup != "" {
		c.group = lv.Spec.VolumeGroup
	}
	if lv.Annotations[v1.VolumeMigrateStateAnnotation] == v1.VolumeMigrateStarted {
		if progress := lv.Annotations[v1.MigrationProgressAnnotation]; progress != "" {
			return c, true, claimErrorf(metrics.Migrating, "volume %s (claim %q) migrating %s; the pod waits until its new replica is ready", lv.Name, pvc.Name, progress)
		}
		return c, true, claimErrorf(metrics.Migrating, "volume %s (claim %q) is migrating; the pod waits until its new replica is ready", lv.Name, pvc.Name)
	}
	c.volume = placement.Volume{Key: lv.Name, Bytes: lv.Spec.RequiredCapacityBytes}
	if p, ok := placement.PoolByName(lv.Spec.PoolName); ok {
		c.volume.Pool = p
	}
	if replicas := pl.informers.ReplicasOf(lv.Name); lv.Replicated() && v1.DRBDManaged(replicas) {
		var refused []string
		c.nodes, refused = servingReplicaNodes(lv, replicas)
		if len(c.nodes) == 0 {
			return c, true, claimErrorf(metrics.NoReadyReplica, "volume %s (claim %q) has no replica that may serve the pod (only an UpToDate DRBD replica holds every acknowledged write): %s",
				lv.Name, pvc.Name, strings.Join(refused, "; "))
		}
		return c, true, nil
	}
	var lastWritten string
	c.nodes, lastWritten = pl.readyReplicaNodes(lv)
	switch {
	case len(c.nodes) == 0 && lastWritten != "":
		return c, true, claimErrorf(metrics.NoReadyReplica, "volume %s (claim %q) was last written on node %s, whose replica is not ready; "+
			"its other replicas are not kept in sync, so the pod waits for %s", lv.Name, pvc.Name, lastWritten, lastWritten)
	case len(c.nodes) == 0:
		return c, true, claimErrorf(metrics.NoReadyReplica, "volume %s (claim %q) has no ready replica", lv.Name, pvc.Name)
	}
	return c, true, nil
}

// servingReplicaNodes lists the nodes of an HA volume's DRBD replicas that
// may serve its pod (UpToDate: every acknowledged write), leaving out the
// node a failover moves the pod away from; refused says why each other
// replica may not.
func servingReplicaNodes(lv *v1.LocalVolume, replicas []*v1.LocalVolumeReplica) (nodes, refused []string) {
	from := lv.Annotations[v1.FailoverFromAnnotation]
	for _, r := range replicas {
		switch why := r.DRBDNotServing(); {
		case r.Spec.Delete || r.DeletionTimestamp != nil:
		case why != "":
			refused = append(refused, fmt.Sprintf("on node %s %s", r.Spec.NodeName, why))
		case r.Spec.NodeName == from:
			refused = append(refused, fmt.Sprintf("node %s is being failed over (%s)", from, v1.FailoverFromAnnotation))
		default:
			nodes = append(nodes, r.Spec.NodeName)
		}
	}
	return nodes, refused
}

// readyReplicaNodes lists the nodes holding a ready replica of lv with the
// volume's current data: a migration's new replica counts once its copy is
// verified (status.synced), and as replicas are not kept in sync, only the
// ones staged last count (v1.StagedAtAnnotation; all when none was ever
// staged). lastWritten names the node staged last, if any. Volumes created
// without LocalVolumeReplica objects (imported from HwameiStor) fall back
// to spec.config.replicas when the volume itself is Ready.
func (pl *LocalStorage) readyReplicaNodes(lv *v1.LocalVolume) (nodes []string, lastWritten string) {
	replicas := pl.informers.ReplicasOf(lv.Name)
	var latest time.Time
	for _, r := range replicas {
		if t := v1.StagedAt(r); t.After(latest) {
			latest, lastWritten = t, r.Spec.NodeName
		}
	}
	for _, r := range replicas {
		if r.Status.State == v1.StateReady && r.Status.Synced && !r.Spec.Delete && r.DeletionTimestamp == nil && v1.StagedAt(r).Equal(latest) {
			nodes = append(nodes, r.Spec.NodeName)
		}
	}
	if len(replicas) == 0 && lv.Status.State == v1.StateReady && lv.Spec.Config != nil {
		for _, r := range lv.Spec.Config.Replicas {
			nodes = append(nodes, r.Hostname)
		}
	}
	return nodes, lastWritten
}
