package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
)

type abortOptions struct {
	*Options
	node string
}

func newMigrateAbortCommand(o *Options) *cobra.Command {
	a := &abortOptions{Options: o}
	cmd := &cobra.Command{
		Use:   "abort NAME... | --node NODE",
		Short: "Stop migrations by setting spec.abort",
		Long: `Set spec.abort on LocalVolumeMigrates, as docs/operations.md "Aborting" does
with kubectl patch, and say what the controller does with it in the
migration's state: Submitted ends Aborted at once; AddReplica and
SyncReplica roll back (the target replica is removed, the volume stays on
the source); PruneReplica and Completed ignore it (the volume is already on
the target, or about to be); Failed and Aborted are left alone.

--node aborts every unfinished migration off that node: the first step of
stopping a drain (then ` + "`kubectl uncordon NODE`" + `).

Do not delete an unfinished migration instead: it has no finalizer, and its
target replica would be left behind.`,
		Example: `  kubectl hwameistor migrate abort move-db-0
  kubectl hwameistor migrate abort --node hdd-0`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if (len(args) == 0) == (a.node == "") {
				return fmt.Errorf("name the migrations to abort, or give --node (not both)")
			}
			return a.run(cmd.Context(), args)
		},
	}
	cmd.Flags().StringVar(&a.node, "node", "", "Abort every unfinished migration off this node (spec.sourceNode).")
	return cmd
}

func (a *abortOptions) run(ctx context.Context, names []string) error {
	c, err := a.NewClient()
	if err != nil {
		return err
	}
	var targets []*v1.LocalVolumeMigrate
	if a.node != "" {
		if err := checkNode(ctx, c, a.node); err != nil {
			return err
		}
		list := &v1.LocalVolumeMigrateList{}
		if err := c.List(ctx, list); err != nil {
			return err
		}
		for i := range list.Items {
			if m := &list.Items[i]; m.Spec.SourceNode == a.node && !m.Status.State.Finished() {
				targets = append(targets, m)
			}
		}
		if len(targets) == 0 {
			fmt.Fprintf(a.Out, "No unfinished migrations off node %s.\n", a.node)
			return nil
		}
	}
	for _, name := range names {
		m := &v1.LocalVolumeMigrate{}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, m); err != nil {
			if apierrors.IsNotFound(err) {
				return fmt.Errorf("migration %q not found", name)
			}
			return err
		}
		targets = append(targets, m)
	}
	for _, m := range targets {
		patch := m.Status.State != v1.OperationStateFailed && m.Status.State != v1.OperationStateAborted && !m.Spec.Abort
		if patch {
			if err := c.Patch(ctx, m, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"abort":true}}`))); err != nil {
				return fmt.Errorf("setting spec.abort on %s: %w", m.Name, err)
			}
		}
		fmt.Fprintf(a.Out, "localvolumemigrate.hwameistor.io/%s: %s\n", m.Name, abortOutcome(m, patch))
	}
	return nil
}

// abortOutcome says what the migrate controller does with spec.abort in
// m's state (docs/operations.md, "Aborting"); requested says whether this
// command set it.
func abortOutcome(m *v1.LocalVolumeMigrate, requested bool) string {
	src, tgt := m.Spec.SourceNode, orNone(m.Status.TargetNode)
	state := stateOf(m.Status.State)
	switch state {
	case v1.OperationStateFailed, v1.OperationStateAborted:
		return fmt.Sprintf("already %s, nothing to abort", state)
	case v1.OperationStateAborting:
		return fmt.Sprintf("already rolling back; the volume stays on %s", src)
	}
	prefix := "abort requested"
	if !requested {
		prefix = "abort was already requested"
	}
	switch state {
	case v1.OperationStateSubmitted:
		return fmt.Sprintf("%s (Submitted): it ends Aborted at once, nothing to undo; the volume stays on %s", prefix, src)
	case v1.OperationStateAddReplica, v1.OperationStateSyncReplica:
		return fmt.Sprintf("%s (%s): the copy to %s is rolled back and its replica removed; the volume stays on %s", prefix, state, tgt, src)
	case v1.OperationStatePruneReplica:
		return fmt.Sprintf("%s, but ignored in PruneReplica: every copy is verified and the source is being removed; the migration completes on %s", prefix, tgt)
	case v1.OperationStateCompleted:
		return fmt.Sprintf("%s, but ignored: the migration already completed; the volume is on %s", prefix, tgt)
	}
	return fmt.Sprintf("%s (%s)", prefix, state)
}
