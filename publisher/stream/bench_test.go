package stream_test

import (
	"testing"
	"time"

	"github.com/dockcast/dockcast/publisher/embedded"
)

// BenchmarkWriterBurst measures the events per second the writer stores
// when a burst of b.N synthetic events is already queued, into the
// publisher's embedded server (file storage) with PUBLISHER_EMBEDDED_SYNC
// at its default, always (an fsync per write: acknowledged events survive
// a power failure), and at nats-server's own default of 2 minutes.
func BenchmarkWriterBurst(b *testing.B) {
	for _, c := range []struct {
		name string
		sync time.Duration
	}{{"sync=always", 0}, {"sync=2m", 2 * time.Minute}} {
		b.Run(c.name, func(b *testing.B) {
			ns, err := embedded.Start(embedded.Options{Host: "127.0.0.1", StoreDir: b.TempDir(), Sync: c.sync})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(ns.Shutdown)
			evs := synthetic("bench", 0, b.N)
			h := startWriter(b, ns.ClientURL(), nil, nil)
			b.ResetTimer()
			start := time.Now()
			h.push(b, evs...)
			h.drain(b)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}
