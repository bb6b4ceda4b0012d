package main

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1 "hwameistor.io/local/api/v1alpha1"
)

func TestParsePools(t *testing.T) {
	cases := []struct {
		in      string
		want    map[v1.PoolClass]int64
		wantErr string
	}{
		{"HDD=100Gi", map[v1.PoolClass]int64{v1.PoolClassHDD: 100 << 30}, ""},
		{"HDD=1Ti, NVMe=512Gi", map[v1.PoolClass]int64{v1.PoolClassHDD: 1 << 40, v1.PoolClassNVMe: 512 << 30}, ""},
		{"TAPE=1Gi", nil, "unknown poolClass"},
		{"HDD", nil, "want CLASS=SIZE"},
		{"HDD=lots", nil, `size "lots" is not a positive quantity`},
		{"HDD=-1Gi", nil, "not a positive quantity"},
		{"HDD=1Gi:0", nil, `volume count limit "0" is not a positive integer`},
		{"HDD=1Gi:x", nil, `volume count limit "x"`},
	}
	for _, tc := range cases {
		got, err := parsePools(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: err %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) {
			t.Fatalf("%q: %v, %v", tc.in, got, err)
		}
		for _, p := range got {
			if tc.want[p.Class] != p.CapacityBytes {
				t.Errorf("%q: %s = %d, want %d", tc.in, p.Class, p.CapacityBytes, tc.want[p.Class])
			}
		}
	}
}

func TestParsePoolsVolumeCountLimit(t *testing.T) {
	got, err := parsePools("HDD=1Gi:7,SSD=2Gi")
	if err != nil {
		t.Fatal(err)
	}
	if got[0].VolumeCountLimit != 7 || got[0].CapacityBytes != 1<<30 {
		t.Errorf("HDD: %+v, want 1Gi with limit 7", got[0])
	}
	if got[1].VolumeCountLimit != 0 {
		t.Errorf("SSD: limit %d, want 0 (the backend's default)", got[1].VolumeCountLimit)
	}
}

func TestSelectNodes(t *testing.T) {
	node := func(name string, labels map[string]string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	}
	c := fake.NewClientBuilder().WithObjects(
		node("kwok-b", map[string]string{"type": "kwok"}), node("kwok-a", map[string]string{"type": "kwok"}),
		node("real", map[string]string{"type": "worker"})).Build()
	cases := []struct {
		selector, want, wantErr string
	}{
		{"type=kwok", "kwok-a,kwok-b", ""},
		{"type!=kwok", "real", ""},
		{"type=gpu", "", `no node matches --node-selector "type=gpu"`},
		{"type==", "", `--node-selector "type=="`},
	}
	for _, tc := range cases {
		got, err := selectNodes(context.Background(), c, tc.selector)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: err %v, want %q", tc.selector, err, tc.wantErr)
			}
			continue
		}
		if err != nil || strings.Join(got, ",") != tc.want {
			t.Errorf("%q: %v %v, want %s", tc.selector, got, err, tc.want)
		}
	}
}
