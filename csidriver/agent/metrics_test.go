package agent

import (
	"context"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/csidriver/backend"
	_ "hwameistor.io/local/csidriver/backend/lvm" // its metrics, served by the same binary
	"hwameistor.io/local/internal/testenv"
)

// poolsBackend reports the pools a test sets; nothing else is called.
type poolsBackend struct {
	backend.Backend
	mu    sync.Mutex
	pools []backend.Pool
}

func (b *poolsBackend) set(pools ...backend.Pool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pools = pools
}

func (b *poolsBackend) Pools(context.Context) ([]backend.Pool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pools, nil
}

// TestPoolMetrics: each report sets the node's gauges per pool class, and a
// class the node lost drops its series. The /metrics of the node binary
// (controller-runtime's registry) carries them and lvm's.
func TestPoolMetrics(t *testing.T) {
	be := &poolsBackend{}
	a := &Agent{Client: env.Client, Backends: map[string]backend.Backend{"metrics-node": be}}
	hdd := backend.Pool{Name: v1.PoolNameHDD, Class: v1.PoolClassHDD, TotalBytes: 100 * gi, FreeBytes: 40 * gi, VolumeCount: 3, VolumeCountLimit: 1000}
	ssd := backend.Pool{Name: v1.PoolNameSSD, Class: v1.PoolClassSSD, TotalBytes: 50 * gi, FreeBytes: 50 * gi, VolumeCountLimit: 200}
	be.set(hdd, ssd)
	t.Cleanup(func() {
		_ = env.Client.Delete(context.Background(), &v1.LocalStorageNode{ObjectMeta: metav1.ObjectMeta{Name: "metrics-node"}})
	})
	if err := a.ReportNode(context.Background(), "metrics-node"); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"total/HDD": float64(100 * gi), "free/HDD": float64(40 * gi), "volumes/HDD": 3, "limit/HDD": 1000,
		"total/SSD": float64(50 * gi), "free/SSD": float64(50 * gi), "volumes/SSD": 0, "limit/SSD": 200,
	}
	gauges := map[string]*prometheus.GaugeVec{"total": poolTotalBytes, "free": poolFreeBytes, "volumes": poolVolumes, "limit": poolVolumeLimit}
	check := func() {
		t.Helper()
		for key, w := range want {
			kind, class, _ := strings.Cut(key, "/")
			if got := testutil.ToFloat64(gauges[kind].WithLabelValues("metrics-node", class)); got != w {
				t.Errorf("pool %s of class %s = %v, want %v", kind, class, got, w)
			}
		}
	}
	check()

	// An allocation later, and the SSD pool gone.
	hdd.FreeBytes, hdd.VolumeCount = 34*gi, 4
	be.set(hdd)
	if err := a.ReportNode(context.Background(), "metrics-node"); err != nil {
		t.Fatal(err)
	}
	want = map[string]float64{"total/HDD": float64(100 * gi), "free/HDD": float64(34 * gi), "volumes/HDD": 4, "limit/HDD": 1000}
	check()
	for _, g := range poolGauges {
		if got := classesOf(t, g, "metrics-node"); got != "HDD" {
			t.Errorf("series of the classes %q after the SSD pool went, want HDD only", got)
		}
	}

	body := testenv.Scrape(t, promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	for _, line := range []string{
		`hwameistor_node_pool_total_bytes{class="HDD",node="metrics-node"} 1.073741824e+11`,
		`hwameistor_node_pool_free_bytes{class="HDD",node="metrics-node"}`,
		`hwameistor_node_pool_volumes{class="HDD",node="metrics-node"} 4`,
		`hwameistor_node_pool_volume_limit{class="HDD",node="metrics-node"} 1000`,
		`hwameistor_node_lvm_command_duration_seconds_count{command="lvcreate"}`,
		`hwameistor_node_lvm_command_errors_total{command="lvcreate"}`,
	} {
		if !strings.Contains(body, "\n"+line) {
			t.Errorf("/metrics has no %s", line)
		}
	}
}

// classesOf lists, sorted and comma-separated, the class label of g's
// series for node.
func classesOf(t *testing.T, g *prometheus.GaugeVec, node string) string {
	t.Helper()
	ch := make(chan prometheus.Metric, 64)
	go func() {
		g.Collect(ch)
		close(ch)
	}()
	var classes []string
	for m := range ch {
		d := &dto.Metric{}
		if err := m.Write(d); err != nil {
			t.Fatal(err)
		}
		labels := map[string]string{}
		for _, l := range d.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["node"] == node {
			classes = append(classes, labels["class"])
		}
	}
	sort.Strings(classes)
	return strings.Join(classes, ",")
}
