package containerkv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/publisher/queue"
	"github.com/dockcast/dockcast/shared/backoff"
	"github.com/dockcast/dockcast/shared/containerstate"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/subject"
)

// DefaultMaxPending is how many stored events may wait for the keeper
// before it falls back to reading the stream.
const DefaultMaxPending = 1 << 16

// DefaultInterval is the least time between two writes of the keeper:
// at most one write per container and one watermark per interval,
// whatever the rate of events. The gateway's snapshot folds what the
// entries do not reflect yet from the stream, so a later write makes it
// read a little more, never see less.
const DefaultInterval = 500 * time.Millisecond

// Keeper keeps one node's container states in the bucket. Set the
// exported fields, then call Run once; Stored may be called before.
type Keeper struct {
	KV jetstream.KeyValue
	// Open, when KV is nil, opens (or creates) the bucket; retried.
	Open   func(ctx context.Context) (jetstream.KeyValue, error)
	Stream jetstream.Stream // the stream the sequences belong to
	// OpenStream, when Stream is nil, looks it up; retried.
	OpenStream func(ctx context.Context) (jetstream.Stream, error)
	Node       string
	Log        *slog.Logger
	// MaxPending bounds the events waiting (DefaultMaxPending).
	MaxPending int
	// Poll, if set, folds the stream every Poll instead of waiting for
	// Stored (a keeper that is not fed by the writer).
	Poll time.Duration
	// RetryMin and RetryMax bound the backoff after a failure.
	RetryMin, RetryMax time.Duration
	// Interval is the least time between two writes to the bucket
	// (DefaultInterval; negative: every change at once). Changes in
	// between are coalesced: each container's entry is written at most
	// once per Interval, then the watermark that covers them.
	Interval time.Duration

	mu       sync.Mutex
	pending  []stored
	latest   uint64 // highest sequence Stored has seen
	overflow bool
	wake     chan struct{}

	set     containerstate.Set
	applied uint64
	epoch   string
}

type stored struct {
	seq uint64
	ev  event.Event
}

func (k *Keeper) init() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.wake == nil {
		k.wake = make(chan struct{}, 1)
	}
	if k.MaxPending <= 0 {
		k.MaxPending = DefaultMaxPending
	}
	if k.Log == nil {
		k.Log = slog.New(slog.DiscardHandler)
	}
	if k.Interval == 0 {
		k.Interval = DefaultInterval
	}
	if k.RetryMin <= 0 {
		k.RetryMin = 250 * time.Millisecond
	}
	if k.RetryMax < k.RetryMin {
		k.RetryMax = max(10*time.Second, k.RetryMin)
	}
}

// Stored takes one event the stream acknowledged at seq (stream.Writer's
// Stored seam). It never blocks.
func (k *Keeper) Stored(seq uint64, it *queue.Item) {
	k.init()
	e := &it.Event
	keep := e.Type == "container" || (e.Type == event.TypeDockcast && e.Action == event.ActionGap)
	k.mu.Lock()
	k.latest = max(k.latest, seq)
	switch {
	case k.overflow || !keep:
	case len(k.pending) >= k.MaxPending:
		k.pending, k.overflow = nil, true
	default:
		k.pending = append(k.pending, stored{seq: seq, ev: *e})
	}
	k.mu.Unlock()
	select {
	case k.wake <- struct{}{}:
	default:
	}
}

// Run keeps the bucket until ctx ends (then it returns nil); failures are
// retried with backoff.
func (k *Keeper) Run(ctx context.Context) error {
	k.init()
	retry := backoff.New(k.RetryMin, k.RetryMax)
	for {
		began := time.Now()
		err := k.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(began) > 30*time.Second {
			retry.Reset() // it had been working
		}
		level := slog.LevelDebug // a run of failures: the first one was logged
		if retry.Current() == k.RetryMin {
			level = slog.LevelWarn
		}
		wait := retry.Next()
		k.Log.Log(ctx, level, "container states: retrying", "err", err, "wait", wait.Round(time.Millisecond))
		if backoff.Sleep(ctx, wait) != nil {
			return nil
		}
	}
}

