package scparams

import (
	"strings"
	"testing"

	v1 "hwameistor.io/local/api/v1alpha1"
)

func TestParse(t *testing.T) {
	cases := []struct {
		name    string
		in      map[string]string
		want    Params
		wantErr string
	}{
		{"defaults", nil, Params{PoolClass: v1.PoolClassHDD, Replicas: 1, FSType: "xfs"}, ""},
		{"full", map[string]string{PoolClass: "NVMe", ReplicaNumber: "2", Convertible: "true", Striped: "false", FSType: "ext4", PoolType: "REGULAR", VolumeKind: "LVM", "other.io/key": "x"},
			Params{PoolClass: v1.PoolClassNVMe, Replicas: 2, Convertible: true, FSType: "ext4"}, ""},
		{"unknown class", map[string]string{PoolClass: "TAPE"}, Params{}, `parameter poolClass: unknown poolClass "TAPE": use one of HDD, SSD, NVMe`},
		{"lower-case class", map[string]string{PoolClass: "hdd"}, Params{}, `unknown poolClass "hdd"`},
		{"three replicas", map[string]string{ReplicaNumber: "3"}, Params{}, `parameter replicaNumber is "3": use "1" or "2"`},
		{"replicas not a number", map[string]string{ReplicaNumber: "two"}, Params{}, `parameter replicaNumber is "two"`},
		{"thin pool", map[string]string{PoolType: "THIN"}, Params{}, `parameter poolType is "THIN": only REGULAR is supported`},
		{"kind", map[string]string{VolumeKind: "DISK"}, Params{}, `parameter volumeKind is "DISK"`},
		{"convertible typo", map[string]string{Convertible: "yes"}, Params{}, `parameter convertible is "yes": use "true" or "false"`},
		{"fstype", map[string]string{FSType: "btrfs"}, Params{}, `parameter csi.storage.k8s.io/fstype is "btrfs": use xfs or ext4`},
		{"mistyped key", map[string]string{"replicaNumbr": "2"}, Params{}, `unknown parameter "replicaNumbr": did you mean replicaNumber?`},
		{"key in another case", map[string]string{"poolclass": "SSD"}, Params{}, `unknown parameter "poolclass": did you mean poolClass?`},
		{"unrelated key", map[string]string{"size": "10Gi"}, Params{}, `unknown parameter "size": use poolClass, poolType, volumeKind, replicaNumber, convertible, striped, csi.storage.k8s.io/fstype`},
		{"provisioner's keys pass", map[string]string{"csi.storage.k8s.io/pvc/name": "data", "csi.storage.k8s.io/pv/name": "pvc-1"},
			Params{PoolClass: v1.PoolClassHDD, Replicas: 1, FSType: "xfs"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
