package app_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dockcast/dockcast/gateway/app"
	"github.com/dockcast/dockcast/shared/testkit"
)

// BenchmarkFanout publishes b.N events to a gateway holding 200 live
// WebSocket clients (half of them match) and waits until every matching
// client has every event; it reports frames delivered per second.
func BenchmarkFanout(b *testing.B) {
	ns := testkit.StartJetStream(b)
	_, js := testkit.Connect(b, ns.ClientURL())
	newStream(b, js, "FANOUT", 0)
	g := startGateway(b, ns.ClientURL(), "FANOUT", map[string]string{"LOG_LEVEL": "warn", "GATEWAY_MAX_CLIENTS_PER_IP": "1000"}, app.Options{})
	const clients = 200
	var got atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		filter := "label=team=a"
		if i%2 == 1 {
			filter = "label=team=b"
		}
		c := dial(b, g.wsURL(q("filter", filter)), nil)
		if f := read(b, c, 30*time.Second); f.Type != "live" {
			b.Fatalf("first frame %+v", f)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
				got.Add(1)
			}
		}()
	}
	evs := make([]published, b.N)
	for i := range evs {
		evs[i].ev = mkEvent("bench", "start", map[string]string{"team": "a"})
	}
	b.ResetTimer()
	start := time.Now()
	for i := range evs {
		publish(b, js, evs[i].ev)
	}
	want := int64(b.N * clients / 2)
	testkit.Eventually(b, 5*time.Minute, func() error {
		if got.Load() < want {
			return errorString("not all delivered")
		}
		return nil
	})
	b.ReportMetric(float64(want)/time.Since(start).Seconds(), "frames/s")
	b.StopTimer()
	g.stop(b)
	wg.Wait()
}
