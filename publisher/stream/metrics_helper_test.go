package stream_test

import (
	"testing"

	"github.com/dockcast/dockcast/publisher/metrics"
)

// testutilValue reads a counter or gauge without labels from the registry.
func testutilValue(t testing.TB, m *metrics.Metrics, name string) float64 {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, mm := range f.GetMetric() {
			if c := mm.GetCounter(); c != nil {
				return c.GetValue()
			}
			if g := mm.GetGauge(); g != nil {
				return g.GetValue()
			}
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}
