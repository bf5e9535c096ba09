package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/dockcast/dockcast/publisher/queue"
	"github.com/dockcast/dockcast/shared/subject"
)

// flight is one batch sent and not yet settled.
type flight struct {
	items    []queue.Item
	expect   uint64 // the node's last sequence its first message expects
	reply    string // where its acknowledgement comes
	deadline time.Time
	acked    bool   // acknowledged: stored at seq (the last item's)
	seq      uint64 //
	dup      bool   // a single message the stream held already
	ahead    bool   // sent before the batch ahead of it was acknowledged: its expectation is a prediction
	err      error  // why it was not acknowledged (nil while waiting or once acked)
}

// pipelining reports whether the next batch may be sent before the one
// ahead of it is acknowledged: the stream takes atomic batches, the last
// batch followed the node's previous last message directly (nobody else
// writes between this writer's batches), and the stream has not refused
// such batches too often.
func (w *Writer) pipelining() bool {
	return w.MaxInFlight > 1 && !w.single && w.alone && w.mispredictions < mispredictionsAllowed
}

// pipeline stores batch and, while the queue holds whole batches more of
// the same node, further batches sent before the ones ahead of them are
// acknowledged, at most MaxInFlight at a time. It returns once every
// batch it sent is stored, each once and in order (nil), or ctx ended.
//
// The pipelining rule, stated once: a batch sent ahead expects the
// node's last sequence that the batches ahead of it leave if the stream
// takes them (the node's last sequence plus their events: an atomic batch
// is stored at consecutive sequences). Only this writer appends to the
// node, so the expectation holds exactly when every batch ahead was
// stored, and directly after one another: a batch sent ahead is stored
// only after all those ahead of it, never instead of them. When it does
// not hold (a batch ahead failed, or another node's message came in
// between, or a clustered stream refuses a second expectation on the same
// subject while one is being replicated), the stream refuses the batch;
// recover then finds out, from the node's last message, which of the
// window's batches the stream holds (always a prefix of them), and the
// rest are stored one batch at a time by store, under its rules.
func (w *Writer) pipeline(ctx context.Context, batch []queue.Item) error {
	node := batch[0].Event.Node
	expect, err := w.expectation(ctx, node)
	if err != nil {
		return err
	}
	for {
		if batch != nil {
			w.replaceOversized(batch)
			w.launch(batch, expect)
			expect += uint64(len(batch))
			batch = nil
		}
		if last := w.flights[len(w.flights)-1]; last.err == nil && w.held == nil && len(w.flights) < w.MaxInFlight && w.pipelining() && w.fullBatchWaiting() {
			next := w.Queue.PopBatch(w.slice(), w.MaxBatch, w.MaxBatchBytes)
			switch {
			case len(next) == 0:
				w.recycle(next)
			case next[0].Event.Node != node:
				w.held = next // sent once this window is stored
			default:
				batch = next
				continue
			}
		}
		f := w.flights[0]
		w.await(ctx, f)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if f.err != nil {
			return w.recover(ctx)
		}
		w.flights[0] = nil
		w.flights = w.flights[1:]
		w.done(f.items, f.seq, f.dup)
		w.recycle(f.items)
		if len(w.flights) == 0 { // Run waits for the next events
			w.flights = nil
			return nil
		}
	}
}

// fullBatchWaiting reports whether the queue holds a whole batch: only
// such a batch is sent ahead. Every batch costs the server a fixed
// amount (a single-server file stream stages each in a store of its own
// and syncs it), so that sending ahead whatever little has come in since
// the last send would fill the window with small batches and store
// fewer events than waiting for the acknowledgement, during which the
// next batch grows.
func (w *Writer) fullBatchWaiting() bool {
	return w.Queue.Len() >= w.MaxBatch || w.Queue.Bytes() >= w.MaxBatchBytes
}

// launch sends items as one batch expecting the node's last sequence to
// be expect, its commit a publish whose acknowledgement comes to the
// writer's inbox, and adds it to the window.
func (w *Writer) launch(items []queue.Item, expect uint64) {
	f := &flight{items: items, expect: expect}
	w.flights = append(w.flights, f)
	if len(w.flights) > 1 {
		f.ahead = true
		w.sentAhead++
	}
	if err := w.subscribeReplies(); err != nil {
		f.err = err
		return
	}
	commit, err := w.publish(items, expect)
	if err == nil {
		w.nextReply++
		f.reply = w.inbox + "." + strconv.FormatUint(w.nextReply, 10)
		f.deadline = time.Now().Add(w.AckTimeout)
		commit.Reply = f.reply
		err = w.Conn.PublishMsg(commit)
	}
	if err != nil {
		f.err = fmt.Errorf("publish %d events to %s: %w", len(items), subject.Node(items[0].Event.Node), err)
	}
}

// subscribeReplies subscribes to the writer's inbox once.
func (w *Writer) subscribeReplies() error {
	if w.replySub != nil {
		return nil
	}
	w.inbox = w.Conn.NewInbox()
	w.replies = make(chan *nats.Msg, 4*w.MaxInFlight+16)
	sub, err := w.Conn.ChanSubscribe(w.inbox+".*", w.replies)
	if err != nil {
		return fmt.Errorf("subscribe to acknowledgements: %w", err)
	}
	w.replySub = sub
	return nil
}

