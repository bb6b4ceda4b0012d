package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

type drainCheckOptions struct {
	*Options
	out *outputFlags
}

func newDrainCheckCommand(o *Options) *cobra.Command {
	d := &drainCheckOptions{Options: o, out: newOutputFlags(false)}
	cmd := &cobra.Command{
		Use:   "drain-check NODE",
		Short: "Say whether a node can be drained now, and where each of its volumes would go",
		Long: `Say, before ` + "`kubectl drain NODE`" + `, what the drain would do with each local volume
that has a replica on the node, following the evictor's and the migrate
controller's rules (docs/operations.md, "Draining a node"):

  move    the evictor creates a migration (MIGRATION, -o wide) and TARGET
          has room for the volume's whole group
  moving  an unfinished migration off the node already moves it
  wait    the migration would wait for another one moving the same volume's
          other replica (an HA volume with both nodes drained)
  stay    it would not move now: the node is labelled
          hwameistor.io/eviction=disable, no Ready schedulable node has room
          in its pool, its migration ended in this cordon, it is being
          aborted, the migration would fail its checks, ...

Targets are chosen the way the migrate controller chooses them, group after
group, each counting the space the earlier ones take; concurrency limits only
delay migrations and are not shown. Problems with the node itself (its node
agent publishes no replication address) stop every copy.

Exit status: 0 when the node can be drained now (every volume moves or is
moving), 1 when it cannot, 2 when the check itself failed.`,
		Example: `  kubectl hwameistor drain-check hdd-0 && kubectl drain hdd-0 --ignore-daemonsets
  kubectl hwameistor drain-check hdd-0 -o wide
  kubectl hwameistor drain-check hdd-0 -o jsonpath='{.canDrain}'`,
		// A usage error exits 2 too: 1 would read as "cannot be drained".
		Args: func(cmd *cobra.Command, args []string) error {
			return checkFailed(cobra.ExactArgs(1)(cmd, args))
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			can, err := d.run(cmd.Context(), args[0])
			if err != nil {
				return checkFailed(err)
			}
			if !can {
				return &exitError{code: ExitNotDrainable}
			}
			return nil
		},
	}
	d.out.addFlags(cmd)
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return checkFailed(err) })
	return cmd
}

func checkFailed(err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: ExitCheckFailed, err: err}
}

// run prints the report and says whether the node can be drained.
func (d *drainCheckOptions) run(ctx context.Context, node string) (bool, error) {
	p, err := d.out.printer()
	if err != nil {
		return false, err
	}
	c, err := d.NewClient()
	if err != nil {
		return false, err
	}
	if err := checkNode(ctx, c, node); err != nil {
		return false, err
	}
	cl, err := readCluster(ctx, c, partAll)
	if err != nil {
		return false, err
	}
	dc, err := planDrain(cl, node, d.Now())
	if err != nil {
		return false, err
	}
	if !d.out.table() {
		return dc.CanDrain, d.out.printObjects(d.Out, []runtime.Object{dc}, true)
	}
	writeSummary(d.Out, dc)
	if len(dc.Volumes) == 0 {
		return dc.CanDrain, nil
	}
	fmt.Fprintln(d.Out)
	return dc.CanDrain, p.PrintObj(drainTable(dc), d.Out)
}

// writeSummary is the answer in a sentence, then the node's problems.
func writeSummary(w io.Writer, dc *DrainCheck) {
	moving, created, staying := 0, 0, 0
	for _, v := range dc.Volumes {
		switch v.Action {
		case ActionMove:
			created++
		case ActionMoving:
			moving++
		default:
			staying++
		}
	}
	switch {
	case len(dc.Volumes) == 0:
		fmt.Fprintf(w, "Node %s holds no local volumes: it can be drained now, nothing moves.\n", dc.Node)
	case dc.CanDrain:
		fmt.Fprintf(w, "Node %s can be drained now: %d local volume(s) move off it (%d by new migrations, %d already moving).\n",
			dc.Node, len(dc.Volumes), created, moving)
	case staying > 0:
		fmt.Fprintf(w, "Node %s cannot be drained now: %d of its %d local volume(s) would not move.\n", dc.Node, staying, len(dc.Volumes))
	default:
		fmt.Fprintf(w, "Node %s cannot be drained now: the copies off it would fail.\n", dc.Node)
	}
	for _, p := range dc.Problems {
		fmt.Fprintf(w, "  problem: %s\n", p)
	}
	for _, warning := range dc.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", warning)
	}
}

func drainTable(dc *DrainCheck) *metav1.Table {
	t := &metav1.Table{ColumnDefinitions: []metav1.TableColumnDefinition{
		column("Volume", false), column("PVC", false), column("Size", false), column("Action", false),
		column("Target", false), column("Reason", false),
		column("Group", true), column("Pool", true), column("Replicas", true), column("Migration", true),
		column("Notes", true),
	}}
	for _, v := range dc.Volumes {
		t.Rows = append(t.Rows, row(nil, v.Volume, orNone(v.Claim), humanBytes(v.CapacityBytes), string(v.Action),
			orNone(v.Target), orNone(v.Reason),
			orNone(v.Group), v.Pool, orNone(strings.Join(v.Replicas, ",")), orNone(v.Migration),
			orNone(strings.Join(v.Notes, "; "))))
	}
	return t
}
