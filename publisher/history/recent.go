package history

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/subject"
)

// ErrUndecodable is returned by Recent when the node's last message is
// not a dockcast event.
var ErrUndecodable = errors.New("last message is not a dockcast event")

// storeSlack is the first stored-time lookback beyond the window: an event
// is stored a little after its own time.
const storeSlack = 5 * time.Second

// Recent returns the node's newest events in the stream, in stream order
// (none when the node has no event yet): the last message of the node and
// the run of messages before it whose own time is within window of the
// last one's (the stream holds a node's events in the engine's order, so
// they are its tail), or the last atLeast events if that is more. The run
// ends at the first event outside the window, earlier or later in time (a
// clock stepped back), or at the start of the stream.
//
// The read goes back by stored time, widening until the run ends before
// what was read: events split by an outage are stored far apart although
// their own times are close.
func Recent(ctx context.Context, s jetstream.Stream, node string, window time.Duration, atLeast int) ([]event.Event, error) {
	subj := subject.Node(node)
	last, err := s.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("last message of %s: %w", subj, err)
	}
	newest, err := event.Decode(last.Data)
	if err != nil {
		return nil, fmt.Errorf("last message of %s (seq %d): %w: %v", subj, last.Sequence, ErrUndecodable, err)
	}
	for lookback := window + storeSlack; ; lookback *= 4 {
		start := last.Time.Add(-lookback)
		all, fromStart, err := read(ctx, s, subj, start, last.Sequence)
		if err != nil {
			return nil, err
		}
		run := tail(all, newest.TimeNano, int64(window))
		if len(run) < len(all) && len(all) >= atLeast || fromStart {
			return all[len(all)-min(len(all), max(len(run), atLeast)):], nil
		}
	}
}

// tail is the longest suffix of evs whose times are within window of t.
func tail(evs []event.Event, t, window int64) []event.Event {
	i := len(evs)
	for i > 0 {
		d := evs[i-1].TimeNano - t
		if d < -window || d > window {
			break
		}
		i--
	}
	return evs[i:]
}

// read returns the node's events stored from start up to seq, and whether
// that is every event of the node the stream holds up to seq.
func read(ctx context.Context, s jetstream.Stream, subj string, start time.Time, seq uint64) ([]event.Event, bool, error) {
	info, err := s.Info(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("read recent events of %s: %w", subj, err)
	}
	cfg := jetstream.ConsumerConfig{
		FilterSubject:     subj,
		DeliverPolicy:     jetstream.DeliverByStartTimePolicy,
		OptStartTime:      &start,
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		InactiveThreshold: 30 * time.Second,
	}
	fromStart := !start.After(info.State.FirstTime)
	if fromStart {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverAllPolicy, nil
	}
	cons, err := s.CreateConsumer(ctx, cfg)
	if err != nil {
		return nil, false, fmt.Errorf("read recent events of %s: %w", subj, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = s.DeleteConsumer(dctx, cons.CachedInfo().Name)
	}()
	var all []event.Event
	for {
		batch, err := cons.Fetch(1024, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, false, fmt.Errorf("read recent events of %s: %w", subj, err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			meta, err := msg.Metadata()
			if err != nil {
				return nil, false, fmt.Errorf("read recent events of %s: %w", subj, err)
			}
			if meta.Sequence.Stream > seq {
				return all, fromStart, nil
			}
			if e, err := event.Decode(msg.Data()); err == nil {
				all = append(all, e)
			}
			if meta.Sequence.Stream == seq {
				return all, fromStart, nil
			}
		}
		if err := batch.Error(); err != nil {
			return nil, false, fmt.Errorf("read recent events of %s: %w", subj, err)
		}
		if n == 0 {
			return nil, false, fmt.Errorf("read recent events of %s: no message up to seq %d", subj, seq)
		}
	}
}
