package hub

import (
	"sync"
	"time"
)

// timesKept is how many recent messages' stored times the hub remembers.
const timesKept = 4096

// storedTimes remembers when the stream stored the last timesKept
// messages the live feed saw (and, on attach, the stream's last message),
// so that a since replay can tell whether the message just before the
// stream's first one, now removed, was stored after its start: a purge
// long ago is then no gap, while limits eating recent history are.
type storedTimes struct {
	mu   sync.Mutex
	ring [timesKept]struct {
		seq  uint64
		nano int64
	}
}

func (s *storedTimes) put(seq uint64, t time.Time) {
	if seq == 0 || t.IsZero() {
		return
	}
	s.mu.Lock()
	e := &s.ring[seq%timesKept]
	e.seq, e.nano = seq, t.UnixNano()
	s.mu.Unlock()
}

func (s *storedTimes) get(seq uint64) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.ring[seq%timesKept]
	if seq == 0 || e.seq != seq {
		return time.Time{}, false
	}
	return time.Unix(0, e.nano), true
}

func (s *storedTimes) reset() {
	s.mu.Lock()
	clear(s.ring[:])
	s.mu.Unlock()
}
