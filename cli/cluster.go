package cli

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/internal/placement"
)

// parts selects what readCluster lists, so a command reads only the kinds
// it shows.
type parts uint8

const (
	partNodes parts = 1 << iota
	partStorageNodes
	partVolumes
	partReplicas
	partGroups
	partMigrations
	partAll = partNodes | partStorageNodes | partVolumes | partReplicas | partGroups | partMigrations
)

// cluster is one read of the objects a command works from. Reading each
// kind once, up front, keeps a command's rows consistent with each other and
// lets drain-check decide from whole lists, as the controllers do.
type cluster struct {
	// read is what readCluster listed: an empty list is not a missing one.
	read         parts
	Nodes        []corev1.Node
	StorageNodes []v1.LocalStorageNode
	Volumes      []v1.LocalVolume
	Replicas     []v1.LocalVolumeReplica
	Groups       []v1.LocalVolumeGroup
	Migrations   []v1.LocalVolumeMigrate

	// Lookups by name (index builds them): a drain-check of a node in a
	// cluster of thousands looks up nodes and volumes for every candidate
	// and replica.
	nodes        map[string]*corev1.Node
	storageNodes map[string]*v1.LocalStorageNode
	volumes      map[string]*v1.LocalVolume
	replicas     map[string][]*v1.LocalVolumeReplica // by volume
	migrations   map[string]*v1.LocalVolumeMigrate
}

// readCluster lists the parts asked for.
func readCluster(ctx context.Context, r client.Reader, what parts) (*cluster, error) {
	c := &cluster{read: what}
	lists := []struct {
		part parts
		list client.ObjectList
		keep func(client.ObjectList)
	}{
		{partNodes, &corev1.NodeList{}, func(l client.ObjectList) { c.Nodes = l.(*corev1.NodeList).Items }},
		{partStorageNodes, &v1.LocalStorageNodeList{}, func(l client.ObjectList) { c.StorageNodes = l.(*v1.LocalStorageNodeList).Items }},
		{partVolumes, &v1.LocalVolumeList{}, func(l client.ObjectList) { c.Volumes = l.(*v1.LocalVolumeList).Items }},
		{partReplicas, &v1.LocalVolumeReplicaList{}, func(l client.ObjectList) { c.Replicas = l.(*v1.LocalVolumeReplicaList).Items }},
		{partGroups, &v1.LocalVolumeGroupList{}, func(l client.ObjectList) { c.Groups = l.(*v1.LocalVolumeGroupList).Items }},
		{partMigrations, &v1.LocalVolumeMigrateList{}, func(l client.ObjectList) { c.Migrations = l.(*v1.LocalVolumeMigrateList).Items }},
	}
	for _, l := range lists {
		if what&l.part == 0 {
			continue
		}
		if err := r.List(ctx, l.list); err != nil {
			return nil, fmt.Errorf("listing %s: %w", kindOf(l.list), err)
		}
		l.keep(l.list)
	}
	c.index()
	return c, nil
}

// index orders every list by name, so rows come out in a stable order,
// and builds the lookups.
func (c *cluster) index() {
	slices.SortFunc(c.Nodes, func(a, b corev1.Node) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(c.StorageNodes, func(a, b v1.LocalStorageNode) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(c.Volumes, func(a, b v1.LocalVolume) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(c.Replicas, func(a, b v1.LocalVolumeReplica) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(c.Migrations, func(a, b v1.LocalVolumeMigrate) int { return cmp.Compare(a.Name, b.Name) })
	c.nodes = byName(c.Nodes, func(n *corev1.Node) string { return n.Name })
	c.storageNodes = byName(c.StorageNodes, func(n *v1.LocalStorageNode) string { return n.Name })
	c.volumes = byName(c.Volumes, func(v *v1.LocalVolume) string { return v.Name })
	c.migrations = byName(c.Migrations, func(m *v1.LocalVolumeMigrate) string { return m.Name })
	c.replicas = map[string][]*v1.LocalVolumeReplica{}
	for i := range c.Replicas {
		r := &c.Replicas[i]
		c.replicas[r.Spec.VolumeName] = append(c.replicas[r.Spec.VolumeName], r)
	}
}

func byName[T any](items []T, name func(*T) string) map[string]*T {
	m := make(map[string]*T, len(items))
	for i := range items {
		m[name(&items[i])] = &items[i]
	}
	return m
}

func (c *cluster) node(name string) *corev1.Node { return c.nodes[name] }

func (c *cluster) storageNode(name string) *v1.LocalStorageNode { return c.storageNodes[name] }

func (c *cluster) volume(name string) *v1.LocalVolume { return c.volumes[name] }

// replicasOf lists the LocalVolumeReplica objects of a volume.
func (c *cluster) replicasOf(volume string) []*v1.LocalVolumeReplica { return c.replicas[volume] }

// migrationsOf lists the unfinished migrations that move volume, by
// spec.volumeName or status.volumes (the controllers' test for overlap).
func (c *cluster) migrationsOf(volume string) []*v1.LocalVolumeMigrate {
	var out []*v1.LocalVolumeMigrate
	for i := range c.Migrations {
		m := &c.Migrations[i]
		if !m.Status.State.Finished() && m.Moves(volume) {
			out = append(out, m)
		}
	}
	return out
}

// capacity is the scheduler's capacity view of the cluster as read
// (placement.View): the migrate controller chooses targets from the same
// view, built the same way.
func (c *cluster) capacity() *placement.View {
	return placement.NewView(c.StorageNodes, c.Volumes, c.Groups, c.Replicas)
}

// checkNode fails with `node "x" not found` when there is no such Node.
func checkNode(ctx context.Context, r client.Reader, name string) error {
	if err := r.Get(ctx, client.ObjectKey{Name: name}, &corev1.Node{}); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("node %q not found", name)
		}
		return err
	}
	return nil
}

func (c *cluster) migration(name string) *v1.LocalVolumeMigrate { return c.migrations[name] }

// kindOf names a list's items for messages: "LocalVolumes".
func kindOf(list client.ObjectList) string {
	gvk, err := apiutil.GVKForObject(list, scheme)
	if err != nil {
		return fmt.Sprintf("%T", list)
	}
	return strings.TrimSuffix(gvk.Kind, "List") + "s"
}
