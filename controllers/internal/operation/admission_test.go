package operation_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/internal/operation"
)

// TestBlockers: which unfinished operations on the volumes go before an
// operation, across the three kinds, oldest first.
func TestBlockers(t *testing.T) {
	const (
		submitted = v1.OperationStateSubmitted
		unset     = v1.State("") // a new object: Submitted
	)
	cases := []struct {
		name    string
		op      v1.Operation
		volumes []string // op.OperationVolumes() unless set
		others  []client.Object
		want    []string // kind/name, in order
	}{
		{name: "finished operations never block",
			op: migration("m", at(0), submitted, "v"),
			others: []client.Object{
				conversion("c-done", at(-time.Hour), v1.OperationStateCompleted, "v"),
				expansion("e-failed", at(-time.Hour), v1.OperationStateFailed, "v"),
				migration("m-aborted", at(-time.Hour), v1.OperationStateAborted, "v"),
				expansion("e-done-young", at(time.Hour), v1.OperationStateCompleted, "v"),
			}},
		{name: "an operation past Submitted blocks even if younger",
			op: migration("m", at(0), submitted, "v"),
			others: []client.Object{
				conversion("c-young", at(time.Minute), v1.OperationStateAddReplica, "v"),
				expansion("e-young", at(time.Minute), v1.OperationStateInProgress, "v"),
				migration("m-young", at(time.Minute), v1.OperationStateAborting, "v"),
			},
			// Equal creation times: migrate < convert < expand.
			want: []string{"LocalVolumeMigrate/m-young", "LocalVolumeConvert/c-young", "LocalVolumeExpand/e-young"}},
		{name: "an older Submitted operation blocks, a younger one does not",
			op: migration("m", at(0), submitted, "v"),
			others: []client.Object{
				conversion("c-old", at(-time.Minute), unset, "v"),
				expansion("e-old", at(-2*time.Minute), submitted, "v"),
				conversion("c-young", at(time.Second), submitted, "v"),
				expansion("e-young", at(time.Minute), unset, "v"),
				migration("m-young", at(time.Second), unset, "v"),
			},
			want: []string{"LocalVolumeExpand/e-old", "LocalVolumeConvert/c-old"}},
		{name: "equal creation: a migration goes first",
			op: migration("m", at(0), submitted, "v"),
			others: []client.Object{
				conversion("c", at(0), submitted, "v"),
				expansion("e", at(0), submitted, "v"),
			}},
		{name: "equal creation: a migration goes before a conversion, a conversion before an expansion",
			op: conversion("c", at(0), submitted, "v"),
			others: []client.Object{
				migration("m", at(0), submitted, "v"),
				expansion("e", at(0), submitted, "v"),
			},
			want: []string{"LocalVolumeMigrate/m"}},
		{name: "equal creation: an expansion goes last",
			op: expansion("e", at(0), submitted, "v"),
			others: []client.Object{
				conversion("c", at(0), submitted, "v"),
				migration("m", at(0), unset, "v"),
			},
			want: []string{"LocalVolumeMigrate/m", "LocalVolumeConvert/c"}},
		{name: "equal creation and kind: by name",
			op: conversion("c-b", at(0), submitted, "v"),
			others: []client.Object{
				conversion("c-c", at(0), submitted, "v"),
				conversion("c-a", at(0), submitted, "v"),
			},
			want: []string{"LocalVolumeConvert/c-a"}},
		{name: "a migration blocks through its group (status.volumes)",
			op: expansion("e", at(0), submitted, "v2"),
			others: []client.Object{
				migration("m-group", at(time.Minute), v1.OperationStateAddReplica, "v1", "v1", "v2"),
				migration("m-other", at(-time.Minute), v1.OperationStateAddReplica, "v3", "v3", "v4"),
				migration("m-v1", at(-time.Minute), submitted, "v1"),
				conversion("c-v1", at(-time.Minute), v1.OperationStateAddReplica, "v1"),
			},
			want: []string{"LocalVolumeMigrate/m-group"}},
		{name: "every volume given counts (a group's migration)",
			op:      migration("m", at(0), submitted, "v1"),
			volumes: []string{"v1", "v2"},
			others: []client.Object{
				expansion("e-v2", at(-time.Minute), submitted, "v2"),
				conversion("c-v3", at(-time.Minute), v1.OperationStateAddReplica, "v3"),
			},
			want: []string{"LocalVolumeExpand/e-v2"}},
		{name: "operations on other volumes never block",
			op: conversion("c", at(0), submitted, "v"),
			others: []client.Object{
				migration("m-w", at(-time.Minute), v1.OperationStateSyncReplica, "w"),
				expansion("e-w", at(-time.Minute), v1.OperationStateInProgress, "w"),
			}},
		{name: "an operation never blocks itself",
			op: conversion("x", at(0), v1.OperationStateAddReplica, "v"),
			others: []client.Object{
				conversion("x", at(0), v1.OperationStateAddReplica, "v"),
				// Another kind under the same name is another operation.
				migration("x", at(-time.Minute), submitted, "v"),
			},
			want: []string{"LocalVolumeMigrate/x"}},
		{name: "sorted oldest first",
			op: expansion("z", at(time.Hour), submitted, "v"),
			others: []client.Object{
				migration("m-a", at(3*time.Minute), v1.OperationStateAddReplica, "v"),
				migration("m-b", at(time.Minute), submitted, "v"),
				conversion("c-a", at(3*time.Minute), v1.OperationStateSyncReplica, "v"),
				conversion("c-b", at(-5*time.Minute), unset, "v"),
				expansion("e-a", at(2*time.Minute), v1.OperationStateInProgress, "v"),
				expansion("e-b", at(3*time.Minute), submitted, "v"),
				expansion("e-c", at(2*time.Hour), v1.OperationStateInProgress, "v"),
			},
			want: []string{"LocalVolumeConvert/c-b", "LocalVolumeMigrate/m-b", "LocalVolumeExpand/e-a",
				"LocalVolumeMigrate/m-a", "LocalVolumeConvert/c-a", "LocalVolumeExpand/e-b", "LocalVolumeExpand/e-c"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, interceptor.Funcs{}, tc.others...)
			volumes := tc.volumes
			if volumes == nil {
				volumes = tc.op.OperationVolumes()
			}
			got, err := operation.Blockers(context.Background(), c, tc.op, volumes)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, o := range got {
				names = append(names, o.OperationKind()+"/"+o.GetName())
			}
			if !slices.Equal(names, tc.want) {
				t.Errorf("blockers of %s/%s on %v:\n got %v\nwant %v", tc.op.OperationKind(), tc.op.GetName(), volumes, names, tc.want)
			}
		})
	}
}

// TestBlockersListError: a failed List is returned, not read as no
// blockers.
func TestBlockersListError(t *testing.T) {
	for _, failing := range []string{v1.KindMigrate, v1.KindConvert, v1.KindExpand} {
		t.Run(failing, func(t *testing.T) {
			c := newClient(t, interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
				if gvk, err := c.GroupVersionKindFor(list); err == nil && gvk.Kind == failing+"List" {
					return context.DeadlineExceeded
				}
				return c.List(ctx, list, opts...)
			}})
			if _, err := operation.Blockers(context.Background(), c, migration("m", at(0), "", "v"), []string{"v"}); err == nil {
				t.Error("no error")
			}
		})
	}
}

func TestDoing(t *testing.T) {
	for _, tc := range []struct {
		op   v1.Operation
		want string
	}{
		{migration("m-1", at(0), "", "v"), "migrated by m-1"},
		{conversion("c-1", at(0), "", "v"), "converted by c-1"},
		{expansion("e-1", at(0), "", "v"), "expanded by e-1"},
	} {
		if got := operation.Doing(tc.op); got != tc.want {
			t.Errorf("Doing(%s) = %q, want %q", tc.op.OperationKind(), got, tc.want)
		}
	}
}
