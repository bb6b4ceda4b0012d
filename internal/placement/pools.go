package placement

import (
	"fmt"
	"strings"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// Pool indexes the three pool classes, so per-node state is a fixed array.
type Pool int

// The pools, in the order of v1alpha1.PoolClasses.
const (
	PoolHDD Pool = iota
	PoolSSD
	PoolNVMe
	NumPools
)

var poolNames = [NumPools]string{v1.PoolNameHDD, v1.PoolNameSSD, v1.PoolNameNVMe}
var poolClasses = [NumPools]v1.PoolClass{v1.PoolClassHDD, v1.PoolClassSSD, v1.PoolClassNVMe}

// Name is the pool key, e.g. LocalStorage_PoolHDD.
func (p Pool) Name() string { return poolNames[p] }

// Class is the pool class, e.g. HDD.
func (p Pool) Class() v1.PoolClass { return poolClasses[p] }

// PoolByName returns the pool of a key such as LocalStorage_PoolSSD.
func PoolByName(name string) (Pool, bool) {
	for i, n := range poolNames {
		if n == name {
			return Pool(i), true
		}
	}
	return 0, false
}

// PoolByClass returns the pool of a class such as SSD.
func PoolByClass(c v1.PoolClass) (Pool, bool) {
	for i, n := range poolClasses {
		if n == c {
			return Pool(i), true
		}
	}
	return 0, false
}

// Volume is one replica's worth of demand: a volume's key (the LocalVolume
// name it will have), its pool and size, and whether it is an HA volume
// (Replicated: its replicas go only to nodes that can run DRBD).
type Volume struct {
	Key        string
	Pool       Pool
	Bytes      int64
	Replicated bool
}

// Demand describes volumes by pool: "6Gi in LocalStorage_PoolHDD and 1Gi in
// LocalStorage_PoolSSD", for reasons and messages.
func Demand(vols []Volume) string {
	var total [NumPools]int64
	for _, v := range vols {
		total[v.Pool] += v.Bytes
	}
	var parts []string
	for p := Pool(0); p < NumPools; p++ {
		if total[p] > 0 {
			parts = append(parts, fmt.Sprintf("%s in %s", v1.FormatBytes(total[p]), p.Name()))
		}
	}
	return strings.Join(parts, " and ")
}
