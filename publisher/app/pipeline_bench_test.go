package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/publisher/app"
	"github.com/dockcast/dockcast/publisher/queue"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/testkit"
)

// benchAttrs are a docker-compose service container's attributes (the
// payload of a start event is then about 780 bytes, as in fanbench).
var benchAttrs = testkit.ComposeAttributes()

// benchMessage is the i-th event: a start of one of BENCH_CONTAINERS
// containers (default 1,000, as fanbench's PubContainers: the container-
// state keeper writes per container, and no engine has one container per
// event).
func benchMessage(i int) events.Message {
	return testkit.Container("start", fmt.Sprintf("%064x", i%benchContainers+1), "shop-api-1", benchAttrs)
}

var benchContainers = envInt("BENCH_CONTAINERS", 1000)

// benchWindow bounds the events emitted and not yet stored (the engine is
// driven as a closed loop, as fanbench drives it), and the raw publishes
// in flight.
const benchWindow = 4096

// BenchmarkPipelineVsRaw runs, in rounds, raw acknowledged async
// publishes of prebuilt payloads (the pipeline's own payloads, subjects
// and Msg-Ids, built before the clock starts) and the publisher's whole
// pipeline (a stand-in engine's /events read, queued, written in atomic
// batches) into the same bin/nats-server and stream, one after the other,
// and reports each round's rates and the median ratio. BENCH_EVENTS sets
// the events per run (default 100,000), BENCH_ROUNDS the rounds (3),
// BENCH_INPROC_SERVER=1 runs the server in-process (for profiles).
//
//	cd publisher && go test -run '^$' -bench PipelineVsRaw -benchtime 1x ./app/
func BenchmarkPipelineVsRaw(b *testing.B) {
	n := envInt("BENCH_EVENTS", 100000)
	rounds := envInt("BENCH_ROUNDS", 3)
	// BENCH_INPROC_SERVER=1: an embedded server with the same defaults
	// instead of bin/nats-server, so that a CPU profile covers it too.
	url := ""
	if os.Getenv("BENCH_INPROC_SERVER") != "" {
		url = testkit.StartJetStream(b).ClientURL()
	} else {
		url = testkit.StartNATSProcess(b).URL()
	}
	eng := testkit.StartFakeEngine(b, testkit.FakeEngineOptions{Name: "pipebench"})
	var stored atomic.Int64
	p := startPub(b, map[string]string{"NATS_URL": url, "DOCKER_HOST": eng.Host, "LOG_LEVEL": "warn"}, func(a *app.App) {
		a.Stored = func(_ uint64, _ *queue.Item) { stored.Add(1) }
		a.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	p.WaitReady()
	nc, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	b.ResetTimer()
	var ratios []float64
	for r := range rounds {
		raw := rawPublish(b, nc, n, r)
		pipe := pipeline(b, eng, &stored, n, r)
		ratios = append(ratios, pipe/raw)
		b.Logf("round %d: raw %.0f events/s, pipeline %.0f events/s, ratio %.2f", r+1, raw, pipe, pipe/raw)
	}
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "median-ratio")
	b.ReportMetric(ratios[0], "min-ratio")
	b.ReportMetric(ratios[len(ratios)-1], "max-ratio")
	b.ReportMetric(0, "ns/op")
}

// rawPublish publishes n prebuilt events of node "rawbench" (payloads
// like the pipeline's) with at most benchWindow acknowledgements
// outstanding, and returns events per second.
func rawPublish(b *testing.B, nc *nats.Conn, n, round int) float64 {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(benchWindow))
	if err != nil {
		b.Fatal(err)
	}
	msgs := make([]*nats.Msg, n)
	for i := range msgs {
		m := benchMessage(round*n + i)
		m.TimeNano = time.Now().UnixNano()
		e := event.FromDocker("rawbench", m)
		data, err := e.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		msgs[i] = &nats.Msg{Subject: e.Subject(), Data: data, Header: nats.Header{jetstream.MsgIDHeader: []string{e.ID}}}
	}
	futures := make([]jetstream.PubAckFuture, 0, n)
	start := time.Now()
	for _, m := range msgs {
		f, err := js.PublishMsgAsync(m, jetstream.WithStallWait(time.Minute))
		if err != nil {
			b.Fatal(err)
		}
		futures = append(futures, f)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(2 * time.Minute):
		b.Fatalf("%d raw publishes not acknowledged", js.PublishAsyncPending())
	}
	took := time.Since(start)
	for _, f := range futures {
		select {
		case err := <-f.Err():
			b.Fatalf("raw publish: %v", err)
		default:
		}
	}
	return float64(n) / took.Seconds()
}

// pipeline emits n events from the stand-in engine, at most benchWindow
// ahead of what the publisher stored, and returns events per second from
// the first emitted to the last stored.
func pipeline(b *testing.B, eng *testkit.FakeEngine, stored *atomic.Int64, n, round int) float64 {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	base := stored.Load()
	start := time.Now()
	for i := range n {
		for int64(i)-(stored.Load()-base) >= benchWindow {
			if ctx.Err() != nil {
				b.Fatalf("pipeline: %d of %d stored", stored.Load()-base, n)
			}
			time.Sleep(100 * time.Microsecond)
		}
		eng.Emit(benchMessage(round*n + i))
	}
	for stored.Load()-base < int64(n) {
		if ctx.Err() != nil {
			b.Fatalf("pipeline: %d of %d stored", stored.Load()-base, n)
		}
		time.Sleep(200 * time.Microsecond)
	}
	took := time.Since(start)
	if d := eng.Dropped(); d > 0 {
		b.Fatalf("the engine dropped %d events", d)
	}
	return float64(n) / took.Seconds()
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
