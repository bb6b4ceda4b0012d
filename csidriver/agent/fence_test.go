package agent

import (
	"context"
	"errors"
	"strings"
	"testing"

	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/backend/command"
)

var (
	// A Primary that lost its peer, I/O frozen by 8.4's fencing (the
	// first flag 's'), as recorded in test/vm.
	procPrimaryFrozen = drbdProc(" 7: cs:WFConnection ro:Primary/Unknown ds:UpToDate/DUnknown C s-----",
		"    ns:320 nr:0 dw:70005 dr:344 al:10 bm:0 lo:0 pe:0 ua:0 ap:1 ep:1 wo:f oos:4")
	// The same after its handshake with a peer that took over failed
	// ("I shall become SyncTarget, but I am primary!"): StandAlone, whose
	// protocol field is blank.
	procPrimaryFrozenStandAlone = drbdProc(" 7: cs:StandAlone ro:Primary/Unknown ds:UpToDate/DUnknown   s-----",
		"    ns:320 nr:0 dw:70005 dr:344 al:10 bm:0 lo:0 pe:0 ua:0 ap:1 ep:1 wo:f oos:4")
	// The same after resume-io: writing alone.
	procPrimaryAlone = drbdProc(" 7: cs:WFConnection ro:Primary/Unknown ds:UpToDate/DUnknown C r-----",
		"    ns:320 nr:0 dw:70009 dr:344 al:10 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:8")
	// A Secondary a split brain left StandAlone.
	procSplitBrainSecondary = drbdProc(" 7: cs:StandAlone ro:Secondary/Unknown ds:UpToDate/DUnknown   r-----",
		"    ns:0 nr:0 dw:4 dr:0 al:1 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:4")
	procSyncTarget = drbdProc(" 7: cs:SyncTarget ro:Secondary/Primary ds:Inconsistent/UpToDate C r-----",
		"    ns:0 nr:4 dw:4 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:4",
		"\t[>....................] sync'ed:  0.1% (4/8)K")
)

// lostMessage is what a frozen Primary on n1 that lost to n2 reports.
const lostMessage = "lost to its peer on n2 (hwameistor.io/drbd-outdated names this node), which serves the volume now: I/O stays frozen and no write here is acknowledged; reboot node n1 to release the volume, and its replica rejoins and resyncs from n2"

// servedPrimary is the recorded state of a Primary connected to its peer.
func servedPrimary() *v1.ReplicaDRBDStatus {
	return &v1.ReplicaDRBDStatus{Device: drbdDev, Port: drbdPort, SizedBytes: gi, Role: "Primary", DiskState: "UpToDate",
		Connection: "Connected", PeerDiskState: "UpToDate", InSyncPercent: "100", MayServe: true}
}

// failingReader is an API server that cannot be reached.
type failingReader struct{ client.Reader }

func (failingReader) Get(context.Context, client.ObjectKey, client.Object, ...client.GetOption) error {
	return errors.New("dial tcp: connect: network is unreachable")
}

