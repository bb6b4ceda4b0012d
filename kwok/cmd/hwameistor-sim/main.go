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

	"k8s.io/apimachinery/pkg/util/wait"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/internal/stack"
)

const usage = `usage:
  hwameistor-sim demo [--hold=true]
  hwameistor-sim run --scenario FILE --report OUT.json [--keep] [--ports 27370]
  hwameistor-sim compare A.json B.json
  hwameistor-sim validate FILE...`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "run", "compare", "validate":
		f := map[string]func([]string) error{"run": run, "compare": compare, "validate": validate}[os.Args[1]]
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

func demo(hold bool) error {
	assets, err := controlPlane()
	if err != nil {
		return err
	}
	s, err := stack.Up(stack.Options{
		Name: "demo", Ports: 12370, Assets: assets,
		Nodes: []string{"demo-0", "demo-1", "demo-2"}, Zones: []string{"zone-a", "zone-b", "zone-c"}, Pools: "HDD=20Gi,NVMe=10Gi",
		Log: func(format string, args ...any) { say(format, args...) },
	})
	if err != nil {
		return err
	}
	defer s.Down()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGPIPE)
	defer stop()

	kubectl := func(args ...string) error {
		cmd := exec.CommandContext(ctx, filepath.Join(assets, "kubectl"), append([]string{"--kubeconfig", s.Kubeconfig}, args...)...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		return cmd.Run()
	}
	apply := func(yaml string) error {
		cmd := exec.CommandContext(ctx, filepath.Join(assets, "kubectl"), "--kubeconfig", s.Kubeconfig, "apply", "-f", "-")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(yaml), os.Stdout, os.Stderr
		return cmd.Run()
	}
	rollout := func(what, sts string) error {
		say("waiting for %s", what)
		return kubectl("rollout", "status", "statefulset/"+sts, "-n", "demo", "--timeout=180s")
	}

	say("waiting for the node agent to report three nodes")
	err = wait.PollUntilContextTimeout(ctx, time.Second, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		list := &v1.LocalStorageNodeList{}
		if err := s.Client.List(ctx, list); err != nil {
			return false, nil
		}
		ready := 0
		for _, n := range list.Items {
			if n.Status.State == v1.StateReady {
				ready++
			}
		}
		return ready == len(s.Nodes), nil
	})
	if err != nil {
		return fmt.Errorf("node agent did not report: %w\n%s", err, s.Logs())
	}
	say("three fake nodes, each with a 20Gi HDD and a 10Gi NVMe pool")
	if err := kubectl("get", "nodes,lsn"); err != nil {
		return err
	}

	say("storage classes and a StatefulSet of 5 pods x 6Gi HDD (pods name no scheduler: the webhook routes them)")
	if err := apply(demoObjects); err != nil {
		return err
	}
	if err := rollout("every pod to run", "db"); err != nil {
		_ = kubectl("get", "pods,pvc", "-n", "demo", "-o", "wide")
		return fmt.Errorf("%w\n%s", err, s.Logs())
	}
	if err := rollout("the HA volume's pod", "queue"); err != nil {
		return fmt.Errorf("%w\n%s", err, s.Logs())
	}
	say("pods, claims and where the scheduler put them (spread: most free space first)")
	if err := kubectl("get", "pods", "-n", "demo", "-o", "custom-columns=POD:.metadata.name,SCHEDULER:.spec.schedulerName,NODE:.spec.nodeName,PHASE:.status.phase"); err != nil {
		return err
	}
	if err := kubectl("get", "pvc", "-n", "demo"); err != nil {
		return err
	}
	say("LocalVolumes (HA: 2 replicas on nodes in different zones), replicas, and the pools after placement")
	if err := kubectl("get", "lv,lvr,lvg"); err != nil {
		return err
	}
	if err := kubectl("get", "lsn"); err != nil {
		return err
	}

	say("a pod asking for 30Gi, more than any pool has: it stays Pending and says why")
	if err := apply(tooBig); err != nil {
		return err
	}
	time.Sleep(3 * time.Second)
	if err := kubectl("get", "pod", "-n", "demo", "too-big", "-o", "jsonpath={.status.conditions[?(@.type=='PodScheduled')].message}{'\\n'}"); err != nil {
		return err
	}

	say("drain and migration are the next step of the project (docs/roadmap.md)")
	fmt.Printf("\nThe system is running. In another terminal:\n  export KUBECONFIG=%s PATH=%s:$PATH\n  kubectl get lsn,lv,lvr,lvg\n  kubectl get pods,pvc -n demo\nComponent logs: %s/*.log\n",
		s.Kubeconfig, assets, s.Work)
	if !hold {
		return nil
	}
	fmt.Println("Press Ctrl-C to stop everything.")
	<-ctx.Done()
	say("stopping")
	return nil
}

const demoObjects = `
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: hwameistor-storage-lvm-hdd}
provisioner: lvm.hwameistor.io
volumeBindingMode: WaitForFirstConsumer
allowVolumeExpansion: true
parameters: {poolClass: HDD, poolType: REGULAR, volumeKind: LVM, replicaNumber: "1", csi.storage.k8s.io/fstype: xfs}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: hwameistor-storage-lvm-nvme-ha}
provisioner: lvm.hwameistor.io
volumeBindingMode: WaitForFirstConsumer
allowVolumeExpansion: true
parameters: {poolClass: NVMe, poolType: REGULAR, volumeKind: LVM, replicaNumber: "2", csi.storage.k8s.io/fstype: xfs}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: demo}
spec:
  replicas: 5
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: db}}
  serviceName: db
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: postgres}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      storageClassName: hwameistor-storage-lvm-hdd
      resources: {requests: {storage: 6Gi}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: queue, namespace: demo}
spec:
  replicas: 1
  selector: {matchLabels: {app: queue}}
  serviceName: queue
  template:
    metadata: {labels: {app: queue}}
    spec:
      containers: [{name: queue, image: rabbitmq}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      storageClassName: hwameistor-storage-lvm-nvme-ha
      resources: {requests: {storage: 4Gi}}
`

const tooBig = `
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: too-big, namespace: demo}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: hwameistor-storage-lvm-hdd
  resources: {requests: {storage: 30Gi}}
---
apiVersion: v1
kind: Pod
metadata: {name: too-big, namespace: demo}
spec:
  containers: [{name: c, image: busybox}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: too-big}}]
`
