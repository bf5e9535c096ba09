package replay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/gateway/client"
	"github.com/dockcast/dockcast/gateway/hub"
	"github.com/dockcast/dockcast/gateway/metrics"
	"github.com/dockcast/dockcast/shared/backoff"
)

// Replayer runs replays against one stream.
type Replayer struct {
	// Batch is the number of messages per fetch (default 256).
	Batch int
	// FetchWait bounds one fetch (default 2s).
	FetchWait time.Duration
	// RetryWait is the first wait after a failure; it doubles up to 5s,
	// with jitter (shared/backoff).
	RetryWait time.Duration
	// InactiveThreshold lets the server remove a consumer the gateway
	// could not delete (default 30s).
	InactiveThreshold time.Duration
	// TurnMessages and TurnBytes are a replay's budget for one turn in a
	// slot (default 2048 messages, 2 MiB); then it lets the slot go to the
	// replays waiting for one and queues up again.
	TurnMessages int
	TurnBytes    int
	// TailWindow is the most messages TailStart reads back from the
	// stream's end on a client's subjects before it reads the nodes not
	// done yet on their own (default 65,536).
	TailWindow int
	// StreamOnly makes every replay read the stream, also what the live
	// feed's ring of recent messages holds (tests of the stream's path).
	StreamOnly bool

	js      jetstream.JetStream
	stream  string
	hub     *hub.Hub
	log     *slog.Logger
	metrics *metrics.Metrics
	sem     chan struct{}
	hook    func(stage string, c *client.Client) // tests: "turn", "created", "fetch"
}

// Request is what a client asked to replay: FromSeq (> 0, with its Epoch
// if given) or Since.
type Request struct {
	FromSeq uint64
	Epoch   string
	Since   time.Time
	// Prelude, if set, is queued after the status frames, before any
	// replayed event (a snapshot's state and snapshot_end frames).
	Prelude [][]byte
}

// New makes a replayer allowing concurrency turns at once. m may be nil.
func New(js jetstream.JetStream, stream string, h *hub.Hub, concurrency int, log *slog.Logger, m *metrics.Metrics) *Replayer {
	if concurrency < 1 {
		concurrency = 1
	}
	return &Replayer{
		Batch: 256, FetchWait: 2 * time.Second, RetryWait: 250 * time.Millisecond, InactiveThreshold: 30 * time.Second,
		TurnMessages: 2048, TurnBytes: 2 << 20, TailWindow: 1 << 16,
		js: js, stream: stream, hub: h, log: log.With("component", "replay"), metrics: m,
		sem: make(chan struct{}, concurrency),
	}
}

// Run replays for c, then switches it to live. It returns when the client
// is live or closed, or ctx ends.
func (r *Replayer) Run(ctx context.Context, c *client.Client, req Request) error {
	ctx, cancel := c.Context(ctx)
	defer cancel()
	began := time.Now()
	liveFrom, ok := r.hub.JoinBuffering(c, req.FromSeq, req.FromSeq, req.Epoch)
	if !ok {
		return client.ErrClosed
	}
	for _, f := range req.Prelude {
		if !c.Replay(0, f) {
			if err := c.WaitRoom(ctx); err != nil {
				return client.ErrClosed
			}
		}
	}
	st := &state{c: c, epoch: c.Epoch(), liveFrom: liveFrom, requested: req.FromSeq, next: req.FromSeq, since: req.Since}
	if err := r.fromRecent(ctx, st); err != nil {
		return client.ErrClosed
	}
	retry := backoff.New(r.RetryWait, 5*time.Second)
	for st.next == 0 || st.next < st.liveFrom {
		if err := c.WaitRoom(ctx); err != nil {
			return client.ErrClosed
		}
		done, err := r.turn(ctx, st)
		if err == nil {
			if done {
				break
			}
			retry.Reset() // a turn that read is healthy
			continue
		}
		if ctx.Err() != nil || errors.Is(err, client.ErrClosed) {
			return client.ErrClosed
		}
		r.log.Warn("replay turn failed; retrying", "next_seq", st.next, "err", err)
		if retry.Wait(ctx) != nil {
			return client.ErrClosed
		}
	}
	c.GoLive(max(liveFrom-1, req.FromSeq-min(req.FromSeq, 1)))
	if r.metrics != nil {
		r.metrics.ReplayCatchup.Observe(time.Since(began).Seconds())
	}
	return nil
}

