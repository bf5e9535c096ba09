package stream_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/publisher/metrics"
	"github.com/dockcast/dockcast/publisher/queue"
	"github.com/dockcast/dockcast/publisher/stream"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/natsutil"
	"github.com/dockcast/dockcast/shared/testkit"
)

// synthetic returns n distinct events of node, in time order.
func synthetic(node string, from, n int) []event.Event {
	base := time.Unix(1_700_000_000, 0)
	out := make([]event.Event, n)
	for i := range out {
		out[i] = event.New(node, "container", "start", "", fmt.Sprintf("c%08d", from+i),
			map[string]string{"name": "x"}, base.Add(time.Duration(from+i)*time.Microsecond))
	}
	return out
}

type harness struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	queue  *queue.Queue
	m      *metrics.Metrics
	done   chan error
	w      *stream.Writer
	mu     sync.Mutex
	stored map[string]uint64 // event id -> stream sequence, from Writer.Stored
}

// startWriter runs a writer into the stream DOCKER_EVENTS at url; cfg
// changes the stream's configuration and tune the writer before it runs
// (either may be nil). The stream is created as the publisher creates it
// (natsutil.StreamConfig) unless cfg says otherwise.
func startWriter(t testing.TB, url string, cfg func(*jetstream.StreamConfig), tune func(*stream.Writer)) *harness {
	t.Helper()
	nc, err := natsutil.Connect(natsutil.Options{URL: url, Name: "writer-test", Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sc := natsutil.StreamConfig("DOCKER_EVENTS", time.Hour, 1<<30, 1)
	if cfg != nil {
		cfg(&sc)
	}
	if _, err := js.CreateStream(ctx, sc); err != nil {
		t.Fatal(err)
	}
	h := &harness{nc: nc, js: js, queue: queue.New(1 << 30), done: make(chan error, 1), stored: map[string]uint64{}}
	h.m = metrics.New(h.queue)
	h.w = &stream.Writer{Conn: nc, Stream: "DOCKER_EVENTS", Queue: h.queue, Metrics: h.m, Log: testkit.Logger(t),
		AckTimeout: time.Second, RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		Stored: func(seq uint64, it *queue.Item) {
			h.mu.Lock()
			h.stored[it.Event.ID] = seq
			h.mu.Unlock()
		}}
	if tune != nil {
		tune(h.w)
	}
	wctx, wcancel := context.WithCancel(context.Background())
	go func() { h.done <- h.w.Run(wctx) }()
	t.Cleanup(wcancel)
	return h
}

// push queues events, waiting for room.
func (h *harness) push(t testing.TB, evs ...event.Event) {
	t.Helper()
	for _, e := range evs {
		it, err := queue.NewItem(e)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.queue.Push(context.Background(), it); err != nil {
			t.Fatal(err)
		}
	}
}

// drain closes the queue and waits for the writer to store everything.
func (h *harness) drain(t testing.TB) {
	t.Helper()
	h.queue.Close()
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatalf("writer: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("writer did not drain in 2 minutes: %v", h.w.Err())
	}
}

// checkStream asserts the stream holds exactly want, in order, each with
// its id as Nats-Msg-Id, and returns the stored events.
func checkStream(t *testing.T, js jetstream.JetStream, want []event.Event) []event.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := js.Stream(ctx, "DOCKER_EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	info, _ := s.Info(ctx)
	if info.State.Msgs != uint64(len(want)) {
		t.Fatalf("stream has %d messages, want %d", info.State.Msgs, len(want))
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var got []event.Event
	for len(got) < len(want) {
		batch, err := c.Fetch(500, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			e, err := event.Decode(m.Data())
			if err != nil {
				t.Fatal(err)
			}
			i := len(got)
			if e.ID != want[i].ID || m.Headers().Get("Nats-Msg-Id") != e.ID {
				t.Fatalf("message %d is %s %s, want %s", i, e.Type+"."+e.Action, e.Actor.ID, want[i].Actor.ID)
			}
			got = append(got, e)
			n++
		}
		if n == 0 {
			t.Fatalf("fetch returned nothing after %d of %d", len(got), len(want))
		}
	}
	return got
}

func TestWriterInOrderInBatches(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	h := startWriter(t, ns.ClientURL(), nil, nil)
	evs := synthetic("w", 0, 3000)
	h.push(t, evs...)
	h.drain(t)
	checkStream(t, h.js, evs)
	if got := testutilValue(t, h.m, "dockcast_publisher_batches_total"); got < 3 || got > 1000 {
		t.Errorf("batches_total %v for 3000 events: not batched", got)
	}
	// Stored reports each event with its stream sequence.
	for i, e := range evs {
		if seq := h.stored[e.ID]; seq != uint64(i+1) {
			t.Fatalf("Stored gave event %d sequence %d, the stream %d", i, seq, i+1)
		}
	}
}

// The same event queued twice (within the duplicate window) is stored once.
func TestWriterDuplicatesCounted(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	h := startWriter(t, ns.ClientURL(), nil, nil)
	evs := synthetic("d", 0, 50)
	h.push(t, append(evs, evs[:10]...)...)
	h.drain(t)
	checkStream(t, h.js, evs)
	if got := testutilValue(t, h.m, "dockcast_publisher_duplicates_total"); got != 10 {
		t.Fatalf("duplicates_total %v, want 10", got)
	}
}

// NATS killed and restarted while events flow: every event once, in order.
func TestWriterSurvivesNATSRestart(t *testing.T) {
	t.Parallel()
	np := testkit.StartNATSProcess(t)
	h := startWriter(t, np.URL(), nil, nil)
	var evs []event.Event
	feed := func(from, n int) {
		batch := synthetic("r", from, n)
		evs = append(evs, batch...)
		h.push(t, batch...)
	}
	feed(0, 2000)
	np.Stop(syscall.SIGKILL)
	feed(2000, 2000)
	testkit.Eventually(t, 30*time.Second, func() error {
		if h.w.Err() == nil {
			return errors.New("the writer reports no failure while NATS is down")
		}
		return nil
	})
	np.Start()
	feed(4000, 2000)
	np.Stop(syscall.SIGTERM)
	np.Start()
	feed(6000, 1000)
	h.drain(t)
	_, js := testkit.Connect(t, np.URL())
	checkStream(t, js, evs)
	if err := h.w.Err(); err != nil {
		t.Errorf("Err after a drain: %v", err)
	}
}

// The stream refuses event k (larger than its max_msg_size, though well
// under max_payload) while the events after it are fine: k is stored as a
// dockcast.lost stand-in in k's place, and nothing after k is ever stored
// before it. (Before issue 7 this test asserted that k landed after
// k+1…k+4, counted as an order violation.)
func TestWriterKeepsOrderWhenTheStreamRefusesAnEvent(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	h := startWriter(t, ns.ClientURL(), func(c *jetstream.StreamConfig) { c.MaxMsgSize = 2048 }, nil)
	evs := synthetic("refuse", 0, 10)
	const k = 3
	evs[k].Actor.Attributes["blob"] = strings.Repeat("x", 4096)
	h.push(t, evs...)
	h.drain(t)
	got := checkStream(t, h.js, append(append(evs[:k:k], standInFor(evs[k])), evs[k+1:]...))
	if a := got[k].Actor.Attributes; got[k].Action != event.ActionLost || a["id"] != evs[k].ID || a["reason"] != "max_msg_size" {
		t.Fatalf("stand-in %+v", got[k])
	}
	if n := testutilValue(t, h.m, "dockcast_publisher_lost_total"); n != 1 {
		t.Errorf("lost_total %v, want 1", n)
	}
}

// standInFor is the dockcast.lost event the writer stores for e, as the
// stream holds it (read back by id).
func standInFor(e event.Event) event.Event {
	return event.New(e.Node, event.TypeDockcast, event.ActionLost, "", e.ID, nil, e.Time)
}

// An event over the server's max_payload cannot even be sent: it is
// replaced by its stand-in before the batch goes out.
func TestWriterReplacesAnEventOverMaxPayload(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	h := startWriter(t, ns.ClientURL(), nil, nil)
	evs := synthetic("big", 0, 5)
	evs[2].Actor.Attributes["blob"] = strings.Repeat("x", 2<<20)
	h.push(t, evs...)
	h.drain(t)
	got := checkStream(t, h.js, append(append(evs[:2:2], standInFor(evs[2])), evs[3:]...))
	if a := got[2].Actor.Attributes; a["reason"] != "max_payload" || a["size"] == "" {
		t.Fatalf("stand-in attributes %v", a)
	}
}

// A stream without atomic batches (an older server, or an operator's
// choice) gets one event at a time, still in order.
func TestWriterWithoutAtomicBatches(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	h := startWriter(t, ns.ClientURL(), func(c *jetstream.StreamConfig) { c.AllowAtomicPublish = false }, nil)
	evs := synthetic("single", 0, 300)
	h.push(t, evs...)
	h.drain(t)
	checkStream(t, h.js, evs)
}

// A stream deleted under the writer is created again by StreamMissing,
// and the events that follow are stored there.
func TestWriterCreatesAMissingStreamAgain(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	var h *harness
	h = startWriter(t, ns.ClientURL(), nil, func(w *stream.Writer) {
		w.StreamMissing = func(ctx context.Context) error {
			_, err := h.js.CreateStream(ctx, natsutil.StreamConfig("DOCKER_EVENTS", time.Hour, 1<<30, 1))
			return err
		}
	})
	h.push(t, synthetic("gone", 0, 100)...)
	testkit.Eventually(t, 30*time.Second, func() error {
		if n := testutilValue(t, h.m, "dockcast_publisher_events_published_total"); n != 100 {
			return fmt.Errorf("%v of 100 stored", n)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.js.DeleteStream(ctx, "DOCKER_EVENTS"); err != nil {
		t.Fatal(err)
	}
	after := synthetic("gone", 100, 100)
	h.push(t, after...)
	h.drain(t)
	checkStream(t, h.js, after)
}

// A server that refuses the writer's batch size (an operator lowered
// max_msgs) gets smaller batches, still in order.
func TestWriterAdaptsToTheServersBatchLimit(t *testing.T) {
	t.Parallel()
	o := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true}
	o.JetStreamLimits.MaxBatchSize = 10
	ns, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Cleanup(ns.Shutdown)
	h := startWriter(t, ns.ClientURL(), nil, func(w *stream.Writer) { w.MaxBatch = 64 })
	evs := synthetic("limit", 0, 500)
	h.push(t, evs...)
	h.drain(t)
	checkStream(t, h.js, evs)
	if h.w.MaxBatch > 10 {
		t.Errorf("MaxBatch still %d", h.w.MaxBatch)
	}
}
