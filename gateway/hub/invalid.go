package hub

import (
	"log/slog"
	"sync"

	"github.com/dockcast/dockcast/gateway/metrics"
)

// invalidKept is how many invalid messages are remembered as logged.
const invalidKept = 1024

// invalidLog notes messages that are not valid events: each is logged
// once with its sequence and counted once, however many clients (live or
// replaying) skip it.
type invalidLog struct {
	log     *slog.Logger
	metrics *metrics.Metrics

	mu    sync.Mutex
	seen  map[uint64]bool
	order []uint64
}

// Invalid records that message seq on subj is not a valid event (err says
// why). Every client skips it; none is closed for it.
func (h *Hub) Invalid(seq uint64, subj string, err error) { h.invalid.note(seq, subj, err) }

func (l *invalidLog) note(seq uint64, subj string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen[seq] {
		return
	}
	if l.seen == nil {
		l.seen = map[uint64]bool{}
	}
	if len(l.order) >= invalidKept {
		delete(l.seen, l.order[0])
		l.order = l.order[1:]
	}
	l.seen[seq] = true
	l.order = append(l.order, seq)
	if l.metrics != nil {
		l.metrics.InvalidMessages.Inc()
	}
	l.log.Warn("stream message is not a valid event: skipped for every client", "seq", seq, "subject", subj, "err", err)
}

func (l *invalidLog) reset() {
	l.mu.Lock()
	l.seen, l.order = nil, nil
	l.mu.Unlock()
}
