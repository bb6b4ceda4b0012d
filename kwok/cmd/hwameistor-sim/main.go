// Command hwameistor-sim runs hwameistor on fake nodes. `run` applies a
// scenario file to the whole system on the local control plane and writes
// a JSON report; `compare` prints two reports side by side; `demo` shows
// the system with kubectl on three kwok nodes (kwok/README.md).
package main

import (
	"context"
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
	"hwameistor.io/local/kwok/scenario"
	"hwameistor.io/local/kwok/sim"
)

const usage = `usage:
  hwameistor-sim demo [--hold=true]
  hwameistor-sim run --scenario FILE --report OUT.json [--keep] [--ports 27370]
  hwameistor-sim compare A.json B.json
  hwameistor-sim validate FILE...
  hwameistor-sim benchdoc [--dir _output/bench] [--doc docs/benchmarks.md] [--charts docs/bench] [--pins PINS] [--scenarios "scale-1k scale-5k"]`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "run", "compare", "validate", "benchdoc":
		f := map[string]func([]string) error{"run": run, "compare": compare, "validate": validate, "benchdoc": benchdocCmd}[os.Args[1]]
		if err := f(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, os.Args[1]+":", err)
			os.Exit(1)
		}
		return
	case "demo":
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	fs := flag.NewFlagSet("demo", flag.ExitOnError)
	hold := fs.Bool("hold", true, "keep the system running until Ctrl-C after the demo")
	_ = fs.Parse(os.Args[2:])
	if err := demo(*hold); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

func say(format string, args ...any) {
	fmt.Printf("\n\033[1m==> "+format+"\033[0m\n", args...)
}

// demo runs kwok/scenarios/demo.yaml, shows the cluster it leaves with
// kubectl, and prints the report's summary.
func demo(hold bool) error {
	root := testenv.RootDir()
	sc, err := scenario.Load(filepath.Join(root, "kwok", "scenarios", "demo.yaml"))
	if err != nil {
		return err
	}
	assets, err := controlPlane()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGPIPE)
	defer stop()
	say("the demo: %d fake nodes, %d workloads, then %d action(s) (kwok/scenarios/demo.yaml)", len(sc.NodeNames()), len(sc.Workloads), len(sc.Actions))
	start := time.Now()
	rep, s, err := sim.Run(ctx, sc, sim.Options{Name: "demo", Ports: 12370, Assets: assets, Keep: true,
		Log: func(format string, args ...any) {
			fmt.Printf("[%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
		}})
	if s != nil {
		defer s.Down()
	}
	if err != nil {
		return err
	}
	kubectl := func(args ...string) {
		cmd := exec.CommandContext(ctx, filepath.Join(assets, "kubectl"), append([]string{"--kubeconfig", s.Kubeconfig}, args...)...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		_ = cmd.Run()
	}
	say("pools per node after placement (LocalStorageNodes)")
	kubectl("get", "lsn")
	say("pods and their nodes: the drained node's pods run elsewhere now")
	kubectl("get", "pods", "-n", sim.Namespace, "-o", "custom-columns=POD:.metadata.name,NODE:.spec.nodeName,PHASE:.status.phase")
	say("volumes and their replicas (the HA volume has two, in two zones; the group's two share a node)")
	kubectl("get", "lv", "-o", "custom-columns=VOLUME:.metadata.name,CLAIM:.spec.pvcName,POOL:.spec.poolName,REPLICAS:.spec.config.replicas[*].hostname,STATE:.status.state")
	say("the drain's migrations: every copy verified before the source was removed")
	kubectl("get", "lvmigrate", "-o", "wide")
	say("the pod too big for any pool stays Pending and says why")
	kubectl("get", "pod", "-n", sim.Namespace, "too-big-0", "-o", "jsonpath={.status.conditions[?(@.type=='PodScheduled')].message}{'\\n'}")

	out := filepath.Join(root, "_output", "demo-report.json")
	if err := rep.Write(out); err != nil {
		return err
	}
	chart := strings.TrimSuffix(out, ".json") + ".svg"
	if err := rep.WriteChart(chart); err != nil {
		return err
	}
	say("summary (report %s, chart %s)", out, chart)
	rep.Summary(os.Stdout)
	fmt.Printf("\nThe system is running. In another terminal:\n  export KUBECONFIG=%s PATH=%s:$PATH\n  kubectl get lsn,lv,lvr,lvg,lvmigrate\n  kubectl get pods,pvc -n %s\nComponent logs: %s/*.log\n",
		s.Kubeconfig, assets, sim.Namespace, s.Work)
	if !hold {
		return nil
	}
	fmt.Println("Press Ctrl-C to stop everything.")
	<-ctx.Done()
	say("stopping")
	return nil
}
