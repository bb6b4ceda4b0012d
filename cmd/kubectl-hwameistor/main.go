// Command kubectl-hwameistor is the operator CLI, run as the kubectl
// plugin `kubectl hwameistor` once it is on the PATH (see cli/README.md).
package main

import (
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"hwameistor.io/local/cli"
)

func main() {
	os.Exit(cli.Execute(os.Args[1:], genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}))
}
