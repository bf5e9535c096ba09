package stream

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/shared/status"
)

// DefaultStatusBacklog is the default number of status changes a
// StatusWriter keeps while it cannot write.
const DefaultStatusBacklog = 64

// StatusWriter writes every status given to Set to the node's key in the
// DOCKER_STATUS bucket, in order, retrying while NATS is unreachable, so
// that a quick disconnected -> connected flip shows both values. Run owns
// the writes.
//
// At most Backlog changes wait; on overflow the oldest waiting
// "disconnected" and the newest status are kept (the changes between them
// are dropped), so an outage is never hidden and the key ends at the latest
// state.
type StatusWriter struct {
	KV  jetstream.KeyValue
	Log *slog.Logger
	// Timeout bounds one write (default 5s); RetryWait is the pause after a
	// failed write (default 1s).
	Timeout, RetryWait time.Duration
	// Backlog bounds the changes waiting to be written (DefaultStatusBacklog).
	Backlog int

	mu      sync.Mutex
	pending []queuedStatus // oldest first
	nextID  uint64
	changed chan struct{}
	once    sync.Once
}

type queuedStatus struct {
	id uint64
	s  status.Status
}

func (w *StatusWriter) init() {
	w.once.Do(func() {
		w.changed = make(chan struct{}, 1)
		if w.Timeout == 0 {
			w.Timeout = 5 * time.Second
		}
		if w.RetryWait == 0 {
			w.RetryWait = time.Second
		}
		if w.Backlog < 2 {
			w.Backlog = DefaultStatusBacklog
		}
		if w.Log == nil {
			w.Log = slog.New(slog.DiscardHandler)
		}
	})
}

// Set queues s to be written after the statuses before it; it never blocks.
func (w *StatusWriter) Set(s status.Status) {
	w.init()
	w.mu.Lock()
	w.nextID++
	w.pending = append(w.pending, queuedStatus{id: w.nextID, s: s})
	if len(w.pending) > w.Backlog {
		newest := w.pending[len(w.pending)-1]
		kept := w.pending[:0]
		for _, q := range w.pending[:len(w.pending)-1] {
			if q.s.Docker == status.Disconnected {
				kept = append(kept, q) // the oldest disconnect
				break
			}
		}
		w.pending = append(kept, newest)
		w.Log.Warn("docker status backlog full: intermediate changes dropped", "backlog", w.Backlog)
	}
	w.mu.Unlock()
	signal(w.changed)
}

// head returns the oldest waiting status.
func (w *StatusWriter) head() (queuedStatus, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) == 0 {
		return queuedStatus{}, false
	}
	return w.pending[0], true
}

// done removes q once written, unless an overflow removed it meanwhile.
func (w *StatusWriter) done(q queuedStatus) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) > 0 && w.pending[0].id == q.id {
		w.pending = w.pending[1:]
	}
}

// Run writes statuses in order until ctx ends, then makes one last attempt
// (bounded by Timeout in all) to write the ones still waiting.
func (w *StatusWriter) Run(ctx context.Context) {
	w.init()
	for {
		select {
		case <-ctx.Done():
			w.flush()
			return
		case <-w.changed:
		}
		for {
			q, ok := w.head()
			if !ok {
				break
			}
			if err := w.write(ctx, &q.s); err != nil {
				if ctx.Err() != nil {
					break // the last attempt happens above
				}
				w.Log.Warn("write docker status", "node", q.s.Node, "err", err)
				select {
				case <-time.After(w.RetryWait):
					signal(w.changed)
				case <-ctx.Done():
				}
				break
			}
			w.done(q)
		}
	}
}

// flush writes what is waiting, in order, within one Timeout.
func (w *StatusWriter) flush() {
	ctx, cancel := context.WithTimeout(context.Background(), w.Timeout)
	defer cancel()
	for {
		q, ok := w.head()
		if !ok {
			return
		}
		if err := w.write(ctx, &q.s); err != nil {
			w.Log.Warn("write docker status at shutdown", "node", q.s.Node, "err", err)
			return
		}
		w.done(q)
	}
}

func (w *StatusWriter) write(ctx context.Context, s *status.Status) error {
	ctx, cancel := context.WithTimeout(ctx, w.Timeout)
	defer cancel()
	if _, err := w.KV.Put(ctx, s.Node, s.Marshal()); err != nil {
		return err
	}
	w.Log.Debug("docker status written", "node", s.Node, "docker", s.Docker)
	return nil
}
