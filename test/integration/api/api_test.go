// Package api_test checks the hwameistor.io CRDs on a real kube-apiserver:
// every kind can be created and its status updated through the subresource,
// printer columns and short names are served, and bad objects are rejected
// with a message that names the field.
package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

const gi = int64(1) << 30

func validNode(name string) *v1.LocalStorageNode {
	return &v1.LocalStorageNode{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1.LocalStorageNodeSpec{Hostname: name, StorageIP: "10.0.0.1", Topo: v1.Topology{Zone: "a"}},
	}
}

func validVolume(name string) *v1.LocalVolume {
	return &v1.LocalVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.LocalVolumeSpec{
			PoolName: v1.PoolNameHDD, RequiredCapacityBytes: 2 * gi, ReplicaNumber: 1,
			PersistentVolumeClaimNamespace: "default", PersistentVolumeClaimName: "data-" + name,
			Accessibility: v1.AccessibilityTopology{Nodes: []string{"node-a"}},
			Config:        &v1.VolumeConfig{Replicas: []v1.VolumeReplica{{ID: 1, Hostname: "node-a", Primary: true}}},
		},
	}
}

func validReplica(name string) *v1.LocalVolumeReplica {
	return &v1.LocalVolumeReplica{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1.LocalVolumeReplicaSpec{VolumeName: "pvc-1", NodeName: "node-a", PoolName: v1.PoolNameHDD, RequiredCapacityBytes: gi},
	}
}

func validMigrate(name string) *v1.LocalVolumeMigrate {
	return &v1.LocalVolumeMigrate{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1.LocalVolumeMigrateSpec{SourceNode: "node-a", VolumeName: "pvc-1"},
	}
}

