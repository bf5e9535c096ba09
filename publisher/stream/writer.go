package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/publisher/metrics"
	"github.com/dockcast/dockcast/shared/event"
)

// Defaults of the Writer's fields.
const (
	DefaultWindow     = 256
	DefaultAckTimeout = 5 * time.Second
	DefaultRetryMin   = 100 * time.Millisecond
	DefaultRetryMax   = 5 * time.Second
)

// Writer drains a Queue into JetStream.
//
// Messages are sent with asynchronous publishes, at most Window of them
// unacknowledged at a time. Ordering rule: as soon as any in-flight publish
// has failed or timed out (not only the oldest), or the connection has
// reconnected since the oldest in-flight message was sent (checked
// immediately before and immediately after every send), the writer stops
// sending, waits for every in-flight ack to settle, then republishes the
// unacknowledged messages in order, one at a time, each until it is
// acknowledged (a duplicate ack counts), and only then opens the window
// again. No event is ever dropped.
//
// After every such recovery the writer compares the stream sequences it was
// given: a message stored after a later message of the same window (the
// later one was acknowledged before the earlier one's retry) is an order
// violation, counted in dockcast_publisher_order_violations_total and logged
// at error level with both event ids.
type Writer struct {
	Conn    *nats.Conn
	Queue   *Queue
	Metrics *metrics.Metrics // may be nil
	Log     *slog.Logger
	// Window is the number of unacknowledged publishes (DefaultWindow).
	Window int
	// AckTimeout bounds the wait for one ack (DefaultAckTimeout).
	AckTimeout time.Duration
	// RetryMin and RetryMax bound the backoff between synchronous retries.
	RetryMin, RetryMax time.Duration
	// Published, if set, is called (from Run's goroutine) for every event
	// JetStream acknowledged, with whether it was a duplicate.
	Published func(e event.Event, duplicate bool)

	js    jetstream.JetStream
	fails atomic.Uint64 // failed async publishes, counted by the error handler
	seen  uint64        // fails already handled
	wake  chan struct{} // signalled by the error handler
	// failed is set when an in-flight entry settled without an ack;
	// reconnected when the connection reconnected across a send.
	failed, reconnected bool
	// floor is the highest stream sequence of a message that has left the
	// window; an ack at or below it was not stored by the current window.
	floor uint64

	// Test hooks (export_test.go): publishHook replaces each asynchronous
	// send (next is the real one); onRecover is called when a recovery starts.
	publishHook func(next PublishFunc, m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error)
	onRecover   func(inFlight int)
}

// PublishFunc is the signature of [jetstream.JetStream.PublishMsgAsync].
type PublishFunc func(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error)

type pending struct {
	ev         event.Event
	data       []byte
	fut        jetstream.PubAckFuture // nil when the send itself failed
	okc        <-chan *jetstream.PubAck
	errc       <-chan error // fut's channels, fetched once (each call takes a lock)
	reconnects uint64       // the connection's reconnect count before the send
	settled    bool
	acked      bool
	seq        uint64 // stream sequence, once acked
	duplicate  bool   // acked as a duplicate
}

func (w *Writer) setup() error {
	if w.Window < 1 {
		w.Window = DefaultWindow
	}
	if w.AckTimeout <= 0 {
		w.AckTimeout = DefaultAckTimeout
	}
	if w.RetryMin <= 0 {
		w.RetryMin = DefaultRetryMin
	}
	if w.RetryMax < w.RetryMin {
		w.RetryMax = max(DefaultRetryMax, w.RetryMin)
	}
	if w.Log == nil {
		w.Log = slog.New(slog.DiscardHandler)
	}
	w.wake = make(chan struct{}, 1)
	js, err := jetstream.New(w.Conn,
		jetstream.WithPublishAsyncTimeout(w.AckTimeout),
		jetstream.WithPublishAsyncMaxPending(w.Window+1),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) {
			w.fails.Add(1)
			signal(w.wake)
		}),
	)
	if err != nil {
		return fmt.Errorf("jetstream context: %w", err)
	}
	w.js = js
	return nil
}

