// Package replay sends a client the stream's history (since / from_seq)
// and hands it over to the live feed at exactly the next sequence.
//
// The client first joins the hub in buffering state, which fixes liveFrom
// (the hub's last sequence + 1): live events from liveFrom on are held in
// the client's queue. The replay then reads the history with a short-lived
// ephemeral pull consumer of its own (AckNone, memory storage, filtered on
// the client's subjects), sends the matching events below liveFrom, deletes
// the consumer, sends {"type":"live","seq":liveFrom-1} and releases the held
// events: no gap and no duplicate at the handoff. Replays run with bounded
// concurrency; a failed consumer (a NATS blip) is retried from the next
// unsent sequence.
//
// Messages removed by the stream's limits are detected from its first
// sequence, checked after each consumer is made and whenever a fetched
// message leaves a hole before it: before any event the client gets the
// gap frame (with the first sequence actually replayed), after events it
// is closed with the error replay_lost and resume_from_seq (close 1013), as
// a gap frame may only precede events; reconnecting from there yields it.
//
// Entry points: New, Replayer.Run.
package replay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/olahol/melody"

	"github.com/dockcast/dockcast/gateway/hub"
	"github.com/dockcast/dockcast/gateway/metrics"
	"github.com/dockcast/dockcast/gateway/ws"
	"github.com/dockcast/dockcast/shared/event"
)

// Replayer runs replays against one stream.
type Replayer struct {
	// Batch is the number of messages per fetch (default 256).
	Batch int
	// FetchWait bounds one fetch (default 2s).
	FetchWait time.Duration
	// RetryWait is the first wait after a failure; it doubles up to 5s.
	RetryWait time.Duration
	// InactiveThreshold lets the server remove a consumer the gateway
	// could not delete (default 30s).
	InactiveThreshold time.Duration

	js      jetstream.JetStream
	stream  string
	hub     *hub.Hub
	log     *slog.Logger
	metrics *metrics.Metrics
	sem     chan struct{}
	hook    func(stage string) // tests: called at "created" (before the first fetch) and "fetch"
}

// New makes a replayer allowing concurrency replays at once.
func New(js jetstream.JetStream, stream string, h *hub.Hub, concurrency int, log *slog.Logger, m *metrics.Metrics) *Replayer {
	if concurrency < 1 {
		concurrency = 1
	}
	return &Replayer{
		Batch: 256, FetchWait: 2 * time.Second, RetryWait: 250 * time.Millisecond, InactiveThreshold: 30 * time.Second,
		js: js, stream: stream, hub: h, log: log.With("component", "replay"), metrics: m,
		sem: make(chan struct{}, concurrency),
	}
}

// Run replays for c from fromSeq (> 0) or since (non-zero), then switches
// it to live. It returns when the client is live or closed.
func (r *Replayer) Run(c *ws.Client, fromSeq uint64, since time.Time) error {
	select {
	case r.sem <- struct{}{}:
	case <-c.Done():
		return ws.ErrClosed
	}
	defer func() { <-r.sem }()
	if r.metrics != nil {
		r.metrics.ReplaysInFlight.Inc()
		defer r.metrics.ReplaysInFlight.Dec()
	}
	began := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-c.Done():
			cancel()
		case <-ctx.Done():
		}
	}()

	if fromSeq > 0 {
		c.SetReplayNext(fromSeq)
	}
	liveFrom, ok := r.hub.JoinBuffering(c, fromSeq)
	if !ok {
		return ws.ErrClosed
	}
	st := &state{c: c, liveFrom: liveFrom, requested: fromSeq, next: fromSeq, since: since}
	wait := r.RetryWait
	for {
		err := r.attempt(ctx, st)
		if err == nil {
			break
		}
		if ctx.Err() != nil || errors.Is(err, ws.ErrClosed) || errors.Is(err, errLost) {
			return ws.ErrClosed
		}
		r.log.Warn("replay attempt failed; retrying", "next_seq", st.next, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ws.ErrClosed
		case <-t.C:
		}
		wait = min(2*wait, 5*time.Second)
	}
	c.GoLive(max(liveFrom-1, fromSeq-min(fromSeq, 1)))
	if r.metrics != nil {
		r.metrics.ReplayCatchup.Observe(time.Since(began).Seconds())
	}
	return nil
}

type state struct {
	c         *ws.Client
	liveFrom  uint64
	requested uint64    // from_seq as asked, 0 for since
	next      uint64    // next sequence to read; 0 until known for since
	since     time.Time // start time when next is 0
	gapSent   bool
	eventSent bool // an event frame was queued: no gap frame may follow
}

// errLost ends a replay whose client was closed with replay_lost.
var errLost = errors.New("replay lost events: client closed with replay_lost")

