// Package scenario reads and validates the simulator's scenario files
// (format v1, kwok/README.md). Decoding is strict: an unknown field, a bad
// size, an unknown pool or storage class, or an action naming a node the
// scenario does not create fails before anything starts, with the field
// path (e.g. workloads[1].volumes[0]) and the line.
package scenario

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
	yamlv3 "sigs.k8s.io/yaml/goyaml.v3"
)

// Scenario is one simulation: fake nodes with pools, workloads with
// volumes, and actions run in order once the workloads settle.
type Scenario struct {
	Name      string      `json:"name"`
	Timeout   Duration    `json:"timeout,omitempty"`
	Nodes     []NodeGroup `json:"nodes"`
	Workloads []Workload  `json:"workloads,omitempty"`
	Actions   []Action    `json:"actions,omitempty"`
	// CopyRate limits each node agent's migration copies, in bytes per
	// second (a quantity); unlimited when unset.
	CopyRate Size `json:"copyRate,omitempty"`
	// MigrationsPerNode is the controllers' --migrate-max-per-node (the
	// copies from one node at once); their default when 0.
	MigrationsPerNode int `json:"migrationsPerNode,omitempty"`
	// DRBD replicates HA volumes through the emulated DRBD
	// (csidriver/drbd/emulated): writes go through the volume's Primary,
	// and a failed node's pods fail over to the UpToDate standby.
	DRBD bool `json:"drbd,omitempty"`
	// RebuildAfter is the controllers' --rebuild-after: how long a failed
	// node's HA replicas wait before they are rebuilt on another node.
	RebuildAfter Duration `json:"rebuildAfter,omitempty"`
}

// NodeGroup is Count nodes named NamePrefix-0 .. NamePrefix-(Count-1).
type NodeGroup struct {
	NamePrefix string            `json:"namePrefix"`
	Count      int               `json:"count"`
	Labels     map[string]string `json:"labels,omitempty"`
	// Cordoned nodes start unschedulable (an uncordon action opens them).
	Cordoned bool   `json:"cordoned,omitempty"`
	Pools    []Pool `json:"pools"`
}

// Pool is one emulated pool of every node of a group.
type Pool struct {
	Class            string `json:"class"`
	Capacity         Size   `json:"capacity"`
	VolumeCountLimit int64  `json:"volumeCountLimit,omitempty"`
}

// Workload is a StatefulSet, Deployment or bare Pods with volumes.
type Workload struct {
	Name         string  `json:"name"`
	Kind         string  `json:"kind"`
	Replicas     int     `json:"replicas,omitempty"`
	StorageClass string  `json:"storageClass,omitempty"`
	Volumes      []Size  `json:"volumes,omitempty"`
	WriteBytes   Size    `json:"writeBytes,omitempty"`
	Arrival      Arrival `json:"arrival,omitempty"`
}

// Arrival is "burst" (every pod at once) or {rate: N} pods per second.
type Arrival struct {
	Burst bool
	Rate  float64
	// rateSet: {rate: ...} was written (a zero Arrival means burst).
	rateSet bool
}

// Action is one step; exactly one verb (drain, uncordon, restart, abort,
// fail, recover, wait) is set. At, on restart and abort, first waits for a
// migration to reach that state: the fault-injection points of the
// migration tests. Fail stops a node (kwok stops renewing its Lease, its
// node agent is killed, its emulated DRBD replicas become unreachable);
// recover brings it back.
type Action struct {
	Drain    string    `json:"drain,omitempty"`
	Uncordon string    `json:"uncordon,omitempty"`
	Restart  string    `json:"restart,omitempty"`
	Abort    string    `json:"abort,omitempty"`
	Fail     string    `json:"fail,omitempty"`
	Recover  string    `json:"recover,omitempty"`
	Wait     *Duration `json:"wait,omitempty"`
	At       string    `json:"at,omitempty"`
}

// FailedNodes are the nodes the actions fail, in order.
func (s *Scenario) FailedNodes() []string {
	var out []string
	for _, a := range s.Actions {
		if a.Fail != "" && !contains(out, a.Fail) {
			out = append(out, a.Fail)
		}
	}
	return out
}

// MigrationStates an action's `at` may name.
var MigrationStates = []string{"Submitted", "AddReplica", "SyncReplica", "PruneReplica", "Completed"}

// Size is a quantity such as "6Gi"; a bare number is bytes. It is checked
// by Validate, so a bad one is reported with its path.
type Size string

func (z *Size) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*z = Size(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("want a size such as 6Gi, got %s", b)
	}
	*z = Size(n.String())
	return nil
}

// Duration reads "300s", "5m".
type Duration struct{ time.Duration }