// fromRecent serves a from_seq replay from the live feed's ring of recent
// messages when it holds everything from st.next to liveFrom-1: no
// JetStream call, the same frames in the same order (the ring covers
// those sequences exactly, see hub.Recent). Otherwise it leaves st as it
// is, for the stream.
func (r *Replayer) fromRecent(ctx context.Context, st *state) error {
	if r.StreamOnly || st.next == 0 || st.next >= st.liveFrom {
		return nil
	}
	msgs, ok := r.hub.Recent(st.epoch, st.next, st.liveFrom-1)
	if !ok {
		return nil
	}
	if r.metrics != nil {
		r.metrics.ReplayTurns.Inc()
	}
	for _, m := range msgs {
		// The ring holds every subject: the client's subjects (narrowed to
		// its token) select as its consumer's filter would.
		if !st.c.Selects(m.Subject, m.Event) {
			continue
		}
		if !st.c.Replay(m.Seq, m.Frame) {
			st.c.SetReplayNext(m.Seq + 1)
			if err := st.c.WaitRoom(ctx); err != nil {
				return err
			}
		}
		st.eventSent = true
	}
	st.next = st.liveFrom
	st.c.SetReplayNext(st.liveFrom)
	return nil
}

type state struct {
	c         *client.Client
	epoch     string
	liveFrom  uint64
	requested uint64    // from_seq as asked, 0 for since
	next      uint64    // next sequence to read; 0 until the first consumer names it (since)
	since     time.Time // the start for since
	checked   bool      // since: the start was checked for messages removed before the replay
	gapSent   bool
	eventSent bool // an event frame was queued: no gap frame may follow
	// this turn's budget
	msgs, bytes int
}

// turn takes a replay slot for one attempt and lets it go; done means the
// history is read.
func (r *Replayer) turn(ctx context.Context, st *state) (done bool, err error) {
	if err := r.acquire(ctx); err != nil {
		return false, err
	}
	defer func() { <-r.sem }()
	if r.metrics != nil {
		r.metrics.ReplaysInFlight.Inc()
		defer r.metrics.ReplaysInFlight.Dec()
		r.metrics.ReplayTurns.Inc()
	}
	if r.hook != nil {
		r.hook("turn", st.c)
	}
	st.msgs, st.bytes = 0, 0
	return r.attempt(ctx, st)
}

func (r *Replayer) acquire(ctx context.Context) error {
	select {
	case r.sem <- struct{}{}:
		return nil
	default:
	}
	if r.metrics != nil {
		r.metrics.ReplaysWaiting.Inc()
		defer r.metrics.ReplaysWaiting.Dec()
	}
	select {
	case r.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return client.ErrClosed
	}
}

// inSlot runs fn in a replay slot: JetStream reads beyond a replay's turns
// (TailStart's) wait for one as the turns do.
func (r *Replayer) inSlot(ctx context.Context, fn func() error) error {
	if err := r.acquire(ctx); err != nil {
		return err
	}
	defer func() { <-r.sem }()
	return fn()
}

// errLost ends a replay whose client was closed (replay_lost, stream_reset).
var errLost = fmt.Errorf("replay ended the client: %w", client.ErrClosed)

