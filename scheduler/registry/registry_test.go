package registry_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/kubernetes/cmd/kube-scheduler/app/options"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/apis/config/validation"
	internalcache "k8s.io/kubernetes/pkg/scheduler/backend/cache"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	"k8s.io/kubernetes/pkg/scheduler/metrics"

	"hwameistor.io/local/plugins/localstorage"
	"hwameistor.io/local/plugins/localstorage/apis/config"
	"hwameistor.io/local/scheduler/registry"
)

const manifest = "../../manifests/scheduler/scheduler-config.yaml"

func loadManifest(t *testing.T) *schedconfig.KubeSchedulerConfiguration {
	t.Helper()
	logger, _ := ktesting.NewTestContext(t)
	cfg, err := options.LoadConfigFromFile(logger, manifest)
	if err != nil {
		t.Fatalf("loading %s: %v", manifest, err)
	}
	if err := validation.ValidateKubeSchedulerConfiguration(cfg); err != nil {
		t.Fatalf("validating %s: %v", manifest, err)
	}
	return cfg
}

func profile(t *testing.T, cfg *schedconfig.KubeSchedulerConfiguration, name string) *schedconfig.KubeSchedulerProfile {
	t.Helper()
	for i := range cfg.Profiles {
		if cfg.Profiles[i].SchedulerName == name {
			return &cfg.Profiles[i]
		}
	}
	t.Fatalf("no profile %q", name)
	return nil
}

func names(ps []schedconfig.Plugin) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

func localStorageArgs(t *testing.T, p *schedconfig.KubeSchedulerProfile) *config.LocalStorageArgs {
	t.Helper()
	for _, pc := range p.PluginConfig {
		if pc.Name == localstorage.Name {
			args, ok := pc.Args.(*config.LocalStorageArgs)
			if !ok {
				t.Fatalf("LocalStorage args decoded to %T, want *config.LocalStorageArgs", pc.Args)
			}
			return args
		}
	}
	t.Fatal("no pluginConfig for LocalStorage")
	return nil
}

func TestManifestLoadsAndValidates(t *testing.T) {
	cfg := loadManifest(t)
	p := profile(t, cfg, "hwameistor-scheduler")

	preBind := names(p.Plugins.PreBind.Enabled)
	ls, vb := slices.Index(preBind, localstorage.Name), slices.Index(preBind, "VolumeBinding")
	if ls < 0 || vb < 0 || ls > vb {
		t.Errorf("preBind enabled %v: want LocalStorage before VolumeBinding", preBind)
	}
	if !slices.Contains(names(p.Plugins.PreBind.Disabled), "VolumeBinding") {
		t.Errorf("preBind disabled %v: VolumeBinding must be disabled from the defaults to be re-enabled after LocalStorage", names(p.Plugins.PreBind.Disabled))
	}
	for ep, set := range map[string]schedconfig.PluginSet{
		"preFilter": p.Plugins.PreFilter, "filter": p.Plugins.Filter, "preScore": p.Plugins.PreScore,
		"score": p.Plugins.Score, "reserve": p.Plugins.Reserve,
	} {
		if !slices.Contains(names(set.Enabled), localstorage.Name) {
			t.Errorf("%s does not enable LocalStorage: %v", ep, names(set.Enabled))
		}
	}

	want := &config.LocalStorageArgs{
		ScoringStrategy:       config.ScoringStrategy{Type: config.Spread},
		PoolClassWeights:      map[string]int64{"HDD": 1, "SSD": 1, "NVMe": 1},
		ReservationTTLSeconds: 300,
	}
	if diff := cmp.Diff(want, localStorageArgs(t, p)); diff != "" {
		t.Errorf("LocalStorage args (-want +got):\n%s", diff)
	}
}

// TestManifestFrameworkOrder builds the profile's framework with every
// in-tree plugin and the real LocalStorage (its informers served by a fake
// API server), and checks the order the framework will actually run PreBind
// in: MultiPoint expansion reorders plugins, so the config alone does not
// prove it.
func TestManifestFrameworkOrder(t *testing.T) {
	cfg := loadManifest(t)
	fw := buildFramework(t, profile(t, cfg, "hwameistor-scheduler"))
	preBind := names(fw.ListPlugins().PreBind.Enabled)
	t.Logf("PreBind order: %v", preBind)
	ls, vb := slices.Index(preBind, localstorage.Name), slices.Index(preBind, "VolumeBinding")
	if ls < 0 || vb < 0 || ls > vb {
		t.Errorf("the framework runs PreBind as %v: want LocalStorage before VolumeBinding", preBind)
	}
	for ep, set := range map[string]*schedconfig.PluginSet{
		"preFilter": &fw.ListPlugins().PreFilter, "filter": &fw.ListPlugins().Filter,
		"score": &fw.ListPlugins().Score, "reserve": &fw.ListPlugins().Reserve,
	} {
		if !slices.Contains(names(set.Enabled), localstorage.Name) {
			t.Errorf("the framework does not run LocalStorage at %s: %v", ep, names(set.Enabled))
		}
	}
	for _, sp := range fw.ListPlugins().Score.Enabled {
		if sp.Name == localstorage.Name && sp.Weight != 2 {
			t.Errorf("LocalStorage score weight %d, want 2 as configured", sp.Weight)
		}
	}

	// Why the manifest disables VolumeBinding and enables it again: without
	// that, the default (MultiPoint) VolumeBinding runs first.
	naive := profile(t, cfg, "hwameistor-scheduler").DeepCopy()
	naive.Plugins.PreBind = schedconfig.PluginSet{Enabled: []schedconfig.Plugin{{Name: localstorage.Name}}}
	preBind = names(buildFramework(t, naive).ListPlugins().PreBind.Enabled)
	if slices.Index(preBind, localstorage.Name) < slices.Index(preBind, "VolumeBinding") {
		t.Errorf("without the reordering PreBind runs %v; this test no longer shows why the manifest reorders", preBind)
	}
}

