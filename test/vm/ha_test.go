package vm_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/internal/vm"
)

// TestHAVolumeBetweenGuests: an HA volume (two replicas) with the real node
// agent in both guests started with --drbd and the volume controller on
// the host: the controller gives the volume its DRBD resource id, each
// agent allocates its logical volume, writes the resource file, creates
// the metadata and brings the resource up, and the first replica's agent
// marks the two new (zeroed) replicas identical; both replicas report
// Connected, UpToDate on both sides, Secondary, may serve. The CSI node
// service of one guest stages /dev/drbdN (promoting its replica, reported
// Primary) and writes a file; staging on the other guest meanwhile is
// refused; once unstaged (demoted) there, the other guest stages it and
// reads the file back. Grown while staged, DRBD's device grows over both
// logical volumes and the file system with it. Deleting the volume takes
// DRBD down and removes both logical volumes.
func TestHAVolumeBetweenGuests(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	g1, g2 := cluster.Guests[0], cluster.Guests[1]
	c := api.Client
	startDRBDPair(ctx, t)
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
	lv := createHAVolume(ctx, t, name, volumeSize, g1, g2)
	id := lv.Spec.Config.ResourceID
	for _, g := range cluster.Guests[:2] {
		if d := replicaDRBD(ctx, name, g); d.Device != fmt.Sprintf("/dev/drbd%d", v1.DRBDMinor(id)) || d.Port != v1.DRBDPort(id) || d.Role != "Secondary" || !d.MayServe || d.InSyncPercent != "100" {
			t.Errorf("replica on %s: DRBD status %+v, want /dev/drbd%d, port %d, Secondary, may serve, 100%% in sync", g.Name, *d, id, v1.DRBDPort(id))
		}
	}

	// The CSI node service stages the replicated device: promoted on
	// the guest that stages it, refused on the other meanwhile (one
	// Primary), demoted on unstage; the other guest then stages it and
	// reads what the first wrote.
	const grown = 2 * volumeSize
	haStep := func(g *vm.Guest, step string) {
		t.Helper()
		runGuestTests(t, g, "^TestHAStageStep$", "HWVM_KUBECONFIG="+guestPath("kubeconfig"), "HWVM_HA_STEP="+step,
			"HWVM_HA_NODE="+g.Name, "HWVM_HA_VOLUME="+name, "HWVM_HA_SUM="+guestPath("ha-sum.txt"), fmt.Sprintf("HWVM_HA_BYTES=%d", grown))
	}
	haStep(g1, "stage-write")
	waitFor(ctx, t, g1.Name+"'s replica reported Primary", func() bool {
		rep := &v1.LocalVolumeReplica{}
		return c.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(name, g1.Name)}, rep) == nil && rep.Status.DRBD != nil && rep.Status.DRBD.Role == "Primary"
	})

	// Growing it while in use: both agents extend their logical volumes,
	// one grows the DRBD device over them (drbdadm resize, status.drbd.
	// sizedBytes), the volume reports the new size only then, and the CSI
	// node service grows the mounted file system on /dev/drbdN.
	must(t, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(lv), lv); err != nil {
			return err
		}
		lv.Spec.RequiredCapacityBytes, lv.Spec.Config.RequiredCapacityBytes = grown, grown
		return c.Update(ctx, lv)
	}))
	waitFor(ctx, t, "both DRBD replicas grown and the volume reporting it", func() bool {
		for _, g := range cluster.Guests[:2] {
			rep := &v1.LocalVolumeReplica{}
			if c.Get(ctx, client.ObjectKey{Name: v1.ReplicaName(name, g.Name)}, rep) != nil || rep.Status.DRBD == nil ||
				rep.Status.AllocatedCapacityBytes < grown || rep.Status.DRBD.SizedBytes < grown {
				return false
			}
		}
		return c.Get(ctx, client.ObjectKeyFromObject(lv), lv) == nil && lv.Status.AllocatedCapacityBytes >= grown
	})
	haStep(g1, "expand")

	haStep(g2, "stage-refused")
	haStep(g1, "unstage")
	haStep(g2, "stage-read")

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
