package drbd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"hwameistor.io/local/csidriver/backend/command"
)

// Role is a node's role in a resource.
type Role string

// The roles.
const (
	RolePrimary   Role = "Primary"
	RoleSecondary Role = "Secondary"
	RoleUnknown   Role = "Unknown"
)

// DiskState is a replica's disk state, in DRBD's words.
type DiskState string

// The disk states that decide what a replica may do.
const (
	// DiskUpToDate: holds every acknowledged write; may serve the pod.
	DiskUpToDate DiskState = "UpToDate"
	// DiskInconsistent: a resync into it is incomplete; never serves.
	DiskInconsistent DiskState = "Inconsistent"
	// DiskOutdated: known to miss writes its peer took; never serves.
	DiskOutdated DiskState = "Outdated"
	// DiskConsistent: consistent, but whether it is current is not known
	// (no peer to ask).
	DiskConsistent DiskState = "Consistent"
	// DiskDiskless: no backing disk attached.
	DiskDiskless DiskState = "Diskless"
	// DiskUnknown: the peer's disk, while not connected.
	DiskUnknown DiskState = "DUnknown"
)

// Status is a resource's state on this node, read back from the kernel.
type Status struct {
	// Configured is false when the resource is not up on this node (then
	// nothing else is set).
	Configured bool
	Role       Role
	Disk       DiskState
	// Connection is the replication link's state: Connected, StandAlone,
	// Connecting (WFConnection on 8.4), SyncSource, SyncTarget...
	Connection string
	PeerRole   Role
	PeerDisk   DiskState
	// InSyncPercent is how much of the device matches the peer's (100
	// when in sync; the progress of a resync).
	InSyncPercent float64
	// OutOfSyncKiB is what a resync has left to copy.
	OutOfSyncKiB int64
	// Quorum is DRBD 9's (a Primary without it suspends I/O); 8.4 has
	// none and reports true.
	Quorum bool
	// Suspended: I/O on the device is frozen. On 8.4 with fencing, a
	// Primary that loses its peer freezes until the node agent has
	// recorded the peer outdated through the API (package fence) and
	// resumes it; on 9, a Primary without quorum.
	Suspended bool
}

// MayServe says whether this replica may serve the pod: its disk holds
// every acknowledged write, and (DRBD 9) it has quorum, so its writes are
// not ones a partition could lose.
func (s Status) MayServe() bool { return s.Configured && s.Disk == DiskUpToDate && s.Quorum }

// Status reads r's state: /proc/drbd on 8.4, `drbdsetup status --json` on 9.
func (m *Manager) Status(ctx context.Context, r *Resource) (Status, error) {
	switch m.Version {
	case 0:
		return Status{}, errNotDetected
	case V84:
		b, err := m.readFile(ProcDRBD)
		if err != nil {
			return Status{}, err
		}
		return parseProc84(string(b), r.Minor)
	}
	out, err := m.Runner.Run(ctx, "drbdsetup", "status", "--json", r.Name)
	var ce *command.Error
	if errors.As(err, &ce) && strings.Contains(ce.Stderr, "No such resource") {
		return Status{}, nil
	}
	if err != nil {
		return Status{}, err
	}
	return parseStatus9(out, r.Name)
}

var (
	// " 0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----":
	// after the protocol ('A'..'C', a space while StandAlone: no network
	// configuration), 'r' (running) or 's' (I/O suspended).
	proc84Minor = regexp.MustCompile(`^\s*(\d+): cs:(\S+)(?: ro:(\S+)/(\S+) ds:(\S+)/(\S+)(?: [A-C ] ([rs]))?)?`)
	// "[===>....] sync'ed: 25.0% (28064/32728)K": DRBD's percentage moves
	// in coarse steps (it reads 100.0 with up to 4 MiB left); the KiB
	// left and total give the real one.
	proc84Synced = regexp.MustCompile(`sync'ed:\s*([\d.]+)%(?:\s*\((\d+)/(\d+)\)K)?`)
	proc84OOS    = regexp.MustCompile(`\boos:(\d+)`)
)

