//go:build vmguest

package guest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestHAStageStep runs one step of test/vm's HA volume scenario with the
// CSI node service of this guest (driver.Node with DRBDReplicas, as
// hwameistor-node --drbd builds it) against the DRBD resource the real
// node agent brought up: HWVM_HA_STEP is stage-write (stage: promote and
// mount /dev/drbdN, write a file, record its sha256 in HWVM_HA_SUM, stay
// staged), expand (while staged: NodeExpandVolume grows the file system
// on /dev/drbdN, which DRBD grew, to nearly HWVM_HA_BYTES; the file
// reads back), stage-refused (staging fails while the other guest has it
// staged), unstage (unmount and demote), or stage-read (stage here, read
// the file back, unstage).
func TestHAStageStep(t *testing.T) {
	node, volume, sumFile := os.Getenv("HWVM_HA_NODE"), os.Getenv("HWVM_HA_VOLUME"), os.Getenv("HWVM_HA_SUM")
	n := drbdNode(t, node)
	ctx := context.Background()
	staging := "/tmp/ha-staging"
	stage := func() error {
		_, err := n.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: volume, StagingTargetPath: staging, VolumeCapability: ext4Writer})
		return err
	}
	unstage := func() {
		if _, err := n.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: volume, StagingTargetPath: staging}); err != nil {
			t.Fatal(err)
		}
	}
	data := pattern(4 << 20)
	switch step := os.Getenv("HWVM_HA_STEP"); step {
	case "stage-write":
		must(t, stage())
		f, err := os.Create(filepath.Join(staging, "data"))
		must(t, err)
		_, err = f.Write(data)
		must(t, err)
		must(t, f.Sync())
		must(t, f.Close())
		must(t, os.WriteFile(sumFile, []byte(fmt.Sprintf("%x", sha256.Sum256(data))), 0o644))
		t.Logf("staged on %s and wrote 4 MiB", node)
	case "expand":
		want, err := strconv.ParseInt(os.Getenv("HWVM_HA_BYTES"), 10, 64)
		must(t, err)
		before := statfsBytes(t, staging)
		resp, err := n.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: volume, VolumePath: staging, StagingTargetPath: staging,
			VolumeCapability: ext4Writer, CapacityRange: &csi.CapacityRange{RequiredBytes: want}})
		must(t, err)
		after := statfsBytes(t, staging)
		// DRBD keeps its internal metadata at the device's end (some
		// hundred KiB for this size): the device is a little smaller.
		if resp.GetCapacityBytes() < want-want/50 || resp.GetCapacityBytes() > want {
			t.Errorf("NodeExpandVolume reports %d bytes, want the grown DRBD device, about %d", resp.GetCapacityBytes(), want)
		}
		if after < before+want/4 {
			t.Errorf("the file system has %d bytes after the growth (%d before), want about %d more", after, before, want/2)
		}
		b, err := os.ReadFile(filepath.Join(staging, "data"))
		must(t, err)
		if fmt.Sprintf("%x", sha256.Sum256(b)) != fmt.Sprintf("%x", sha256.Sum256(data)) {
			t.Error("the file changed while the volume grew")
		}
		t.Logf("grown on %s: file system %d → %d bytes, device %d bytes", node, before, after, resp.GetCapacityBytes())
	case "stage-refused":
		err := stage()
		if status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("staging while the other node has the volume staged: %v, want FailedPrecondition", err)
		}
		t.Logf("refused: %v", err)
	case "unstage":
		unstage()
	case "stage-read":
		must(t, stage())
		b, err := os.ReadFile(filepath.Join(staging, "data"))
		must(t, err)
		want, err := os.ReadFile(sumFile)
		must(t, err)
		if got := fmt.Sprintf("%x", sha256.Sum256(b)); got != string(want) {
			t.Errorf("the file read on %s has sha256 %s, the other node wrote %s", node, got, want)
		}
		unstage()
	default:
		t.Fatalf("unknown HWVM_HA_STEP %q", step)
	}
}
