package cli

import (
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// ReportGroupVersion types drain-check's -o json|yaml output. It is the
// CLI's own report, not an API the cluster serves; the version changes if
// a field's meaning does.
var ReportGroupVersion = schema.GroupVersion{Group: "cli.hwameistor.io", Version: "v1alpha1"}

// Action is what draining the node does with a volume.
type Action string

const (
	// ActionMove: the evictor creates a migration and a target has room.
	ActionMove Action = "move"
	// ActionMoving: an unfinished migration off the node already moves it.
	ActionMoving Action = "moving"
	// ActionWait: its migration would wait for another migration of the
	// volume (an HA volume's other replica moving off another node).
	ActionWait Action = "wait"
	// ActionStay: nothing moves it now; Reason says why.
	ActionStay Action = "stay"
)

// DrainCheck is drain-check's answer for one node.
type DrainCheck struct {
	metav1.TypeMeta `json:",inline"`
	Node            string `json:"node"`
	// CanDrain is true when every volume on the node moves, or is moving,
	// and nothing about the node stops the copies.
	CanDrain         bool `json:"canDrain"`
	Cordoned         bool `json:"cordoned"`
	EvictionDisabled bool `json:"evictionDisabled"`
	// Problems stop every copy off the node.
	Problems []string `json:"problems,omitempty"`
	// Warnings may slow or stop the copies; they do not change CanDrain.
	Warnings []string     `json:"warnings,omitempty"`
	Volumes  []VolumeMove `json:"volumes"`
}

// VolumeMove is what happens to one volume with a replica on the node.
type VolumeMove struct {
	Volume        string   `json:"volume"`
	Claim         string   `json:"claim,omitempty"`
	Group         string   `json:"group,omitempty"`
	Pool          string   `json:"pool"`
	CapacityBytes int64    `json:"capacityBytes"`
	Replicas      []string `json:"replicas"`
	Action        Action   `json:"action"`
	// Target is the node the volume goes to: chosen already, or the one the
	// migrate controller would choose now.
	Target string `json:"target,omitempty"`
	// Migration is the LocalVolumeMigrate that moves it: existing, or the
	// name the evictor gives the one it creates.
	Migration      string   `json:"migration,omitempty"`
	MigrationState v1.State `json:"migrationState,omitempty"`
	Reason         string   `json:"reason,omitempty"`
	Notes          []string `json:"notes,omitempty"`
}

var _ runtime.Object = &DrainCheck{}

// DeepCopyObject copies the report (runtime.Object, for the printers).
func (d *DrainCheck) DeepCopyObject() runtime.Object {
	out := *d
	out.Problems = slices.Clone(d.Problems)
	out.Warnings = slices.Clone(d.Warnings)
	out.Volumes = slices.Clone(d.Volumes)
	for i := range out.Volumes {
		out.Volumes[i].Replicas = slices.Clone(d.Volumes[i].Replicas)
		out.Volumes[i].Notes = slices.Clone(d.Volumes[i].Notes)
	}
	return &out
}

// ok says whether the volume leaves the node.
func (v *VolumeMove) ok() bool { return v.Action == ActionMove || v.Action == ActionMoving }
