// Package pki holds the two certificate helpers the controllers' webhook
// certificates (controllers/certs) and the nodes' replication certificates
// (csidriver/replication) share.
package pki

import (
	"crypto/rand"
	"encoding/pem"
	"math/big"
)

// SerialNumber is a random 127-bit certificate serial number (RFC 5280
// allows up to 20 octets; random serials keep two issuers from colliding).
func SerialNumber() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}

// EncodePEM wraps DER bytes in one PEM block of blockType.
func EncodePEM(blockType string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
}
