package stream_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/publisher/embedded"
	"github.com/dockcast/dockcast/publisher/stream"
	"github.com/dockcast/dockcast/shared/testkit"
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
// publisher's embedded server (file storage, batches of up to
// embedded.DefaultMaxBatch) with PUBLISHER_EMBEDDED_SYNC
// at its default, always (an fsync per write: acknowledged events survive
// a power failure), and at nats-server's own default of 2 minutes.
func BenchmarkWriterBurst(b *testing.B) {
	for _, c := range syncs {
		b.Run(c.name, func(b *testing.B) {
			ns := startEmbedded(b, c.sync)
			evs := synthetic("bench", 0, b.N)
			h := startWriter(b, ns.ClientURL(), nil, func(w *stream.Writer) { w.MaxBatch = ns.MaxBatch() }) // as the publisher runs it
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
			rawPublish(b, ns.ClientURL())
		})
	}
}

// BenchmarkR3 compares the writer with raw asynchronous publishes on a
// 3-node cluster of bin/nats-server processes (default sync_interval, R3
// stream, default batch limit).
func BenchmarkR3(b *testing.B) {
	c := testkit.StartNATSCluster(b, testkit.ClusterOptions{})
	replicated := func(sc *jetstream.StreamConfig) { sc.Replicas = 3 }
	b.Run("writer", func(b *testing.B) {
		h := startWriter(b, c.URLs(), replicated, nil)
		b.ResetTimer()
		start := time.Now()
		h.push(b, synthetic("r3", 0, b.N)...)
		h.drain(b)
		b.StopTimer()
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		b.ReportMetric(0, "ns/op")
		deleteStream(b, h.js)
	})
	b.Run("raw", func(b *testing.B) {
		rawPublish(b, c.URLs(), replicated)
	})
}

func deleteStream(b *testing.B, js jetstream.JetStream) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, "DOCKER_EVENTS"); err != nil {
		b.Fatal(err)
	}
}

// rawPublish times b.N plain asynchronous acknowledged publishes of
// synthetic events into a fresh DOCKER_EVENTS at url.
func rawPublish(b *testing.B, url string, cfg ...func(*jetstream.StreamConfig)) {
	var sc func(*jetstream.StreamConfig)
	if len(cfg) > 0 {
		sc = cfg[0]
	}
	h := startWriter(b, url, sc, nil) // creates the stream; its writer stays idle
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
	deleteStream(b, h.js)
}
