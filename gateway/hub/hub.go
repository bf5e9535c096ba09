package hub

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server/gsl"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/gateway/client"
	"github.com/dockcast/dockcast/gateway/metrics"
	"github.com/dockcast/dockcast/shared/backoff"
)

// Hub follows the stream and fans events out to clients.
type Hub struct {
	// CheckInterval is how often the stream is checked for a reset and for
	// readiness (default 2s).
	CheckInterval time.Duration
	// RetryWait is the first wait before attaching again or opening the
	// status bucket again (default 1s); it doubles up to MaxRetryWait
	// (default 5s), with jitter, and starts over after a healthy period
	// (shared/backoff).
	RetryWait, MaxRetryWait time.Duration
	// StatusStaleAfter is how long a node's status may go without being
	// rewritten before its clients are told it is stale (default
	// status.StaleAfter).
	StatusStaleAfter time.Duration
	// RecentKept is how many of the stream's last messages the live feed
	// keeps in memory, with their frames, to serve resumes from_seq
	// without JetStream and to refill clients that fell behind a burst
	// (client.Backlog) (default DefaultRecentKept; at most 48 MiB of
	// frames). Set before Run.
	RecentKept int

	js      jetstream.JetStream
	stream  string
	log     *slog.Logger
	metrics *metrics.Metrics

	mu      sync.Mutex
	started bool // lastSeq and epoch are known
	lastSeq uint64
	epoch   string                      // the stream's incarnation (client.EpochOf its creation time)
	index   *gsl.GenericSublist[*group] // groups by their subjects
	groups  map[string]*group           // by groupKey
	clients map[*client.Client]*group
	status  statusBoard // guarded by mu
	pos     client.Position

	recent  recent // guarded by its own lock
	warmTo  uint64 // the ring's warm-up reads up to this sequence (0: none); guarded by mu
	warming atomic.Bool
	times   storedTimes
	invalid invalidLog

	attached atomic.Bool
	down     atomic.Bool  // NATS was reported down since the last watch began
	watches  atomic.Int64 // status watches begun (each restart is one more)
	checkNow chan struct{}
	watchNow chan struct{}
}

// New makes a hub for stream. m may be nil.
func New(js jetstream.JetStream, stream string, log *slog.Logger, m *metrics.Metrics) *Hub {
	log = log.With("component", "hub")
	return &Hub{
		CheckInterval: 2 * time.Second, RetryWait: time.Second, MaxRetryWait: 5 * time.Second, RecentKept: DefaultRecentKept,
		js: js, stream: stream, log: log, metrics: m,
		index: gsl.NewSublist[*group](), groups: map[string]*group{}, clients: map[*client.Client]*group{},
		status:   newStatusBoard(),
		invalid:  invalidLog{log: log, metrics: m},
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
	retry := h.backoff()
	for ctx.Err() == nil {
		up := time.Now()
		err := h.follow(ctx)
		retry.Healthy(up)
		if err != nil && ctx.Err() == nil {
			h.log.Warn("live feed interrupted", "err", err)
			_ = retry.Wait(ctx)
		}
	}
	h.attached.Store(false)
	wg.Wait()
	return nil
}

// Reconnected tells the hub that NATS reconnected (or disconnected, with
// false): it re-checks the stream, and after a disconnect it restarts the
// status watch. The first "connected" of a connection that was never down
// (nats.go reports it asynchronously, possibly after the hub began) is not
// a reconnect: restarting then would only lose the changes written while
// the new watch starts.
func (h *Hub) Reconnected(up bool) {
	if !up {
		h.attached.Store(false)
		h.down.Store(true)
	}
	signal(h.checkNow)
	if up && h.down.Swap(false) {
		signal(h.watchNow)
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Serving reports whether clients may join: the stream's position and
// epoch are known and DOCKER_STATUS was loaded once (so that a joining
// client gets every node's status before its live frame); with a reason
// if not.
func (h *Hub) Serving() (bool, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case !h.started:
		return false, "not yet attached to the event stream " + h.stream
	case !h.status.loaded:
		return false, "status bucket not loaded yet" + h.status.reason()
	}
	return true, ""
}

// Ready reports whether the live feed is attached and clients may join,
// with a reason if not.
func (h *Hub) Ready() (bool, string) {
	if !h.attached.Load() {
		return false, "live feed not attached to stream " + h.stream
	}
	return h.Serving()
}

// LastSeq is the last sequence the live feed delivered.
func (h *Hub) LastSeq() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastSeq
}

// Epoch is the epoch of the stream the live feed follows ("" before it
// attached).
func (h *Hub) Epoch() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.epoch
}

// Position is the live feed's progress, which every live client's
// Checked follows.
func (h *Hub) Position() *client.Position { return &h.pos }

// StoredTime is when the stream stored message seq, if the hub still
// remembers (the last few thousand messages it saw, and the stream's last
// message when it attached).
func (h *Hub) StoredTime(seq uint64) (time.Time, bool) { return h.times.get(seq) }

func (h *Hub) backoff() *backoff.Backoff { return backoff.New(h.RetryWait, h.MaxRetryWait) }

// CaughtUp waits until the live feed has delivered every message the
// stream held when it was called, so that a history that ends at the
// live feed's position (an /events request with until in the past) holds
// everything stored before the request. It returns ctx's error, or the
// stream's.
func (h *Hub) CaughtUp(ctx context.Context) error {
	info, err := h.streamInfo(ctx)
	if err != nil {
		return err
	}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		h.mu.Lock()
		last, epoch := h.lastSeq, h.epoch
		h.mu.Unlock()
		if last >= info.State.LastSeq || epoch != client.EpochOf(info.Created) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