// TestCreateEveryKindAndUpdateStatus creates one object of each kind, then
// writes its status through the status subresource and checks that a status
// write cannot change the spec.
func TestCreateEveryKindAndUpdateStatus(t *testing.T) {
	ctx := context.Background()
	objs := []struct {
		obj       client.Object
		setStatus func(client.Object)
	}{
		{validNode("lsn-status"), func(o client.Object) {
			n := o.(*v1.LocalStorageNode)
			n.Status.State = v1.StateReady
			n.Status.Pools = map[string]v1.LocalPool{v1.PoolNameHDD: {
				Name: v1.PoolNameHDD, Class: v1.PoolClassHDD, Type: v1.PoolTypeRegular,
				TotalCapacityBytes: 10 * gi, UsedCapacityBytes: 2 * gi, FreeCapacityBytes: 8 * gi,
				TotalVolumeCount: 1000, UsedVolumeCount: 1, FreeVolumeCount: 999, Volumes: []string{"pvc-1"},
				Disks: []v1.LocalDevice{{DevPath: "/dev/sdb", CapacityBytes: 10 * gi, Type: "HDD", State: "InUse"}},
			}}
			n.Spec.StorageIP = "10.9.9.9" // must be ignored by the status subresource
		}},
		{validVolume("lv-status"), func(o client.Object) {
			v := o.(*v1.LocalVolume)
			v.Status.State = v1.StateReady
			v.Status.PublishedNodeName = "node-a"
			v.Spec.ReplicaNumber = 2 // must be ignored
		}},
		{validReplica("lvr-status"), func(o client.Object) {
			r := o.(*v1.LocalVolumeReplica)
			r.Status.State = v1.StateReady
			r.Status.Synced = true
			r.Status.DevicePath = "/dev/LocalStorage_PoolHDD/pvc-1"
		}},
		{&v1.LocalVolumeGroup{
			ObjectMeta: metav1.ObjectMeta{Name: "lvg-status"},
			Spec: v1.LocalVolumeGroupSpec{Namespace: "default", Volumes: []v1.VolumeInfo{{PersistentVolumeClaimName: "data", LocalVolumeName: "pvc-1"}},
				Accessibility: v1.AccessibilityTopology{Nodes: []string{"node-a"}}},
		}, func(o client.Object) { o.(*v1.LocalVolumeGroup).Status.State = v1.StateReady }},
		{validMigrate("lvm-status"), func(o client.Object) {
			m := o.(*v1.LocalVolumeMigrate)
			m.Status.State = v1.OperationStateSyncReplica
			m.Status.TargetNode = "node-b"
			m.Status.Progress = "40%"
		}},
		{&v1.LocalVolumeConvert{
			ObjectMeta: metav1.ObjectMeta{Name: "lvc-status"},
			Spec:       v1.LocalVolumeConvertSpec{VolumeName: "pvc-1", ReplicaNumber: 2},
		}, func(o client.Object) { o.(*v1.LocalVolumeConvert).Status.State = v1.OperationStateInProgress }},
		{&v1.LocalVolumeExpand{
			ObjectMeta: metav1.ObjectMeta{Name: "lve-status"},
			Spec:       v1.LocalVolumeExpandSpec{VolumeName: "pvc-1", RequiredCapacityBytes: 4 * gi},
		}, func(o client.Object) { o.(*v1.LocalVolumeExpand).Status.State = v1.OperationStateCompleted }},
	}
	for _, tc := range objs {
		name := fmt.Sprintf("%T", tc.obj)
		t.Run(name, func(t *testing.T) {
			if err := env.Client.Create(ctx, tc.obj); err != nil {
				t.Fatalf("create: %v", err)
			}
			before := tc.obj.DeepCopyObject().(client.Object)
			tc.setStatus(tc.obj)
			if err := env.Client.Status().Update(ctx, tc.obj); err != nil {
				t.Fatalf("status update: %v", err)
			}
			got := tc.obj.DeepCopyObject().(client.Object)
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(tc.obj), got); err != nil {
				t.Fatalf("get: %v", err)
			}
			if got.GetGeneration() != before.GetGeneration() {
				t.Errorf("a status update changed the spec: generation %d -> %d", before.GetGeneration(), got.GetGeneration())
			}
			wantState := fmt.Sprint(statusState(tc.obj))
			if s := fmt.Sprint(statusState(got)); s != wantState || s == "" {
				t.Errorf("status.state = %q, want %q", s, wantState)
			}
		})
	}
	// The status subresource must have ignored the spec changes above.
	n := &v1.LocalStorageNode{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: "lsn-status"}, n); err != nil {
		t.Fatal(err)
	}
	if n.Spec.StorageIP != "10.0.0.1" {
		t.Errorf("status update wrote spec.storageIP: %q", n.Spec.StorageIP)
	}
	if p := n.Status.Pools[v1.PoolNameHDD]; p.FreeCapacityBytes != 8*gi || len(p.Disks) != 1 {
		t.Errorf("pool status not stored: %+v", p)
	}
}

func statusState(o client.Object) v1.State {
	switch x := o.(type) {
	case *v1.LocalStorageNode:
		return x.Status.State
	case *v1.LocalVolume:
		return x.Status.State
	case *v1.LocalVolumeReplica:
		return x.Status.State
	case *v1.LocalVolumeGroup:
		return x.Status.State
	case *v1.LocalVolumeMigrate:
		return x.Status.State
	case *v1.LocalVolumeConvert:
		return x.Status.State
	case *v1.LocalVolumeExpand:
		return x.Status.State
	}
	return ""
}

