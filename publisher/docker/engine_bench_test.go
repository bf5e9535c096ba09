package docker

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/client"

	"github.com/dockcast/dockcast/shared/testkit"
)

// composeAttrs make a start event of about the size of a docker-compose
// container's (780 bytes as the publisher stores it).
var composeAttrs = testkit.ComposeAttributes()

// BenchmarkFakeEngineRead measures the stand-in engine alone: how fast a
// client that does nothing but read takes its /events (b.N events, at
// most 512 emitted ahead of the reader, from the first emitted to the
// last read), with this package's decoder (openEvents) and with the
// Docker client's Events (encoding/json, a channel per event).
//
//	cd publisher && go test -run '^$' -bench FakeEngineRead -benchtime 100000x ./docker/
func BenchmarkFakeEngineRead(b *testing.B) {
	for _, reader := range []string{"openEvents", "client.Events"} {
		b.Run(reader, func(b *testing.B) {
			eng := testkit.StartFakeEngine(b, testkit.FakeEngineOptions{})
			cli, err := client.NewClientWithOpts(client.WithHost(eng.Host), client.WithAPIVersionNegotiation())
			if err != nil {
				b.Fatal(err)
			}
			defer cli.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			if _, err := cli.Ping(ctx); err != nil {
				b.Fatal(err)
			}
			var next func(*events.Message) error
			if reader == "openEvents" {
				s, err := openEvents(ctx, cli, "", events.ListOptions{})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				next = s.Next
			} else {
				msgs, errs := cli.Events(ctx, events.ListOptions{})
				next = func(m *events.Message) error {
					select {
					case *m = <-msgs:
						return nil
					case err := <-errs:
						return err
					}
				}
			}
			testkit.Eventually(b, 30*time.Second, func() error {
				if eng.Subscribers() != 1 {
					return fmt.Errorf("%d subscribers", eng.Subscribers())
				}
				return nil
			})
			msgs := make([]events.Message, b.N)
			for i := range msgs {
				msgs[i] = testkit.Container("start", fmt.Sprintf("%064x", i+1), "shop-api-1", composeAttrs)
			}
			var read atomic.Int64
			b.ResetTimer()
			go func() {
				for i := range msgs {
					for int64(i)-read.Load() >= 512 { // closed loop: the engine never drops
						time.Sleep(50 * time.Microsecond)
					}
					eng.Emit(msgs[i])
				}
			}()
			var m events.Message
			for i := 0; i < b.N; i++ {
				if err := next(&m); err != nil {
					b.Fatal(err)
				}
				read.Add(1)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(eng.Dropped()), "dropped")
		})
	}
}
