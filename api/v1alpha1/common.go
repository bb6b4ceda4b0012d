package v1alpha1

import (
	"fmt"
	"hash/fnv"
	"strings"
	"time"
)

// PoolClass is the kind of media a pool is made of. A StorageClass selects it
// with its `poolClass` parameter.
// +kubebuilder:validation:Enum=HDD;SSD;NVMe
type PoolClass string

const (
	PoolClassHDD  PoolClass = "HDD"
	PoolClassSSD  PoolClass = "SSD"
	PoolClassNVMe PoolClass = "NVMe"
)

// PoolClasses lists every known class in a stable order.
var PoolClasses = []PoolClass{PoolClassHDD, PoolClassSSD, PoolClassNVMe}

// Pool names: one LVM volume group (or emulated pool) per class on each node.
const (
	PoolNamePrefix = "LocalStorage_Pool"
	PoolNameHDD    = PoolNamePrefix + "HDD"
	PoolNameSSD    = PoolNamePrefix + "SSD"
	PoolNameNVMe   = PoolNamePrefix + "NVMe"
)

// PoolTypeRegular is the only pool type: thick LVM logical volumes.
const PoolTypeRegular = "REGULAR"

// VolumeKindLVM is the only volume kind: an LVM logical volume (or its
// emulated stand-in).
const VolumeKindLVM = "LVM"

// DefaultVolumeCountLimit is how many volumes an LVM pool takes by default, as
// in HwameiStor.
const DefaultVolumeCountLimit = 1000

// ParsePoolClass accepts a StorageClass `poolClass` value and reports a
// message naming the accepted values when it is unknown.
func ParsePoolClass(s string) (PoolClass, error) {
	for _, c := range PoolClasses {
		if string(c) == s {
			return c, nil
		}
	}
	return "", fmt.Errorf("unknown poolClass %q: use one of HDD, SSD, NVMe", s)
}

// PoolName returns the pool key of a class, e.g. LocalStorage_PoolHDD.
func (c PoolClass) PoolName() string { return PoolNamePrefix + string(c) }

// PoolClassOf returns the class of a pool name, or an error for a name that is
// not one of the three known pools.
func PoolClassOf(poolName string) (PoolClass, error) {
	if len(poolName) > len(PoolNamePrefix) && poolName[:len(PoolNamePrefix)] == PoolNamePrefix {
		return ParsePoolClass(poolName[len(PoolNamePrefix):])
	}
	return "", fmt.Errorf("unknown pool %q: use one of %s, %s, %s", poolName, PoolNameHDD, PoolNameSSD, PoolNameNVMe)
}

// State is the lifecycle state shared by nodes, volumes and replicas.
type State string

const (
	StateCreating    State = "Creating"
	StateReady       State = "Ready"
	StateNotReady    State = "NotReady"
	StateToBeDeleted State = "ToBeDeleted"
	StateDeleted     State = "Deleted"
	StateOffline     State = "Offline"
)

// Operation states of LocalVolumeMigrate, LocalVolumeConvert and
// LocalVolumeExpand. A migration walks
// Submitted -> AddReplica -> SyncReplica -> PruneReplica -> Completed, or ends
// in Failed or (after spec.abort) Aborted.
const (
	OperationStateSubmitted    State = "Submitted"
	OperationStateAddReplica   State = "AddReplica"
	OperationStateSyncReplica  State = "SyncReplica"
	OperationStatePruneReplica State = "PruneReplica"
	OperationStateInProgress   State = "InProgress"
	OperationStateCompleted    State = "Completed"
	OperationStateFailed       State = "Failed"
	OperationStateAborting     State = "Aborting"
	OperationStateAborted      State = "Aborted"
)

// Well-known labels and annotations (a compatibility contract with HwameiStor).
const (
	// EvictionLabel on a node set to EvictionDisable keeps its volumes in
	// place; on a pod set to EvictionStart it migrates the pod's volumes now.
	EvictionLabel   = "hwameistor.io/eviction"
	EvictionDisable = "disable"
	EvictionStart   = "start"

	// WebhookLabel on a namespace set to WebhookIgnore leaves its pods alone.
	WebhookLabel  = "hwameistor.io/webhook"
	WebhookIgnore = "ignore"

	// VolumeMigrateStateAnnotation is set on a LocalVolume while it migrates.
	VolumeMigrateStateAnnotation = "hwameistor.io/volume-migrate-state"
	VolumeMigrateStarted         = "migrateStarted"
	// MigrationProgressAnnotation on a migrating LocalVolume says where it
	// goes and how far the copy is ("hdd-0 → hdd-2, 40%"), for the
	// scheduler's Pending reason.
	MigrationProgressAnnotation = "hwameistor.io/migration-progress"

	// SyncPendingAnnotation on a LocalVolumeReplica names the
	// LocalVolumeMigrate whose copy it waits for; SyncSourceAnnotation names
	// the node to copy from. The target's node agent pulls the data, checks
	// the checksum and sets status.synced.
	SyncPendingAnnotation = "hwameistor.io/sync-pending"
	SyncSourceAnnotation  = "hwameistor.io/sync-source"

	// StagedAtAnnotation on a LocalVolumeReplica is when the CSI node
	// service last staged it (RFC 3339), written before the volume is
	// mounted; a copy (migration, conversion) takes its source's. Replicas
	// are not kept in sync, so the ones with the latest time hold the
	// volume's current data, and the scheduler places pods only there (all
	// of them when no replica was ever staged: all are empty).
	StagedAtAnnotation = "hwameistor.io/staged-at"

	// VolumeFinalizer keeps a LocalVolume until its replicas are gone (the
	// volume controller removes it); ReplicaFinalizer keeps a replica until
	// its node agent has freed the data. Whoever creates the object sets
	// them, which saves the owner an update per object.
	VolumeFinalizer  = "hwameistor.io/volume-protection"
	ReplicaFinalizer = "hwameistor.io/replica-data"
	// MigrationFinalizer is on a LocalVolumeMigrate while it runs (the
	// migrate controller adds it on its first pass and removes it when the
	// migration ends), so that one deleted before it ended is rolled back
	// (as spec.abort) or, once its copy is verified and the volume
	// switched, finished before it goes.
	MigrationFinalizer = "hwameistor.io/migration-cleanup"

	// SchedulerName and DriverName are the names users put in their objects.
	SchedulerName = "hwameistor-scheduler"
	DriverName    = "lvm.hwameistor.io"
)