// TestShortNames checks that discovery serves HwameiStor's short names, so
// `kubectl get lsn,lv,lvr,lvg,lvmigrate,lvconvert,lvexpand` works.
func TestShortNames(t *testing.T) {
	dc, err := discovery.NewDiscoveryClientForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	list, err := dc.ServerResourcesForGroupVersion(v1.GroupVersion.String())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, r := range list.APIResources {
		if strings.Contains(r.Name, "/") {
			continue
		}
		if r.Namespaced {
			t.Errorf("%s is namespaced, want cluster-scoped", r.Name)
		}
		got[r.Name] = r.ShortNames
	}
	want := map[string][]string{
		"localstoragenodes":   {"lsn"},
		"localvolumes":        {"lv"},
		"localvolumereplicas": {"lvr", "lvrr"},
		"localvolumegroups":   {"lvgr", "lvg"},
		"localvolumemigrates": {"lvmigrate", "lvmmigrate"},
		"localvolumeconverts": {"lvconvert"},
		"localvolumeexpands":  {"lvexpand"},
	}
	for res, names := range want {
		for _, n := range names {
			if !contains(got[res], n) {
				t.Errorf("%s: short names %v lack %q", res, got[res], n)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestPrinterColumns asks the apiserver for tables, as kubectl get does, and
// checks the columns and one row's cells an operator reads at a glance.
func TestPrinterColumns(t *testing.T) {
	ctx := context.Background()
	lv := validVolume("lv-table")
	if err := env.Client.Create(ctx, lv); err != nil {
		t.Fatal(err)
	}
	lv.Status.State = v1.StateReady
	if err := env.Client.Status().Update(ctx, lv); err != nil {
		t.Fatal(err)
	}
	m := validMigrate("lvm-table")
	if err := env.Client.Create(ctx, m); err != nil {
		t.Fatal(err)
	}
	m.Status = v1.LocalVolumeMigrateStatus{State: v1.OperationStateSyncReplica, TargetNode: "node-b", Progress: "40%"}
	if err := env.Client.Status().Update(ctx, m); err != nil {
		t.Fatal(err)
	}
	n := validNode("lsn-table")
	if err := env.Client.Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	n.Status = v1.LocalStorageNodeStatus{State: v1.StateReady, PoolClasses: "HDD", FreeCapacityBytes: 8 * gi, TotalCapacityBytes: 10 * gi}
	if err := env.Client.Status().Update(ctx, n); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		resource, name string
		want           map[string]string // column -> cell
	}{
		{"localvolumes", "lv-table", map[string]string{
			"Pool": v1.PoolNameHDD, "Kind": "LVM", "Replicas": "1", "Capacity": fmt.Sprint(2 * gi),
			"State": "Ready", "PVC": "data-lv-table", "Accessibility": `["node-a"]`, "Published": "",
		}},
		{"localvolumemigrates", "lvm-table", map[string]string{
			"Volume": "pvc-1", "Source": "node-a", "Target": "node-b", "State": "SyncReplica", "Progress": "40%",
		}},
		{"localstoragenodes", "lsn-table", map[string]string{
			"Node": "lsn-table", "Zone": "a", "Pools": "HDD", "Free": fmt.Sprint(8 * gi), "Total": fmt.Sprint(10 * gi), "State": "Ready",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.resource, func(t *testing.T) {
			table := getTable(t, testenv.GVR(tc.resource), tc.name)
			cols := map[string]int{}
			for i, c := range table.ColumnDefinitions {
				cols[c.Name] = i
			}
			if len(table.Rows) != 1 {
				t.Fatalf("want one row, got %d", len(table.Rows))
			}
			for col, want := range tc.want {
				i, ok := cols[col]
				if !ok {
					t.Errorf("no column %q in %v", col, table.ColumnDefinitions)
					continue
				}
				cell := table.Rows[0].Cells[i]
				if cell == nil {
					cell = ""
				}
				if got := fmt.Sprint(cell); got != want {
					t.Errorf("column %s = %q, want %q", col, got, want)
				}
			}
			if _, ok := cols["Age"]; !ok {
				t.Errorf("no Age column")
			}
		})
	}
}

func getTable(t *testing.T, gvr schema.GroupVersionResource, name string) *metav1.Table {
	t.Helper()
	cfg := rest.CopyConfig(env.Config)
	cfg.GroupVersion = &schema.GroupVersion{Group: gvr.Group, Version: gvr.Version}
	cfg.APIPath = "/apis"
	cfg.NegotiatedSerializer = serializer.NewCodecFactory(env.Scheme).WithoutConversion()
	rc, err := rest.RESTClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := rc.Get().Resource(gvr.Resource).Name(name).
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").
		DoRaw(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	table := &metav1.Table{}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // keep byte counts exact
	if err := dec.Decode(table); err != nil {
		t.Fatal(err)
	}
	return table
}

func metaName(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name} }