// Run publishes until the queue is closed and drained (nil) or ctx ends.
func (w *Writer) Run(ctx context.Context) error {
	if err := w.setup(); err != nil {
		return err
	}
	var inflight []*pending
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Settle the oldest messages whose outcome is known, in order.
		for len(inflight) > 0 && w.poll(inflight[0]) && inflight[0].acked {
			w.floor = max(w.floor, inflight[0].seq)
			inflight = inflight[1:]
		}
		if w.trouble(inflight) {
			if err := w.recover(ctx, inflight); err != nil {
				return err
			}
			inflight = inflight[:0]
			continue
		}
		if len(inflight) < w.Window {
			if e, ok := w.Queue.Pop(); ok {
				inflight = append(inflight, w.send(e, inflight))
				continue
			}
			if len(inflight) == 0 && w.Queue.Done() {
				return nil
			}
		}
		var okc <-chan *jetstream.PubAck
		var errc <-chan error
		if len(inflight) > 0 {
			okc, errc = inflight[0].okc, inflight[0].errc
		}
		var ready <-chan struct{}
		if len(inflight) < w.Window {
			ready = w.Queue.Ready()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ack := <-okc:
			w.settle(inflight[0], ack, nil)
		case err := <-errc:
			w.settle(inflight[0], nil, err)
		case <-w.wake: // some in-flight publish failed: trouble() sees it
		case <-ready:
		}
	}
}

// trouble reports whether the window must be closed and recovered: some
// in-flight entry (any, not only the oldest) settled without an ack, the
// error handler counted a failure, or the connection reconnected since the
// oldest in-flight message was sent.
func (w *Writer) trouble(inflight []*pending) bool {
	if len(inflight) == 0 {
		return false
	}
	for _, p := range inflight[1:] { // has any later publish failed already?
		if p.settled {
			continue
		}
		select {
		case err := <-p.errc:
			w.settle(p, nil, err)
		default:
		}
	}
	if w.failed || w.reconnected || w.fails.Load() != w.seen {
		return true
	}
	return w.Conn.Stats().Reconnects != inflight[0].reconnects
}

func (w *Writer) msg(p *pending) *nats.Msg {
	return &nats.Msg{Subject: p.ev.Subject(), Data: p.data}
}

// send publishes e asynchronously after the messages in flight. The
// reconnect count is read immediately before and after the send: if the
// connection reconnected since the oldest in-flight message was sent, e is
// not sent but left to the recovery; if it reconnects during the send, the
// next loop iteration recovers before anything else is sent.
func (w *Writer) send(e event.Event, inflight []*pending) *pending {
	p := &pending{ev: e}
	data, err := e.Marshal()
	if err != nil { // cannot happen for a valid event; keep it visible
		w.Log.Error("marshal event", "id", e.ID, "err", err)
	}
	p.data = data
	p.reconnects = w.Conn.Stats().Reconnects
	if len(inflight) > 0 && p.reconnects != inflight[0].reconnects {
		p.settled = true // not sent: the recovery publishes it in order
		w.reconnected = true
		return p
	}
	publish := PublishFunc(w.js.PublishMsgAsync)
	if w.publishHook != nil {
		next := publish
		publish = func(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
			return w.publishHook(next, m, opts...)
		}
	}
	fut, err := publish(w.msg(p), jetstream.WithMsgID(e.ID))
	if w.Conn.Stats().Reconnects != p.reconnects {
		w.reconnected = true
	}
	if err != nil {
		w.settle(p, nil, fmt.Errorf("publish %s: %w", e.Subject(), err))
		return p
	}
	p.fut, p.okc, p.errc = fut, fut.Ok(), fut.Err()
	return p
}

// poll settles p without blocking if its outcome is known.
func (w *Writer) poll(p *pending) bool {
	if p.settled {
		return true
	}
	select {
	case ack := <-p.okc:
		w.settle(p, ack, nil)
	case err := <-p.errc:
		w.settle(p, nil, err)
	default:
	}
	return p.settled
}