// ReplicaName names the LocalVolumeReplica of volume on node. It is stable,
// so the volume controller, the node agent and the CSI node service find the
// same object without a lookup.
func ReplicaName(volume, node string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(node))
	return fmt.Sprintf("%s-%08x", volume, h.Sum32())
}

// StagedAt is the replica's StagedAtAnnotation, zero when it was never
// staged or the value does not parse.
func StagedAt(r *LocalVolumeReplica) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, r.Annotations[StagedAtAnnotation])
	return t
}

// AgentLeaseNodeAnnotation on an agent's Lease names its node (the Lease's
// name may be cut, see AgentLeaseName).
const AgentLeaseNodeAnnotation = "hwameistor.io/node"

// AgentLeaseName is the coordination.k8s.io Lease, in the components'
// namespace, that the node agent serving node renews as its heartbeat (as
// kubelet renews the Node's): a LocalStorageNode whose Lease expired is
// marked NotReady by the LocalStorageNode controller. Names too long for a
// Lease are cut and made unique with a hash of the node name.
func AgentLeaseName(node string) string {
	name := "hwameistor-node-" + node
	if len(name) <= 253 {
		return name
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(node))
	return fmt.Sprintf("%s-%08x", strings.TrimRight(name[:244], "-."), h.Sum32())
}

// TopologyKey is the node segment the CSI driver reports in NodeGetInfo, so
// external-provisioner can pass the selected node and publish per-node
// capacity. CreateVolume never returns it: PVs carry no node affinity.
const TopologyKey = "topology.lvm.hwameistor.io/node"

// Labels and annotations the evictor writes, which `kubectl hwameistor`
// reads too.
const (
	// MigrateTriggerLabel on a LocalVolumeMigrate says what made the evictor
	// create it: MigrateTriggerDrain (the node was cordoned) or
	// MigrateTriggerPod (a pod labelled hwameistor.io/eviction=start).
	MigrateTriggerLabel = "hwameistor.io/migrate-trigger"
	MigrateTriggerDrain = "drain"
	MigrateTriggerPod   = "pod"
	// MigrateSourceNodeLabel on a LocalVolumeMigrate is
	// SourceNodeLabelValue of spec.sourceNode, for `kubectl get lvmigrate -l`.
	MigrateSourceNodeLabel = "hwameistor.io/source-node"

	// EvictorRequestedAtAnnotation on a LocalVolumeMigrate is when the
	// request it serves began (RFC 3339): the cordon
	// (EvictorCordonedAtAnnotation) or the pod's creation. A finished
	// migration of an earlier request is replaced when a later request needs
	// the same name.
	EvictorRequestedAtAnnotation = "hwameistor.io/evictor-requested-at"
	// EvictorCordonedAtAnnotation on a Node is when the evictor first saw it
	// cordoned; it is removed when the node is schedulable again, so each
	// cordon is a request of its own.
	EvictorCordonedAtAnnotation = "hwameistor.io/evictor-cordoned-at"
)

// Defaults of the migrate controller's limits (its --migrate-* flags).
const (
	MigrateDefaultMaxPerNode = 2
	MigrateDefaultMaxTotal   = 10
	MigrateDefaultDeadline   = 30 * time.Minute
)

// MigrateName names the LocalVolumeMigrate that moves a volume group (or a
// volume without a group) off node: "<groupOrVolume>-<8 hex digits of the
// node's fnv32a hash>", like ReplicaName. It is a DNS-1123 subdomain of at
// most 253 characters for any valid object names: a longer groupOrVolume is
// cut and given a hash of its own, so cut names stay distinct.
func MigrateName(groupOrVolume, node string) string {
	const maxPrefix = 253 - 9 // "-" and 8 hex digits
	prefix := groupOrVolume
	if len(prefix) > maxPrefix {
		prefix = strings.TrimRight(prefix[:maxPrefix-9], "-.") + "-" + nameHash(groupOrVolume)
	}
	return prefix + "-" + nameHash(node)
}

// SourceNodeLabelValue is the MigrateSourceNodeLabel value for a node: the
// name itself when it fits a label value (63 characters), otherwise its
// first characters and a hash of the whole name.
func SourceNodeLabelValue(node string) string {
	if len(node) <= 63 {
		return node
	}
	return strings.TrimRight(node[:54], "-._") + "-" + nameHash(node)
}

// nameHash is the 8 hex digits of s's fnv32a hash.
func nameHash(s string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(s))
	return fmt.Sprintf("%08x", h.Sum32())
}
