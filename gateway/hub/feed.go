package hub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/gateway/client"
	"github.com/dockcast/dockcast/shared/natsutil"
	"github.com/dockcast/dockcast/shared/subject"
)

var errReset = errors.New("stream reset")

// follow attaches the ordered consumer at lastSeq+1 and delivers messages
// until ctx ends, the stream is reset or the consumer fails.
func (h *Hub) follow(ctx context.Context) error {
	ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
	info, err := h.streamInfo(ictx)
	cancel()
	if err != nil {
		return err
	}
	h.mu.Lock()
	switch {
	case !h.started:
		h.started, h.lastSeq, h.epoch = true, info.State.LastSeq, client.EpochOf(info.Created)
		h.pos.Store(h.lastSeq)
		h.log.Info("live feed starts", "stream", h.stream, "epoch", h.epoch, "seq", h.lastSeq+1)
	case !SameStream(h.epoch, h.lastSeq, info):
		h.resetLocked(client.EpochOf(info.Created), info.State.LastSeq)
	}
	start := h.lastSeq + 1
	h.warmTo = 0
	if h.recent.next() != start {
		// The ring of recent messages does not continue here (first
		// start, a reset, an interrupted warm-up): the consumer first
		// reads the stream's last messages into it.
		h.recent.reset(h.epoch, h.RecentKept)
		kept := uint64(max(h.RecentKept, 1))
		if from := max(info.State.FirstSeq, h.lastSeq+1-min(h.lastSeq, kept), 1); from <= h.lastSeq {
			start, h.warmTo = from, h.lastSeq
		}
	}
	h.mu.Unlock()
	h.times.put(info.State.LastSeq, info.State.LastTime)

	cons, err := h.js.OrderedConsumer(ctx, h.stream, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{subject.All},
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       start,
		InactiveThreshold: 30 * time.Second,
	})
	if err != nil {
		return fmt.Errorf("create live consumer on %s: %w", h.stream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(512))
	if err != nil {
		return fmt.Errorf("consume %s: %w", h.stream, err)
	}
	// Ready once the ring holds the stream's last messages, so that the
	// resumes that follow a restart are served from it.
	h.warming.Store(h.warmTo > 0 && cons.CachedInfo().NumPending > 0)
	h.attached.Store(!h.warming.Load())
	defer h.attached.Store(false)

	wctx, wcancel := context.WithCancel(ctx)
	var reset atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer it.Stop()
		h.watchdog(wctx, &reset)
	}()
	defer func() {
		wcancel()
		wg.Wait()
		h.deleteConsumer(cons)
	}()
	for {
		msg, err := it.Next()
		if err != nil {
			if reset.Load() {
				return errReset
			}
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return ctx.Err()
			}
			return fmt.Errorf("live consumer: %w", err)
		}
		if !h.deliver(msg) {
			reset.Store(true)
			return errReset
		}
	}
}

func (h *Hub) deleteConsumer(cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = h.js.DeleteConsumer(ctx, h.stream, info.Name)
}

func (h *Hub) streamInfo(ctx context.Context) (*jetstream.StreamInfo, error) {
	s, err := h.js.Stream(ctx, h.stream)
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", h.stream, natsutil.Explain(err))
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream %s info: %w", h.stream, err)
	}
	return info, nil
}

// watchdog checks the stream every CheckInterval (and on reconnect): when
// it is gone, or is not the same incarnation any more (SameStream), it
// flags a reset and returns, which stops the iterator; follow then
// re-attaches and ends every client with stream_reset once the stream
// exists again.
func (h *Hub) watchdog(ctx context.Context, reset *atomic.Bool) {
	t := time.NewTicker(h.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-h.checkNow:
		}
		// The last sequence delivered is read before the stream's: read
		// after, it may already include messages stored after the info
		// was taken, which looks like the stream going backwards.
		h.mu.Lock()
		last, epoch := h.lastSeq, h.epoch
		h.mu.Unlock()
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		info, err := h.streamInfo(cctx)
		cancel()
		if err != nil {
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				h.log.Warn("stream is gone", "stream", h.stream)
				reset.Store(true)
				return
			}
			continue
		}
		if !SameStream(epoch, last, info) {
			reset.Store(true)
			return
		}
		h.recent.trim(info.State.FirstSeq)
		h.warmUpGone(info.State.FirstSeq)
		if !h.warming.Load() {
			h.attached.Store(true)
		}
	}
}

// deliver offers one message to the clients; false means its sequence
// went backwards. A message that is not a valid event is skipped for
// every client (Invalid).
func (h *Hub) deliver(msg jetstream.Msg) bool {
	meta, err := msg.Metadata()
	if err != nil {
		h.log.Warn("message without metadata", "subject", msg.Subject(), "err", err)
		return true
	}
	seq, subj, data := meta.Sequence.Stream, msg.Subject(), msg.Data()
	h.times.put(seq, meta.Timestamp)
	m := Message{Seq: seq, Subject: subj}
	ev, derr := client.Decode(data)
	if derr != nil {
		h.Invalid(seq, subj, derr)
	} else {
		m.Event, m.Frame = &ev, client.EventFrame(seq, subj, data)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if seq <= h.warmTo && seq <= h.lastSeq {
		// Warming up: the ring only (clients joined after it).
		h.recent.add(m)
		if seq == h.warmTo || meta.NumPending == 0 {
			h.warmed()
		}
		return true
	}
	if seq <= h.lastSeq {
		h.log.Warn("stream sequence went backwards", "seq", seq, "last", h.lastSeq)
		return false
	}
	h.warmed()
	h.lastSeq = seq
	if h.metrics != nil {
		h.metrics.LiveSeq.Set(float64(seq))
	}
	h.recent.add(m)
	if derr == nil {
		if h.metrics != nil {
			h.metrics.ObserveEvent(&ev) // live events only, not the ring's warm-up
		}
		began := time.Now()
		h.fanout(seq, subj, m.Frame, &ev)
		if h.metrics != nil {
			h.metrics.FeedDelay.Observe(began.Sub(meta.Timestamp).Seconds())
			h.metrics.Fanout.Observe(time.Since(began).Seconds())
		}
	}
	h.pos.Store(seq)
	return true
}

// warmUpGone ends the ring's warm-up when the stream no longer holds the
// messages it waits for (aged out or purged before the consumer delivered
// them): no message would end it then, and an idle stream would keep the
// gateway unready.
func (h *Hub) warmUpGone(first uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.warmTo > 0 && first > h.warmTo {
		h.warmed()
	}
}

// warmed ends the ring's warm-up: the feed is ready. h.mu is held.
func (h *Hub) warmed() {
	h.warmTo = 0
	if h.warming.CompareAndSwap(true, false) {
		h.attached.Store(true)
	}
}
