package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "hwameistor.io/local/api/v1alpha1"
)

type listOptions struct {
	*Options
	out    *outputFlags
	node   string
	active bool
}

// newMigrateListCommand is `migrate list`, also registered as `migrations`
// (use is the command's name).
func newMigrateListCommand(o *Options, use string) *cobra.Command {
	l := &listOptions{Options: o, out: newOutputFlags(true)}
	cmd := &cobra.Command{
		Use:   use + " [NAME...]",
		Short: "List LocalVolumeMigrates: state and progress",
		Long: `List LocalVolumeMigrates with the volumes they move, source and target
nodes, state and copy progress. -o wide adds what created them
(hwameistor.io/migrate-trigger: drain, pod, or none for a user's), whether
spec.abort is set, and status.message (why a migration waits or failed).
-o json|yaml|name prints the LocalVolumeMigrates.`,
		Example: `  kubectl hwameistor ` + use + `
  kubectl hwameistor ` + use + ` --node hdd-0 --active -o wide`,
		RunE: func(cmd *cobra.Command, args []string) error { return l.run(cmd.Context(), args) },
	}
	l.out.addFlags(cmd)
	cmd.Flags().StringVar(&l.node, "node", "", "Only migrations from or to this node.")
	cmd.Flags().BoolVar(&l.active, "active", false, "Only unfinished migrations (not Completed, Failed or Aborted).")
	return cmd
}

func (l *listOptions) run(ctx context.Context, names []string) error {
	if _, err := l.out.printer(); err != nil {
		return err
	}
	c, err := l.NewClient()
	if err != nil {
		return err
	}
	cl, err := readCluster(ctx, c, partMigrations)
	if err != nil {
		return err
	}
	ms, err := selectMigrations(cl, names, l.node, l.active)
	if err != nil {
		return err
	}
	if !l.out.table() {
		return l.out.printObjects(l.Out, asObjects(ms), len(names) == 1)
	}
	return l.out.printTable(l.Out, l.ErrOut, migrationsTable(ms, l.Now()), "No migrations found.")
}

// selectMigrations returns the named migrations (each must exist), or all,
// keeping those from or to node and, with active, the unfinished ones.
func selectMigrations(cl *cluster, names []string, node string, active bool) ([]*v1.LocalVolumeMigrate, error) {
	var out []*v1.LocalVolumeMigrate
	for i := range cl.Migrations {
		if len(names) == 0 || slices.Contains(names, cl.Migrations[i].Name) {
			out = append(out, &cl.Migrations[i])
		}
	}
	for _, n := range names {
		if !slices.ContainsFunc(out, func(m *v1.LocalVolumeMigrate) bool { return m.Name == n }) {
			return nil, fmt.Errorf("migration %q not found", n)
		}
	}
	return slices.DeleteFunc(out, func(m *v1.LocalVolumeMigrate) bool {
		return (node != "" && m.Spec.SourceNode != node && m.Status.TargetNode != node) ||
			(active && m.Status.State.Finished())
	}), nil
}

func migrationsTable(ms []*v1.LocalVolumeMigrate, now time.Time) *metav1.Table {
	t := &metav1.Table{ColumnDefinitions: []metav1.TableColumnDefinition{
		column("Name", false), column("Volumes", false), column("Source", false), column("Target", false),
		column("State", false), column("Progress", false), column("Age", false),
		column("Trigger", true), column("Abort", true), column("Message", true),
	}}
	for _, m := range ms {
		vols := m.Status.Volumes
		if len(vols) == 0 {
			vols = []string{m.Spec.VolumeName}
		}
		progress := m.Status.Progress
		if progress != "" && m.Status.TotalBytes > 0 {
			progress += fmt.Sprintf(" (%s/%s)", humanBytes(m.Status.BytesCopied), humanBytes(m.Status.TotalBytes))
		}
		t.Rows = append(t.Rows, row(m, m.Name, strings.Join(vols, ","), m.Spec.SourceNode, orNone(m.Status.TargetNode),
			string(stateOf(m.Status.State)), orNone(progress), age(m.CreationTimestamp, now),
			orNone(m.Labels[v1.MigrateTriggerLabel]), fmt.Sprint(m.Spec.Abort), orNone(m.Status.Message)))
	}
	return t
}
