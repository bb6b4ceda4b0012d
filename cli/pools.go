package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/internal/placement"
)

type poolsOptions struct {
	*Options
	out     *outputFlags
	classes []string
}

func newPoolsCommand(o *Options) *cobra.Command {
	p := &poolsOptions{Options: o, out: newOutputFlags(true)}
	cmd := &cobra.Command{
		Use:   "pools [NODE...]",
		Short: "Show the pools of each node: free and total space, volumes",
		Long: `Show one row per node and pool class, from the LocalStorageNodes' status
as the node agents report it. -o wide adds the zone, the node's state (the
LocalStorageNode's, SchedulingDisabled for a cordoned Node, EvictionDisabled
for hwameistor.io/eviction=disable), AVAILABLE (free space net of placements
the scheduler and migrations made that the status does not count yet: what
the next volume can get) and the used and total volume count.
-o json|yaml|name prints the LocalStorageNodes.`,
		Example: `  kubectl hwameistor pools
  kubectl hwameistor pools node-1 node-2 -o wide
  kubectl hwameistor pools --class HDD`,
		RunE: func(cmd *cobra.Command, args []string) error { return p.run(cmd.Context(), args) },
	}
	p.out.addFlags(cmd)
	cmd.Flags().StringSliceVar(&p.classes, "class", nil, "Only pools of these classes: HDD, SSD, NVMe.")
	return cmd
}

func (p *poolsOptions) run(ctx context.Context, nodes []string) error {
	if _, err := p.out.printer(); err != nil {
		return err
	}
	var classes []v1.PoolClass
	for _, s := range p.classes {
		c, err := v1.ParsePoolClass(s)
		if err != nil {
			return fmt.Errorf("--class: %w", err)
		}
		classes = append(classes, c)
	}
	c, err := p.NewClient()
	if err != nil {
		return err
	}
	what := partStorageNodes
	if p.out.table() {
		what |= partNodes | partVolumes | partGroups | partReplicas
	}
	cl, err := readCluster(ctx, c, what)
	if err != nil {
		return err
	}
	lsns, err := selectStorageNodes(cl, nodes)
	if err != nil {
		return err
	}
	if !p.out.table() {
		return p.out.printObjects(p.Out, asObjects(lsns), len(nodes) == 1)
	}
	return p.out.printTable(p.Out, p.ErrOut, poolsTable(cl, lsns, classes, cl.capacity().Cache), "No pools found.")
}

// selectStorageNodes returns the named LocalStorageNodes, or all of them.
func selectStorageNodes(cl *cluster, names []string) ([]*v1.LocalStorageNode, error) {
	var out []*v1.LocalStorageNode
	if len(names) == 0 {
		for i := range cl.StorageNodes {
			out = append(out, &cl.StorageNodes[i])
		}
		return out, nil
	}
	for _, n := range names {
		lsn := cl.storageNode(n)
		if lsn == nil {
			return nil, fmt.Errorf("node %q not found: it has no LocalStorageNode (no node agent serves it)", n)
		}
		out = append(out, lsn)
	}
	return out, nil
}

// poolsTable has a row per node and pool class (classes, when given,
// filter); a node without pools gets one row saying so, unless filtered.
func poolsTable(cl *cluster, lsns []*v1.LocalStorageNode, classes []v1.PoolClass, capacity *placement.Cache) *metav1.Table {
	t := &metav1.Table{ColumnDefinitions: []metav1.TableColumnDefinition{
		column("Node", false), column("Class", false), column("Free", false), column("Total", false),
		column("Used%", false), column("Volumes", false),
		column("Zone", true), column("State", true), column("Available", true), column("Volume-Count", true),
	}}
	for _, lsn := range lsns {
		state := nodeState(cl, lsn)
		zone := orNone(lsn.Spec.Topo.Zone)
		shown := 0
		for _, class := range v1.PoolClasses {
			pool, ok := lsn.Status.Pools[class.PoolName()]
			if !ok || (len(classes) > 0 && !slices.Contains(classes, class)) {
				continue
			}
			shown++
			available := none
			if pi, ok := placement.PoolByClass(class); ok && capacity != nil {
				reserved, _ := capacity.Reserved(lsn.Name, pi)
				available = humanBytes(max(pool.FreeCapacityBytes-reserved, 0))
			}
			t.Rows = append(t.Rows, row(lsn, lsn.Name, string(class),
				humanBytes(pool.FreeCapacityBytes), humanBytes(pool.TotalCapacityBytes),
				percent(pool.UsedCapacityBytes, pool.TotalCapacityBytes), fmt.Sprint(len(pool.Volumes)),
				zone, state, available, fmt.Sprintf("%d/%d", pool.UsedVolumeCount, pool.TotalVolumeCount)))
		}
		if shown == 0 && len(classes) == 0 {
			t.Rows = append(t.Rows, row(lsn, lsn.Name, none, "0", "0", "0%", "0", zone, state, none, "0/0"))
		}
	}
	return t
}

// nodeState is the LocalStorageNode's state, plus SchedulingDisabled for a
// cordoned Node (kubectl's word) and EvictionDisabled for a node whose
// volumes stay when it is drained.
func nodeState(cl *cluster, lsn *v1.LocalStorageNode) string {
	parts := []string{orNone(string(lsn.Status.State))}
	if n := cl.node(lsn.Name); n != nil {
		if n.Spec.Unschedulable {
			parts = append(parts, "SchedulingDisabled")
		}
		if evictionDisabled(n) {
			parts = append(parts, "EvictionDisabled")
		}
	} else if cl.read&partNodes != 0 {
		parts = append(parts, "NoNode")
	}
	return strings.Join(parts, ",")
}
