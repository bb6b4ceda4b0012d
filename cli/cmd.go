// Package cli is the operator CLI, the kubectl plugin `kubectl hwameistor`:
// pools and their free space, volumes and where their replicas are,
// migrations (start, abort, list), and drain-check, which says before a
// `kubectl drain` what the evictor and the migrate controller would do with
// each volume on the node. It reads and writes the same objects a user
// would with kubectl (docs/operations.md); it never acts behind the
// controllers' backs.
package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// Exit codes. drain-check follows `kubectl diff`: 1 is an answer (the node
// cannot be drained now), anything above is a failure to find out.
const (
	ExitOK           = 0
	ExitError        = 1
	ExitNotDrainable = 1
	ExitCheckFailed  = 2
)

// exitError carries an exit code other than ExitError out of a command.
// An empty message prints nothing (the command already said why).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// Options is what every subcommand shares: how to reach the cluster, where
// to write, and the clock.
type Options struct {
	ConfigFlags *genericclioptions.ConfigFlags
	genericiooptions.IOStreams
	// NewClient builds the API client from ConfigFlags; tests may replace it.
	NewClient func() (client.Client, error)
	// Now is the clock for ages.
	Now func() time.Time
}

// NewOptions returns Options reading kubeconfig the way kubectl does.
func NewOptions(streams genericiooptions.IOStreams) *Options {
	o := &Options{
		ConfigFlags: genericclioptions.NewConfigFlags(true),
		IOStreams:   streams,
		Now:         time.Now,
	}
	o.NewClient = func() (client.Client, error) { return newClient(o.ConfigFlags) }
	return o
}

// NewCommand is `kubectl hwameistor` with its subcommands.
func NewCommand(o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "kubectl-hwameistor",
		Short: "Inspect and operate HwameiStor-compatible local volumes",
		Long: `Inspect and operate the local LVM volumes of hwameistor.io/local.

It reads LocalStorageNodes, LocalVolumes, LocalVolumeReplicas and
LocalVolumeMigrates, and writes only what docs/operations.md tells a user to
write by hand (a LocalVolumeMigrate, its spec.abort).`,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl hwameistor"},
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.SetIn(o.In)
	cmd.SetOut(o.Out)
	cmd.SetErr(o.ErrOut)
	o.ConfigFlags.AddFlags(cmd.PersistentFlags())
	cmd.AddCommand(
		newPoolsCommand(o),
		newVolumesCommand(o),
		newMigrateCommand(o),
		newMigrationsCommand(o),
		newDrainCheckCommand(o),
	)
	return cmd
}

// Execute runs the command line args and returns the process's exit code,
// printing an error the way kubectl does ("error: ...").
func Execute(args []string, streams genericiooptions.IOStreams) int {
	// controller-runtime's client warns on stderr when no logger is set.
	ctrllog.SetLogger(logr.Discard())
	return execute(NewOptions(streams), args)
}

func execute(o *Options, args []string) int {
	cmd := NewCommand(o)
	cmd.SetArgs(args)
	err := cmd.Execute()
	if err == nil {
		return ExitOK
	}
	code := ExitError
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	if msg := err.Error(); msg != "" {
		fmt.Fprintln(o.ErrOut, "error: "+msg)
	}
	return code
}
