//go:build vmguest

package guest

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
)

// TestHAMoveStep runs one step of test/vm's online move of an HA replica
// (TestHAOnlineMoveBetweenGuests) with the CSI node service of this guest
// (driver.Node with DRBDReplicas, as hwameistor-node --drbd builds it):
//
//   - writer: stages the volume here (promoted, /dev/drbdN, ext4) and
//     writes files of 64 KiB until HWVM_MOVE_STOP exists, each fsync'd
//     with its folder before its name and sha256 are appended to the
//     ledger HWVM_MOVE_LEDGER (itself fsync'd): a line there is a write
//     the volume acknowledged. The writes go round 128 files (8 MiB, so a
//     small volume never fills), each rewrite with other content (its
//     write number in every 4 KiB block). A failed write, fsync or ledger
//     append is recorded in HWVM_MOVE_ERRORS and ends the writing. Then it
//     unstages (unmounted, demoted).
//   - verify: stages the volume here, reads back every file the ledger
//     lists and compares its sha256 with the last acknowledged write of
//     it, unstages. verify-cut does the same after the writer was cut off
//     mid-write, leaving out the file of the write that was in flight.
//
// HWVM_KUBECONFIG, HWVM_MOVE_NODE and HWVM_MOVE_VOLUME name the host's
// apiserver, this node and the volume.
func TestHAMoveStep(t *testing.T) {
	node, volume := os.Getenv("HWVM_MOVE_NODE"), os.Getenv("HWVM_MOVE_VOLUME")
	ledger, errFile, stopFile := os.Getenv("HWVM_MOVE_LEDGER"), os.Getenv("HWVM_MOVE_ERRORS"), os.Getenv("HWVM_MOVE_STOP")
	n := drbdNode(t, node)
	ctx := context.Background()
	const staging = "/tmp/hamove-staging"
	stage := func() {
		t.Helper()
		if _, err := n.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: volume, StagingTargetPath: staging, VolumeCapability: ext4Writer}); err != nil {
			t.Fatalf("staging %s on %s: %v", volume, node, err)
		}
	}
	unstage := func() {
		t.Helper()
		if _, err := n.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: volume, StagingTargetPath: staging}); err != nil {
			t.Fatalf("unstaging %s on %s: %v", volume, node, err)
		}
	}
	switch step := os.Getenv("HWVM_MOVE_STEP"); step {
	case "writer":
		stage()
		t.Logf("staged %s on %s; writing until %s exists", volume, node, stopFile)
		n, err := writeUntil(staging, ledger, stopFile)
		if err != nil {
			// The host fails on this file; the log says it too.
			_ = os.WriteFile(errFile, []byte(fmt.Sprintf("ERROR after %d acknowledged writes: %v\n", n, err)), 0o644)
			t.Errorf("after %d acknowledged writes: %v", n, err)
		}
		t.Logf("%d writes acknowledged", n)
		unstage()
	case "verify":
		stage()
		files, writes := verifyLastWrites(t, staging, ledger, false)
		t.Logf("read back %d files on %s, the last of %d acknowledged writes each", files, node, writes)
		unstage()
	case "verify-cut":
		// As verify, after the writer was cut off in the middle of a
		// write: the file of the write after its last acknowledged one
		// may hold anything (it was truncated and partly written, never
		// acknowledged).
		stage()
		files, writes := verifyLastWrites(t, staging, ledger, true)
		t.Logf("read back %d files on %s, the last of %d acknowledged writes each (the write in flight at the cut not checked)", files, node, writes)
		unstage()
	default:
		t.Fatalf("unknown HWVM_MOVE_STEP %q", step)
	}
}

// moveFiles is how many files the writer goes round.
const moveFiles = 128

// writeUntil writes files of 64 KiB into dir, round moveFiles names, until
// stop exists, and returns how many writes were acknowledged: each file is
// fsync'd with dir before its line goes to ledger, which is fsync'd in
// turn. Write i puts i in every 4 KiB block, so no two writes of a file
// hold the same bytes. It stops at the first error.
func writeUntil(dir, ledger, stop string) (int, error) {
	l, err := os.OpenFile(ledger, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer l.Close()
	d, err := os.Open(dir)
	if err != nil {
		return 0, err
	}
	defer d.Close()
	buf := make([]byte, 64<<10)
	for i := 0; ; i++ {
		if _, err := os.Stat(stop); err == nil {
			return i, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return i, err
		}
		name := fmt.Sprintf("m-%03d", i%moveFiles)
		for j := range buf {
			buf[j] = byte(i*31 + j*7 + j>>12)
		}
		for b := 0; b < len(buf); b += 4 << 10 {
			binary.LittleEndian.PutUint64(buf[b:], uint64(i))
		}
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return i, fmt.Errorf("creating %s (write %d): %w", name, i, err)
		}
		_, err = f.Write(buf)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = d.Sync()
		}
		if err != nil {
			return i, fmt.Errorf("writing %s (write %d): %w", name, i, err)
		}
		if _, err := fmt.Fprintf(l, "%s %x\n", name, sha256.Sum256(buf)); err != nil {
			return i, fmt.Errorf("ledger: %w", err)
		}
		if err := l.Sync(); err != nil {
			return i, fmt.Errorf("ledger: %w", err)
		}
		// Paced like an application, not flat out: DRBD throttles its
		// resync while the application writes, and the move must end
		// within the test's time.
		time.Sleep(100 * time.Millisecond)
	}
}

// verifyLastWrites checks each file the ledger names in dir against the
// last acknowledged write of it (its last line) and returns how many files
// and writes the ledger lists. cut leaves out the file of the write after
// the last acknowledged one (in flight when the writer was cut off).
func verifyLastWrites(t *testing.T, dir, ledger string, cut bool) (files, writes int) {
	t.Helper()
	data, err := os.ReadFile(ledger)
	if err != nil {
		t.Fatal(err)
	}
	last := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		name, sum, ok := strings.Cut(line, " ")
		if !ok || len(sum) != 64 {
			t.Fatalf("ledger line %q", line)
		}
		last[name] = sum
		writes++
	}
	if writes == 0 {
		t.Fatalf("ledger %s lists no acknowledged write", ledger)
	}
	for name, want := range last {
		if cut && name == fmt.Sprintf("m-%03d", writes%moveFiles) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("acknowledged file %s: %v", name, err)
			continue
		}
		if got := fmt.Sprintf("%x", sha256.Sum256(b)); got != want {
			t.Errorf("acknowledged file %s: sha256 %s, want %s (its last acknowledged write)", name, got, want)
		}
	}
	return len(last), writes
}
