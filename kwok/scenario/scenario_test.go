package scenario

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const good = `name: burst-near-full
timeout: 300s
nodes:
  - namePrefix: hdd
    count: 3
    labels: {topology.kubernetes.io/zone: a}
    pools:
      - class: HDD
        capacity: 20Gi
        volumeCountLimit: 1000
workloads:
  - name: db
    kind: StatefulSet
    replicas: 10
    storageClass: hwameistor-storage-lvm-hdd
    volumes: [6Gi]
    writeBytes: 64Mi
    arrival: burst
  - name: web
    kind: Pod
    replicas: 2
    storageClass: hwameistor-storage-lvm-ssd-ha
    volumes: [1Gi, 2Gi]
    arrival: {rate: 50}
actions:
  - drain: hdd-0
  - uncordon: hdd-0
  - wait: 10s
`

func TestParseGood(t *testing.T) {
	s, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if s.Timeout.Duration != 300*time.Second || len(s.Nodes) != 1 || s.Nodes[0].Count != 3 || s.Nodes[0].Pools[0].VolumeCountLimit != 1000 {
		t.Errorf("parsed %+v", s)
	}
	if got := strings.Join(s.NodeNames(), ","); got != "hdd-0,hdd-1,hdd-2" {
		t.Errorf("NodeNames = %s", got)
	}
	if got := s.Nodes[0].PoolsFlag(); got != "HDD=20Gi:1000" {
		t.Errorf("PoolsFlag = %s", got)
	}
	if !s.Workloads[0].Arrival.Burst || s.Workloads[1].Arrival.Rate != 50 {
		t.Errorf("arrivals %+v %+v", s.Workloads[0].Arrival, s.Workloads[1].Arrival)
	}
	if s.Actions[0].Drain != "hdd-0" || s.Actions[1].Uncordon != "hdd-0" || s.Actions[2].Wait.Duration != 10*time.Second {
		t.Errorf("actions %+v", s.Actions)
	}
}

// TestFailRecover: fail and recover parse, with drbd, and FailedNodes
// lists each failed node once.
func TestFailRecover(t *testing.T) {
	s, err := Parse([]byte(strings.Replace(strings.Replace(good, "  - wait: 10s", "  - fail: hdd-1\n  - recover: hdd-1\n  - fail: hdd-1\n  - fail: hdd-2", 1),
		"timeout: 300s", "timeout: 300s\ndrbd: true", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if !s.DRBD || s.Actions[2].Fail != "hdd-1" || s.Actions[3].Recover != "hdd-1" {
		t.Errorf("parsed %+v", s)
	}
	if got := s.FailedNodes(); !slices.Equal(got, []string{"hdd-1", "hdd-2"}) {
		t.Errorf("FailedNodes = %v, want [hdd-1 hdd-2]", got)
	}
}

func TestParseBad(t *testing.T) {
	for _, tc := range []struct {
		name, from, to string
		want           []string // substrings of the error
	}{
		{"unknown top field", "timeout: 300s", "timeout: 300s\nfoo: 1", []string{"line 3", "foo", "unknown field"}},
		{"unknown nested field", "        volumeCountLimit: 1000", "        volumeCountLimit: 1000\n        speed: fast", []string{"line 11", "nodes[0].pools[0].speed", "unknown field"}},
		{"unknown workload field", "    writeBytes: 64Mi", "    writeBytes: 64Mi\n    image: nginx", []string{"workloads[0].image"}},
		{"negative size", "volumes: [1Gi, 2Gi]", "volumes: [1Gi, -2Gi]", []string{"workloads[1].volumes[1]", "line 23", "positive"}},
		{"zero capacity", "capacity: 20Gi", "capacity: 0", []string{"nodes[0].pools[0].capacity", "positive"}},
		{"bad size", "volumes: [6Gi]", "volumes: [6 gigs]", []string{"workloads[0].volumes[0]", "not a size"}},
		{"unknown pool class", "class: HDD", "class: Tape", []string{"nodes[0].pools[0].class", "Tape", "line 8"}},
		{"unknown storage class", "hwameistor-storage-lvm-ssd-ha", "fast-ssd", []string{"workloads[1].storageClass", "fast-ssd"}},
		{"drain of unknown node", "drain: hdd-0", "drain: hdd-7", []string{"actions[0].drain", "hdd-7", "does not exist", "line 26"}},
		{"uncordon of unknown node", "uncordon: hdd-0", "uncordon: ssd-0", []string{"actions[1].uncordon", "does not exist"}},
		{"at without restart or abort", "  - wait: 10s", "  - wait: 1s\n    at: SyncReplica", []string{"actions[2].at", "only restart and abort"}},
		{"at unknown state", "  - wait: 10s", "  - restart: node-agent\n    at: Copying", []string{"actions[2].at", `unknown migration state "Copying"`}},
		{"writeBytes larger than a volume", "writeBytes: 64Mi", "writeBytes: 7Gi", []string{"workloads[0].writeBytes", "7Gi does not fit in volumes[0] (6Gi)"}},
		{"bad copy rate", "timeout: 300s", "timeout: 300s\ncopyRate: fast", []string{"copyRate", "not a size"}},
		{"abort of an unknown node", "  - wait: 10s", "  - abort: hdd-9", []string{"actions[2].abort", `node "hdd-9" does not exist`}},
		{"fail of an unknown node", "  - wait: 10s", "  - fail: hdd-9", []string{"actions[2].fail", `node "hdd-9" does not exist`}},
		{"fail twice", "  - wait: 10s", "  - fail: hdd-1\n  - fail: hdd-1", []string{"actions[3].fail", "has failed already"}},
		{"recover without a fail", "  - wait: 10s", "  - recover: hdd-1", []string{"actions[2].recover", "has not failed"}},
		{"recover after a recover", "  - wait: 10s", "  - fail: hdd-1\n  - recover: hdd-1\n  - recover: hdd-1", []string{"actions[4].recover", "has not failed"}},
		{"restart unknown component", "  - wait: 10s", "  - restart: etcd", []string{"actions[2].restart", "unknown component"}},
		{"two verbs in one action", "  - wait: 10s", "  - {wait: 10s, drain: hdd-1}", []string{"actions[2]", "exactly one"}},
		{"unknown action", "  - wait: 10s", "  - reboot: hdd-1", []string{"actions[2].reboot", "unknown field"}},
		{"unknown kind", "kind: Pod", "kind: Job", []string{"workloads[1].kind", "Job"}},
		{"zero count", "count: 3", "count: 0", []string{"nodes[0].count"}},
		{"bad timeout", "timeout: 300s", "timeout: soon", []string{"duration"}},
		{"bad arrival", "arrival: burst", "arrival: trickle", []string{"arrival"}},
		{"zero rate", "{rate: 50}", "{rate: 0}", []string{"workloads[1].arrival.rate"}},
		{"negative replicas", "replicas: 10", "replicas: -1", []string{"workloads[0].replicas"}},
		{"duplicate workload", "name: web", "name: db", []string{"workloads[1].name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(good, tc.from) {
				t.Fatalf("%q not in the good scenario", tc.from)
			}
			_, err := Parse([]byte(strings.Replace(good, tc.from, tc.to, 1)))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestShippedScenarios parses every file in kwok/scenarios.
func TestShippedScenarios(t *testing.T) {
	files, _ := filepath.Glob("../scenarios/*.yaml")
	if len(files) == 0 {
		t.Fatal("no scenarios")
	}
	for _, f := range files {
		if _, err := Load(f); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat("../scenarios/burst-near-full.yaml"); err != nil {
		t.Error(err)
	}
}
