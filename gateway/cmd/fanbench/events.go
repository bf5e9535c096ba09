package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/shared/event"
)

// benchChannel is the Centrifugo channel every event is published to (the
// centrifugo-channels header); the other peers ignore the header.
const benchChannel = "docker_events"

// benchNode is the node of the bench events: docker.events.bench.container.start.
const benchNode = "bench"

// composeAttrs are the attributes of a docker-compose service container's
// start event, as the engine sends them: the payload is the size of a real
// one (781 bytes).
var composeAttrs = map[string]string{
	"name": "shop-api-1", "image": "registry.example.com/shop/api:1.4.2",
	"com.docker.compose.project": "shop", "com.docker.compose.service": "api",
	"com.docker.compose.container-number": "1", "com.docker.compose.oneoff": "False",
	"com.docker.compose.version":              "2.24.6",
	"com.docker.compose.config-hash":          "9f1c2e7d4b3a5f60718293a4b5c6d7e8f9012a3b4c5d6e7f8091a2b3c4d5e6f7",
	"com.docker.compose.project.config_files": "/srv/shop/docker-compose.yml",
	"com.docker.compose.project.working_dir":  "/srv/shop",
}

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
	select {
	case <-p.js.PublishAsyncComplete():
	case <-ctx.Done():
		return first, acked, ctx.Err()
	case <-time.After(2 * time.Minute):
		return first, acked, fmt.Errorf("%d publishes not acknowledged after 2 minutes", p.js.PublishAsyncPending())
	}
	if f := p.failed.Load(); f > 0 {
		return first, time.Now(), fmt.Errorf("%d of %d publishes failed", f, count)
	}
	return first, time.Now(), nil
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
	select {
	case <-p.js.PublishAsyncComplete():
	case <-ctx.Done():
		return first, acked, ctx.Err()
	case <-time.After(2 * time.Minute):
		return first, acked, fmt.Errorf("%d publishes not acknowledged after 2 minutes", p.js.PublishAsyncPending())
	}
	if f := p.failed.Load(); f > 0 {
		return first, time.Now(), fmt.Errorf("%d of %d publishes failed", f, len(msgs))
	}
	return first, time.Now(), nil
}
