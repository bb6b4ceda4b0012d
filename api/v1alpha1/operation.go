package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Kinds of the volume operations, as OperationBefore orders them.
const (
	KindMigrate = "LocalVolumeMigrate"
	KindConvert = "LocalVolumeConvert"
	KindExpand  = "LocalVolumeExpand"
)

// ConditionFinished is the condition every volume operation keeps: False
// while it runs (reason: its state), True once it ended (reason
// Completed, Failed or Aborted), with the status message.
const ConditionFinished = "Finished"

// Operation is what the three volume operations (LocalVolumeMigrate,
// LocalVolumeConvert, LocalVolumeExpand) have in common: the controllers'
// operation engine runs them through it.
// +kubebuilder:object:generate=false
type Operation interface {
	client.Object
	// OperationKind is the kind's name (KindMigrate...).
	OperationKind() string
	// OperationVolumes are the volumes the operation changes.
	OperationVolumes() []string
	// AbortRequested is spec.abort.
	AbortRequested() bool
	// OperationStatus points at the status fields the engine keeps.
	OperationStatus() (state *State, message *string, conditions *[]metav1.Condition)
}

var (
	_ Operation = &LocalVolumeMigrate{}
	_ Operation = &LocalVolumeConvert{}
	_ Operation = &LocalVolumeExpand{}
)

func (m *LocalVolumeMigrate) OperationKind() string { return KindMigrate }

// OperationVolumes is spec.volumeName and, once chosen, its group.
func (m *LocalVolumeMigrate) OperationVolumes() []string {
	out := []string{m.Spec.VolumeName}
	for _, v := range m.Status.Volumes {
		if v != m.Spec.VolumeName {
			out = append(out, v)
		}
	}
	return out
}
func (m *LocalVolumeMigrate) AbortRequested() bool { return m.Spec.Abort }
func (m *LocalVolumeMigrate) OperationStatus() (*State, *string, *[]metav1.Condition) {
	return &m.Status.State, &m.Status.Message, &m.Status.Conditions
}

func (c *LocalVolumeConvert) OperationKind() string      { return KindConvert }
func (c *LocalVolumeConvert) OperationVolumes() []string { return []string{c.Spec.VolumeName} }
func (c *LocalVolumeConvert) AbortRequested() bool       { return c.Spec.Abort }
func (c *LocalVolumeConvert) OperationStatus() (*State, *string, *[]metav1.Condition) {
	return &c.Status.State, &c.Status.Message, &c.Status.Conditions
}

func (e *LocalVolumeExpand) OperationKind() string      { return KindExpand }
func (e *LocalVolumeExpand) OperationVolumes() []string { return []string{e.Spec.VolumeName} }
func (e *LocalVolumeExpand) AbortRequested() bool       { return e.Spec.Abort }
func (e *LocalVolumeExpand) OperationStatus() (*State, *string, *[]metav1.Condition) {
	return &e.Status.State, &e.Status.Message, &e.Status.Conditions
}
