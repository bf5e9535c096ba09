package stream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/subject"
)

// ErrUndecodable is returned by RecentEvents when the node's last message
// is not a dockcast event.
var ErrUndecodable = errors.New("last message is not a dockcast event")

// storeSlack widens the stored-time window RecentEvents reads: an event is
// stored a little after its own time (more after a NATS outage, but then
// its neighbours are stored late too).
const storeSlack = 5 * time.Second

// RecentEvents returns the node's events in the stream whose time is at
// most window older than the newest of them, in stream order; none when the
// node has no event yet. It reads them with a short-lived consumer on
// docker.events.<node>.>, deleted before it returns.
func RecentEvents(ctx context.Context, s jetstream.Stream, node string, window time.Duration) ([]event.Event, error) {
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
	start := last.Time.Add(-window - storeSlack)
	cons, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubject:     subj,
		DeliverPolicy:     jetstream.DeliverByStartTimePolicy,
		OptStartTime:      &start,
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		InactiveThreshold: 30 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("read recent events of %s: %w", subj, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = s.DeleteConsumer(dctx, cons.CachedInfo().Name)
	}()
	var all []event.Event
	for done := false; !done; {
		batch, err := cons.Fetch(256, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, fmt.Errorf("read recent events of %s: %w", subj, err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			meta, err := msg.Metadata()
			if err != nil {
				return nil, fmt.Errorf("read recent events of %s: %w", subj, err)
			}
			if e, err := event.Decode(msg.Data()); err == nil {
				all = append(all, e)
				newest.TimeNano = max(newest.TimeNano, e.TimeNano)
			}
			if meta.Sequence.Stream >= last.Sequence {
				done = true
			}
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("read recent events of %s: %w", subj, err)
		}
		if n == 0 {
			return nil, fmt.Errorf("read recent events of %s: no message up to seq %d", subj, last.Sequence)
		}
	}
	recent := all[:0]
	for _, e := range all {
		if e.TimeNano >= newest.TimeNano-int64(window) {
			recent = append(recent, e)
		}
	}
	return recent, nil
}