// Kinds of workload.
const (
	KindStatefulSet = "StatefulSet"
	KindDeployment  = "Deployment"
	KindPod         = "Pod"
)

// DefaultTimeout applies when a scenario names none.
const DefaultTimeout = 300 * time.Second

// PoolClasses are the pool classes a node group may name.
var PoolClasses = []string{"HDD", "SSD", "NVMe"}

// StorageClasses are the default classes the simulator installs
// (manifests/base/storageclasses.yaml) and the pool class each draws from.
var StorageClasses = map[string]string{
	"hwameistor-storage-lvm-hdd": "HDD", "hwameistor-storage-lvm-hdd-ha": "HDD", "hwameistor-storage-lvm-hdd-convertible": "HDD",
	"hwameistor-storage-lvm-ssd": "SSD", "hwameistor-storage-lvm-ssd-ha": "SSD", "hwameistor-storage-lvm-ssd-convertible": "SSD",
	"hwameistor-storage-lvm-nvme": "NVMe", "hwameistor-storage-lvm-nvme-ha": "NVMe", "hwameistor-storage-lvm-nvme-convertible": "NVMe",
}

// Components a restart action may name.
var Components = []string{"hwameistor-controllers", "hwameistor-scheduler", "node-agent", "csi-controller"}

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration such as \"300s\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as \"300s\": %v", err)
	}
	d.Duration = v
	return nil
}

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

