// Package hub is the gateway's live feed: it follows the event stream once,
// with one JetStream ordered consumer, and fans every message out in
// process to the clients whose filters match. Clients are indexed by their
// subject filters in a NATS sublist (gsl), so each message is matched only
// against clients whose subjects can match it; filter.Match then decides on
// the event, decoded once per message. The hub also watches the
// DOCKER_STATUS bucket and sends status frames, to each client only for the
// nodes its token may read.
//
// Entry points: New, Hub.Run, Hub.JoinLive, Hub.JoinBuffering, Hub.Leave,
// Hub.Ready, Hub.Reconnected.
package hub

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server/gsl"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/olahol/melody"

	"github.com/dockcast/dockcast/gateway/auth"
	"github.com/dockcast/dockcast/gateway/metrics"
	"github.com/dockcast/dockcast/gateway/ws"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/natsutil"
	"github.com/dockcast/dockcast/shared/status"
	"github.com/dockcast/dockcast/shared/subject"
)

// Hub follows the stream and fans events out to clients.
type Hub struct {
	// CheckInterval is how often the stream is checked for a reset and for
	// readiness (default 2s).
	CheckInterval time.Duration
	// RetryWait is the wait between attempts to attach or to open the
	// status bucket (default 1s).
	RetryWait time.Duration

	js      jetstream.JetStream
	stream  string
	log     *slog.Logger
	metrics *metrics.Metrics

	mu       sync.Mutex
	started  bool // lastSeq is known
	lastSeq  uint64
	created  time.Time // stream creation time, to detect a reset
	index    *gsl.GenericSublist[*ws.Client]
	clients  map[*ws.Client]struct{}
	statuses map[string][]byte // node -> status frame

	attached atomic.Bool
	checkNow chan struct{}
	watchNow chan struct{}
}

// New makes a hub for stream.
func New(js jetstream.JetStream, stream string, log *slog.Logger, m *metrics.Metrics) *Hub {
	return &Hub{
		CheckInterval: 2 * time.Second, RetryWait: time.Second,
		js: js, stream: stream, log: log.With("component", "hub"), metrics: m,
		index: gsl.NewSublist[*ws.Client](), clients: map[*ws.Client]struct{}{},
		statuses: map[string][]byte{},
		checkNow: make(chan struct{}, 1), watchNow: make(chan struct{}, 1),
	}
}

// Run follows the stream and the status bucket until ctx ends.
func (h *Hub) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		h.watchStatus(ctx)
	}()
	for ctx.Err() == nil {
		if err := h.follow(ctx); err != nil && ctx.Err() == nil {
			h.log.Warn("live feed interrupted", "err", err)
			h.sleep(ctx, h.RetryWait)
		}
	}
	h.attached.Store(false)
	wg.Wait()
	return nil
}

// Reconnected tells the hub that NATS reconnected (or disconnected, with
// false): it re-checks the stream and restarts the status watch.
func (h *Hub) Reconnected(up bool) {
	if !up {
		h.attached.Store(false)
	}
	for _, ch := range []chan struct{}{h.checkNow, h.watchNow} {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (h *Hub) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

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
		h.started, h.lastSeq, h.created = true, info.State.LastSeq, info.Created
		h.log.Info("live feed starts", "stream", h.stream, "seq", h.lastSeq+1)
	case !info.Created.Equal(h.created) || info.State.LastSeq < h.lastSeq:
		h.resetLocked(info)
	}
	start := h.lastSeq + 1
	h.mu.Unlock()

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
	h.attached.Store(true)
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
// it was deleted and made again, or its last sequence went backwards, it
// flags a reset and returns, which stops the iterator.
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
		last := h.lastSeq
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
		h.mu.Lock()
		bad := !info.Created.Equal(h.created) || info.State.LastSeq < last
		h.mu.Unlock()
		if bad {
			reset.Store(true)
			return
		}
		h.attached.Store(true)
	}
}

// resetLocked closes every client with stream_reset and restarts the live
// feed at the new stream's end. h.mu is held.
func (h *Hub) resetLocked(info *jetstream.StreamInfo) {
	h.log.Warn("stream was reset: closing clients so that they reconnect",
		"stream", h.stream, "old_last_seq", h.lastSeq, "new_last_seq", info.State.LastSeq, "clients", len(h.clients))
	frame := ws.ErrorFrame(ws.CodeStreamReset, fmt.Sprintf("stream %s was reset (its sequences restarted); reconnect without from_seq, or with since", h.stream), 0)
	for c := range h.clients {
		c.Close(melody.CloseServiceRestart, "stream reset", frame)
		h.removeLocked(c)
	}
	h.lastSeq, h.created = info.State.LastSeq, info.Created
}

