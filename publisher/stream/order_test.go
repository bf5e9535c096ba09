package stream_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/publisher/stream"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/testkit"
)

// heldFuture forwards a real publish's outcome only once release is closed:
// the message is stored at once, its ack reaches the writer late.
type heldFuture struct {
	msg *nats.Msg
	ok  chan *jetstream.PubAck
	err chan error
}

func holdAck(real jetstream.PubAckFuture, release <-chan struct{}) *heldFuture {
	f := &heldFuture{msg: real.Msg(), ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
	go func() {
		var ack *jetstream.PubAck
		var err error
		select {
		case ack = <-real.Ok():
		case err = <-real.Err():
		}
		<-release
		if err != nil {
			f.err <- err
		} else {
			f.ok <- ack
		}
	}()
	return f
}

func (f *heldFuture) Ok() <-chan *jetstream.PubAck { return f.ok }
func (f *heldFuture) Err() <-chan error            { return f.err }
func (f *heldFuture) Msg() *nats.Msg               { return f.msg }

// sendLog records the order in which the writer sent events asynchronously.
type sendLog struct {
	mu    sync.Mutex
	index map[string]int // event id -> position in the test's list
	sent  []int
}

func newSendLog(evs []event.Event) *sendLog {
	l := &sendLog{index: map[string]int{}}
	for i, e := range evs {
		l.index[e.ID] = i
	}
	return l
}

// record returns the position of the event in m and notes it as sent.
func (l *sendLog) record(t *testing.T, m *nats.Msg) int {
	e, err := event.Decode(m.Data)
	if err != nil {
		t.Error(err)
		return -1
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	i := l.index[e.ID]
	l.sent = append(l.sent, i)
	return i
}

func (l *sendLog) list() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.sent)
}

// A message in the middle of the window fails while an older one is still
// unacknowledged: the writer stops sending at once, waits for the window,
// republishes the failed message, and only then sends the next ones. The
// stream stays in order, the failed message is stored once, and no order
// violation is reported (the next message was not stored before it).
func TestWriterStopsAtMiddleFailure(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	evs := synthetic("mid", 0, 10)
	const k = 2 // fails once; 0 is still waiting for its ack then
	log := newSendLog(evs)
	release := make(chan struct{})
	recovering := make(chan int, 10)
	var failedOnce bool
	h := startWriterWith(t, ns.ClientURL(), 16, func(w *stream.Writer) {
		stream.SetTestHooks(w, func(next stream.PublishFunc, m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
			switch i := log.record(t, m); {
			case i == k && !failedOnce:
				failedOnce = true
				return nil, errors.New("injected failure")
			case i == 0:
				f, err := next(m, opts...)
				if err != nil {
					return nil, err
				}
				return holdAck(f, release), nil
			}
			return next(m, opts...)
		}, func(n int) { recovering <- n })
	})
	for _, e := range evs {
		if !h.queue.TryPush(e) {
			t.Fatal("queue full")
		}
	}
	select {
	case n := <-recovering:
		if n != k+1 {
			t.Errorf("recovery with %d in flight, want %d", n, k+1)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("no recovery after the failure of message %d; sent %v", k, log.list())
	}
	// Message 0 is still unacknowledged: nothing after k may have been sent.
	if got := log.list(); !slices.Equal(got, []int{0, 1, 2}) {
		t.Fatalf("sent %v before the window settled, want [0 1 2]", got)
	}
	close(release)
	h.drain(t)
	checkStream(t, h.js, evs) // in order, k exactly once
	if got := log.list(); !slices.Equal(got, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
		t.Errorf("asynchronous sends %v, want 0..9 (k republished synchronously)", got)
	}
	if got := testutilValue(t, h.m, "dockcast_publisher_order_violations_total"); got != 0 {
		t.Errorf("order_violations_total %v, want 0", got)
	}
	if got := testutilValue(t, h.m, "dockcast_publisher_publish_errors_total"); got < 1 {
		t.Errorf("publish_errors_total %v, want at least 1", got)
	}
}

// failLater is a publish that never reached the server and fails when told.
type failLater struct {
	msg *nats.Msg
	ok  chan *jetstream.PubAck
	err chan error
}

func (f *failLater) Ok() <-chan *jetstream.PubAck { return f.ok }
func (f *failLater) Err() <-chan error            { return f.err }
func (f *failLater) Msg() *nats.Msg               { return f.msg }

// Message k fails only after k+1… were stored (the residual risk, e.g. a
// leader change rejecting k while k+1 succeeds): k is stored once, after
// them, and the violation is counted exactly once.
func TestWriterCountsOrderViolation(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	evs := synthetic("viol", 0, 10)
	const k = 1
	log := newSendLog(evs)
	lost := &failLater{ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
	h := startWriterWith(t, ns.ClientURL(), 16, func(w *stream.Writer) {
		stream.SetTestHooks(w, func(next stream.PublishFunc, m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
			if log.record(t, m) == k && lost.msg == nil {
				lost.msg = m
				return lost, nil
			}
			return next(m, opts...)
		}, nil)
	})
	for _, e := range evs[:6] {
		h.queue.TryPush(e)
	}
	// 0, 2, 3, 4, 5 are stored while k is pending.
	testkit.Eventually(t, 60*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := h.js.Stream(ctx, "DOCKER_EVENTS")
		if err != nil {
			return err
		}
		if n := s.CachedInfo().State.Msgs; n != 5 {
			return fmt.Errorf("%d messages stored, want 5", n)
		}
		return nil
	})
	lost.err <- errors.New("injected: rejected by the stream leader")
	for _, e := range evs[6:] {
		h.queue.TryPush(e)
	}
	h.drain(t)
	want := []event.Event{evs[0], evs[2], evs[3], evs[4], evs[5], evs[1], evs[6], evs[7], evs[8], evs[9]}
	checkStream(t, h.js, want) // k once, after k+1…k+4; the rest in order
	if got := testutilValue(t, h.m, "dockcast_publisher_order_violations_total"); got != 1 {
		t.Errorf("order_violations_total %v, want 1", got)
	}
}
