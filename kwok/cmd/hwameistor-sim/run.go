package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"hwameistor.io/local/internal/testenv"
	"hwameistor.io/local/kwok/report"
	"hwameistor.io/local/kwok/scenario"
	"hwameistor.io/local/kwok/sim"
)

// controlPlane returns KUBEBUILDER_ASSETS, building the pinned binaries
// when it is unset.
func controlPlane() (string, error) {
	if assets := os.Getenv("KUBEBUILDER_ASSETS"); assets != "" {
		return assets, nil
	}
	out, err := exec.Command(filepath.Join(testenv.RootDir(), "hack", "build-control-plane.sh")).Output()
	if err != nil {
		return "", fmt.Errorf("building the control plane: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// run is `hwameistor-sim run --scenario FILE --report OUT.json [--keep]`.
func run(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	file := fs.String("scenario", "", "scenario file (kwok/README.md)")
	out := fs.String("report", "", "where to write the JSON report")
	keep := fs.Bool("keep", false, "leave the system running after the run (Ctrl-C stops it)")
	ports := fs.Int("ports", 27370, "first port of the stack's port block")
	scheduler := fs.String("scheduler", sim.Scheduler, "hwameistor-scheduler, or default-scheduler for the stock baseline (VolumeBinding with CSIStorageCapacity)")
	pprof := fs.Bool("pprof", false, "serve /debug/pprof from every component (ports in internal/stack Options.Pprof)")
	timeout := fs.Duration("timeout", 0, "overrides the scenario's timeout (the longest wait for the pods); the report then covers that window")
	_ = fs.Parse(args)
	if *file == "" || *out == "" {
		return fmt.Errorf("usage: hwameistor-sim run --scenario FILE --report OUT.json [--keep]")
	}
	if *scheduler != sim.Scheduler && *scheduler != sim.Baseline {
		return fmt.Errorf("--scheduler %q: use %s or %s", *scheduler, sim.Scheduler, sim.Baseline)
	}
	sc, err := scenario.Load(*file)
	if err != nil {
		return err
	}
	if *timeout > 0 {
		sc.Timeout.Duration = *timeout
	}
	assets, err := controlPlane()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGPIPE)
	defer stop()
	start := time.Now()
	logf := func(format string, args ...any) {
		fmt.Printf("[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	rep, s, err := sim.Run(ctx, sc, sim.Options{Name: "sim-" + sc.Name, Ports: *ports, Assets: assets, Keep: *keep, Scheduler: *scheduler, Pprof: *pprof, Log: logf})
	if s != nil {
		defer func() {
			logf("phase: tearing down")
			s.Down()
		}()
	}
	hold := func() {
		if s != nil && ctx.Err() == nil {
			fmt.Printf("\nThe system is running (--keep):\n  export KUBECONFIG=%s PATH=%s:$PATH\n  kubectl get pods,pvc -n %s; kubectl get lsn,lv,lvr\nComponent logs: %s/*.log\nPress Ctrl-C to stop everything.\n",
				s.Kubeconfig, assets, sim.Namespace, s.Work)
			<-ctx.Done()
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted")
		}
		fmt.Fprintln(os.Stderr, "run:", err)
		hold()
		return fmt.Errorf("failed")
	}
	if err := rep.Write(*out); err != nil {
		return err
	}
	chart := strings.TrimSuffix(*out, filepath.Ext(*out)) + ".svg"
	if err := rep.WriteChart(chart); err != nil {
		return err
	}
	fmt.Println()
	rep.Summary(os.Stdout)
	fmt.Printf("report: %s\nchart:  %s\n", *out, chart)
	hold()
	return nil
}

// compare is `hwameistor-sim compare A.json B.json`.
func compare(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("usage: hwameistor-sim compare A.json B.json")
	}
	a, err := report.Read(args[0])
	if err != nil {
		return err
	}
	b, err := report.Read(args[1])
	if err != nil {
		return err
	}
	report.Compare(os.Stdout, a, b)
	return nil
}

// validate is `hwameistor-sim validate FILE...`: checks scenario files
// without running them.
func validate(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: hwameistor-sim validate FILE...")
	}
	var errs []error
	for _, f := range args {
		if _, err := scenario.Load(f); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Printf("%s: ok\n", f)
	}
	return errors.Join(errs...)
}
