package snapshot

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/shared/containerstate"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/filter"
	"github.com/dockcast/dockcast/shared/natsutil"
	"github.com/dockcast/dockcast/shared/testkit"
)

// fill stores n container creates of node in the stream and the bucket
// entries of the first `kept` of them with a watermark at the last kept
// one (a bucket that lags the stream by n-kept events).
func fill(tb testing.TB, js jetstream.JetStream, node string, n, kept int) {
	tb.Helper()
	ctx := context.Background()
	st, err := js.Stream(ctx, "DOCKER_EVENTS")
	if err != nil {
		tb.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	kv, err := containerstate.EnsureBucket(ctx, js, "DOCKER_EVENTS", 1)
	if err != nil {
		tb.Fatal(err)
	}
	var set containerstate.Set
	var applied uint64
	for i := range n {
		e := event.New(node, "container", "create", "", fmt.Sprintf("c%05d", i),
			map[string]string{"name": fmt.Sprintf("svc-%d", i), "image": "img:1", "env": []string{"prod", "dev"}[i%2]}, time.Unix(1000, int64(i)))
		data, _ := e.Marshal()
		ack, err := js.Publish(ctx, e.Subject(), data)
		if err != nil {
			tb.Fatal(err)
		}
		if i < kept {
			for _, c := range set.Apply(ack.Sequence, &e) {
				v, _ := c.State.Marshal()
				if _, err := kv.Put(ctx, containerstate.Key(node, c.ID), v); err != nil {
					tb.Fatal(err)
				}
			}
			applied = ack.Sequence
		}
	}
	w, _ := json.Marshal(containerstate.Applied{Seq: applied, Epoch: strconv.FormatInt(info.Created.UnixNano(), 10)})
	if _, err := kv.Put(ctx, containerstate.AppliedKey(node), w); err != nil {
		tb.Fatal(err)
	}
}

func newSource(tb testing.TB) (*Source, jetstream.JetStream) {
	ns := testkit.StartJetStream(tb)
	_, js := testkit.Connect(tb, ns.ClientURL())
	if _, err := js.CreateStream(context.Background(), natsutil.StreamConfig("DOCKER_EVENTS", time.Hour, 1<<30, 1)); err != nil {
		tb.Fatal(err)
	}
	return &Source{JS: js, Stream: "DOCKER_EVENTS", Log: slog.New(slog.DiscardHandler)}, js
}

// A bucket that lags the stream: Take folds the rest, and selects by the
// filter's container terms only.
func TestTakeFoldsWhatTheBucketLacks(t *testing.T) {
	t.Parallel()
	src, js := newSource(t)
	fill(t, js, "n1", 50, 30)
	sel, err := Selection(mustFilter(t, "label=env=prod", "event=die", "type=image"))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := src.Take(context.Background(), sel, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.States) != 25 || snap.Seq != 50 {
		t.Fatalf("%d states at %d, want 25 (env=prod of 50) at 50", len(snap.States), snap.Seq)
	}
	frames, err := snap.Frames()
	if err != nil || len(frames) != 26 || string(frames[25]) != `{"type":"snapshot_end","seq":50}` {
		t.Fatalf("frames %d %v: last %s", len(frames), err, frames[len(frames)-1])
	}
	none, err := src.Take(context.Background(), mustFilter(t, "node=n2"), nil)
	if err != nil || len(none.States) != 0 {
		t.Fatalf("node=n2: %d states, %v", len(none.States), err)
	}
}

func mustFilter(t testing.TB, terms ...string) filter.Filter {
	f, err := filter.Parse(terms, filter.GatewayKeys)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// BenchmarkTake: a snapshot of 1,000 containers, the bucket 100 events
// behind the stream.
func BenchmarkTake(b *testing.B) {
	src, js := newSource(b)
	fill(b, js, "n1", 1000, 900)
	b.ResetTimer()
	for range b.N {
		snap, err := src.Take(context.Background(), filter.Filter{}, nil)
		if err != nil || len(snap.States) != 1000 {
			b.Fatal(len(snap.States), err)
		}
	}
}
