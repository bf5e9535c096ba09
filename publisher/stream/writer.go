package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/dockcast/dockcast/publisher/history"
	"github.com/dockcast/dockcast/publisher/metrics"
	"github.com/dockcast/dockcast/publisher/queue"
	"github.com/dockcast/dockcast/shared/backoff"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/subject"
)

// Defaults of the Writer's fields.
const (
	// DefaultMaxBatch is nats-server's default limit on the messages of
	// one atomic batch (jetstream { limits { batch { max_msgs } } }).
	DefaultMaxBatch      = 1000
	DefaultMaxBatchBytes = 4 << 20
	DefaultAckTimeout    = 2 * time.Second
	DefaultReadTimeout   = time.Second
	DefaultRetryMin      = 50 * time.Millisecond
	DefaultRetryMax      = 2 * time.Second
	// DefaultMaxInFlight is how many batches the writer sends before the
	// first is acknowledged (see Writer.MaxInFlight).
	DefaultMaxInFlight = 4
	// mispredictionsAllowed is how many pipelined batches the stream may
	// refuse for an expectation that did not hold (another writer on the
	// stream in between, or a clustered stream, which takes one
	// expectation per subject at a time) before the writer stops
	// pipelining.
	mispredictionsAllowed = 3
)

// headerRoom is what the writer's headers may add to a message: an event
// whose payload leaves less than this under the server's max_payload
// cannot be sent.
const headerRoom = 512

// JetStream headers the writer sends.
const (
	hdrMsgID          = "Nats-Msg-Id"
	hdrBatchID        = "Nats-Batch-Id"
	hdrBatchSeq       = "Nats-Batch-Sequence"
	hdrBatchCommit    = "Nats-Batch-Commit"
	hdrExpectSeq      = "Nats-Expected-Last-Subject-Sequence"
	hdrExpectSeqSubj  = "Nats-Expected-Last-Subject-Sequence-Subject"
	reasonMaxPayload  = "max_payload"
	reasonMaxMsgSize  = "max_msg_size"
	errCodeAtomicOff  = 10174 // atomic publish is disabled
	errCodeIncomplete = 10176 // atomic publish batch is incomplete
	errCodeTooLarge   = 10199 // atomic publish batch is too large
	errCodeDupInBatch = 10201 // atomic publish batch contains duplicate message id
	errCodeUnsupHdr   = 10177 // atomic publish unsupported header
	errCodeMsgTooBig  = 10054 // message size exceeds maximum allowed
	errCodeNotFound   = 10059 // stream not found
	errCodeWrongLast  = 10071 // wrong last sequence: {seq}
	errCodeWrongLastC = 10164 // wrong last sequence (a clustered stream with an expectation on the subject in flight)
)

// Writer drains a queue into the stream: every item exactly once, in the
// queue's order, across failures of any length.
//
// It writes one batch at a time: up to MaxBatch items of one node, sent as
// a JetStream atomic batch (all of it is stored, or none) whose first
// message expects the node's last sequence in the stream
// (Nats-Expected-Last-Subject-Sequence on docker.events.<node>.>), so that
// the stream refuses a batch that does not follow exactly what this writer
// stored before. See [Writer.store] for the ordering rule and
// [Writer.settle] for the "nothing twice" rule. A stream without atomic
// batches gets one message at a time, with the same expectation.
type Writer struct {
	Conn    *nats.Conn
	Stream  string // stream name
	Queue   *queue.Queue
	Metrics *metrics.Metrics // may be nil
	Log     *slog.Logger
	// APIPrefix is the JetStream API (history.DefaultAPIPrefix).
	APIPrefix string
	// MaxBatch and MaxBatchBytes bound one batch (DefaultMaxBatch,
	// DefaultMaxBatchBytes); MaxBatch is halved if the server refuses it.
	MaxBatch      int
	MaxBatchBytes int64
	// AckTimeout bounds the wait for a batch's acknowledgement, and
	// ReadTimeout the wait for the stream leader's answer when settling
	// one (during a leader election nobody answers: the writer asks again).
	// Neither decides anything but how soon the writer asks again.
	AckTimeout, ReadTimeout time.Duration
	// RetryMin and RetryMax bound the backoff between attempts.
	RetryMin, RetryMax time.Duration
	// MaxInFlight bounds the batches sent and not yet acknowledged
	// (DefaultMaxInFlight); 1 sends one batch at a time. See
	// [Writer.pipeline].
	MaxInFlight int
	// StreamMissing, if set, is called when the stream does not exist;
	// it creates it again (direct mode) or reports why it cannot.
	StreamMissing func(ctx context.Context) error
	// Stored, if set, is called from Run's goroutine for every item the
	// stream took, in stream order, with its stream sequence (a seam for
	// a package that keeps state derived from the events). It must not
	// block.
	Stored func(seq uint64, it *queue.Item)

	last   map[string]uint64 // node -> its last sequence in the stream, once known
	single bool              // the stream has no atomic batches: one message at a time
	retry  *backoff.Backoff

	// Pipelining (see pipeline).
	alone          bool           // the last stored batch followed the node's previous last sequence directly
	mispredictions int            // pipelined batches refused for an expectation that did not hold
	sentAhead      int            // batches sent before the one ahead of them was acknowledged
	flights        []*flight      // sent, oldest first
	held           []queue.Item   // popped for the window, but of another node: sent once the window is empty
	inbox          string         // reply subjects of pipelined commits: inbox.<n>
	replies        chan *nats.Msg // their acknowledgements
	replySub       *nats.Subscription
	nextReply      uint64
	spare          [][]queue.Item // batch slices to reuse

	mu      sync.Mutex
	failing error     // why the last attempt failed; nil after a success
	since   time.Time // when the current run of failures began
}

