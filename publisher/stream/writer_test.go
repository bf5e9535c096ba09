package stream_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/publisher/metrics"
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
	queue  *stream.Queue
	m      *metrics.Metrics
	done   chan error
	cancel context.CancelFunc
}

func startWriter(t testing.TB, url string, window int) *harness {
	t.Helper()
	return startWriterWith(t, url, window, nil)
}

// startWriterWith is startWriter with tune applied to the Writer before it runs.
func startWriterWith(t testing.TB, url string, window int, tune func(*stream.Writer)) *harness {
	t.Helper()
	nc, err := natsutil.Connect(natsutil.Options{URL: url, Name: "writer-test", Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := natsutil.EnsureStream(ctx, js, natsutil.StreamConfig("DOCKER_EVENTS", time.Hour, 1<<30, 1), testkit.Logger(t)); err != nil {
		t.Fatal(err)
	}
	h := &harness{nc: nc, js: js, queue: stream.NewQueue(100000), done: make(chan error, 1)}
	h.m = metrics.New(nil)
	w := &stream.Writer{Conn: nc, Queue: h.queue, Metrics: h.m, Log: testkit.Logger(t), Window: window,
		AckTimeout: time.Second, RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond}
	if tune != nil {
		tune(w)
	}
	wctx, wcancel := context.WithCancel(context.Background())
	h.cancel = wcancel
	go func() { h.done <- w.Run(wctx) }()
	t.Cleanup(wcancel)
	return h
}

// drain closes the queue and waits for the writer to publish everything.
func (h *harness) drain(t testing.TB) {
	t.Helper()
	h.queue.Close()
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatalf("writer: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("writer did not drain in 2 minutes")
	}
}

// checkStream asserts the stream holds exactly want, in order.
func checkStream(t *testing.T, js jetstream.JetStream, want []event.Event) {
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
	for i := 0; i < len(want); {
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
			if e.ID != want[i].ID || m.Headers().Get("Nats-Msg-Id") != e.ID {
				t.Fatalf("message %d is %s, want %s", i, e.Actor.ID, want[i].Actor.ID)
			}
			i++
			n++
		}
		if n == 0 {
			t.Fatalf("fetch returned nothing after %d of %d", i, len(want))
		}
	}
}

func TestWriterInOrder(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	h := startWriter(t, ns.ClientURL(), 64)
	evs := synthetic("w", 0, 3000)
	for _, e := range evs {
		if !h.queue.TryPush(e) {
			t.Fatal("queue full")
		}
	}
	// Duplicates of already published events are acknowledged as such.
	h.drain(t)
	checkStream(t, h.js, evs)
}

func TestWriterDuplicatesCounted(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	h := startWriter(t, ns.ClientURL(), 8)
	evs := synthetic("d", 0, 50)
	for _, e := range append(evs, evs[:10]...) {
		h.queue.TryPush(e)
	}
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
	h := startWriter(t, np.URL(), 128)
	var evs []event.Event
	var mu sync.Mutex
	feed := func(from, n int) {
		batch := synthetic("r", from, n)
		mu.Lock()
		evs = append(evs, batch...)
		mu.Unlock()
		for _, e := range batch {
			if err := h.queue.Push(context.Background(), e); err != nil {
				t.Error(err)
			}
		}
	}
	feed(0, 2000)
	np.Stop(syscall.SIGKILL)
	feed(2000, 2000)
	testkit.Eventually(t, 30*time.Second, func() error {
		if testutilValue(t, h.m, "dockcast_publisher_publish_errors_total") == 0 {
			return errors.New("no publish failed while NATS was down")
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
}
