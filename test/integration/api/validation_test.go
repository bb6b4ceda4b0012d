package api_test

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// TestRejectBadObjects creates objects the schema must refuse and checks the
// error names the offending field, so a user reading kubectl's output knows
// what to fix.
func TestRejectBadObjects(t *testing.T) {
	cases := []struct {
		name     string
		obj      client.Object
		wantMsgs []string
	}{
		{"negative size", func() client.Object {
			v := validVolume("bad-size")
			v.Spec.RequiredCapacityBytes = -1
			return v
		}(), []string{"spec.requiredCapacityBytes"}},
		{"zero size replica", func() client.Object {
			r := validReplica("bad-size-lvr")
			r.Spec.RequiredCapacityBytes = 0
			return r
		}(), []string{"spec.requiredCapacityBytes"}},
		{"replicaNumber 3", func() client.Object {
			v := validVolume("bad-replicas")
			v.Spec.ReplicaNumber = 3
			return v
		}(), []string{"spec.replicaNumber", "2"}},
		{"unknown pool", func() client.Object {
			v := validVolume("bad-pool")
			v.Spec.PoolName = "LocalStorage_PoolTAPE"
			return v
		}(), []string{"spec.poolName", "LocalStorage_PoolHDD"}},
		{"unknown pool class in node status is refused at create", func() client.Object {
			n := validNode("bad-class")
			n.Status.Pools = map[string]v1.LocalPool{v1.PoolNameHDD: {Name: v1.PoolNameHDD, Class: "TAPE", Type: v1.PoolTypeRegular}}
			return n
		}(), nil}, // status is dropped on create; see TestRejectBadStatus
		{"migrate with HwameiStor's old field", func() client.Object {
			m := validMigrate("bad-alias")
			m.Spec.SourceNodesNames = []string{"node-a"}
			return m
		}(), []string{"spec.sourceNode"}},
		{"migrate target equals source", func() client.Object {
			m := validMigrate("bad-target")
			m.Spec.TargetNodesSuggested = []string{"node-a"}
			return m
		}(), []string{"targetNodesSuggested"}},
		{"convert to 1 replica", &v1.LocalVolumeConvert{
			ObjectMeta: metaName("bad-convert"), Spec: v1.LocalVolumeConvertSpec{VolumeName: "pvc-1", ReplicaNumber: 1},
		}, []string{"spec.replicaNumber"}},
		{"group without volumes", &v1.LocalVolumeGroup{
			ObjectMeta: metaName("bad-group"), Spec: v1.LocalVolumeGroupSpec{Namespace: "default"},
		}, []string{"spec.volumes"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := env.Client.Create(context.Background(), tc.obj)
			if tc.wantMsgs == nil {
				if err != nil {
					t.Fatalf("create: %v", err)
				}
				return
			}
			expectInvalid(t, err, tc.wantMsgs...)
		})
	}
}

// TestRejectBadStatus checks the status schema: a node agent reporting an
// unknown pool class or key, or used > total, is refused.
func TestRejectBadStatus(t *testing.T) {
	ctx := context.Background()
	n := validNode("status-check")
	if err := env.Client.Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	good := v1.LocalPool{Name: v1.PoolNameHDD, Class: v1.PoolClassHDD, Type: v1.PoolTypeRegular, TotalCapacityBytes: 10, UsedCapacityBytes: 4, FreeCapacityBytes: 6}
	cases := []struct {
		name  string
		pools map[string]v1.LocalPool
		want  []string
	}{
		{"unknown class", map[string]v1.LocalPool{v1.PoolNameHDD: func() v1.LocalPool { p := good; p.Class = "TAPE"; return p }()}, []string{"class", "HDD"}},
		{"unknown key", map[string]v1.LocalPool{"LocalStorage_PoolTAPE": good}, []string{"status.pools"}},
		{"used above total", map[string]v1.LocalPool{v1.PoolNameHDD: func() v1.LocalPool { p := good; p.UsedCapacityBytes = 11; return p }()}, []string{"usedCapacityBytes"}},
		{"negative free", map[string]v1.LocalPool{v1.PoolNameHDD: func() v1.LocalPool { p := good; p.FreeCapacityBytes = -1; return p }()}, []string{"freeCapacityBytes"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cur := &v1.LocalStorageNode{}
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(n), cur); err != nil {
				t.Fatal(err)
			}
			cur.Status.Pools = tc.pools
			expectInvalid(t, env.Client.Status().Update(ctx, cur), tc.want...)
		})
	}
}

// TestImmutableFields changes fields whose change would lose or strand data.
func TestImmutableFields(t *testing.T) {
	ctx := context.Background()
	lv := validVolume("immutable")
	if err := env.Client.Create(ctx, lv); err != nil {
		t.Fatal(err)
	}
	lvr := validReplica("immutable-lvr")
	if err := env.Client.Create(ctx, lvr); err != nil {
		t.Fatal(err)
	}
	m := validMigrate("immutable-m")
	if err := env.Client.Create(ctx, m); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		obj    client.Object
		mutate func(client.Object)
		want   []string
	}{
		{"volume pool", lv, func(o client.Object) { o.(*v1.LocalVolume).Spec.PoolName = v1.PoolNameSSD }, []string{"spec.poolName is immutable"}},
		{"volume shrink", lv, func(o client.Object) { o.(*v1.LocalVolume).Spec.RequiredCapacityBytes = gi }, []string{"spec.requiredCapacityBytes cannot shrink"}},
		{"volume claim", lv, func(o client.Object) { o.(*v1.LocalVolume).Spec.PersistentVolumeClaimName = "other" }, []string{"spec.pvcName is immutable"}},
		{"replica node", lvr, func(o client.Object) { o.(*v1.LocalVolumeReplica).Spec.NodeName = "node-b" }, []string{"spec.nodeName is immutable"}},
		{"migrate source", m, func(o client.Object) { o.(*v1.LocalVolumeMigrate).Spec.SourceNode = "node-c" }, []string{"spec.sourceNode is immutable"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cur := tc.obj.DeepCopyObject().(client.Object)
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(tc.obj), cur); err != nil {
				t.Fatal(err)
			}
			tc.mutate(cur)
			expectInvalid(t, env.Client.Update(ctx, cur), tc.want...)
		})
	}

	// Growing is allowed: expansion.
	cur := &v1.LocalVolume{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(lv), cur); err != nil {
		t.Fatal(err)
	}
	cur.Spec.RequiredCapacityBytes = 3 * gi
	if err := env.Client.Update(ctx, cur); err != nil {
		t.Errorf("growing a volume was refused: %v", err)
	}
}

func expectInvalid(t *testing.T, err error, wantMsgs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted, want rejection naming %v", wantMsgs)
	}
	if !apierrors.IsInvalid(err) {
		t.Fatalf("want an Invalid error, got %v", err)
	}
	for _, w := range wantMsgs {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err.Error(), w)
		}
	}
}