// session loads the node's entries, folds the stream after them, then
// applies what Stored hands over, until a failure. What changed is
// written at most once per Interval: the changes in between wait in
// dirty, each container's latest state once, so that a burst costs one
// write per container it touched and one watermark, not one per event.
func (k *Keeper) session(ctx context.Context) error {
	if err := k.load(ctx); err != nil {
		return err
	}
	fold, written := true, uint64(0)
	var tick <-chan time.Time
	if k.Poll > 0 {
		t := time.NewTicker(k.Poll)
		defer t.Stop()
		tick = t.C
	}
	// dirty holds the containers changed since the last write (their
	// states are built once, when written); everything up to k.applied
	// is in the entries once it is written.
	dirty := map[string]struct{}{}
	changed := func(_, id string) { dirty[id] = struct{}{} }
	note := func(seq uint64, e *event.Event) {
		k.set.Track(seq, e, changed)
		k.applied = max(k.applied, seq)
	}
	var lastWrite time.Time // zero: the first changes are written at once
	flush := time.NewTimer(time.Hour)
	flush.Stop()
	defer flush.Stop()
	armed := false
	for {
		k.mu.Lock()
		batch := k.pending
		k.pending = nil
		if k.overflow {
			k.overflow, batch, fold = false, nil, true
		}
		k.mu.Unlock()
		if fold {
			if _, err := containerstate.Fold(ctx, k.Stream, k.Node, k.applied, 0, note); err != nil {
				return err
			}
			fold = false
		}
		for i := range batch {
			if batch[i].seq > k.applied {
				note(batch[i].seq, &batch[i].ev)
			}
		}
		k.mu.Lock()
		if !k.overflow && len(k.pending) == 0 {
			k.applied = max(k.applied, k.latest) // events of other types: nothing to fold
		}
		k.mu.Unlock()
		if len(dirty) > 0 || k.applied != written {
			if wait := k.Interval - time.Since(lastWrite); wait > 0 {
				if !armed {
					flush.Reset(wait)
					armed = true
				}
			} else {
				if err := k.write(ctx, dirty); err != nil {
					return err
				}
				clear(dirty)
				written, lastWrite = k.applied, time.Now()
				flush.Stop()
				armed = false
			}
		}
		select {
		case <-ctx.Done():
			if len(dirty) > 0 || k.applied != written {
				// Stopping: what waits for the interval is written now, so
				// that the bucket is as fresh as the stream (a failure
				// loses nothing: the next start folds from the watermark).
				wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				err := k.write(wctx, dirty)
				cancel()
				if err != nil {
					k.Log.Warn("container states: last write", "err", err)
				}
			}
			return ctx.Err()
		case <-k.wake:
		case <-tick:
			fold = true
		case <-flush.C:
			armed = false
		}
	}
}

// load reads the node's entries and watermark back; one of another epoch
// (the stream was made again) is dropped and the fold starts over from
// the node's last gap.
func (k *Keeper) load(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if k.Stream == nil {
		st, err := k.OpenStream(cctx)
		if err != nil {
			return err
		}
		k.Stream = st
	}
	if k.KV == nil {
		kv, err := k.Open(cctx)
		if err != nil {
			return err
		}
		k.KV = kv
	}
	info, err := k.Stream.Info(cctx)
	if err != nil {
		k.Stream = nil // looked up again (edge mode: across the leaf link)
		return fmt.Errorf("stream info: %w", err)
	}
	k.epoch = strconv.FormatInt(info.Created.UnixNano(), 10)
	got, err := containerstate.ReadBucket(cctx, k.KV, k.Node+".*")
	if err != nil {
		return err
	}
	k.set, k.applied = got.States, 0
	a, ok := got.Applied[k.Node]
	if ok && a.Epoch == k.epoch {
		k.applied = a.Seq
		k.Log.Info("container states loaded", "node", k.Node, "containers", k.set.Len(), "applied", a.Seq)
		return nil
	}
	// Start over: forget what is there, fold from the last gap.
	for _, st := range got.States.All() {
		if err := k.KV.Delete(cctx, containerstate.Key(k.Node, st.ID())); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("delete stale state %s: %w", st.ID(), err)
		}
	}
	k.set = containerstate.Set{}
	gap, err := k.Stream.GetLastMsgForSubject(cctx, subject.For(k.Node, event.TypeDockcast, event.ActionGap))
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
	case err != nil:
		return fmt.Errorf("last gap of %s: %w", k.Node, err)
	default:
		k.applied = gap.Sequence - 1
	}
	k.Log.Info("container states start over", "node", k.Node, "from_seq", k.applied+1, "stale_entries", got.States.Len())
	return nil
}

// write stores the states of the changed containers (deletes those
// gone), then the watermark.
func (k *Keeper) write(ctx context.Context, changed map[string]struct{}) error {
	for id := range changed {
		key := containerstate.Key(k.Node, id)
		st, ok := k.set.Get(k.Node, id)
		if !ok {
			if err := k.KV.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
				return fmt.Errorf("delete %s: %w", key, err)
			}
			continue
		}
		data, err := st.Marshal()
		if err != nil {
			return err
		}
		if _, err := k.KV.Put(ctx, key, data); err != nil {
			return fmt.Errorf("put %s: %w", key, err)
		}
	}
	data, err := json.Marshal(containerstate.Applied{Seq: k.applied, Epoch: k.epoch})
	if err != nil {
		return fmt.Errorf("marshal watermark: %w", err)
	}
	if _, err := k.KV.Put(ctx, containerstate.AppliedKey(k.Node), data); err != nil {
		return fmt.Errorf("put watermark of %s: %w", k.Node, err)
	}
	return nil
}
