// Package scparams parses the parameters of an lvm.hwameistor.io
// StorageClass (HwameiStor's names), for the scheduler plugin and the CSI
// driver alike, so both reject the same mistakes with the same words.
package scparams

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// Parameter names.
const (
	PoolClass     = "poolClass"
	PoolType      = "poolType"
	VolumeKind    = "volumeKind"
	ReplicaNumber = "replicaNumber"
	Convertible   = "convertible"
	Striped       = "striped"
	FSType        = "csi.storage.k8s.io/fstype"
)

// Params are the parsed parameters.
type Params struct {
	PoolClass   v1.PoolClass
	Replicas    int
	Convertible bool
	Striped     bool
	FSType      string
}

// known are the keys Parse reads.
var known = []string{PoolClass, PoolType, VolumeKind, ReplicaNumber, Convertible, Striped, FSType}

// Parse validates parameters; the error names the parameter and what is
// accepted. Unset parameters take HwameiStor's defaults: HDD, one replica,
// xfs. A key without a prefix that is not one of ours is a mistake (a
// mistyped "replicaNumbr" would otherwise silently mean one replica);
// prefixed keys ("csi.storage.k8s.io/pvc/name", other tools' keys) are
// left alone.
func Parse(p map[string]string) (Params, error) {
	out := Params{PoolClass: v1.PoolClassHDD, Replicas: 1, FSType: "xfs"}
	for _, k := range slices.Sorted(maps.Keys(p)) {
		if !strings.Contains(k, "/") && !slices.Contains(known, k) {
			return out, unknownKey(k)
		}
	}
	if c, ok := p[PoolClass]; ok {
		class, err := v1.ParsePoolClass(c)
		if err != nil {
			return out, fmt.Errorf("parameter %s: %w", PoolClass, err)
		}
		out.PoolClass = class
	}
	if r, ok := p[ReplicaNumber]; ok {
		n, err := strconv.Atoi(r)
		if err != nil || n < 1 || n > 2 {
			return out, fmt.Errorf("parameter %s is %q: use \"1\" or \"2\"", ReplicaNumber, r)
		}
		out.Replicas = n
	}
	if t, ok := p[PoolType]; ok && t != v1.PoolTypeRegular {
		return out, fmt.Errorf("parameter %s is %q: only %s is supported", PoolType, t, v1.PoolTypeRegular)
	}
	if k, ok := p[VolumeKind]; ok && k != v1.VolumeKindLVM {
		return out, fmt.Errorf("parameter %s is %q: only %s is supported", VolumeKind, k, v1.VolumeKindLVM)
	}
	var err error
	if out.Convertible, err = parseBool(p, Convertible); err != nil {
		return out, err
	}
	if out.Striped, err = parseBool(p, Striped); err != nil {
		return out, err
	}
	if fs, ok := p[FSType]; ok {
		if fs != "xfs" && fs != "ext4" {
			return out, fmt.Errorf("parameter %s is %q: use xfs or ext4", FSType, fs)
		}
		out.FSType = fs
	}
	return out, nil
}

// unknownKey names the key and, when one of ours is close (same letters
// in another case, or one or two edits away), suggests it.
func unknownKey(k string) error {
	best, bestDist := "", 3
	for _, c := range known {
		if strings.Contains(c, "/") {
			continue
		}
		d := editDistance(strings.ToLower(k), strings.ToLower(c))
		if d < bestDist {
			best, bestDist = c, d
		}
	}
	if best != "" {
		return fmt.Errorf("unknown parameter %q: did you mean %s?", k, best)
	}
	return fmt.Errorf("unknown parameter %q: use %s", k, strings.Join(known, ", "))
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func parseBool(p map[string]string, key string) (bool, error) {
	v, ok := p[key]
	if !ok {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("parameter %s is %q: use \"true\" or \"false\"", key, v)
	}
	return b, nil
}
