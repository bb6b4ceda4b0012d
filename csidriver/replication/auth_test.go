package replication

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"
)

// TestSign pins the header format and the signed message.
func TestSign(t *testing.T) {
	at := time.Unix(1_800_000_000, 0)
	path := PathPrefix + pool + "/pvc-1"
	m := hmac.New(sha256.New, testKey)
	m.Write([]byte("GET\n" + path + "\nnode-b\n1800000000"))
	want := "HMAC 1800000000:" + hex.EncodeToString(m.Sum(nil))
	if got := Sign(testKey, path, "node-b", at); got != want {
		t.Errorf("Sign = %q, want %q", got, want)
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	path := PathPrefix + pool + "/pvc-1"
	good := Sign(testKey, path, "node-b", now)
	tests := []struct {
		name    string
		header  string
		path    string
		target  string
		now     time.Time
		wantMsg string // "" = accepted
	}{
		{name: "valid", header: good},
		{name: "scheme in lower case", header: "hmac" + strings.TrimPrefix(good, "HMAC")},
		{name: "5 minutes late is still fine", header: good, now: now.Add(MaxClockSkew)},
		{name: "5 minutes early is still fine", header: good, now: now.Add(-MaxClockSkew)},
		{name: "one second too late", header: good, now: now.Add(MaxClockSkew + time.Second), wantMsg: "more than 5m0s"},
		{name: "one second too early", header: good, now: now.Add(-MaxClockSkew - time.Second), wantMsg: "more than 5m0s"},
		{name: "empty", header: "", wantMsg: "missing"},
		{name: "no colon", header: "HMAC 1800000000", wantMsg: "not of the form"},
		{name: "timestamp not a number", header: "HMAC soon:" + strings.Split(good, ":")[1], wantMsg: "not a number"},
		{name: "timestamp changed", header: strings.Replace(good, "1800000000", "1800000001", 1), wantMsg: "MAC does not match"},
		{name: "truncated MAC", header: good[:len(good)-2], wantMsg: "MAC does not match"},
		{name: "other path", header: good, path: path + "x", wantMsg: "MAC does not match"},
		{name: "other target", header: good, target: "node-c", wantMsg: "MAC does not match"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, target, at := path, "node-b", now
			if tc.path != "" {
				p = tc.path
			}
			if tc.target != "" {
				target = tc.target
			}
			if !tc.now.IsZero() {
				at = tc.now
			}
			err := verify(testKey, tc.header, p, target, at)
			switch {
			case tc.wantMsg == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.wantMsg != "" && (err == nil || !strings.Contains(err.Error(), tc.wantMsg)):
				t.Errorf("err = %v, want it to contain %q", err, tc.wantMsg)
			}
		})
	}
}