func (w *Writer) init() {
	if w.APIPrefix == "" {
		w.APIPrefix = history.DefaultAPIPrefix
	}
	if w.MaxBatch < 1 {
		w.MaxBatch = DefaultMaxBatch
	}
	if w.MaxBatchBytes < 1 {
		w.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if w.AckTimeout <= 0 {
		w.AckTimeout = DefaultAckTimeout
	}
	if w.ReadTimeout <= 0 {
		w.ReadTimeout = DefaultReadTimeout
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
	if w.MaxInFlight < 1 {
		w.MaxInFlight = DefaultMaxInFlight
	}
	w.retry = backoff.New(w.RetryMin, w.RetryMax)
	w.last = map[string]uint64{}
}

// Run writes until the queue is closed and drained (nil) or ctx ends.
func (w *Writer) Run(ctx context.Context) error {
	w.init()
	defer func() {
		if w.replySub != nil {
			_ = w.replySub.Unsubscribe()
		}
	}()
	for {
		batch := w.held
		w.held = nil
		if batch == nil {
			var err error
			batch, err = w.Queue.Next(ctx, w.slice(), w.MaxBatch, w.MaxBatchBytes)
			if err != nil {
				return err
			}
			if len(batch) == 0 {
				return nil // closed and drained
			}
		}
		var err error
		if w.pipelining() {
			err = w.pipeline(ctx, batch)
		} else {
			err = w.store(ctx, batch)
			w.recycle(batch)
		}
		if err != nil {
			return err
		}
	}
}

// Err is nil while the writer stores, else why its current batch has not
// been stored since when (for /readyz).
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failing == nil {
		return nil
	}
	return fmt.Errorf("not storing since %s: %w", w.since.UTC().Format(time.RFC3339), w.failing)
}

func (w *Writer) setFailing(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failing == nil {
		w.since = time.Now()
	}
	w.failing = err
}

// store writes one batch and returns once the stream holds each of its
// items once, in order (nil), or ctx ended.
//
// The ordering rule, stated once: Run hands store one batch at a time and
// store sends nothing but that batch, so no event is sent before every
// event ahead of it is known to be stored; a send that failed, timed out
// or was cut by a reconnect closes the window until settle has found out
// what the stream holds, and the batch is then stored whole or not at all
// (atomic), never partly, never ahead of what it expects.
func (w *Writer) store(ctx context.Context, items []queue.Item) error {
	w.replaceOversized(items)
	if w.single && len(items) > 1 {
		return w.storeChunks(ctx, items, 1)
	}
	incomplete := 0
	for {
		expect, err := w.expectation(ctx, items[0].Event.Node)
		if err != nil {
			return err
		}
		seq, dup, sendErr := w.send(ctx, items, expect)
		if sendErr == nil {
			w.done(items, seq, dup)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		w.failed(items, sendErr)
		stored, seq, err := w.settle(ctx, items)
		if err != nil {
			return err
		}
		if stored {
			w.done(items, seq, false)
			return nil
		}
		split, lost := w.triage(items, sendErr, &incomplete)
		switch {
		case lost != "":
			w.lose(&items[0], lost)
			continue
		case len(items) > w.MaxBatch: // the server refused the batch's size
			return w.storeChunks(ctx, items, w.MaxBatch)
		case split || w.single && len(items) > 1:
			return w.storeChunks(ctx, items, 1)
		}
		if err := w.retry.Wait(ctx); err != nil {
			return err
		}
	}
}

// triage decides what a batch the stream did not take needs besides a
// resend: to be split into single messages (the stream refused the batch
// as a whole for a reason one of its items may cause), or, for one item
// the stream can never take, a stand-in (the reason). Anything else is
// transient: the batch is sent again as it is.
func (w *Writer) triage(items []queue.Item, err error, incomplete *int) (split bool, lost string) {
	if errors.Is(err, nats.ErrMaxPayload) {
		if len(items) == 1 {
			return false, reasonMaxPayload
		}
		return true, ""
	}
	var api *apiError
	if !errors.As(err, &api) {
		return false, ""
	}
	switch api.ErrCode {
	case errCodeMsgTooBig:
		if len(items) == 1 {
			return false, reasonMaxMsgSize
		}
		return true, ""
	case errCodeAtomicOff:
		if !w.single {
			w.Log.Warn("the stream does not allow atomic batches: publishing one event at a time (slower); allow_atomic on the stream lifts this",
				"stream", w.Stream)
		}
		w.single = true
		return len(items) > 1, ""
	case errCodeTooLarge: // store then sends it in smaller batches
		w.MaxBatch = max(1, min(w.MaxBatch, len(items))/2)
		w.Log.Warn("the server refused a batch as too large: smaller batches from now on", "max_batch", w.MaxBatch)
		return false, ""
	case errCodeDupInBatch, errCodeUnsupHdr:
		return true, ""
	case errCodeIncomplete: // a message of it went missing: once is the network, twice is the message
		*incomplete++
		return *incomplete >= 2, ""
	}
	return false, ""
}

// replaceOversized replaces every item too large to be sent at all by its
// stand-in.
func (w *Writer) replaceOversized(items []queue.Item) {
	limit := w.Conn.MaxPayload() - headerRoom
	for i := range items {
		if w.Conn.MaxPayload() > 0 && int64(len(items[i].Data)) > limit {
			w.lose(&items[i], reasonMaxPayload)
		}
	}
}

// lose replaces an item the stream can never take by a dockcast.lost
// event that says so (its id, size and the reason), at the same place and
// the same time.
func (w *Writer) lose(it *queue.Item, reason string) {
	w.Log.Error("event can never be stored: storing a dockcast.lost stand-in instead",
		"id", it.Event.ID, "subject", it.Subject, "size", len(it.Data), "reason", reason)
	if w.Metrics != nil {
		w.Metrics.Lost.Inc()
	}
	e := event.New(it.Event.Node, event.TypeDockcast, event.ActionLost, "", it.Event.ID, map[string]string{
		"id": it.Event.ID, "size": strconv.Itoa(len(it.Data)), "reason": reason,
	}, it.Event.Time)
	lost, err := queue.NewItem(e)
	if err != nil { // only strings: cannot happen
		panic(err)
	}
	*it = lost
}

// storeChunks stores items as batches of at most n, in order.
func (w *Writer) storeChunks(ctx context.Context, items []queue.Item, n int) error {
	for len(items) > 0 {
		k := min(n, len(items))
		if err := w.store(ctx, items[:k]); err != nil {
			return err
		}
		items = items[k:]
	}
	return nil
}

// settle finds out whether the stream holds a batch whose send failed.
//
// The "nothing twice" rule, stated once: a batch is sent again only after
// settle has read, from the stream's leader, that the node's last message
// is not the batch's last event (so the stream does not hold the batch:
// it is atomic, and only this writer appends to the node); the new send
// expects the node's last sequence that settle read, so a stream that took
// the batch meanwhile refuses it. It never rests on the duplicate window.
func (w *Writer) settle(ctx context.Context, items []queue.Item) (stored bool, seq uint64, err error) {
	idx, seq, err := w.settleAny(ctx, items[0].Event.Node, []string{items[len(items)-1].Event.ID})
	return idx == 0, seq, err
}

// settleAny is settle for several batches sent in order (pipeline):
// lastIDs are their last events' ids. It returns the index of the batch
// whose last event is the node's last message (the stream holds it and
// every batch before it) and its sequence, or -1 when the stream holds
// none of them (the node's last sequence is then adopted).
func (w *Writer) settleAny(ctx context.Context, node string, lastIDs []string) (idx int, seq uint64, err error) {
	for {
		actx, cancel := context.WithTimeout(ctx, w.ReadTimeout)
		last, err := history.Last(actx, w.Conn, w.APIPrefix, w.Stream, node)
		cancel()
		switch {
		case err == nil:
			for i, id := range lastIDs {
				if last.ID == id {
					w.count("stored")
					return i, last.Seq, nil
				}
			}
			w.adopt(node, last.Seq)
			w.count("not_stored")
			return -1, 0, nil
		case errors.Is(err, history.ErrNoMessage):
			w.adopt(node, 0)
			w.count("not_stored")
			return -1, 0, nil
		case errors.Is(err, history.ErrStreamNotFound) && w.StreamMissing != nil:
			w.Log.Warn("stream missing: creating it again", "stream", w.Stream)
			if err := w.StreamMissing(ctx); err != nil {
				w.setFailing(fmt.Errorf("create stream %s again: %w", w.Stream, err))
				w.Log.Warn("stream not created again", "stream", w.Stream, "err", err)
			} else {
				clear(w.last) // a new stream: every node starts over
			}
		default:
			w.setFailing(err)
			w.Log.Debug("cannot read the node's last message yet", "node", node, "err", err)
		}
		if ctx.Err() != nil {
			return -1, 0, ctx.Err()
		}
		if err := w.retry.Wait(ctx); err != nil {
			return -1, 0, err
		}
	}
}

// adopt makes seq the node's last sequence, saying so when it is not the
// one this writer stored last (the node's history changed under it).
func (w *Writer) adopt(node string, seq uint64) {
	if have, ok := w.last[node]; ok && have != seq {
		w.Log.Warn("the node's last message in the stream is not the one this writer stored last: continuing after it",
			"node", node, "stored_last", have, "stream_last", seq)
	}
	w.last[node] = seq
}

// expectation is the node's last sequence in the stream, read from the
// leader the first time.
func (w *Writer) expectation(ctx context.Context, node string) (uint64, error) {
	for {
		if seq, ok := w.last[node]; ok {
			return seq, nil
		}
		actx, cancel := context.WithTimeout(ctx, w.ReadTimeout)
		last, err := history.Last(actx, w.Conn, w.APIPrefix, w.Stream, node)
		cancel()
		switch {
		case err == nil:
			w.last[node] = last.Seq
		case errors.Is(err, history.ErrNoMessage):
			w.last[node] = 0
		case errors.Is(err, history.ErrStreamNotFound) && w.StreamMissing != nil:
			if err := w.StreamMissing(ctx); err != nil {
				w.setFailing(fmt.Errorf("create stream %s again: %w", w.Stream, err))
			}
		default:
			w.setFailing(err)
		}
		if _, ok := w.last[node]; ok {
			return w.last[node], nil
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if err := w.retry.Wait(ctx); err != nil {
			return 0, err
		}
	}
}

// send publishes items as one atomic batch (or, for one item, one
// message) whose first message expects the node's last sequence to be
// expect, and waits for the acknowledgement: the stream sequence of the
// last item, and whether the stream had it already (a single message
// whose id it still remembered).
func (w *Writer) send(ctx context.Context, items []queue.Item, expect uint64) (uint64, bool, error) {
	node := items[0].Event.Node
	commit, err := w.publish(items, expect)
	if err != nil {
		return 0, false, err
	}
	actx, cancel := context.WithTimeout(ctx, w.AckTimeout)
	defer cancel()
	resp, err := w.Conn.RequestMsgWithContext(actx, commit)
	if err != nil {
		return 0, false, fmt.Errorf("publish %d events to %s: %w", len(items), subject.Node(node), err)
	}
	return parseAck(resp.Data, len(items), node)
}

// publish publishes every item of a batch but its last (the commit, or
// the single message), which it returns for the caller to send as a
// request: the first message expects the node's last sequence to be
// expect. Each message carries the event's id as its Nats-Msg-Id.
func (w *Writer) publish(items []queue.Item, expect uint64) (*nats.Msg, error) {
	node := items[0].Event.Node
	batchID := ""
	if len(items) > 1 {
		batchID = nuid.Next()
	}
	// One message and its header values, reused: the client has copied a
	// message into its buffer when PublishMsg returns.
	m := &nats.Msg{Header: nats.Header{}}
	id, seq, bid := []string{""}, []string{""}, []string{batchID}
	for i := range items {
		clear(m.Header)
		m.Subject, m.Data = items[i].Subject, items[i].Data
		id[0] = items[i].Event.ID
		m.Header[hdrMsgID] = id
		if i == 0 {
			m.Header[hdrExpectSeq] = []string{strconv.FormatUint(expect, 10)}
			m.Header[hdrExpectSeqSubj] = []string{subject.Node(node)}
		}
		if batchID != "" {
			seq[0] = strconv.Itoa(i + 1)
			m.Header[hdrBatchID] = bid
			m.Header[hdrBatchSeq] = seq
			if i == len(items)-1 {
				m.Header[hdrBatchCommit] = []string{"1"}
			}
		}
		if i == len(items)-1 {
			break // the commit (or the single message) is a request
		}
		if err := w.Conn.PublishMsg(m); err != nil {
			return nil, fmt.Errorf("publish batch to %s: %w", m.Subject, err)
		}
	}
	// The last message keeps its own header values: the caller sends it
	// after this returns.
	m.Header[hdrMsgID] = []string{items[len(items)-1].Event.ID}
	if batchID != "" {
		m.Header[hdrBatchSeq] = []string{strconv.Itoa(len(items))}
	}
	return m, nil
}

// parseAck reads the acknowledgement of a batch of n events of node.
func parseAck(data []byte, n int, node string) (uint64, bool, error) {
	var ack struct {
		Seq       uint64    `json:"seq"`
		Duplicate bool      `json:"duplicate"`
		Error     *apiError `json:"error"`
	}
	if err := json.Unmarshal(data, &ack); err != nil {
		return 0, false, fmt.Errorf("publish %d events to %s: bad acknowledgement %q: %w", n, subject.Node(node), data, err)
	}
	if ack.Error != nil {
		return 0, false, ack.Error
	}
	if ack.Seq == 0 {
		return 0, false, fmt.Errorf("publish %d events to %s: acknowledgement without a sequence: %q", n, subject.Node(node), data)
	}
	return ack.Seq, ack.Duplicate, nil
}

// apiError is a JetStream API error in an acknowledgement.
type apiError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

func (e *apiError) Error() string { return fmt.Sprintf("jetstream: %s (%d)", e.Description, e.ErrCode) }

// done records a stored batch whose last item has stream sequence seq (an
// atomic batch is stored at consecutive sequences).
func (w *Writer) done(items []queue.Item, seq uint64, duplicate bool) {
	w.mu.Lock()
	w.failing = nil
	w.mu.Unlock()
	w.retry.Reset()
	if duplicate { // one message the stream already held, before the node's last
		if w.Metrics != nil {
			w.Metrics.Duplicates.Inc()
		}
		return
	}
	node := items[0].Event.Node
	prev, known := w.last[node]
	w.alone = known && seq == prev+uint64(len(items))
	w.last[node] = seq
	first := seq - uint64(len(items)-1)
	if w.Metrics != nil {
		w.Metrics.EventsPublished.Add(float64(len(items)))
		w.Metrics.Batches.Inc()
	}
	if w.Stored != nil {
		for i := range items {
			w.Stored(first+uint64(i), &items[i])
		}
	}
}

func (w *Writer) failed(items []queue.Item, err error) {
	w.setFailing(err)
	if w.Metrics != nil {
		w.Metrics.PublishErrors.Inc()
	}
	level := slog.LevelDebug
	if w.retry.Current() == w.RetryMin {
		level = slog.LevelWarn // the first failure of a run; the rest at debug
	}
	w.Log.Log(context.Background(), level, "batch not acknowledged: checking what the stream holds before sending it again",
		"events", len(items), "node", items[0].Event.Node, "first_id", items[0].Event.ID, "err", err)
}

func (w *Writer) count(outcome string) {
	if w.Metrics != nil {
		w.Metrics.Settled.WithLabelValues(outcome).Inc()
	}
}