// attempt reads from st.next (or st.since) up to liveFrom-1 with one
// consumer, which it deletes.
func (r *Replayer) attempt(ctx context.Context, st *state) error {
	if st.next >= st.liveFrom {
		return nil // nothing before the live feed
	}
	ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	stream, err := r.js.Stream(ictx, r.stream)
	if err != nil {
		return fmt.Errorf("look up stream %s: %w", r.stream, err)
	}
	cfg := jetstream.ConsumerConfig{
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		InactiveThreshold: r.InactiveThreshold,
		Replicas:          1,
	}
	if subs := st.c.Subjects; len(subs) == 1 {
		cfg.FilterSubject = subs[0]
	} else {
		cfg.FilterSubjects = subs
	}
	if st.next > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, st.next
	} else {
		since := st.since
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := stream.CreateConsumer(ictx, cfg)
	if err != nil {
		return fmt.Errorf("create replay consumer: %w", err)
	}
	defer func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer dcancel()
		if err := stream.DeleteConsumer(dctx, cons.CachedInfo().Name); err != nil {
			r.log.Debug("delete replay consumer", "consumer", cons.CachedInfo().Name, "err", err)
		}
	}()
	// What the stream lost before the consumer was made (the start aged
	// out, also between a failed attempt and this one) shows in its first
	// sequence now: the consumer cannot deliver anything older.
	if err := r.checkLoss(ictx, stream, st, 0); err != nil {
		return err
	}
	if st.next >= st.liveFrom {
		return nil
	}
	if cons.CachedInfo().NumPending == 0 {
		return nil
	}
	if r.hook != nil {
		r.hook("created")
	}
	for {
		done, n, err := r.fetch(ctx, stream, cons, st)
		if err != nil || done {
			return err
		}
		if n == 0 {
			// Nothing came within FetchWait: finished if the consumer has
			// nothing pending any more (messages aged out meanwhile).
			cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
			ci, err := cons.Info(cctx)
			ccancel()
			if err != nil {
				return fmt.Errorf("replay consumer info: %w", err)
			}
			if ci.NumPending == 0 {
				return nil
			}
		}
		if ctx.Err() != nil {
			return ws.ErrClosed
		}
	}
}

// checkLoss compares the stream's first sequence with the replay's
// position. Age limits remove messages from the front only, so messages
// the replay still needed are gone exactly when the first sequence has
// passed st.next (for since, when the first message is younger than since).
// Before any event the client gets a gap frame and the replay goes on from
// the first sequence; after events (a gap frame must come before them) the
// client is closed with replay_lost and resume_from_seq, so that it
// reconnects and gets a proper gap frame. upto, when not 0, is the sequence
// of the message about to be sent: the gap frame's first_seq is at most it.
func (r *Replayer) checkLoss(ctx context.Context, stream jetstream.Stream, st *state, upto uint64) error {
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s info: %w", r.stream, err)
	}
	first := info.State.FirstSeq
	if upto > 0 {
		first = min(first, upto)
	}
	var frame []byte
	switch {
	case st.next > 0 && first > st.next:
		if !st.gapSent {
			frame = ws.GapSeqFrame(st.requested, first)
		}
	case st.next == 0 && info.State.FirstSeq > 1 && info.State.FirstTime.After(st.since):
		if !st.gapSent {
			frame = ws.GapTimeFrame(st.since, first)
		}
	default:
		if st.next == 0 && info.State.FirstSeq > 0 {
			st.c.SetReplayNext(info.State.FirstSeq) // conservative until a message is read
		}
		return nil
	}
	if st.eventSent || frame == nil {
		// Events (or a gap frame) were sent already: a gap frame now
		// would come too late.
		r.log.Warn("replay lost events after sending frames: closing the client with replay_lost",
			"next_seq", st.next, "stream_first_seq", info.State.FirstSeq)
		msg := fmt.Sprintf("events from seq %d were removed from the stream during the replay; reconnect with from_seq=%d to learn what is gone", st.next, st.next)
		st.c.Close(melody.CloseTryAgainLater, "replay lost", ws.ErrorFrame(ws.CodeReplayLost, msg, max(st.next, 1)))
		return errLost
	}
	if err := st.c.Replay(0, frame); err != nil {
		return err
	}
	st.gapSent = true
	st.next = first
	st.c.SetReplayNext(first)
	return nil
}

// fetch reads one batch; done means the replay reached liveFrom or the end.
func (r *Replayer) fetch(ctx context.Context, stream jetstream.Stream, cons jetstream.Consumer, st *state) (done bool, n int, err error) {
	if r.hook != nil {
		r.hook("fetch")
	}
	batch, err := cons.Fetch(r.Batch, jetstream.FetchMaxWait(r.FetchWait))
	if err != nil {
		return false, 0, fmt.Errorf("fetch: %w", err)
	}
	// An early return leaves the rest of the batch in its buffered channel;
	// the request ends at FetchWait or when the consumer is deleted.
	checked := false
	for msg := range batch.Messages() {
		n++
		meta, err := msg.Metadata()
		if err != nil {
			return false, n, fmt.Errorf("replay message metadata: %w", err)
		}
		seq := meta.Sequence.Stream
		if seq >= st.liveFrom {
			return true, n, nil
		}
		// A hole before this message is either messages the filter skips
		// or messages that aged out before the consumer reached them; the
		// stream's first sequence tells (once per batch: it only grows).
		if !checked && (st.next == 0 || seq > st.next) {
			checked = true
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := r.checkLoss(cctx, stream, st, seq)
			cancel()
			if err != nil {
				return false, n, err
			}
		}
		if seq >= st.next || st.next == 0 {
			if ev, derr := event.Decode(msg.Data()); derr == nil && st.c.Filter.Match(&ev) {
				if err := st.c.Replay(seq, ws.EventFrame(seq, msg.Subject(), msg.Data())); err != nil {
					return false, n, err
				}
				st.eventSent = true
			}
			st.next = seq + 1
			st.c.SetReplayNext(st.next)
		}
		if meta.NumPending == 0 {
			return true, n, nil
		}
	}
	if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
		return false, n, fmt.Errorf("fetch: %w", err)
	}
	return false, n, nil
}
