package stream

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/shared/status"
)

// StatusWriter keeps the DOCKER_STATUS key of a node at the latest status
// given to Set, retrying while NATS is unreachable. Run owns the writes.
type StatusWriter struct {
	KV  jetstream.KeyValue
	Log *slog.Logger
	// Timeout bounds one write (default 5s); RetryWait is the pause after a
	// failed write (default 1s).
	Timeout, RetryWait time.Duration

	mu      sync.Mutex
	pending *status.Status
	changed chan struct{}
	once    sync.Once
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
		if w.Log == nil {
			w.Log = slog.New(slog.DiscardHandler)
		}
	})
}

// Set records s as the status to write; it never blocks.
func (w *StatusWriter) Set(s status.Status) {
	w.init()
	w.mu.Lock()
	w.pending = &s
	w.mu.Unlock()
	signal(w.changed)
}

func (w *StatusWriter) take() *status.Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.pending
	w.pending = nil
	return s
}

// restore puts s back unless a newer status arrived meanwhile.
func (w *StatusWriter) restore(s *status.Status) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pending == nil {
		w.pending = s
	}
}

// Run writes statuses until ctx ends, then makes one last attempt (bounded
// by Timeout) to write a pending one.
func (w *StatusWriter) Run(ctx context.Context) {
	w.init()
	for {
		select {
		case <-ctx.Done():
			if s := w.take(); s != nil {
				_ = w.write(context.Background(), s)
			}
			return
		case <-w.changed:
		}
		s := w.take()
		if s == nil {
			continue
		}
		if err := w.write(ctx, s); err != nil {
			w.restore(s)
			if ctx.Err() != nil {
				continue // the last attempt happens above
			}
			w.Log.Warn("write docker status", "node", s.Node, "err", err)
			select {
			case <-time.After(w.RetryWait):
				signal(w.changed)
			case <-ctx.Done():
			}
		}
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
