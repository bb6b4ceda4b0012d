package replication

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxClockSkew is how far a request's timestamp may be from the server's
// clock, either way.
const MaxClockSkew = 5 * time.Minute

// authScheme is the Authorization scheme: "HMAC <unix-seconds>:<hex mac>".
const authScheme = "HMAC"

// Sign returns the Authorization header value of a stream request for the
// volume at path (PathPrefix + pool + "/" + volume) to target, made at t:
// "HMAC <unix-seconds>:<hex mac>" with
// mac = HMAC-SHA256(key, "GET\n" + path + "\n" + target + "\n" + unix-seconds).
func Sign(key []byte, path, target string, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return authScheme + " " + ts + ":" + hex.EncodeToString(mac(key, path, target, ts))
}

func mac(key []byte, path, target, ts string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("GET\n" + path + "\n" + target + "\n" + ts))
	return m.Sum(nil)
}

// verify checks an Authorization header value against the request. The MAC
// is compared in constant time; the message says what is wrong without
// revealing the expected MAC.
func verify(key []byte, header, path, target string, now time.Time) error {
	if header == "" {
		return errors.New("missing Authorization header (want HMAC <unix-seconds>:<hex mac>)")
	}
	scheme, cred, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, authScheme) {
		return errors.New("the Authorization header is not of the form HMAC <unix-seconds>:<hex mac>")
	}
	ts, macHex, ok := strings.Cut(strings.TrimSpace(cred), ":")
	if !ok {
		return errors.New("the Authorization header is not of the form HMAC <unix-seconds>:<hex mac>")
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("the Authorization timestamp %q is not a number of seconds", ts)
	}
	got, err := hex.DecodeString(macHex)
	if err != nil {
		return errors.New("the Authorization MAC is not hexadecimal")
	}
	if !hmac.Equal(got, mac(key, path, target, ts)) {
		return errors.New("the Authorization MAC does not match: wrong key, or signed for another volume or target")
	}
	// Checked after the MAC, so only a holder of the key learns the
	// server's clock.
	if skew := now.Sub(time.Unix(secs, 0)); skew > MaxClockSkew || skew < -MaxClockSkew {
		return fmt.Errorf("the Authorization timestamp is %s from the server's clock, more than %s", skew.Round(time.Second), MaxClockSkew)
	}
	return nil
}
