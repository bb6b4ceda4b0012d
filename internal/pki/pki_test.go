package pki

import (
	"encoding/pem"
	"testing"
)

func TestSerialNumber(t *testing.T) {
	a, b := SerialNumber(), SerialNumber()
	if a.Sign() < 0 || a.BitLen() > 127 || a.Cmp(b) == 0 {
		t.Errorf("serials %v and %v: want two different non-negative numbers of at most 127 bits", a, b)
	}
}

func TestEncodePEM(t *testing.T) {
	out := EncodePEM("CERTIFICATE", []byte{1, 2, 3})
	block, rest := pem.Decode(out)
	if block == nil || block.Type != "CERTIFICATE" || string(block.Bytes) != "\x01\x02\x03" || len(rest) != 0 {
		t.Errorf("EncodePEM = %q", out)
	}
}
