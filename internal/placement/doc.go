// Package placement is the capacity authority shared by the scheduler plugin
// and the migration controller: a view of every node's pools (from
// LocalStorageNode status) overlaid with an in-memory ledger of in-flight
// reservations, so that free space promised to a pod but not yet visible in
// the node's status is never promised twice.
//
// The ledger is keyed by (volume, node). An entry starts in Reserve (not yet
// persisted, expires after a TTL) or from a persisted placement (a
// LocalVolumeGroup entry's nodes or a LocalVolume's replicas, which never
// expire), and ends when the node's status lists the volume (its bytes are
// then counted in the pool's used bytes), when the volume is released (claim
// or volume deleted, or its placement withdrawn), or on Unreserve.
//
// It also keeps the nodes' capacity refusals the group entries record
// (refusal.go): a node that could not take B bytes in a pool is left out
// for demands of B or more there until it reports that pool differently.
package placement