// parseProc84 reads one minor's state from DRBD 8.4's /proc/drbd.
func parseProc84(proc string, minor int) (Status, error) {
	lines := strings.Split(proc, "\n")
	for i, line := range lines {
		m := proc84Minor.FindStringSubmatch(line)
		if m == nil || m[1] != strconv.Itoa(minor) {
			continue
		}
		if m[2] == "Unconfigured" || m[3] == "" {
			return Status{}, nil
		}
		st := Status{Configured: true, Connection: m[2], Role: Role(m[3]), PeerRole: Role(m[4]),
			Disk: DiskState(m[5]), PeerDisk: DiskState(m[6]), Quorum: true, InSyncPercent: 100, Suspended: m[7] == "s"}
		// The minor's detail lines follow until the next minor.
		resyncing := false
		for _, l := range lines[i+1:] {
			if proc84Minor.MatchString(l) {
				break
			}
			if o := proc84OOS.FindStringSubmatch(l); o != nil {
				st.OutOfSyncKiB, _ = strconv.ParseInt(o[1], 10, 64)
			}
			if s := proc84Synced.FindStringSubmatch(l); s != nil {
				resyncing = true
				st.InSyncPercent, _ = strconv.ParseFloat(s[1], 64)
				left, _ := strconv.ParseFloat(s[2], 64)
				if total, _ := strconv.ParseFloat(s[3], 64); total > 0 && left <= total {
					st.InSyncPercent = math.Round(1000*(total-left)/total) / 10
					if left > 0 && st.InSyncPercent >= 100 {
						st.InSyncPercent = 99.9
					}
				}
			}
		}
		if st.OutOfSyncKiB > 0 && st.InSyncPercent == 100 && !resyncing {
			// Disconnected with changes the peer lacks: no resync running.
			st.InSyncPercent = 0
		}
		return st, nil
	}
	if !strings.HasPrefix(proc, "version: ") {
		return Status{}, fmt.Errorf("%s: unexpected content", ProcDRBD)
	}
	return Status{}, nil
}

// status9 is the part of `drbdsetup status --json` this layer reads.
type status9 struct {
	Name      string `json:"name"`
	Role      Role   `json:"role"`
	Suspended bool   `json:"suspended"`
	Devices   []struct {
		DiskState DiskState `json:"disk-state"`
		Quorum    bool      `json:"quorum"`
	} `json:"devices"`
	Connections []struct {
		ConnectionState string `json:"connection-state"`
		PeerRole        Role   `json:"peer-role"`
		PeerDevices     []struct {
			ReplicationState string    `json:"replication-state"`
			PeerDiskState    DiskState `json:"peer-disk-state"`
			OutOfSync        int64     `json:"out-of-sync"`
			PercentInSync    float64   `json:"percent-in-sync"`
		} `json:"peer_devices"`
	} `json:"connections"`
}

// parseStatus9 reads a resource's state from DRBD 9's status JSON.
func parseStatus9(out []byte, name string) (Status, error) {
	var all []status9
	if err := json.Unmarshal(out, &all); err != nil {
		return Status{}, fmt.Errorf("drbdsetup status --json: %w", err)
	}
	for _, r := range all {
		if r.Name != name {
			continue
		}
		st := Status{Configured: true, Role: r.Role, Connection: "StandAlone", PeerRole: RoleUnknown, PeerDisk: DiskUnknown, InSyncPercent: 100, Suspended: r.Suspended}
		if len(r.Devices) > 0 {
			st.Disk, st.Quorum = r.Devices[0].DiskState, r.Devices[0].Quorum
		}
		if len(r.Connections) > 0 {
			c := r.Connections[0]
			st.Connection, st.PeerRole = c.ConnectionState, c.PeerRole
			if len(c.PeerDevices) > 0 {
				pd := c.PeerDevices[0]
				st.PeerDisk, st.OutOfSyncKiB, st.InSyncPercent = pd.PeerDiskState, pd.OutOfSync, pd.PercentInSync
				if c.ConnectionState == "Connected" && pd.ReplicationState != "Established" {
					st.Connection = pd.ReplicationState // SyncSource, SyncTarget...
				}
			}
		}
		return st, nil
	}
	return Status{}, nil
}
