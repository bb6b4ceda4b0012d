// Command etcd is the etcd server built from go.etcd.io/etcd/server/v3 at the
// version pinned in this module, so the local control plane and envtest need no
// downloaded release binaries.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
