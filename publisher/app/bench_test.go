package app_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/dockcast/dockcast/publisher/app"
	"github.com/dockcast/dockcast/publisher/queue"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/testkit"
)

// BenchmarkDockerRunToStream measures the time from starting a container
// (ContainerStart of a created probe, what `docker run` does after create)
// to JetStream acknowledging its start event, i.e. the event being stored
// (run-*), and from the event's own time to being stored (event-*).
func BenchmarkDockerRunToStream(b *testing.B) {
	cli := testkit.Docker(b)
	testkit.EnsureProbeImage(b, cli)
	ns := testkit.StartJetStream(b)
	label := testkit.Unique("bench")
	stored := make(chan event.Event, 1024)
	p := startPub(b, map[string]string{"NATS_URL": ns.ClientURL(), "PUBLISHER_FILTERS": "label=" + labelKey + "=" + label},
		func(a *app.App) {
			a.Stored = func(_ uint64, it *queue.Item) {
				if it.Event.Action == "start" {
					stored <- it.Event
				}
			}
		})
	p.WaitReady()
	ctx := context.Background()
	var lat, fromEvent []time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		id := testkit.RunProbe(b, cli, testkit.Probe{Name: testkit.Unique("dockcast-bench"),
			Labels: map[string]string{labelKey: label}, Args: []string{"sleep", "10ms"}})
		b.StartTimer()
		t0 := time.Now()
		if err := cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
			b.Fatal(err)
		}
		for e := range stored {
			if e.Actor.ID == id {
				fromEvent = append(fromEvent, time.Since(e.Time))
				break
			}
		}
		lat = append(lat, time.Since(t0))
		b.StopTimer()
		_ = cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true})
		b.StartTimer()
	}
	b.StopTimer()
	report := func(d []time.Duration, name string) {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, name+"-p50-ms")
		b.ReportMetric(float64(d[len(d)-1-len(d)/100].Microseconds())/1000, name+"-p99-ms")
	}
	report(lat, "run")
	report(fromEvent, "event")
	b.ReportMetric(0, "ns/op")
}
