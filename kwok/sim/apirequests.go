package sim

import (
	"bytes"
	"context"
	"fmt"

	"github.com/prometheus/common/expfmt"
	"k8s.io/client-go/kubernetes"
)

// apiRequests reads the apiserver's apiserver_request_total counters and
// sums them by "verb resource[/subresource]" (all codes and scopes): the
// difference of two readings says which calls loaded the apiserver.
func apiRequests(ctx context.Context, cs kubernetes.Interface) (map[string]float64, error) {
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the apiserver's metrics: %w", err)
	}
	var p expfmt.TextParser
	families, err := p.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parsing the apiserver's metrics: %w", err)
	}
	out := map[string]float64{}
	f, ok := families["apiserver_request_total"]
	if !ok {
		return out, nil
	}
	for _, m := range f.GetMetric() {
		var verb, res, sub string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "verb":
				verb = l.GetValue()
			case "resource":
				res = l.GetValue()
			case "subresource":
				sub = l.GetValue()
			}
		}
		key := verb + " " + res
		if sub != "" {
			key += "/" + sub
		}
		out[key] += m.GetCounter().GetValue()
	}
	return out, nil
}

// requestsSince is after minus before, dropping keys that did not grow.
func requestsSince(before, after map[string]float64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range after {
		if d := int64(v - before[k]); d > 0 {
			out[k] = d
		}
	}
	return out
}