// deliver fans one message out; false means its sequence went backwards.
func (h *Hub) deliver(msg jetstream.Msg) bool {
	meta, err := msg.Metadata()
	if err != nil {
		h.log.Warn("message without metadata", "subject", msg.Subject(), "err", err)
		return true
	}
	seq, subj, data := meta.Sequence.Stream, msg.Subject(), msg.Data()
	ev, derr := event.Decode(data)
	if derr != nil {
		h.log.Warn("undecodable event skipped", "seq", seq, "subject", subj, "err", derr)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if seq <= h.lastSeq {
		h.log.Warn("stream sequence went backwards", "seq", seq, "last", h.lastSeq)
		return false
	}
	h.lastSeq = seq
	if h.metrics != nil {
		h.metrics.LiveSeq.Set(float64(seq))
	}
	if derr == nil {
		h.fanout(seq, subj, data, &ev)
	}
	return true
}

// fanout offers an event to every matching client. h.mu is held.
func (h *Hub) fanout(seq uint64, subj string, data []byte, ev *event.Event) {
	var frame []byte
	h.index.Match(subj, func(c *ws.Client) {
		if !c.Filter.Match(ev) {
			return
		}
		if frame == nil {
			frame = ws.EventFrame(seq, subj, data)
		}
		c.Live(seq, frame)
	})
}

// Started reports whether the hub knows the stream's position, i.e. it
// attached at least once.
func (h *Hub) Started() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.started
}

// Ready reports whether the live feed is attached, with a reason if not.
func (h *Hub) Ready() (bool, string) {
	if !h.attached.Load() {
		return false, "live feed not attached to stream " + h.stream
	}
	return true, ""
}

// LastSeq is the last sequence the live feed delivered.
func (h *Hub) LastSeq() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastSeq
}

// JoinLive registers a client for live events only: it gets the status
// frames and {"type":"live","seq":lastSeq}, then every later match.
// It returns false when the client is already closed.
func (h *Hub) JoinLive(c *ws.Client) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !c.JoinLive(h.statusFramesLocked(c), h.lastSeq) {
		return false
	}
	h.addLocked(c)
	return true
}

// JoinBuffering registers a replaying client: live events from the
// returned liveFrom on are held for it until it goes live.
func (h *Hub) JoinBuffering(c *ws.Client, minSeq uint64) (liveFrom uint64, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	liveFrom = h.lastSeq + 1
	if !c.JoinBuffering(h.statusFramesLocked(c), liveFrom, minSeq) {
		return 0, false
	}
	h.addLocked(c)
	return liveFrom, true
}

// Leave unregisters a client.
func (h *Hub) Leave(c *ws.Client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removeLocked(c)
}

// Clients returns the registered clients.
func (h *Hub) Clients() []*ws.Client {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*ws.Client, 0, len(h.clients))
	for c := range h.clients {
		out = append(out, c)
	}
	return out
}

func (h *Hub) addLocked(c *ws.Client) {
	if _, ok := h.clients[c]; ok {
		return
	}
	h.clients[c] = struct{}{}
	for _, s := range c.Subjects {
		if err := h.index.Insert(s, c); err != nil {
			h.log.Error("index client subject", "subject", s, "err", err)
		}
	}
}

func (h *Hub) removeLocked(c *ws.Client) {
	if _, ok := h.clients[c]; !ok {
		return
	}
	delete(h.clients, c)
	for _, s := range c.Subjects {
		_ = h.index.Remove(s, c)
	}
}

// statusFramesLocked returns the status frames c may see, by node.
func (h *Hub) statusFramesLocked(c *ws.Client) [][]byte {
	nodes := make([]string, 0, len(h.statuses))
	for n := range h.statuses {
		if mayReadNode(c, n) {
			nodes = append(nodes, n)
		}
	}
	sort.Strings(nodes)
	out := make([][]byte, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, h.statuses[n])
	}
	return out
}

// watchStatus follows the DOCKER_STATUS bucket, which may not exist yet.
func (h *Hub) watchStatus(ctx context.Context) {
	for ctx.Err() == nil {
		if err := h.watchOnce(ctx); err != nil && ctx.Err() == nil {
			h.log.Debug("status watch", "err", err)
			h.sleep(ctx, h.RetryWait)
		}
	}
}

func (h *Hub) watchOnce(ctx context.Context) error {
	octx, cancel := context.WithTimeout(ctx, 5*time.Second)
	kv, err := h.js.KeyValue(octx, status.Bucket)
	cancel()
	if err != nil {
		return fmt.Errorf("open bucket %s: %w", status.Bucket, err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	w, err := kv.WatchAll(wctx)
	if err != nil {
		return fmt.Errorf("watch bucket %s: %w", status.Bucket, err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-h.watchNow:
			return errors.New("nats reconnected: watching again")
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watch ended")
			}
			if e != nil {
				h.statusEntry(e)
			}
		}
	}
}

func (h *Hub) statusEntry(e jetstream.KeyValueEntry) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(h.statuses, e.Key())
		return
	}
	if _, err := status.Decode(e.Value()); err != nil {
		h.log.Warn("bad status value", "key", e.Key(), "err", err)
		return
	}
	frame := ws.StatusFrame(bytes.TrimSpace(e.Value()))
	if bytes.Equal(h.statuses[e.Key()], frame) {
		return
	}
	h.statuses[e.Key()] = frame
	for c := range h.clients {
		if mayReadNode(c, e.Key()) {
			c.Frame(frame)
		}
	}
}

// mayReadNode reports whether c may see node's status: anonymous clients
// (no patterns) see every node; a token's client only nodes whose whole
// subject space docker.events.<node>.> one of its patterns covers.
func mayReadNode(c *ws.Client, node string) bool {
	if c.Patterns == nil {
		return true
	}
	return auth.Allowed(c.Patterns, []string{subject.Node(node)}) == nil
}
