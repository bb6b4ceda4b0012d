package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "hwameistor.io/local/api/v1alpha1"
)

func newMigrateCommand(o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Start, abort and list LocalVolumeMigrates",
		Long: `Move a volume off a node by hand, stop a migration, or list them
(docs/operations.md, "Moving a volume by hand" and "Aborting").`,
	}
	cmd.AddCommand(newMigrateStartCommand(o), newMigrateAbortCommand(o), newMigrateListCommand(o, "list"))
	return cmd
}

// newMigrationsCommand is `migrations`, a shorter `migrate list`.
func newMigrationsCommand(o *Options) *cobra.Command {
	cmd := newMigrateListCommand(o, "migrations")
	cmd.Aliases = []string{"lvmigrate"}
	return cmd
}

type startOptions struct {
	*Options
	out  *outputFlags
	from string
	to   []string
	name string
}

func newMigrateStartCommand(o *Options) *cobra.Command {
	s := &startOptions{Options: o, out: newOutputFlags(true)}
	cmd := &cobra.Command{
		Use:   "start VOLUME --from NODE [--to NODE...] [--name NAME]",
		Short: "Create a LocalVolumeMigrate that moves a volume off a node",
		Long: `Create the LocalVolumeMigrate docs/operations.md describes under "Moving a
volume by hand": spec.sourceNode is --from, spec.volumeName the volume (the
PersistentVolume's name), spec.targetNodesSuggested --to when given (the
controller chooses among them only; without --to it chooses like the
scheduler), and spec.migrateAllVols when the volume's group has more than one
volume (they live on one node and move together). It is labelled
hwameistor.io/source-node like the evictor's, so
` + "`kubectl get lvmigrate -l hwameistor.io/source-node=NODE`" + ` lists it too.

The request is checked first the way the migrate controller would check it:
the volume exists, --from holds its replica (and every volume of its group's),
no other unfinished migration moves it off --from. The copy needs the volume
unmounted: stop the pod using it.

Prints the new migration's name ("localvolumemigrate.hwameistor.io/NAME
created"; -o name for the name only, -o yaml for the object).`,
		Example: `  kubectl hwameistor migrate start pvc-6d0c... --from hdd-0
  kubectl hwameistor migrate start pvc-6d0c... --from hdd-0 --to hdd-2 --to hdd-3 --name move-db-0`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return s.run(cmd.Context(), args[0]) },
	}
	s.out.addFlags(cmd)
	cmd.Flags().StringVar(&s.from, "from", "", "The node holding the replica to move (spec.sourceNode). Required.")
	cmd.Flags().StringSliceVar(&s.to, "to", nil, "Nodes the target is chosen among (spec.targetNodesSuggested); repeat or separate with commas.")
	cmd.Flags().StringVar(&s.name, "name", "", "Name of the LocalVolumeMigrate (default: move-<volume>- and a random suffix).")
	_ = cmd.MarkFlagRequired("from")
	return cmd
}

func (s *startOptions) run(ctx context.Context, volume string) error {
	if _, err := s.out.printer(); err != nil {
		return err
	}
	c, err := s.NewClient()
	if err != nil {
		return err
	}
	cl, err := readCluster(ctx, c, partNodes|partStorageNodes|partVolumes|partMigrations)
	if err != nil {
		return err
	}
	m, warnings, err := newMigration(cl, volume, s.from, s.to, s.name)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		fmt.Fprintln(s.ErrOut, "Warning: "+w)
	}
	if err := c.Create(ctx, m); err != nil {
		return fmt.Errorf("creating the LocalVolumeMigrate: %w", err)
	}
	return s.out.printCreated(s.Out, m)
}

// newMigration builds the LocalVolumeMigrate that moves volume off from,
// refusing what the migrate controller would fail at once, and warning of
// what it would wait for.
func newMigration(cl *cluster, volume, from string, to []string, name string) (*v1.LocalVolumeMigrate, []string, error) {
	lv := cl.volume(volume)
	if lv == nil {
		return nil, nil, fmt.Errorf("volume %q not found", volume)
	}
	if lv.DeletionTimestamp != nil || lv.Spec.Delete {
		return nil, nil, fmt.Errorf("volume %q is being deleted", volume)
	}
	if !slices.Contains(lv.ReplicaNodes(), from) {
		return nil, nil, fmt.Errorf("node %q holds no replica of volume %q (replicas on %s)", from, volume, orNone(strings.Join(lv.ReplicaNodes(), ", ")))
	}
	group := groupOf(cl, lv)
	names := volumeNames(group)
	holding := map[string]bool{}
	for _, v := range group {
		if !slices.Contains(v.ReplicaNodes(), from) {
			return nil, nil, fmt.Errorf("volume %q of the group %s has no replica on %s: move the group from where all of its volumes are", v.Name, lv.Spec.VolumeGroup, from)
		}
		for _, n := range v.ReplicaNodes() {
			holding[n] = true
		}
	}
	for _, t := range to {
		switch {
		case t == from:
			return nil, nil, fmt.Errorf("--to %s is the source node (--from)", t)
		case cl.storageNode(t) == nil && cl.node(t) == nil:
			return nil, nil, fmt.Errorf("node %q not found", t)
		case holding[t]:
			return nil, nil, fmt.Errorf("node %q already holds a replica of %s: it cannot be the target", t, strings.Join(names, ", "))
		}
	}
	var warnings []string
	for i := range cl.Migrations {
		o := &cl.Migrations[i]
		if o.Status.State.Finished() || !o.Moves(names...) {
			continue
		}
		if o.Spec.SourceNode == from {
			return nil, nil, fmt.Errorf("volume %s is already being migrated by %s (%s): watch it, or abort it first", strings.Join(names, ", "), o.Name, stateOf(o.Status.State))
		}
		warnings = append(warnings, fmt.Sprintf("the migration waits for %s, which moves the volume's replica on %s", o.Name, o.Spec.SourceNode))
	}
	m := &v1.LocalVolumeMigrate{
		ObjectMeta: metav1.ObjectMeta{
			Name:   name,
			Labels: map[string]string{v1.MigrateSourceNodeLabel: v1.SourceNodeLabelValue(from)},
		},
		Spec: v1.LocalVolumeMigrateSpec{
			SourceNode:           from,
			VolumeName:           volume,
			TargetNodesSuggested: to,
			MigrateAllVols:       len(group) > 1,
		},
	}
	if name == "" {
		// 253 characters at most, of which generateName adds 5.
		m.GenerateName = strings.TrimRight(truncate("move-"+volume, 253-5-1), "-.") + "-"
	}
	return m, warnings, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// groupOf returns lv and the other live volumes of its group, by name, as
// the migrate controller gathers them.
func groupOf(cl *cluster, lv *v1.LocalVolume) []*v1.LocalVolume {
	if lv.Spec.VolumeGroup == "" {
		return []*v1.LocalVolume{lv}
	}
	var out []*v1.LocalVolume
	for i := range cl.Volumes {
		v := &cl.Volumes[i]
		if v.Spec.VolumeGroup == lv.Spec.VolumeGroup && !v.Spec.Delete && v.DeletionTimestamp == nil {
			out = append(out, v)
		}
	}
	return out
}

func volumeNames(vols []*v1.LocalVolume) []string {
	out := make([]string, 0, len(vols))
	for _, v := range vols {
		out = append(out, v.Name)
	}
	return out
}
