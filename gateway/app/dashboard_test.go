package app_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dockcast/dockcast/gateway/metrics"
	"github.com/dockcast/dockcast/shared/testkit"
)

// dashboardMetrics returns every metric name the Grafana dashboard's
// queries (and variables) use.
func dashboardMetrics(t testing.TB) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testkit.RepoRoot(t), "deploy", "grafana", "dockcast.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("deploy/grafana/dockcast.json: %v", err)
	}
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || k == "definition") {
					exprs = append(exprs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	name := regexp.MustCompile(`\b(?:dockcast|go|process)_[a-z0-9_]+`)
	seen := map[string]bool{}
	for _, e := range exprs {
		for _, n := range name.FindAllString(e, -1) {
			seen[n] = true
		}
	}
	var out []string
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	if len(out) < 20 {
		t.Fatalf("the dashboard queries only %d metrics: %v", len(out), out)
	}
	return out
}

// gatewayMetricNames are the names the gateway's metrics package
// registers, also those of vectors no sample was recorded for yet.
func gatewayMetricNames(t testing.TB) map[string]bool {
	t.Helper()
	m := metrics.New()
	names := map[string]bool{}
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	v := reflect.ValueOf(m).Elem()
	for i := range v.NumField() {
		c, ok := v.Field(i).Interface().(prometheus.Collector)
		if !ok || v.Field(i).IsNil() {
			continue
		}
		ch := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			if mm := fq.FindStringSubmatch(d.String()); mm != nil {
				names[mm[1]] = true
			}
		}
	}
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		names[f.GetName()] = true
	}
	return names
}

// exposed are the metric names of Prometheus text expositions.
func exposed(bodies ...string) map[string]bool {
	names := map[string]bool{}
	for _, b := range bodies {
		for _, l := range strings.Split(b, "\n") {
			if rest, ok := strings.CutPrefix(l, "# TYPE "); ok {
				n, _, _ := strings.Cut(rest, " ")
				names[n] = true
			}
		}
	}
	return names
}

func known(names map[string]bool, n string) bool {
	for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(n, suffix); ok && names[base] {
			return true
		}
	}
	return false
}

// checkDashboard: every metric the dashboard queries is the gateway's
// (registered by its metrics package, or in its exposition) or in the
// publisher's exposition.
func checkDashboard(t *testing.T, gatewayBody, publisherBody string) {
	t.Helper()
	gw := gatewayMetricNames(t)
	for n := range exposed(gatewayBody) {
		gw[n] = true
	}
	pub := exposed(publisherBody)
	for _, n := range dashboardMetrics(t) {
		if !known(gw, n) && !known(pub, n) {
			t.Errorf("the dashboard queries %s, which neither the gateway nor the publisher exports", n)
		}
	}
}

// TestDashboardGatewayMetrics: every gateway metric the Grafana dashboard
// queries (all but the publisher's) is one the gateway registers.
func TestDashboardGatewayMetrics(t *testing.T) {
	t.Parallel()
	gw := gatewayMetricNames(t)
	for _, n := range dashboardMetrics(t) {
		if strings.HasPrefix(n, "dockcast_publisher_") {
			continue
		}
		if !known(gw, n) {
			t.Errorf("the dashboard queries %s, which the gateway does not export", n)
		}
	}
	for _, n := range []string{"dockcast_events_total", "dockcast_container_ooms_total", "dockcast_container_nonzero_exits_total",
		"dockcast_container_restarts_total", "dockcast_container_health_status_changes_total"} {
		if !gw[n] {
			t.Errorf("the gateway does not register %s", n)
		}
	}
}
