package drbd

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestWatch: a minor is reported when it appears and when its state line
// changes (here: its peer lost, its I/O frozen), not when only a resync's
// progress moves; DRBD 9 is not watched.
func TestWatch(t *testing.T) {
	procs := []string{
		"version: 8.4.11 (api:1/proto:86-101)\n 3: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----\n    ns:0 oos:0\n",
		"version: 8.4.11 (api:1/proto:86-101)\n 3: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----\n    ns:8 oos:0\n",
		"version: 8.4.11 (api:1/proto:86-101)\n 3: cs:SyncSource ro:Primary/Secondary ds:UpToDate/Inconsistent C r-----\n    oos:8\n\t[>....] sync'ed:  1.0% (8/16)K\n" +
			" 5: cs:WFConnection ro:Secondary/Unknown ds:UpToDate/DUnknown C r-----\n",
		"version: 8.4.11 (api:1/proto:86-101)\n 3: cs:SyncSource ro:Primary/Secondary ds:UpToDate/Inconsistent C r-----\n    oos:4\n\t[==>..] sync'ed: 50.0% (4/16)K\n" +
			" 5: cs:WFConnection ro:Secondary/Unknown ds:UpToDate/DUnknown C r-----\n",
		"version: 8.4.11 (api:1/proto:86-101)\n 3: cs:WFConnection ro:Primary/Unknown ds:UpToDate/DUnknown C s-----\n",
	}
	var mu sync.Mutex
	reads := 0
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{Version: V84, ReadFile: func(string) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		if reads == len(procs)-1 {
			cancel()
		}
		reads = min(reads+1, len(procs))
		return []byte(procs[reads-1]), nil
	}}
	var got []int
	m.Watch(ctx, time.Millisecond, func(minor int) { got = append(got, minor) })
	// Reads: 3 appears; only counters move; 3 resyncs and 5 appears (in
	// either order); only the progress moves; 3 frozen (5 gone: nothing).
	if len(got) != 4 || got[0] != 3 || !slices.Equal(sorted(got[1:3]), []int{3, 5}) || got[3] != 3 {
		t.Errorf("changed minors %v, want 3, then 3 and 5, then 3", got)
	}
	called := false
	(&Manager{Version: V9}).Watch(context.Background(), time.Millisecond, func(int) { called = true })
	if called {
		t.Error("DRBD 9 was watched")
	}
}

func sorted(s []int) []int { s = slices.Clone(s); slices.Sort(s); return s }
