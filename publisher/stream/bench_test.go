package stream_test

import (
	"testing"
	"time"

	"github.com/dockcast/dockcast/shared/testkit"
)

// BenchmarkWriterBurst measures the events per second the writer sustains
// when a burst of b.N synthetic events is already queued (embedded
// JetStream, file storage, default window).
func BenchmarkWriterBurst(b *testing.B) {
	ns := testkit.StartJetStream(b)
	evs := synthetic("bench", 0, b.N)
	h := startWriter(b, ns.ClientURL(), 256)
	b.ResetTimer()
	start := time.Now()
	for _, e := range evs {
		if !h.queue.TryPush(e) {
			b.Fatal("queue full")
		}
	}
	h.drain(b)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}
