// Package perf runs the upstream scheduler_perf harness
// (k8s.io/kubernetes/test/integration/scheduler_perf) with hwameistor's
// plugin registry: pods with WaitForFirstConsumer claims of our class on
// LocalStorageNodes under the hwameistor profile, the same pods under the
// stock profile (VolumeBinding alone), and SchedulingBasic (pods without
// volumes), all in the same run. It is a benchmark, not part of `make test`:
//
//	go test -run x -bench BenchmarkPerfScheduling -benchtime 1x ./test/perf/ \
//	  -args -perf-scheduling-label-filter=performance,short
//
// KUBEBUILDER_ASSETS must name the pinned binaries (for etcd).
package perf

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	_ "k8s.io/component-base/logs/json/register"
	perf "k8s.io/kubernetes/test/integration/scheduler_perf"
	"sigs.k8s.io/yaml"

	"hwameistor.io/local/internal/testenv"
	"hwameistor.io/local/scheduler/registry"
)

func TestMain(m *testing.M) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: export KUBEBUILDER_ASSETS=$(hack/build-control-plane.sh)")
		os.Exit(1)
	}
	// The harness starts etcd from PATH.
	os.Setenv("PATH", assets+string(os.PathListSeparator)+os.Getenv("PATH"))
	if err := perf.InitTests(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	m.Run()
}

// BenchmarkPerfScheduling reports SchedulingThroughput for each workload.
func BenchmarkPerfScheduling(b *testing.B) {
	dir := b.TempDir()
	if err := writeWorkloads(dir); err != nil {
		b.Fatal(err)
	}
	reg := registry.Registry()
	reg[provisionerName] = newProvisioner
	perf.RunBenchmarkPerfScheduling(b, filepath.Join(dir, "performance-config.yaml"), "hwameistor", reg)
}

// writeWorkloads writes the harness configuration, the scheduler profile
// (the shipped one plus the benchmark provisioner) and the object templates.
// The LocalStorageNode CRD is our generated one without its status
// subresource: the harness creates objects in one call and cannot write
// status, so pools are given at creation.
func writeWorkloads(dir string) error {
	root := testenv.RootDir()
	crds := map[string]string{
		"crd-lsn.yaml": "hwameistor.io_localstoragenodes.yaml",
		"crd-lv.yaml":  "hwameistor.io_localvolumes.yaml",
		"crd-lvr.yaml": "hwameistor.io_localvolumereplicas.yaml",
		"crd-lvg.yaml": "hwameistor.io_localvolumegroups.yaml",
	}
	for dst, src := range crds {
		raw, err := os.ReadFile(filepath.Join(root, "manifests", "crds", src))
		if err != nil {
			return err
		}
		// The harness renders every template with html/template, which
		// escapes < and >: validation rules that compare become no-ops in
		// these copies (the benchmark's objects are valid anyway).
		text := comparingRule.ReplaceAllString(string(raw), `rule: "true"`)
		if dst == "crd-lsn.yaml" {
			const status = "    subresources:\n      status: {}\n"
			if !strings.Contains(text, status) {
				return fmt.Errorf("%s: no status subresource to remove", src)
			}
			text = strings.Replace(text, status, "", 1)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), []byte(text), 0o644); err != nil {
			return err
		}
	}
	profile, err := os.ReadFile(filepath.Join(root, "manifests", "scheduler", "scheduler-config.yaml"))
	if err != nil {
		return err
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(profile, &cfg); err != nil {
		return err
	}
	delete(cfg, "leaderElection")
	prof := cfg["profiles"].([]any)[0].(map[string]any)
	pre := prof["plugins"].(map[string]any)["preFilter"].(map[string]any)
	pre["enabled"] = append(pre["enabled"].([]any), map[string]any{"name": provisionerName})
	// scheduler_perf's pods use the default scheduler name.
	prof["schedulerName"] = "default-scheduler"
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "scheduler-config.yaml"), out, 0o644); err != nil {
		return err
	}
	// The harness reads template paths relative to its working directory.
	cfgText := workloads
	for _, name := range []string{"scheduler-config.yaml", "scheduler-config-default.yaml", "pod-with-claim.yaml", "pod-default.yaml", "node.yaml", "lsn.yaml", "storageclass.yaml", "pvc.yaml", "crd-lsn.yaml", "crd-lvr.yaml", "crd-lvg.yaml", "crd-lv.yaml"} {
		cfgText = strings.ReplaceAll(cfgText, " "+name, " "+filepath.Join(dir, name))
	}
	files := map[string]string{
		"performance-config.yaml":       cfgText,
		"scheduler-config-default.yaml": defaultProfile,
		"node.yaml":                     nodeTemplate,
		"lsn.yaml":                      lsnTemplate,
		"storageclass.yaml":             storageClass,
		"pvc.yaml":                      pvcTemplate,
		"pod-with-claim.yaml":           podWithClaim,
		"pod-default.yaml":              podDefault,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.TrimLeft(content, "\n")), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// defaultProfile is the stock profile (VolumeBinding without our plugin)
