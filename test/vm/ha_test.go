package vm_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/volume"
)

// TestHAVolumeBetweenGuests: an HA volume (two replicas) with the real node
// agent in both guests started with --drbd and the volume controller on
// the host: the controller gives the volume its DRBD resource id, each
// agent allocates its logical volume, writes the resource file, creates
// the metadata and brings the resource up, and the first replica's agent
// marks the two new (zeroed) replicas identical; both replicas report
// Connected, UpToDate on both sides, Secondary, may serve. A file written
// through /dev/drbdN on one guest is read back on the other. Deleting the
// volume takes DRBD down and removes both logical volumes.
func TestHAVolumeBetweenGuests(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	ctrl.SetLogger(klog.Background())
	g1, g2 := cluster.Guests[0], cluster.Guests[1]
	c := api.Client
	createNodes(ctx, t)
	api.StartManager(t, func(ctx context.Context, mgr ctrl.Manager) error {
		return (&volume.Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorderFor("hwameistor-volume")}).SetupWithManager(ctx, mgr)
	})
	for _, g := range cluster.Guests[:2] {
		startAgent(ctx, t, g, "--drbd")
	}
	waitFor(ctx, t, "both nodes report their pool and storage IP", func() bool {
		for _, g := range cluster.Guests[:2] {
			lsn := &v1.LocalStorageNode{}
			if c.Get(ctx, client.ObjectKey{Name: g.Name}, lsn) != nil || lsn.Status.Pools[v1.PoolNameHDD].TotalCapacityBytes == 0 || lsn.Spec.StorageIP == "" {
				return false
			}
		}
		return true
	})

	const name = "pvc-ha"
	lv := &v1.LocalVolume{ObjectMeta: metav1.ObjectMeta{Name: name, Finalizers: []string{v1.VolumeFinalizer}}, Spec: v1.LocalVolumeSpec{
		PoolName: v1.PoolNameHDD, RequiredCapacityBytes: volumeSize, ReplicaNumber: 2, VolumeKind: v1.VolumeKindLVM,
		Accessibility: v1.AccessibilityTopology{Nodes: []string{g1.Name, g2.Name}},
		Config: &v1.VolumeConfig{Version: 1, VolumeName: name, RequiredCapacityBytes: volumeSize,
			Replicas: []v1.VolumeReplica{{ID: 1, Hostname: g1.Name, Primary: true}, {ID: 2, Hostname: g2.Name}}},
	}}
	must(t, c.Create(ctx, lv))
	reps := map[string]*v1.LocalVolumeReplica{}
	waitFor(ctx, t, "both replicas connected and UpToDate", func() bool {
		for _, g := range cluster.Guests[:2] {
			rep := &v1.LocalVolumeReplica{}
			if c.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(name, g.Name)}, rep) != nil || rep.Status.DRBD == nil {
				return false
			}
			d := rep.Status.DRBD
			if d.Connection != "Connected" || d.DiskState != "UpToDate" || d.PeerDiskState != "UpToDate" {
				return false
			}
			reps[g.Name] = rep
		}
		return true
	})
	must(t, c.Get(ctx, client.ObjectKeyFromObject(lv), lv))
	id := lv.Spec.Config.ResourceID
	if id == 0 {
		t.Fatal("the HA volume has no resource id")
	}
	for node, rep := range reps {
		d := rep.Status.DRBD
		if d.Device != fmt.Sprintf("/dev/drbd%d", v1.DRBDMinor(id)) || d.Port != v1.DRBDPort(id) || d.Role != "Secondary" || !d.MayServe || d.InSyncPercent != "100" {
			t.Errorf("replica on %s: DRBD status %+v, want /dev/drbd%d, port %d, Secondary, may serve, 100%% in sync", node, *d, id, v1.DRBDPort(id))
		}
	}

	// Data written through the replicated device on one guest is on the
	// other (promoted by hand here: the CSI node service does not stage
	// /dev/drbdN yet).
	dev, res := reps[g1.Name].Status.DRBD.Device, "-c /var/lib/hwameistor/drbd/"+name+".res"
	sum := strings.Fields(sh(ctx, t, g1, fmt.Sprintf(`drbdadm %[1]s primary %[2]s; mkfs.ext4 -q -F %[3]s; mkdir -p /mnt/ha; mount %[3]s /mnt/ha
		head -c 8388608 /dev/urandom > /mnt/ha/data; sync; sha256sum /mnt/ha/data; umount /mnt/ha; drbdadm %[1]s secondary %[2]s`, res, name, dev)))[0]
	got := strings.Fields(sh(ctx, t, g2, fmt.Sprintf(`drbdadm %[1]s primary %[2]s; mkdir -p /mnt/ha; mount -o ro %[3]s /mnt/ha
		sha256sum /mnt/ha/data; umount /mnt/ha; drbdadm %[1]s secondary %[2]s`, res, name, dev)))[0]
	if got != sum {
		t.Errorf("the file read on %s has sha256 %s; %s wrote %s", g2.Name, got, g1.Name, sum)
	}

	// Deleting the volume takes DRBD down and removes both LVs.
	must(t, c.Delete(ctx, lv))
	waitFor(ctx, t, "the volume gone", func() bool {
		return apierrors.IsNotFound(c.Get(ctx, client.ObjectKeyFromObject(lv), &v1.LocalVolume{}))
	})
	for _, g := range cluster.Guests[:2] {
		out := sh(ctx, t, g, fmt.Sprintf("cat /proc/drbd; lvm lvs --noheadings -o lv_name %s", vg))
		if strings.Contains(out, name) || strings.Contains(out, fmt.Sprintf(" %d: cs:", v1.DRBDMinor(id))) {
			t.Errorf("%s after the volume's deletion still has its LV or DRBD minor:\n%s", g.Name, out)
		}
	}
}