func buildFramework(t *testing.T, p *schedconfig.KubeSchedulerProfile) framework.Framework {
	t.Helper()
	apiserver := httptest.NewServer(http.HandlerFunc(serveEmptyHwameistorAPI))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		apiserver.Close()
	})
	metrics.Register() // the framework instruments plugins
	r := plugins.NewInTreeRegistry()
	if err := r.Merge(registry.Registry()); err != nil {
		t.Fatal(err)
	}
	client := fake.NewClientset()
	fw, err := frameworkruntime.NewFramework(ctx, r, p,
		frameworkruntime.WithClientSet(client),
		frameworkruntime.WithKubeConfig(&rest.Config{Host: apiserver.URL}),
		frameworkruntime.WithInformerFactory(informers.NewSharedInformerFactory(client, 0)),
		frameworkruntime.WithSnapshotSharedLister(internalcache.NewEmptySnapshot()),
	)
	if err != nil {
		t.Fatalf("building the framework: %v", err)
	}
	return fw
}

// serveEmptyHwameistorAPI answers the plugin's informers: empty lists, and
// watches that stay open until the client goes away.
func serveEmptyHwameistorAPI(w http.ResponseWriter, r *http.Request) {
	const prefix = "/apis/hwameistor.io/v1alpha1/"
	kinds := map[string]string{
		"localstoragenodes": "LocalStorageNodeList", "localvolumes": "LocalVolumeList",
		"localvolumereplicas": "LocalVolumeReplicaList", "localvolumegroups": "LocalVolumeGroupList",
	}
	kind, ok := kinds[strings.TrimPrefix(r.URL.Path, prefix)]
	if !ok || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Query().Get("watch") == "true" {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		return
	}
	fmt.Fprintf(w, `{"apiVersion":"hwameistor.io/v1alpha1","kind":%q,"metadata":{"resourceVersion":"1"},"items":[]}`, kind)
}

func writeConfig(t *testing.T, args string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	data := `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
leaderElection:
  leaderElect: false
profiles:
- schedulerName: hwameistor-scheduler
  plugins:
    multiPoint:
      enabled:
      - name: LocalStorage
  pluginConfig:
  - name: LocalStorage
    args:
` + args
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestInvalidArgsNameTheField(t *testing.T) {
	logger, _ := ktesting.NewTestContext(t)
	cfg, err := options.LoadConfigFromFile(logger, writeConfig(t, "      scoringStrategy: {type: wrong}\n"))
	if err != nil {
		t.Fatalf("a wrong value must load (the plugin validates it): %v", err)
	}
	if err := validation.ValidateKubeSchedulerConfiguration(cfg); err != nil {
		t.Fatalf("the scheduler's validation does not know these args: %v", err)
	}
	args := localStorageArgs(t, profile(t, cfg, "hwameistor-scheduler"))
	if args.ScoringStrategy.Type != "wrong" || args.ReservationTTLSeconds != 300 {
		t.Errorf("decoded args %+v", args)
	}
	// New validates before it uses the handle.
	_, err = localstorage.New(context.Background(), args, nil)
	if err == nil || !strings.Contains(err.Error(), "scoringStrategy.type") || !strings.Contains(err.Error(), `"wrong"`) {
		t.Errorf("New: %v, want an error naming scoringStrategy.type", err)
	}
}

func TestUnknownArgsFieldFailsToLoad(t *testing.T) {
	logger, _ := ktesting.NewTestContext(t)
	_, err := options.LoadConfigFromFile(logger, writeConfig(t, "      scoringStrategi: {type: binpack}\n"))
	if err == nil {
		t.Fatal("a misspelt args field loaded; strict decoding must reject it")
	}
	if !strings.Contains(err.Error(), `unknown field "scoringStrategi"`) || !strings.Contains(err.Error(), "LocalStorage") {
		t.Errorf("error %q does not name the field and the plugin", err)
	}
}

func TestRegistry(t *testing.T) {
	r := registry.Registry()
	var got []string
	for name, factory := range r {
		if factory == nil {
			t.Errorf("%s has no factory", name)
		}
		got = append(got, name)
	}
	slices.Sort(got)
	if diff := cmp.Diff([]string{"CapacityScheduling", "Coscheduling", "LocalStorage"}, got); diff != "" {
		t.Errorf("Registry (-want +got):\n%s", diff)
	}
	if n := len(registry.Options()); n != len(r) {
		t.Errorf("Options() has %d options, want one per plugin (%d)", n, len(r))
	}
	// The in-tree registry does not already hold these names.
	if err := plugins.NewInTreeRegistry().Merge(r); err != nil {
		t.Errorf("merging with the in-tree registry: %v", err)
	}
}