func (w *Writer) settle(p *pending, ack *jetstream.PubAck, err error) {
	p.settled = true
	if err != nil {
		w.failed = true
		if w.Metrics != nil {
			w.Metrics.PublishErrors.Inc()
		}
		w.Log.Debug("publish failed", "id", p.ev.ID, "subject", p.ev.Subject(), "err", err)
		return
	}
	p.acked = true
	p.seq, p.duplicate = ack.Sequence, ack.Duplicate
	w.acked(p.ev, ack)
}

func (w *Writer) acked(e event.Event, ack *jetstream.PubAck) {
	if w.Metrics != nil {
		if ack.Duplicate {
			w.Metrics.Duplicates.Inc()
		} else {
			w.Metrics.EventsPublished.Inc()
		}
	}
	if w.Published != nil {
		w.Published(e, ack.Duplicate)
	}
}

// recover waits for every in-flight publish to settle, then republishes
// the unacknowledged ones in order, one at a time, and finally checks the
// stream sequences for order violations.
func (w *Writer) recover(ctx context.Context, inflight []*pending) error {
	if w.onRecover != nil {
		w.onRecover(len(inflight))
	}
	w.Log.Info("publishing interrupted, retrying in order", "in_flight", len(inflight))
	for _, p := range inflight {
		if p.settled {
			continue
		}
		select {
		case ack := <-p.okc:
			w.settle(p, ack, nil)
		case err := <-p.errc:
			w.settle(p, nil, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	w.seen = w.fails.Load()
	for _, p := range inflight {
		if p.acked {
			continue
		}
		if err := w.publishSync(ctx, p); err != nil {
			return err
		}
	}
	w.seen = w.fails.Load()
	w.failed, w.reconnected = false, false
	w.checkOrder(inflight)
	for _, p := range inflight {
		w.floor = max(w.floor, p.seq)
	}
	return nil
}

// checkOrder reports every entry k stored after a later entry j of the
// same window (normally k was republished after j had been stored), i.e.
// j's stream sequence is lower than k's. Only a
// j stored by this window counts: a duplicate ack at or below the floor
// (or before anything was stored) names a copy stored earlier.
func (w *Writer) checkOrder(inflight []*pending) {
	var first *pending // the later entry with the lowest sequence
	for i := len(inflight) - 1; i >= 0; i-- {
		p := inflight[i]
		if first != nil && first.seq < p.seq {
			if w.Metrics != nil {
				w.Metrics.OrderViolations.Inc()
			}
			w.Log.Error("event stored out of order: it was retried after a later event had been stored",
				"id", p.ev.ID, "seq", p.seq, "later_id", first.ev.ID, "later_seq", first.seq)
		}
		storedNow := !p.duplicate || (w.floor > 0 && p.seq > w.floor)
		if storedNow && (first == nil || p.seq < first.seq) {
			first = p
		}
	}
}

// publishSync publishes p until JetStream acknowledges it.
func (w *Writer) publishSync(ctx context.Context, p *pending) error {
	wait := w.RetryMin
	for {
		pctx, cancel := context.WithTimeout(ctx, w.AckTimeout)
		ack, err := w.js.PublishMsg(pctx, w.msg(p), jetstream.WithMsgID(p.ev.ID))
		cancel()
		if err == nil {
			p.acked = true
			p.seq, p.duplicate = ack.Sequence, ack.Duplicate
			w.acked(p.ev, ack)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if w.Metrics != nil {
			w.Metrics.PublishErrors.Inc()
		}
		level := slog.LevelDebug
		if !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, context.DeadlineExceeded) && w.Conn.IsConnected() {
			level = slog.LevelWarn
		}
		w.Log.Log(ctx, level, "republish failed, retrying", "id", p.ev.ID, "subject", p.ev.Subject(), "wait", wait, "err", err)
		if err := Sleep(ctx, Jitter(wait)); err != nil {
			return err
		}
		wait = min(2*wait, w.RetryMax)
	}
}

// Jitter returns a random duration in [d/2, d].
func Jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// Sleep waits d or until ctx ends.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