// attempt reads from st.next (or st.since) up to liveFrom-1 with one
// consumer, which it deletes, until done, the budget is spent or the
// client's queue is half full.
func (r *Replayer) attempt(ctx context.Context, st *state) (bool, error) {
	if st.next >= st.liveFrom {
		return true, nil // nothing before the live feed
	}
	ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	stream, err := r.js.Stream(ictx, r.stream)
	if err != nil {
		return false, fmt.Errorf("look up stream %s: %w", r.stream, err)
	}
	cfg := r.consumerConfig(st.c.Spec.Subjects)
	if st.next > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, st.next
	} else {
		since := st.since
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := stream.CreateConsumer(ictx, cfg)
	if err != nil {
		return false, fmt.Errorf("create replay consumer: %w", err)
	}
	defer r.deleteConsumer(stream, cons)
	if st.next == 0 {
		// A consumer by start time begins at the first message stored at
		// or after since, whatever its subject: from here on the replay
		// is one by sequence, and resume_from_seq is exact.
		st.next = cons.CachedInfo().Delivered.Stream + 1
		st.c.SetReplayNext(st.next)
	}
	// What the stream lost before the consumer was made (the start aged
	// out, also between a failed attempt and this one) shows in its first
	// sequence now: the consumer cannot deliver anything older.
	if err := r.checkLoss(ictx, stream, st, 0); err != nil {
		return false, err
	}
	if st.next >= st.liveFrom || cons.CachedInfo().NumPending == 0 {
		return r.reachedLive(ictx, stream, st)
	}
	if r.hook != nil {
		r.hook("created", st.c)
	}
	for {
		done, n, err := r.fetch(ctx, stream, cons, st)
		if err != nil || done {
			return done, err
		}
		if !st.c.HasRoom() || st.msgs >= r.TurnMessages || st.bytes >= r.TurnBytes {
			return false, nil // the client must drain, or others may take a turn
		}
		if n == 0 {
			// Nothing came within FetchWait: finished if the consumer has
			// nothing pending any more (messages aged out meanwhile).
			cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
			ci, err := cons.Info(cctx)
			ccancel()
			if err != nil {
				return false, fmt.Errorf("replay consumer info: %w", err)
			}
			if ci.NumPending == 0 {
				return r.reachedLive(ctx, stream, st)
			}
		}
		if ctx.Err() != nil {
			return false, client.ErrClosed
		}
	}
}

// consumerConfig is the ephemeral consumer a replay reads the subjects
// with (its start left to the caller).
func (r *Replayer) consumerConfig(subjects []string) jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		InactiveThreshold: r.InactiveThreshold,
		Replicas:          1,
	}
	if len(subjects) == 1 {
		cfg.FilterSubject = subjects[0]
	} else {
		cfg.FilterSubjects = subjects
	}
	return cfg
}

// deleteConsumer deletes a replay's consumer once read; one it could not
// delete the server removes after InactiveThreshold.
func (r *Replayer) deleteConsumer(stream jetstream.Stream, cons jetstream.Consumer) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := stream.DeleteConsumer(ctx, cons.CachedInfo().Name); err != nil {
		r.log.Debug("delete replay consumer", "consumer", cons.CachedInfo().Name, "err", err)
	}
}

// reachedLive ends a replay whose consumer has nothing more below
// liveFrom. What it did not deliver between st.next and liveFrom was either
// skipped by the filter or removed from the stream meanwhile: the stream's
// first sequence tells, as for any hole.
func (r *Replayer) reachedLive(ctx context.Context, stream jetstream.Stream, st *state) (bool, error) {
	if st.next < st.liveFrom {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := r.checkLoss(cctx, stream, st, st.liveFrom)
		cancel()
		if err != nil {
			return false, err
		}
	}
	st.next = max(st.next, st.liveFrom)
	st.c.SetReplayNext(st.liveFrom)
	return true, nil
}

// fetch reads one batch; done means the replay reached liveFrom or the end.
func (r *Replayer) fetch(ctx context.Context, stream jetstream.Stream, cons jetstream.Consumer, st *state) (done bool, n int, err error) {
	if r.hook != nil {
		r.hook("fetch", st.c)
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
			done, err := r.reachedLive(ctx, stream, st)
			return done, n, err
		}
		// A hole before this message is either messages the filter skips
		// or messages that aged out before the consumer reached them; the
		// stream's first sequence tells (once per batch: it only grows).
		if !checked && seq > st.next {
			checked = true
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := r.checkLoss(cctx, stream, st, seq)
			cancel()
			if err != nil {
				return false, n, err
			}
		}
		if seq >= st.next {
			data := msg.Data()
			st.msgs++
			st.bytes += len(data)
			room := true
			if ev, derr := client.Decode(data); derr != nil {
				r.hub.Invalid(seq, msg.Subject(), derr)
			} else if st.c.Wants(msg.Subject(), &ev) {
				room = st.c.Replay(seq, client.EventFrame(seq, msg.Subject(), data))
				st.eventSent = true
			}
			st.next = seq + 1
			st.c.SetReplayNext(st.next)
			if st.c.Closed() {
				return false, n, client.ErrClosed
			}
			if meta.NumPending > 0 && (!room || st.msgs >= r.TurnMessages || st.bytes >= r.TurnBytes) {
				return false, n, nil
			}
		}
		if meta.NumPending == 0 {
			done, err := r.reachedLive(ctx, stream, st)
			return done, n, err
		}
	}
	if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
		return false, n, fmt.Errorf("fetch: %w", err)
	}
	return false, n, nil
}
