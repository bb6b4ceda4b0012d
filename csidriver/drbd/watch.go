package drbd

import (
	"context"
	"strconv"
	"strings"
	"time"
)

// Watch reads /proc/drbd every interval until ctx ends and calls changed
// with each minor whose state line (connection, roles, disks, I/O
// suspended) differs from the previous read, or that appeared: the node
// agent then looks at that replica at once instead of at its next
// periodic pass (a Primary that lost its peer has its I/O frozen until
// the agent acts). A resync's progress lines do not count as changes.
// DRBD 8.4 only: on 9 it returns at once (its events come from `drbdsetup
// events2`, which this layer does not read yet).
func (m *Manager) Watch(ctx context.Context, interval time.Duration, changed func(minor int)) {
	if m.Version != V84 {
		return
	}
	seen := map[int]string{}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if b, err := m.readFile(ProcDRBD); err == nil {
			now := stateLines84(string(b))
			for minor, line := range now {
				if seen[minor] != line {
					changed(minor)
				}
			}
			seen = now
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// stateLines84 maps each configured minor of an 8.4 /proc/drbd to its
// state line.
func stateLines84(proc string) map[int]string {
	out := map[int]string{}
	for _, line := range strings.Split(proc, "\n") {
		if m := proc84Minor.FindStringSubmatch(line); m != nil && m[3] != "" {
			minor, _ := strconv.Atoi(m[1])
			out[minor] = m[0]
		}
	}
	return out
}
