// Package guest holds the tests that run inside a test guest (internal/vm),
// on a real kernel with device-mapper: they are built with the tag vmguest
// (go test -c -tags vmguest) by test/vm and run there as root, against a
// volume group on the guest's virtual disks. Without the tag the package
// is empty, so `go test ./...` on a host without device-mapper compiles
// nothing of it.
//
// Environment (set by test/vm): HWVM_DISKS, the guest's data disks
// (comma-separated, e.g. /dev/vdb,/dev/vdc).
package guest