// await waits until f is acknowledged or refused, its acknowledgement is
// overdue (AckTimeout after it was sent) or ctx ends.
func (w *Writer) await(ctx context.Context, f *flight) {
	if f.acked || f.err != nil {
		return
	}
	timer := time.NewTimer(time.Until(f.deadline))
	defer timer.Stop()
	for !f.acked && f.err == nil {
		select { // what has arrived is delivered before anything is overdue
		case m := <-w.replies:
			w.deliver(m)
			continue
		default:
		}
		select {
		case m := <-w.replies:
			w.deliver(m)
		case <-timer.C:
			f.err = fmt.Errorf("publish %d events to %s: no acknowledgement after %s: %w",
				len(f.items), subject.Node(f.items[0].Event.Node), w.AckTimeout, nats.ErrTimeout)
		case <-ctx.Done():
			f.err = ctx.Err()
		}
	}
}

// deliver hands an acknowledgement to its batch; one for a batch given up
// already is dropped (recover reads what the stream holds).
func (w *Writer) deliver(m *nats.Msg) {
	for _, f := range w.flights {
		if f.reply != m.Subject || f.acked || f.err != nil {
			continue
		}
		if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
			f.err = fmt.Errorf("publish %d events to %s: %w", len(f.items), subject.Node(f.items[0].Event.Node), nats.ErrNoResponders)
			return
		}
		f.seq, f.dup, f.err = parseAck(m.Data, len(f.items), f.items[0].Event.Node)
		f.acked = f.err == nil
		return
	}
}

// recover empties the window after one of its batches was not
// acknowledged: it waits for the answers to the others, records as
// stored every batch the stream holds (those up to the last one
// acknowledged, each of which expected the one before it, and those the
// node's last message shows), and stores the rest with store, in order.
func (w *Writer) recover(ctx context.Context) error {
	for _, f := range w.flights {
		w.await(ctx, f)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	flights := w.flights
	w.flights = nil
	defer func() {
		for _, f := range flights {
			w.recycle(f.items)
		}
	}()
	node := flights[0].items[0].Event.Node
	// A batch acknowledged as stored now proves the ones ahead of it were
	// stored too (it expected their last sequence); one answered as a
	// duplicate proves nothing of the sort (the duplicate check comes
	// before the expectation), so it is settled with the rest.
	lastOK := -1
	for i, f := range flights {
		if f.err == nil && !f.dup {
			lastOK = i
		}
	}
	var first *flight // the first not acknowledged: there is one
	for _, f := range flights {
		if f.err != nil {
			first = f
			break
		}
	}
	var api *apiError
	if first.ahead && errors.As(first.err, &api) && (api.ErrCode == errCodeWrongLast || api.ErrCode == errCodeWrongLastC) {
		// Its expectation did not hold although the batch ahead of it was
		// stored (else that one would be the first failure): another
		// writer in between, or a clustered stream.
		w.mispredictions++
		level := slog.LevelDebug
		if w.mispredictions == mispredictionsAllowed {
			level = slog.LevelInfo
		}
		w.Log.Log(ctx, level, "the stream refused a batch sent ahead of the previous one's acknowledgement",
			"node", node, "refusals", w.mispredictions, "pipelining", w.mispredictions < mispredictionsAllowed, "err", first.err)
	} else {
		w.failed(first.items, first.err)
	}
	stored := lastOK // every batch up to the last acknowledged is stored
	seq := uint64(0)
	if rest := flights[lastOK+1:]; len(rest) > 0 {
		ids := make([]string, len(rest))
		for i, f := range rest {
			ids[i] = f.items[len(f.items)-1].Event.ID
		}
		idx, s, err := w.settleAny(ctx, node, ids)
		if err != nil {
			return err
		}
		if idx >= 0 {
			stored, seq = lastOK+1+idx, s
		}
	}
	for i := 0; i <= stored; i++ {
		f := flights[i]
		switch {
		case f.acked:
			w.done(f.items, f.seq, f.dup)
		case i == stored:
			w.done(f.items, seq, false)
		default: // the next batch was stored expecting this one's last sequence
			w.done(f.items, flights[i+1].expect, false)
		}
	}
	for _, f := range flights[stored+1:] {
		if err := w.store(ctx, f.items); err != nil {
			return err
		}
	}
	return nil
}

// slice returns an empty batch slice to fill, reusing one when it can.
func (w *Writer) slice() []queue.Item {
	if n := len(w.spare); n > 0 {
		s := w.spare[n-1]
		w.spare = w.spare[:n-1]
		return s
	}
	return nil
}

// recycle keeps s for reuse, emptied (its items released).
func (w *Writer) recycle(s []queue.Item) {
	if cap(s) == 0 || len(w.spare) > w.MaxInFlight {
		return
	}
	clear(s)
	w.spare = append(w.spare, s[:0])
}