// plus the benchmark provisioner: the same-run baseline for claims.
const defaultProfile = `
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: default-scheduler
  plugins:
    preFilter:
      enabled: [{name: BenchProvisioner}]
`

var comparingRule = regexp.MustCompile(`rule: [^\n]*[<>][^\n]*`)

// sizes are the node and pod counts of every test case, with the labels
// the harness filters on.
const sizes = `
  workloads:
  - name: 10Nodes_20Pods
    labels: [integration-test, short]
    params: {nodes: 10, pods: 20}
  - name: 100Nodes_200Pods
    labels: [performance, short]
    params: {nodes: 100, pods: 200}
  - name: 500Nodes_1000Pods
    labels: [performance]
    params: {nodes: 500, pods: 1000}
`

// claimsCase is a test case of pods with WaitForFirstConsumer claims on
// LocalStorageNodes, scheduled with the given profile.
func claimsCase(name, schedulerConfig string) string {
	return `
- name: ` + name + `
  schedulerConfigPath: ` + schedulerConfig + `
  defaultPodTemplatePath: pod-with-claim.yaml
  workloadTemplate:
  - {opcode: createAny, templatePath: crd-lsn.yaml}
  - {opcode: createAny, templatePath: crd-lv.yaml}
  - {opcode: createAny, templatePath: crd-lvr.yaml}
  - {opcode: createAny, templatePath: crd-lvg.yaml}
  - {opcode: createAny, templatePath: storageclass.yaml}
  - {opcode: sleep, duration: 3s}
  - {opcode: createNodes, countParam: $nodes, nodeTemplatePath: node.yaml}
  - {opcode: createAny, templatePath: lsn.yaml, countParam: $nodes}
  - {opcode: createNamespaces, prefix: hw, count: 1}
  - {opcode: createAny, templatePath: pvc.yaml, namespace: hw-0, countParam: $pods}
  - {opcode: createPods, countParam: $pods, namespace: hw-0, collectMetrics: true}` + sizes
}

var workloads = claimsCase("LocalStorageWaitForFirstConsumer", "scheduler-config.yaml") +
	claimsCase("DefaultSchedulerWaitForFirstConsumer", "scheduler-config-default.yaml") + `
- name: SchedulingBasic
  defaultPodTemplatePath: pod-default.yaml
  workloadTemplate:
  - {opcode: createNodes, countParam: $nodes, nodeTemplatePath: node.yaml}
  - {opcode: createPods, countParam: $pods, collectMetrics: true}` + sizes

const nodeTemplate = `
apiVersion: v1
kind: Node
metadata:
  name: node-{{.Index}}
  labels:
    topology.kubernetes.io/zone: zone-{{mod .Index 3}}
status:
  capacity: {pods: "110", cpu: "32", memory: 64Gi}
  allocatable: {pods: "110", cpu: "32", memory: 64Gi}
  conditions: [{status: "True", type: Ready}]
  phase: Running
`

// Each node has 100Gi of HDD: 2 pods per node at 6Gi leave room, so the
// benchmark measures the plugin's cost, not rejections.
const lsnTemplate = `
apiVersion: hwameistor.io/v1alpha1
kind: LocalStorageNode
metadata: {name: node-{{.Index}}}
spec: {hostname: node-{{.Index}}, topogoly: {zone: zone-{{mod .Index 3}}}}
status:
  state: Ready
  pools:
    LocalStorage_PoolHDD:
      name: LocalStorage_PoolHDD
      class: HDD
      type: REGULAR
      totalCapacityBytes: 107374182400
      usedCapacityBytes: 0
      freeCapacityBytes: 107374182400
      totalVolumeCount: 1000
      usedVolumeCount: 0
      freeVolumeCount: 1000
`

const storageClass = `
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: hwameistor-storage-lvm-hdd}
provisioner: lvm.hwameistor.io
volumeBindingMode: WaitForFirstConsumer
parameters: {poolClass: HDD}
`

const pvcTemplate = `
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data-{{.Index}}}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: hwameistor-storage-lvm-hdd
  resources: {requests: {storage: 6Gi}}
`

const podWithClaim = `
apiVersion: v1
kind: Pod
metadata: {name: db-{{.Index}}}
spec:
  containers:
  - image: registry.k8s.io/pause:3.10.1
    name: pause
    resources: {requests: {cpu: 100m, memory: 500Mi}}
  volumes:
  - name: data
    persistentVolumeClaim: {claimName: data-{{.Index}}}
`

const podDefault = `
apiVersion: v1
kind: Pod
metadata: {generateName: pod-}
spec:
  containers:
  - image: registry.k8s.io/pause:3.10.1
    name: pause
    resources: {requests: {cpu: 100m, memory: 500Mi}}
`
