package emulated

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"hwameistor.io/local/csidriver/drbd"
)

// procHeader is the first lines of the in-kernel DRBD 8.4's /proc/drbd
// (Manager.Detect reads the version from the first).
const procHeader = "version: 8.4.11 (api:1/proto:86-101)\nsrcversion: EMULATED0000000000000000\n"

// view is one side's line pair in /proc/drbd.
type view struct {
	minor            int
	cs               string
	role, peerRole   drbd.Role
	disk, peerDisk   drbd.DiskState
	oos              int64 // KiB
	synced           float64
	syncing          bool
	left, rate       int64 // bytes, bytes per second
	syncDone, syncOf int64 // KiB
}

func kib(b int64) int64 { return (b + 1023) >> 10 }

// view is s's state at now, as DRBD 8.4 reports it.
func (r *resource) view(s *side, now time.Time) view {
	v := view{minor: s.Minor, cs: r.connection(s), role: s.Role, peerRole: drbd.RoleUnknown, disk: s.disk(), peerDisk: drbd.DiskUnknown}
	if v.role == "" {
		v.role = drbd.RoleSecondary
	}
	if p := r.peerOf(s); p != nil {
		v.peerRole, v.peerDisk = p.Role, p.disk()
		if v.peerRole == "" {
			v.peerRole = drbd.RoleSecondary
		}
	}
	switch {
	case r.peerOf(s) != nil && r.Sync != nil:
		done := r.Sync.done(now)
		v.syncing, v.left, v.rate = true, r.Sync.Total-done, r.Sync.Rate
		v.oos, v.syncOf, v.syncDone = kib(v.left), kib(r.Sync.Total), kib(done)
		// 8.4 prints per mille, truncated.
		v.synced = math.Floor(float64(done)/float64(r.Sync.Total)*1000) / 10
	case r.peerOf(s) != nil:
	case !s.Consistent:
		v.oos = kib(pending(s))
	default:
		v.oos = kib(s.Changes)
	}
	return v
}

// status is s's state as drbd.Manager.Status reads it from /proc/drbd.
func (r *resource) status(s *side, now time.Time) drbd.Status {
	v := r.view(s, now)
	st := drbd.Status{Configured: true, Role: v.role, Disk: v.disk, Connection: v.cs, PeerRole: v.peerRole, PeerDisk: v.peerDisk,
		OutOfSyncKiB: v.oos, InSyncPercent: 100, Quorum: true}
	switch {
	case v.syncing:
		st.InSyncPercent = v.synced
	case v.oos > 0:
		st.InSyncPercent = 0
	}
	return st
}

// text is the view's lines, in the kernel's format.
func (v view) text() string {
	var b strings.Builder
	proto := "C"
	if v.cs == "StandAlone" {
		proto = " " // no net configuration: no protocol
	}
	fmt.Fprintf(&b, "%2d: cs:%s ro:%s/%s ds:%s/%s %s r-----\n", v.minor, v.cs, v.role, v.peerRole, v.disk, v.peerDisk, proto)
	fmt.Fprintf(&b, "    ns:0 nr:0 dw:0 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:%d\n", v.oos)
	if v.syncing {
		x := min(int(v.synced*10/50), 20)
		bar := strings.Repeat("=", max(x-1, 0)) + ">" + strings.Repeat(".", 20-x)
		fmt.Fprintf(&b, "\t[%s] sync'ed: %.1f%% (%d/%d)K\n", bar, v.synced, v.oos, v.syncOf)
		secs, speed := int64(0), "unlimited"
		if v.rate > 0 {
			secs, speed = v.left/v.rate, thousands(v.rate>>10)
		}
		fmt.Fprintf(&b, "\tfinish: %d:%02d:%02d speed: %s (%s) K/sec\n", secs/3600, secs/60%60, secs%60, speed, speed)
	}
	return b.String()
}

// thousands prints n with comma separators, as the kernel does.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// proc renders /proc/drbd for the views, by minor.
func proc(views []view) []byte {
	sort.Slice(views, func(i, j int) bool { return views[i].minor < views[j].minor })
	var b strings.Builder
	b.WriteString(procHeader)
	for _, v := range views {
		b.WriteString(v.text())
	}
	return []byte(b.String())
}
