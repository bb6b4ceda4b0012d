package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
)

type volumesOptions struct {
	*Options
	out  *outputFlags
	node string
}

func newVolumesCommand(o *Options) *cobra.Command {
	v := &volumesOptions{Options: o, out: newOutputFlags(true)}
	cmd := &cobra.Command{
		Use:     "volumes [NAME...]",
		Aliases: []string{"volume", "lv"},
		Short:   "Show volumes: size, replica nodes, state, claim, running migration",
		Long: `Show LocalVolumes (named like their PersistentVolumes): capacity, the nodes
of their replicas, state, the claim (namespace/name) and the unfinished
LocalVolumeMigrate moving them, if any. -o wide adds the pool, the volume
group, each replica's state and whether it is synced, and the node the
volume is published on. -o json|yaml|name prints the LocalVolumes.

LocalVolumes are cluster-scoped: -n/--namespace, when given, keeps the
volumes whose claim is in that namespace; without it every volume is shown.`,
		Example: `  kubectl hwameistor volumes
  kubectl hwameistor volumes --node node-1 -o wide
  kubectl hwameistor volumes -n db
  kubectl hwameistor volumes pvc-6d0c... -o yaml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ns := ""
			if f := cmd.Flags().Lookup("namespace"); f != nil && f.Changed {
				ns = f.Value.String()
			}
			return v.run(cmd.Context(), args, ns)
		},
	}
	v.out.addFlags(cmd)
	cmd.Flags().StringVar(&v.node, "node", "", "Only volumes with a replica on this node.")
	return cmd
}

func (v *volumesOptions) run(ctx context.Context, names []string, namespace string) error {
	if _, err := v.out.printer(); err != nil {
		return err
	}
	c, err := v.NewClient()
	if err != nil {
		return err
	}
	if v.node != "" {
		if err := nodeExists(ctx, c, v.node); err != nil {
			return err
		}
	}
	what := partVolumes
	if v.out.table() || v.node != "" {
		what |= partReplicas | partMigrations
	}
	cl, err := readCluster(ctx, c, what)
	if err != nil {
		return err
	}
	vols, err := selectVolumes(cl, names, v.node, namespace)
	if err != nil {
		return err
	}
	if !v.out.table() {
		return v.out.printObjects(v.Out, asObjects(vols), len(names) == 1)
	}
	return v.out.printTable(v.Out, v.ErrOut, volumesTable(cl, vols), "No volumes found.")
}

// nodeExists fails with `node "x" not found` when the cluster has neither
// a Node nor a LocalStorageNode of that name: a typo would otherwise just
// show nothing.
func nodeExists(ctx context.Context, c client.Reader, name string) error {
	err := c.Get(ctx, client.ObjectKey{Name: name}, &v1.LocalStorageNode{})
	if client.IgnoreNotFound(err) != nil {
		return err
	}
	if err == nil {
		return nil
	}
	return checkNode(ctx, c, name)
}

// selectVolumes returns the named volumes (each must exist), or all; then
// keeps those with a replica on node and a claim in namespace, when set.
func selectVolumes(cl *cluster, names []string, node, namespace string) ([]*v1.LocalVolume, error) {
	var vols []*v1.LocalVolume
	if len(names) == 0 {
		for i := range cl.Volumes {
			vols = append(vols, &cl.Volumes[i])
		}
	}
	for _, n := range names {
		lv := cl.volume(n)
		if lv == nil {
			return nil, fmt.Errorf("volume %q not found", n)
		}
		vols = append(vols, lv)
	}
	return slices.DeleteFunc(vols, func(lv *v1.LocalVolume) bool {
		return (node != "" && !slices.Contains(replicaNodes(cl, lv), node)) ||
			(namespace != "" && lv.Spec.PersistentVolumeClaimNamespace != namespace)
	}), nil
}

// replicaNodes are the nodes of the volume's replica configuration, and
// of any LocalVolumeReplica object not listed there (a migration's target
// before it is added, a replica left over).
func replicaNodes(cl *cluster, lv *v1.LocalVolume) []string {
	nodes := lv.ReplicaNodes()
	if len(nodes) == 0 {
		nodes = slices.Clone(lv.Spec.Accessibility.Nodes)
	}
	for _, r := range cl.replicasOf(lv.Name) {
		if !slices.Contains(nodes, r.Spec.NodeName) {
			nodes = append(nodes, r.Spec.NodeName)
		}
	}
	return nodes
}

func volumesTable(cl *cluster, vols []*v1.LocalVolume) *metav1.Table {
	t := &metav1.Table{ColumnDefinitions: []metav1.TableColumnDefinition{
		column("Name", false), column("Capacity", false), column("Replicas", false), column("State", false),
		column("PVC", false), column("Migration", false),
		column("Pool", true), column("Group", true), column("Replica-States", true), column("Synced", true),
		column("Published", true),
	}}
	for _, lv := range vols {
		pvc := ""
		if lv.Spec.PersistentVolumeClaimName != "" {
			pvc = lv.Spec.PersistentVolumeClaimNamespace + "/" + lv.Spec.PersistentVolumeClaimName
		}
		var migrating []string
		for _, m := range cl.migrationsOf(lv.Name) {
			migrating = append(migrating, migrationSummary(m))
		}
		var states, synced []string
		for _, r := range cl.replicasOf(lv.Name) {
			state := string(r.Status.State)
			if r.DeletionTimestamp != nil || r.Spec.Delete {
				state = "Deleting"
			}
			states = append(states, r.Spec.NodeName+"="+orNone(state))
			synced = append(synced, fmt.Sprintf("%s=%t", r.Spec.NodeName, r.Status.Synced))
		}
		pool := lv.Spec.PoolName
		if c, err := v1.PoolClassOf(pool); err == nil {
			pool = string(c)
		}
		t.Rows = append(t.Rows, row(lv, lv.Name, humanBytes(lv.Spec.RequiredCapacityBytes),
			orNone(strings.Join(lv.ReplicaNodes(), ",")), orNone(string(lv.Status.State)), orNone(pvc),
			orNone(strings.Join(migrating, ",")),
			orNone(pool), orNone(lv.Spec.VolumeGroup), orNone(strings.Join(states, ",")),
			orNone(strings.Join(synced, ",")), orNone(lv.Status.PublishedNodeName)))
	}
	return t
}