func (a *Arrival) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		if s != "burst" {
			return fmt.Errorf("arrival %q: want burst or {rate: N}", s)
		}
		a.Burst = true
		return nil
	}
	var r struct {
		Rate *float64 `json:"rate"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil || r.Rate == nil {
		return fmt.Errorf("arrival: want burst or {rate: N}")
	}
	a.Rate, a.rateSet = *r.Rate, true
	return nil
}

func (a Arrival) MarshalJSON() ([]byte, error) {
	if a.Rate > 0 {
		return json.Marshal(map[string]float64{"rate": a.Rate})
	}
	return json.Marshal("burst")
}

// NodeNames lists the nodes of every group in order.
func (s *Scenario) NodeNames() []string {
	var out []string
	for _, g := range s.Nodes {
		for i := 0; i < g.Count; i++ {
			out = append(out, fmt.Sprintf("%s-%d", g.NamePrefix, i))
		}
	}
	return out
}

// PoolsFlag renders a group's pools for the node agent's --emulated-pools,
// e.g. "HDD=20Gi,SSD=10Gi:100" (a volume count limit after the colon).
func (g NodeGroup) PoolsFlag() string {
	var parts []string
	for _, p := range g.Pools {
		part := p.Class + "=" + string(p.Capacity)
		if p.VolumeCountLimit > 0 {
			part += fmt.Sprintf(":%d", p.VolumeCountLimit)
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, ",")
}

// Load reads and validates a scenario file.
func Load(path string) (*Scenario, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Parse decodes raw strictly and validates it.
func Parse(raw []byte) (*Scenario, error) {
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	// Unknown fields first, by path and line (the JSON decoder below names
	// neither).
	if len(doc.Content) > 0 {
		if err := checkFields(doc.Content[0], "", schema); err != nil {
			return nil, err
		}
	}
	js, err := yaml.YAMLToJSONStrict(raw)
	if err != nil {
		return nil, err
	}
	s := &Scenario{}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(s); err != nil {
		return nil, err
	}
	if errs := s.Validate(); len(errs) > 0 {
		var msgs []string
		for _, e := range errs {
			if line := lineOf(&doc, e.Path); line > 0 {
				msgs = append(msgs, fmt.Sprintf("line %d: %s", line, e))
			} else {
				msgs = append(msgs, e.Error())
			}
		}
		return nil, fmt.Errorf("%s", strings.Join(msgs, "; "))
	}
	return s, nil
}

// FieldError is a validation failure at Path.
type FieldError struct {
	Path, Msg string
}

func (e FieldError) Error() string { return e.Path + ": " + e.Msg }

// Validate checks everything that can be checked before the stack starts.
func (s *Scenario) Validate() []FieldError {
	var errs []FieldError
	bad := func(path, format string, args ...any) {
		errs = append(errs, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	if s.Name == "" {
		bad("name", "required")
	}
	if s.Timeout.Duration < 0 {
		bad("timeout", "must be positive")
	}
	if len(s.Nodes) == 0 {
		bad("nodes", "at least one node group is required")
	}
	prefixes := map[string]bool{}
	for i, g := range s.Nodes {
		p := fmt.Sprintf("nodes[%d]", i)
		if g.NamePrefix == "" {
			bad(p+".namePrefix", "required")
		} else if prefixes[g.NamePrefix] {
			bad(p+".namePrefix", "%q is used by another group", g.NamePrefix)
		}
		prefixes[g.NamePrefix] = true
		if g.Count <= 0 {
			bad(p+".count", "must be positive, got %d", g.Count)
		}
		if len(g.Pools) == 0 {
			bad(p+".pools", "at least one pool is required")
		}
		seen := map[string]bool{}
		for j, pool := range g.Pools {
			pp := fmt.Sprintf("%s.pools[%d]", p, j)
			if !contains(PoolClasses, pool.Class) {
				bad(pp+".class", "unknown pool class %q (want one of %s)", pool.Class, strings.Join(PoolClasses, ", "))
			} else if seen[pool.Class] {
				bad(pp+".class", "a node has one pool of each class; %s repeats", pool.Class)
			}
			seen[pool.Class] = true
			if msg := positiveSize(pool.Capacity); msg != "" {
				bad(pp+".capacity", "%s", msg)
			}
			if pool.VolumeCountLimit < 0 {
				bad(pp+".volumeCountLimit", "must not be negative, got %d", pool.VolumeCountLimit)
			}
		}
	}
	nodes := map[string]bool{}
	for _, n := range s.NodeNames() {
		nodes[n] = true
	}
	names := map[string]bool{}
	for i, w := range s.Workloads {
		p := fmt.Sprintf("workloads[%d]", i)
		if w.Name == "" {
			bad(p+".name", "required")
		} else if names[w.Name] {
			bad(p+".name", "%q is used by another workload", w.Name)
		}
		names[w.Name] = true
		switch w.Kind {
		case KindStatefulSet, KindDeployment, KindPod:
		default:
			bad(p+".kind", "unknown kind %q (want StatefulSet, Deployment or Pod)", w.Kind)
		}
		if w.Replicas < 0 {
			bad(p+".replicas", "must not be negative, got %d", w.Replicas)
		}
		if w.Kind == KindDeployment && len(w.Volumes) > 0 && w.Replicas > 1 {
			bad(p+".replicas", "a Deployment's replicas share its ReadWriteOnce claims: use 1, or a StatefulSet")
		}
		if len(w.Volumes) > 0 {
			if w.StorageClass == "" {
				bad(p+".storageClass", "required with volumes")
			} else if _, ok := StorageClasses[w.StorageClass]; !ok {
				bad(p+".storageClass", "unknown storage class %q (the simulator installs %s)", w.StorageClass, strings.Join(sortedKeys(StorageClasses), ", "))
			}
		}
		for j, v := range w.Volumes {
			if msg := positiveSize(v); msg != "" {
				bad(fmt.Sprintf("%s.volumes[%d]", p, j), "%s", msg)
			}
		}
		if w.WriteBytes != "" {
			if msg := positiveSize(w.WriteBytes); msg != "" {
				bad(p+".writeBytes", "%s", msg)
			} else if len(w.Volumes) == 0 {
				bad(p+".writeBytes", "the workload has no volumes to write into")
			} else {
				wb := resource.MustParse(string(w.WriteBytes))
				for j, v := range w.Volumes {
					if q, err := resource.ParseQuantity(string(v)); err == nil && wb.Cmp(q) > 0 {
						bad(p+".writeBytes", "%s does not fit in volumes[%d] (%s)", w.WriteBytes, j, v)
					}
				}
			}
		}
		if w.Arrival.rateSet && w.Arrival.Rate <= 0 {
			bad(p+".arrival.rate", "must be positive, got %v", w.Arrival.Rate)
		}
	}
	if s.MigrationsPerNode < 0 {
		bad("migrationsPerNode", "must not be negative, got %d", s.MigrationsPerNode)
	}
	if s.CopyRate != "" {
		if msg := positiveSize(s.CopyRate); msg != "" {
			bad("copyRate", "%s", msg)
		}
	}
	for i, a := range s.Actions {
		p := fmt.Sprintf("actions[%d]", i)
		set := 0
		if a.Drain != "" {
			set++
			if !nodes[a.Drain] {
				bad(p+".drain", "node %q does not exist in this scenario", a.Drain)
			}
		}
		if a.Uncordon != "" {
			set++
			if !nodes[a.Uncordon] {
				bad(p+".uncordon", "node %q does not exist in this scenario", a.Uncordon)
			}
		}
		if a.Restart != "" {
			set++
			if !contains(Components, a.Restart) {
				bad(p+".restart", "unknown component %q (want one of %s)", a.Restart, strings.Join(Components, ", "))
			}
		}
		if a.Abort != "" {
			set++
			if !nodes[a.Abort] {
				bad(p+".abort", "node %q does not exist in this scenario (abort names the source node of the migrations to abort)", a.Abort)
			}
		}
		failed := map[string]bool{}
		for _, b := range s.Actions[:i] {
			if b.Fail != "" {
				failed[b.Fail] = true
			}
			if b.Recover != "" {
				delete(failed, b.Recover)
			}
		}
		if a.Fail != "" {
			set++
			switch {
			case !nodes[a.Fail]:
				bad(p+".fail", "node %q does not exist in this scenario", a.Fail)
			case failed[a.Fail]:
				bad(p+".fail", "node %q has failed already (recover it first)", a.Fail)
			}
		}
		if a.Recover != "" {
			set++
			if !failed[a.Recover] {
				bad(p+".recover", "node %q has not failed before this action", a.Recover)
			}
		}
		if a.At != "" {
			if a.Restart == "" && a.Abort == "" {
				bad(p+".at", "only restart and abort wait for a migration state")
			} else if !contains(MigrationStates, a.At) {
				bad(p+".at", "unknown migration state %q (want one of %s)", a.At, strings.Join(MigrationStates, ", "))
			}
		}
		if a.Wait != nil {
			set++
			if a.Wait.Duration <= 0 {
				bad(p+".wait", "must be positive")
			}
		}
		if set != 1 {
			bad(p, "want exactly one of drain, uncordon, restart, abort, fail, recover, wait")
		}
	}
	return errs
}

// TimeoutOrDefault is the scenario timeout, DefaultTimeout when unset.
func (s *Scenario) TimeoutOrDefault() time.Duration {
	if s.Timeout.Duration > 0 {
		return s.Timeout.Duration
	}
	return DefaultTimeout
}

func positiveSize(z Size) string {
	s := string(z)
	if s == "" {
		return "required"
	}
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return fmt.Sprintf("%q is not a size such as 6Gi", s)
	}
	if q.Sign() <= 0 {
		return fmt.Sprintf("size %s must be positive", s)
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// field is the allowed keys at one level of the document; "[]" marks a
// list of the nested shape; nil means any keys (labels) or a scalar.
type field map[string]*field

var (
	poolFields     = field{"class": nil, "capacity": nil, "volumeCountLimit": nil}
	anyKeys        = field{"*": nil}
	nodeFields     = field{"namePrefix": nil, "count": nil, "cordoned": nil, "labels": &anyKeys, "pools": &field{"[]": &poolFields}}
	rateFields     = field{"rate": nil}
	workloadFields = field{"name": nil, "kind": nil, "replicas": nil, "storageClass": nil, "volumes": nil, "writeBytes": nil, "arrival": &rateFields}
	actionFields   = field{"drain": nil, "uncordon": nil, "restart": nil, "abort": nil, "fail": nil, "recover": nil, "wait": nil, "at": nil}
	schema         = field{"name": nil, "timeout": nil, "copyRate": nil, "migrationsPerNode": nil, "drbd": nil, "rebuildAfter": nil,
		"nodes":     &field{"[]": &nodeFields},
		"workloads": &field{"[]": &workloadFields},
		"actions":   &field{"[]": &actionFields}}
)

// checkFields reports the first key not in the schema, with its path and line.
func checkFields(n *yamlv3.Node, path string, f field) error {
	switch n.Kind {
	case yamlv3.MappingNode:
		if _, any := f["*"]; any {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			sub, ok := f[k.Value]
			p := join(path, k.Value)
			if !ok {
				return fmt.Errorf("line %d: %s: unknown field %q", k.Line, p, k.Value)
			}
			if sub != nil {
				if err := checkFields(v, p, *sub); err != nil {
					return err
				}
			}
		}
	case yamlv3.SequenceNode:
		item, ok := f["[]"]
		if !ok || item == nil {
			return nil
		}
		for i, c := range n.Content {
			if err := checkFields(c, fmt.Sprintf("%s[%d]", path, i), *item); err != nil {
				return err
			}
		}
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// lineOf finds the line of a path like workloads[1].volumes[0] in doc.
func lineOf(doc *yamlv3.Node, path string) int {
	if len(doc.Content) == 0 {
		return 0
	}
	n := doc.Content[0]
	line := n.Line
	for _, part := range strings.Split(path, ".") {
		key, rest, _ := strings.Cut(part, "[")
		if key != "" {
			if n.Kind != yamlv3.MappingNode {
				return line
			}
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == key {
					line, n, found = n.Content[i].Line, n.Content[i+1], true
					break
				}
			}
			if !found {
				return line
			}
		}
		for rest != "" {
			idx, after, _ := strings.Cut(rest, "]")
			i, err := strconv.Atoi(idx)
			if err != nil || n.Kind != yamlv3.SequenceNode || i >= len(n.Content) {
				return line
			}
			n = n.Content[i]
			line = n.Line
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return line
}
