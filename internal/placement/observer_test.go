package placement

import (
	"strings"
	"testing"
	"time"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// TestObserver: every way an entry ends reaches the observer once, with
// its reason and the time it held the bytes; Reservations reports when
// each live entry started.
func TestObserver(t *testing.T) {
	c, clk := newCache(t, time.Minute, lsn("n1").pool(v1.PoolNameHDD, 100*Gi, 100*Gi, 10), lsn("n2").pool(v1.PoolNameHDD, 100*Gi, 100*Gi, 10))
	var got []string
	c.SetObserver(func(e ReservationEnd) {
		s := e.Node + "/" + e.Volume + "/" + e.Reason.String() + "/" + e.Age.String() + "/" + v1.FormatBytes(e.Bytes)
		if e.Persisted {
			s += "/persisted"
		}
		got = append(got, s)
	})
	start := clk.t
	mustReserve(t, c, "n1", vol("unres", PoolHDD, Gi), vol("expire", PoolHDD, Gi), vol("count", PoolHDD, Gi), vol("move", PoolHDD, Gi))
	c.SetPlacement(vol("release", PoolHDD, 2*Gi), []string{"n1", "n2"})
	sum := c.Summarize()
	if want := [2]int64{4, 2}; sum.Count[PoolHDD] != want || sum.Bytes[PoolHDD] != [2]int64{4 * Gi, 4 * Gi} || sum.Count[PoolSSD] != [2]int64{} {
		t.Errorf("summary counts %v, bytes %v; want HDD %v, %v", sum.Count, sum.Bytes, want, [2]int64{4 * Gi, 4 * Gi})
	}
	if !sum.Oldest[0].Equal(start) || !sum.Oldest[1].Equal(start) {
		t.Errorf("oldest %v, want %v", sum.Oldest, start)
	}

	clk.advance(time.Second)
	c.Unreserve("n1", []string{"unres"})
	clk.advance(time.Second)
	c.SetPlacement(vol("count", PoolHDD, Gi), []string{"n1"})
	c.SetPlacement(vol("move", PoolHDD, Gi), []string{"n2"}) // n1's entry moves
	clk.advance(time.Second)
	c.UpsertNode(lsn("n1").pool(v1.PoolNameHDD, 100*Gi, 99*Gi, 9).volumes("count").build())
	clk.advance(time.Second)
	c.Release("release")
	clk.advance(time.Minute)
	if n := c.Expire(); n != 1 {
		t.Errorf("Expire dropped %d, want 1", n)
	}
	want := []string{
		"n1/unres/unreserved/1s/1Gi",
		"n1/move/moved/2s/1Gi",
		"n1/count/counted/3s/1Gi/persisted",
		// Release walks the volume's nodes in map order.
		"n1/release/released/4s/2Gi/persisted|n2/release/released/4s/2Gi/persisted",
		"n1/expire/expired/1m4s/1Gi",
	}
	if len(got) != 6 {
		t.Fatalf("observed %q, want %q", got, want)
	}
	release := got[3] + "|" + got[4]
	if release != want[3] && got[4]+"|"+got[3] != want[3] {
		t.Errorf("release observed %q, want %q", release, want[3])
	}
	rest := []string{got[0], got[1], got[2], got[5]}
	if strings.Join(rest, " ") != strings.Join([]string{want[0], want[1], want[2], want[4]}, " ") {
		t.Errorf("observed %q, want %q", rest, []string{want[0], want[1], want[2], want[4]})
	}
	wantLedger(t, c, "n2/move/LocalStorage_PoolHDD/1Gi/persisted")
	// n2's entry of move started when SetPlacement moved it.
	if sum := c.Summarize(); !sum.Oldest[0].IsZero() || !sum.Oldest[1].Equal(start.Add(2*time.Second)) {
		t.Errorf("oldest %v, want none unpersisted and %v persisted", sum.Oldest, start.Add(2*time.Second))
	}

	c.SetObserver(nil)
	c.Release("move") // no observer: nothing to call
	if len(got) != 6 {
		t.Errorf("observed after SetObserver(nil): %q", got[6:])
	}
	if s := EndReason(99).String(); s != "unknown" {
		t.Errorf("EndReason(99) = %q", s)
	}
}