// TestArbitrate: what a replica does once it lost its peer, settled through
// the volume's hwameistor.io/drbd-outdated record (package fence).
func TestArbitrate(t *testing.T) {
	for _, tc := range []struct {
		name        string
		node        string
		outdated    string // the record before
		apiDown     bool
		reported    string // the replica's status.drbd.message before
		peerPrimary bool   // the other replica reports itself Primary
		calls       func(adm func(...string) []string) []command.Call
		procs       []string
		wantErr     bool
		wantRecord  string
		wantServe   bool
		wantMessage string // a part of status.drbd.message
		wantEvent   string
	}{
		{name: "frozen Primary records its peer outdated and resumes", node: "n1",
			calls: func(adm func(...string) []string) []command.Call { return admCalls(adm("resume-io", drbdVol)) },
			procs: []string{procPrimaryFrozen, procPrimaryAlone}, wantRecord: "n2", wantServe: true, wantEvent: "PeerOutdated"},
		{name: "frozen Primary already recorded the peer (its last pass failed to resume)", node: "n1", outdated: "n2",
			calls: func(adm func(...string) []string) []command.Call { return admCalls(adm("resume-io", drbdVol)) },
			procs: []string{procPrimaryFrozen, procPrimaryAlone}, wantRecord: "n2", wantServe: true, wantEvent: "PeerOutdated"},
		// Resuming would complete the writes in flight at the cut as
		// acknowledged (their local half succeeded), which the peer
		// never got: seen in test/vm. It stays frozen.
		{name: "frozen Primary whose peer took over stays frozen", node: "n1", outdated: "n1",
			procs: []string{procPrimaryFrozen}, wantRecord: "n1", wantMessage: "lost to its peer on n2", wantEvent: "LostToPeer"},
		{name: "frozen Primary whose peer took over, StandAlone after a refused handshake", node: "n1", outdated: "n1",
			procs: []string{procPrimaryFrozenStandAlone}, wantRecord: "n1", wantMessage: "lost to its peer on n2", wantEvent: "LostToPeer"},
		{name: "frozen loser, already reported: no new event", node: "n1", outdated: "n1", reported: lostMessage,
			procs: []string{procPrimaryFrozen}, wantRecord: "n1", wantMessage: "reboot node n1 to release the volume"},
		{name: "outdated replica without its peer does not serve", node: "n2", outdated: "n2",
			procs: []string{procUpAlone}, wantRecord: "n2", wantMessage: "outdated: its peer on n1 recorded it"},
		{name: "outdated replica resyncing does not serve", node: "n2", outdated: "n2",
			procs: []string{procSyncTarget}, wantRecord: "n2", wantMessage: "outdated: its peer on n1 recorded it"},
		{name: "outdated replica resynced: the record goes", node: "n2", outdated: "n2",
			procs: []string{procInSync}, wantRecord: "", wantServe: true, wantEvent: "Resynced"},
		{name: "split brain: the outdated side discards its changes", node: "n2", outdated: "n2",
			calls: func(adm func(...string) []string) []command.Call {
				return admCalls(adm("connect", "--discard-my-data", drbdVol))
			},
			procs: []string{procSplitBrainSecondary, procSyncTarget}, wantRecord: "n2", wantMessage: "resyncing from n1 after a split brain", wantEvent: "SplitBrainResolved"},
		{name: "split brain on the side that won: it connects again", node: "n1", outdated: "n2",
			calls: func(adm func(...string) []string) []command.Call { return admCalls(adm("connect", drbdVol)) },
			procs: []string{procSplitBrainSecondary, procUpAlone}, wantRecord: "n2", wantServe: true},
		{name: "StandAlone beside a frozen loser: it waits for its reboot", node: "n1", outdated: "n2", peerPrimary: true,
			procs: []string{procSplitBrainSecondary}, wantRecord: "n2", wantServe: true},
		{name: "the record of a replica the volume no longer has goes", node: "n1", outdated: "n9",
			procs: []string{procPrimaryInSync}, wantRecord: "", wantServe: true},
		{name: "the other replica's record changes nothing here", node: "n1", outdated: "n2",
			procs: []string{procPrimaryInSync}, wantRecord: "n2", wantServe: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newDRBDObjects()
			if tc.outdated != "" {
				o.lv.Annotations = map[string]string{v1.DRBDOutdatedAnnotation: tc.outdated}
			}
			o.reps[tc.node].Status.DRBD = servedPrimary()
			o.reps[tc.node].Status.DRBD.Message = tc.reported
			if tc.peerPrimary {
				other := map[string]string{"n1": "n2", "n2": "n1"}[tc.node]
				o.reps[other].Status.DRBD = servedPrimary()
			}
			d := newDRBDAgent(t, o, tc.node, tc.calls, tc.procs...)
			rec := record.NewFakeRecorder(10)
			d.a.Recorder = rec
			if tc.apiDown {
				d.a.APIReader = failingReader{}
			}
			_, err := d.replicate(t, tc.node)
			if (err != nil) != tc.wantErr {
				t.Fatalf("replicate: %v, want error %v", err, tc.wantErr)
			}
			d.verify(t)
			lv := &v1.LocalVolume{}
			if err := d.c.Get(context.Background(), client.ObjectKey{Name: drbdVol}, lv); err != nil {
				t.Fatal(err)
			}
			if got := lv.DRBDOutdated(); got != tc.wantRecord {
				t.Errorf("the volume records %q outdated, want %q", got, tc.wantRecord)
			}
			if tc.wantErr {
				return
			}
			st := d.replica(t, tc.node).Status.DRBD
			if st.MayServe != tc.wantServe || !strings.Contains(st.Message, tc.wantMessage) {
				t.Errorf("status.drbd: mayServe %v, message %q; want %v and a message with %q", st.MayServe, st.Message, tc.wantServe, tc.wantMessage)
			}
			events := ""
			for len(rec.Events) > 0 {
				events += <-rec.Events + "\n"
			}
			if tc.wantEvent != "" && !strings.Contains(events, tc.wantEvent) || tc.wantEvent == "" && events != "" {
				t.Errorf("events %q, want %q", events, tc.wantEvent)
			}
		})
	}
}
