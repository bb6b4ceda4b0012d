// Package drbd is the node agent's DRBD layer: the resource file it writes
// for an HA volume, the drbd-utils commands it runs (exact argv, through
// command.Runner), and the state it reads back as data. It supports the
// in-kernel DRBD 8.4 (Debian's kernel, the test guests) and DRBD 9 (what
// HwameiStor ships); every difference between them stays in this package.
package drbd

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
)

// Version is the DRBD kernel module's major line.
type Version int

const (
	// V84 is the in-kernel DRBD 8.4: two nodes, no quorum.
	V84 Version = 84
	// V9 is DRBD 9: node ids, quorum.
	V9 Version = 9
)

func (v Version) String() string {
	if v == V84 {
		return "8.4"
	}
	return "9"
}

// MaxMinor bounds minors (and resource ids): DRBD takes minors below 2^20.
const MaxMinor = 1<<20 - 1

// Peer is one replica of a resource: its node, the address DRBD listens
// on there, and the backing device (the replica's logical volume).
type Peer struct {
	// Node is the node's name, as `uname -n` prints it there: DRBD picks
	// its own section of the file by host name.
	Node string
	// Address is the node's IP (the LocalStorageNode's storageIP).
	Address string
	// NodeID is the peer's DRBD 9 node id (0 or 1); 8.4 has none.
	NodeID int
	// Disk is the backing block device, e.g. /dev/VG/LV.
	Disk string
}

// Resource is one HA volume's DRBD resource.
type Resource struct {
	// Name is the resource name (the LocalVolume's name).
	Name string
	// Minor is the device minor (/dev/drbd<Minor>), unique per node.
	Minor int
	// Port is the TCP port DRBD uses on every peer, unique per node.
	Port int
	// Peers are the two replicas.
	Peers []Peer
	// MetaDisk is "internal" (metadata at the end of the backing device)
	// or the path of a separate metadata device, which lets an existing
	// volume become HA with its data in place.
	MetaDisk string
}

// Device is the block device the pod's volume is staged from.
func (r *Resource) Device() string { return fmt.Sprintf("/dev/drbd%d", r.Minor) }

// maxNodeID is DRBD 9's highest node id.
const maxNodeID = 31

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// Validate says what is wrong with r before anything is written or run.
func (r *Resource) Validate() error {
	var errs []error
	if !nameRE.MatchString(r.Name) {
		errs = append(errs, fmt.Errorf("resource name %q: letters, digits, '.', '_' and '-', at most 63", r.Name))
	}
	if r.Minor < 0 || r.Minor > MaxMinor {
		errs = append(errs, fmt.Errorf("minor %d: want 0..%d", r.Minor, MaxMinor))
	}
	if r.Port < 1 || r.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d: want 1..65535", r.Port))
	}
	if len(r.Peers) != 2 {
		errs = append(errs, fmt.Errorf("%d peers: a resource has exactly two", len(r.Peers)))
	}
	seen := map[string]bool{}
	for i, p := range r.Peers {
		if p.Node == "" || seen[p.Node] {
			errs = append(errs, fmt.Errorf("peer %d: node %q is empty or repeated", i, p.Node))
		}
		seen[p.Node] = true
		if ip := net.ParseIP(p.Address); ip == nil {
			errs = append(errs, fmt.Errorf("peer %s: address %q is not an IP", p.Node, p.Address))
		}
		if p.NodeID < 0 || p.NodeID > maxNodeID || (i == 1 && p.NodeID == r.Peers[0].NodeID) {
			errs = append(errs, fmt.Errorf("peer %s: node id %d is out of 0..%d or repeated", p.Node, p.NodeID, maxNodeID))
		}
		if p.Disk == "" {
			errs = append(errs, fmt.Errorf("peer %s: no backing disk", p.Node))
		}
	}
	if r.MetaDisk == "" {
		errs = append(errs, errors.New("meta-disk: \"internal\" or a device path"))
	}
	return errors.Join(errs...)
}

// Config is the resource file for version v. Both versions replicate
// synchronously (protocol C: a write is acknowledged once both disks have
// it) and resolve a split brain only where no data is lost (a side without
// changes, or a Secondary's, is discarded; two Primaries disconnect and
// wait for a person). DRBD 9 adds quorum: a Primary that loses its peer
// suspends I/O instead of accepting writes the other side will not have.
// DRBD 8.4 has no quorum; its fencing policy resource-and-stonith freezes
// a Primary's I/O when it loses its peer and refuses to promote a
// disconnected Secondary without --force, until the node agent has settled
// through the API which side goes on (package fence): the kernel's own
// fence-peer helper finds no handler for these files, and a helper that
// fails leaves the I/O frozen.
func Config(r *Resource, v Version) ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Written by hwameistor-node for volume %s; do not edit.\n", r.Name)
	fmt.Fprintf(&b, "resource %s {\n", r.Name)
	if v == V9 {
		b.WriteString("  options {\n    quorum majority;\n    on-no-quorum suspend-io;\n  }\n")
	}
	b.WriteString("  net {\n    protocol C;\n")
	b.WriteString("    after-sb-0pri discard-zero-changes;\n    after-sb-1pri discard-secondary;\n    after-sb-2pri disconnect;\n")
	b.WriteString("  }\n")
	b.WriteString("  disk {\n    on-io-error detach;\n")
	if v == V84 {
		b.WriteString("    fencing resource-and-stonith;\n")
	}
	b.WriteString("  }\n")
	for _, p := range r.Peers {
		fmt.Fprintf(&b, "  on %s {\n", p.Node)
		if v == V9 {
			fmt.Fprintf(&b, "    node-id %d;\n", p.NodeID)
		}
		fmt.Fprintf(&b, "    device %s minor %d;\n", r.Device(), r.Minor)
		fmt.Fprintf(&b, "    disk %s;\n", p.Disk)
		fmt.Fprintf(&b, "    address %s;\n", address(p.Address, r.Port))
		fmt.Fprintf(&b, "    meta-disk %s;\n", r.MetaDisk)
		b.WriteString("  }\n")
	}
	if v == V9 {
		fmt.Fprintf(&b, "  connection-mesh {\n    hosts %s %s;\n  }\n", r.Peers[0].Node, r.Peers[1].Node)
	}
	b.WriteString("}\n")
	return b.Bytes(), nil
}

// address is DRBD's address statement: "ipv4 10.0.0.1:7000" or
// "ipv6 [fd00::1]:7000".
func address(ip string, port int) string {
	if parsed := net.ParseIP(ip); parsed != nil && parsed.To4() == nil {
		return "ipv6 " + net.JoinHostPort(ip, strconv.Itoa(port))
	}
	return "ipv4 " + net.JoinHostPort(ip, strconv.Itoa(port))
}
