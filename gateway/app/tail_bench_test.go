package app_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/gateway/app"
	"github.com/dockcast/dockcast/gateway/dockerapi"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/testkit"
)

// BenchmarkDockerEventsUntilOnly: `docker events --until T` (no --since)
// over a stream of 200,000 events of one busy node and 20 of a quiet one
// stored first: the answer is the busy node's last 256 and the quiet
// node's 20, whatever lies before.
//
//	cd gateway && go test -run '^$' -bench DockerEventsUntilOnly -benchtime 5x ./app/
func BenchmarkDockerEventsUntilOnly(b *testing.B) {
	ns := testkit.StartJetStream(b)
	_, js := testkit.Connect(b, ns.ClientURL())
	newStream(b, js, "BTAIL", 0)
	busy, quiet := testkit.Unique("busy"), testkit.Unique("quiet")
	base := time.Now().Add(-time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const n = 200_000
	var futs []jetstream.PubAckFuture
	for i := range n + 20 {
		node := busy
		if i < 20 {
			node = quiet
		}
		ev := event.New(node, "container", "start", "", fmt.Sprintf("%064d", i), map[string]string{"name": fmt.Sprint("c", i), "image": "web:1"}, base.Add(time.Duration(i)*time.Millisecond))
		data, err := ev.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		f, err := js.PublishAsync(ev.Subject(), data)
		if err != nil {
			b.Fatal(err)
		}
		futs = append(futs, f)
		if len(futs) == 4096 {
			testkit.AwaitAcks(ctx, b, futs)
			futs = futs[:0]
		}
	}
	testkit.AwaitAcks(ctx, b, futs)
	g := startGateway(b, ns.ClientURL(), "BTAIL", nil, app.Options{})
	cli := sdkFor(b, g, "")
	until := event.SinceArg(base.Add(time.Hour).UnixNano())
	b.ResetTimer()
	for range b.N {
		got, err := sdkEvents(b, cli, events.ListOptions{Until: until})
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != dockerapi.EngineMemory+20 {
			b.Fatalf("%d events, want %d", len(got), dockerapi.EngineMemory+20)
		}
	}
}
