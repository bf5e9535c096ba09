package stream_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/publisher/embedded"
)

// syncs are the two PUBLISHER_EMBEDDED_SYNC settings the benchmarks compare.
var syncs = []struct {
	name string
	sync time.Duration
}{{"sync=always", 0}, {"sync=2m", 2 * time.Minute}}

// startEmbedded starts the publisher's embedded server with sync.
func startEmbedded(b *testing.B, sync time.Duration) *embedded.Server {
	b.Helper()
	ns, err := embedded.Start(embedded.Options{Host: "127.0.0.1", StoreDir: b.TempDir(), Sync: sync})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(ns.Shutdown)
	return ns
}

// BenchmarkWriterBurst measures the events per second the writer stores
// when a burst of b.N synthetic events is already queued, into the
// publisher's embedded server (file storage) with PUBLISHER_EMBEDDED_SYNC
// at its default, always (an fsync per write: acknowledged events survive
// a power failure), and at nats-server's own default of 2 minutes.
func BenchmarkWriterBurst(b *testing.B) {
	for _, c := range syncs {
		b.Run(c.name, func(b *testing.B) {
			ns := startEmbedded(b, c.sync)
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

// BenchmarkRawAsyncPublish is the baseline of BenchmarkWriterBurst: the
// same events published with plain asynchronous acknowledged JetStream
// publishes (up to 4,096 in flight, no ordering or exactly-once
// guarantee) into the same kind of server.
func BenchmarkRawAsyncPublish(b *testing.B) {
	for _, c := range syncs {
		b.Run(c.name, func(b *testing.B) {
			ns := startEmbedded(b, c.sync)
			h := startWriter(b, ns.ClientURL(), nil, nil) // creates the stream; its writer stays idle
			js, err := jetstream.New(h.nc, jetstream.WithPublishAsyncMaxPending(4096))
			if err != nil {
				b.Fatal(err)
			}
			msgs := make([]*nats.Msg, b.N)
			for i, e := range synthetic("raw", 0, b.N) {
				data, _ := e.Marshal()
				msgs[i] = &nats.Msg{Subject: e.Subject(), Data: data, Header: nats.Header{"Nats-Msg-Id": {e.ID}}}
			}
			b.ResetTimer()
			start := time.Now()
			for _, m := range msgs {
				if _, err := js.PublishMsgAsync(m, jetstream.WithStallWait(time.Minute)); err != nil {
					b.Fatal(err)
				}
			}
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(10 * time.Minute):
				b.Fatal("acknowledgements missing after 10 minutes")
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}
