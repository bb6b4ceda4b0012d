package emulated

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// host is one "on NODE { ... }" section of a resource file.
type host struct {
	Node     string
	Minor    int
	Disk     string
	Address  string
	Port     int
	MetaDisk string
}

// resFile is what the emulator reads from a resource file that
// drbd.Config wrote: the file is the truth about a resource, as for the
// real drbdadm, so the emulator parses it rather than being told.
type resFile struct {
	Name  string
	Hosts []host
}

// on returns node's section and the other section (the peer), or an error
// in drbdadm's words when the file does not name node.
func (r *resFile) on(node string) (self, peer host, err error) {
	i := -1
	for j, h := range r.Hosts {
		if h.Node == node {
			i = j
		}
	}
	if i < 0 || len(r.Hosts) != 2 {
		return host{}, host{}, fmt.Errorf("'%s' not defined in your config (for this host)", r.Name)
	}
	return r.Hosts[i], r.Hosts[1-i], nil
}

// parseResFile reads the subset of DRBD's configuration syntax that
// drbd.Config writes for 8.4: one resource, its sections, and in each "on"
// section device/minor, disk, address and meta-disk statements. Blocks it
// does not need (net, disk, options) are skipped.
func parseResFile(b []byte) (*resFile, error) {
	var (
		r     resFile
		cur   *host
		depth int
	)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		f := strings.Fields(strings.TrimSuffix(line, ";"))
		switch {
		case strings.HasSuffix(line, "{"):
			depth++
			switch {
			case depth == 1 && len(f) == 3 && f[0] == "resource":
				r.Name = f[1]
			case depth == 1:
				return nil, fmt.Errorf("line %d: %q: want a resource section", n, line)
			case depth == 2 && len(f) == 3 && f[0] == "on":
				r.Hosts = append(r.Hosts, host{Node: f[1], Minor: -1})
				cur = &r.Hosts[len(r.Hosts)-1]
			}
		case line == "}":
			if depth == 2 {
				cur = nil
			}
			if depth--; depth < 0 {
				return nil, fmt.Errorf("line %d: unbalanced }", n)
			}
		case cur != nil && depth == 2:
			if err := cur.statement(f); err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if depth != 0 || r.Name == "" {
		return nil, fmt.Errorf("no complete resource section")
	}
	for _, h := range r.Hosts {
		if h.Minor < 0 || h.Disk == "" || h.Address == "" || h.MetaDisk == "" {
			return nil, fmt.Errorf("section on %s: device minor, disk, address and meta-disk are all required", h.Node)
		}
	}
	return &r, nil
}

// statement reads one statement of an "on" section.
func (h *host) statement(f []string) error {
	switch f[0] {
	case "device": // device /dev/drbdN minor N
		if len(f) != 4 || f[2] != "minor" {
			return fmt.Errorf("device: want 'device PATH minor N'")
		}
		m, err := strconv.Atoi(f[3])
		if err != nil || m < 0 {
			return fmt.Errorf("device: minor %q", f[3])
		}
		h.Minor = m
	case "disk":
		if len(f) != 2 {
			return fmt.Errorf("disk: want one path")
		}
		h.Disk = f[1]
	case "address": // address ipv4 10.0.0.1:7000 | ipv6 [fd00::1]:7000
		if len(f) != 3 || (f[1] != "ipv4" && f[1] != "ipv6") {
			return fmt.Errorf("address: want 'address ipv4|ipv6 HOST:PORT'")
		}
		ip, port, err := net.SplitHostPort(f[2])
		if err != nil {
			return fmt.Errorf("address: %w", err)
		}
		p, err := strconv.Atoi(port)
		if err != nil || net.ParseIP(ip) == nil {
			return fmt.Errorf("address %q: want IP:PORT", f[2])
		}
		h.Address, h.Port = ip, p
	case "meta-disk":
		if len(f) != 2 {
			return fmt.Errorf("meta-disk: want one value")
		}
		h.MetaDisk = f[1]
	}
	return nil
}
