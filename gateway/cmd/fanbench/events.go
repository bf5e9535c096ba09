package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/testkit"
)

// benchChannel is the Centrifugo channel every event is published to (the
// centrifugo-channels header); the other peers ignore the header.
const benchChannel = "docker_events"

// benchNode is the node of the bench events: docker.events.bench.container.start.
const benchNode = "bench"

// composeAttrs are the attributes of a docker-compose service container's
// start event, as the engine sends them: the payload is the size of a real
// one (781 bytes).
var composeAttrs = testkit.ComposeAttributes()

// benchEvent is event number n, made at t: its actor id carries n (64
// decimal digits) and its time_nano the publish time.
func benchEvent(n int64, t time.Time) (*nats.Msg, error) {
	ev := event.New(benchNode, "container", "start", "", fmt.Sprintf("%064d", n), composeAttrs, t)
	data, err := ev.Marshal()
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg(ev.Subject())
	m.Data = data
	m.Header.Set(jetstream.MsgIDHeader, ev.ID)
	m.Header.Set("centrifugo-channels", benchChannel)
	return m, nil
}

// eventPublisher publishes bench events into the stream with async,
// acknowledged publishes; n numbers them across the whole run.
type eventPublisher struct {
	js     jetstream.JetStream
	n      int64
	failed atomic.Int64
}

func newEventPublisher(nc *nats.Conn) (*eventPublisher, error) {
	p := &eventPublisher{}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, _ error) { p.failed.Add(1) }))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	p.js = js
	return p, nil
}

// publish sends count events at rate per second (0: as fast as the server
// acknowledges) and waits for every ack. It returns the time the first was
// made and the time the last ack arrived.
func (p *eventPublisher) publish(ctx context.Context, count, rate int) (first, acked time.Time, err error) {
	p.failed.Store(0)
	start := time.Now()
	var tick *time.Ticker
	if rate > 0 {
		tick = time.NewTicker(time.Millisecond)
		defer tick.Stop()
	}
	for sent := 0; sent < count; {
		due := count
		if rate > 0 {
			due = min(count, int(float64(rate)*time.Since(start).Seconds())+1)
		}
		for ; sent < due; sent++ {
			p.n++
			now := time.Now()
			if sent == 0 {
				first = now
			}
			m, err := benchEvent(p.n, now)
			if err != nil {
				return first, acked, err
			}
			if _, err := p.js.PublishMsgAsync(m, jetstream.WithStallWait(time.Minute)); err != nil {
				return first, acked, fmt.Errorf("publish event %d: %w", p.n, err)
			}
		}
		if tick != nil && sent < count {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return first, acked, ctx.Err()
			}
		}
	}
	acked, err = p.awaitAcks(ctx, count)
	return first, acked, err
}

// prebuilt makes the next n bench events before any is published, for the
// publisher comparison: what is timed is then the publishing alone, as in
// the pipeline, whose payloads the reader encoded beforehand. They carry
// the Msg-Id the pipeline's carry, and no Centrifugo header.
func (p *eventPublisher) prebuilt(n int) ([]*nats.Msg, error) {
	msgs := make([]*nats.Msg, n)
	now := time.Now()
	for i := range msgs {
		p.n++
		m, err := benchEvent(p.n, now.Add(time.Duration(i)))
		if err != nil {
			return nil, err
		}
		m.Header.Del("centrifugo-channels")
		msgs[i] = m
	}
	return msgs, nil
}

// publishAll publishes msgs as fast as the server acknowledges them (at
// most 4,096 in flight) and waits for every ack; it returns when the
// first was sent and when the last ack arrived.
func (p *eventPublisher) publishAll(ctx context.Context, msgs []*nats.Msg) (first, acked time.Time, err error) {
	p.failed.Store(0)
	first = time.Now()
	for i, m := range msgs {
		if _, err := p.js.PublishMsgAsync(m, jetstream.WithStallWait(time.Minute)); err != nil {
			return first, acked, fmt.Errorf("publish event %d: %w", i, err)
		}
	}
	acked, err = p.awaitAcks(ctx, len(msgs))
	return first, acked, err
}

// awaitAcks waits for every publish in flight to be acknowledged (at most
// 2 minutes) and reports when the last was, or which failed out of count.
func (p *eventPublisher) awaitAcks(ctx context.Context, count int) (time.Time, error) {
	select {
	case <-p.js.PublishAsyncComplete():
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	case <-time.After(2 * time.Minute):
		return time.Time{}, fmt.Errorf("%d publishes not acknowledged after 2 minutes", p.js.PublishAsyncPending())
	}
	if f := p.failed.Load(); f > 0 {
		return time.Now(), fmt.Errorf("%d of %d publishes failed", f, count)
	}
	return time.Now(), nil
}
