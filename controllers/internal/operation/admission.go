package operation

import (
	"context"
	"slices"
	"sort"

	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// Blockers lists the unfinished operations of any kind on one of volumes
// that go before op, first first. One goes first when it has started
// (past Submitted: it may be changing the volume now) or is older
// (v1.OperationBefore, a total order): so the operations on a volume run
// one at a time, whatever their kinds, and two never wait for each other.
// A migration copies the volume, which must not grow or gain a replica
// under the copy; a conversion copies it too; an expansion grows it.
func Blockers(ctx context.Context, r client.Reader, op v1.Operation, volumes []string) ([]v1.Operation, error) {
	var out []v1.Operation
	consider := func(o v1.Operation) {
		if o.OperationKind() == op.OperationKind() && o.GetName() == op.GetName() {
			return
		}
		state := State(o)
		if state.Finished() || !touches(o, volumes) {
			return
		}
		if state != v1.OperationStateSubmitted || v1.OperationBefore(o, o.OperationKind(), op, op.OperationKind()) {
			out = append(out, o)
		}
	}
	migrations := &v1.LocalVolumeMigrateList{}
	if err := r.List(ctx, migrations); err != nil {
		return nil, err
	}
	for i := range migrations.Items {
		consider(&migrations.Items[i])
	}
	converts := &v1.LocalVolumeConvertList{}
	if err := r.List(ctx, converts); err != nil {
		return nil, err
	}
	for i := range converts.Items {
		consider(&converts.Items[i])
	}
	expands := &v1.LocalVolumeExpandList{}
	if err := r.List(ctx, expands); err != nil {
		return nil, err
	}
	for i := range expands.Items {
		consider(&expands.Items[i])
	}
	sort.Slice(out, func(i, j int) bool {
		return v1.OperationBefore(out[i], out[i].OperationKind(), out[j], out[j].OperationKind())
	})
	return out, nil
}

func touches(o v1.Operation, volumes []string) bool {
	for _, v := range o.OperationVolumes() {
		if slices.Contains(volumes, v) {
			return true
		}
	}
	return false
}

// Doing words what an operation does to its volume, for waiting
// messages: "migrated by m-1".
func Doing(o v1.Operation) string {
	switch o.OperationKind() {
	case v1.KindMigrate:
		return "migrated by " + o.GetName()
	case v1.KindConvert:
		return "converted by " + o.GetName()
	}
	return "expanded by " + o.GetName()
}
