package hub

import (
	"sort"
	"sync"
	"sync/atomic"

	"github.com/dockcast/dockcast/shared/event"
)

// Default sizes of the ring of recent messages (Hub.RecentKept, Recent).
const (
	DefaultRecentKept = 32768
	recentBytes       = 48 << 20
)

// Message is a message of the stream as the live feed delivered it: its
// sequence, subject, decoded event and event frame (built once, shared by
// every client: read only).
type Message struct {
	Seq     uint64
	Subject string
	Event   *event.Event
	Frame   []byte
}

// recent is the ring of the last messages the live feed delivered, so that
// a resume from a recent sequence (every client after a gateway restart)
// is served from memory, without JetStream. It covers [from, upto]: the
// live feed delivered, in order, every message the stream held between
// them (invalid messages are not kept: they are skipped for every client).
// from is the first message it saw (never a sequence before: whether the
// stream still held those is not known), and moves up as old messages are
// dropped (by count and bytes, or when the stream's first sequence passes
// them, which then makes a resume from there the replay's, with its gap
// frame). Guarded by its own lock: replays read it beside the feed.
type recent struct {
	kept  int // messages kept at most (set before Run)
	mu    sync.RWMutex
	epoch string
	from  uint64 // 0: covers nothing
	upto  uint64
	msgs  []Message // circular: msgs[head] is the oldest of n
	head  int
	n     int
	bytes int
	first atomic.Uint64 // from, for readers without the lock (client.Backlog.BacklogFrom)
}

// reset empties the ring for epoch, to keep kept messages.
func (r *recent) reset(epoch string, kept int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.kept = kept
	r.epoch, r.from, r.upto, r.msgs, r.head, r.n, r.bytes = epoch, 0, 0, nil, 0, 0, 0
	r.first.Store(0)
}

// next is the sequence the ring continues at (0 when empty): a consumer
// starting elsewhere must reset it.
func (r *recent) next() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.from == 0 {
		return 0
	}
	return r.upto + 1
}

// add records the message the feed delivered after upto (m.Event nil: an
// invalid one, which only moves upto).
func (r *recent) add(m Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.from == 0 {
		r.from = m.Seq
		r.first.Store(r.from)
	}
	if m.Seq <= r.upto {
		return
	}
	r.upto = m.Seq
	if m.Event == nil {
		return
	}
	if r.msgs == nil {
		r.msgs = make([]Message, max(r.kept, 1))
	}
	for r.n > 0 && (r.n == len(r.msgs) || r.bytes+len(m.Frame) > recentBytes) {
		r.dropOldest()
	}
	r.msgs[(r.head+r.n)%len(r.msgs)] = m
	r.n++
	r.bytes += len(m.Frame)
}

// dropOldest forgets the oldest message; the ring then covers from the
// sequence after it. r.mu is held.
func (r *recent) dropOldest() {
	old := &r.msgs[r.head]
	r.from = old.Seq + 1
	r.first.Store(r.from)
	r.bytes -= len(old.Frame)
	*old = Message{}
	r.head = (r.head + 1) % len(r.msgs)
	r.n--
}

// trim forgets the messages before first, the stream's first sequence:
// they are gone from the stream, and a resume from there is told so.
func (r *recent) trim(first uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.from == 0 || first <= r.from {
		return
	}
	for r.n > 0 && r.msgs[r.head].Seq < first {
		r.dropOldest()
	}
	r.from = max(r.from, min(first, r.upto+1))
	r.first.Store(r.from)
}

// each calls fn with the messages from from on, in order, while it returns
// true: see client.Backlog.
func (r *recent) each(epoch string, from uint64, fn func(seq uint64, subj string, ev *event.Event, frame []byte) bool) (uint64, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.from == 0 || epoch != r.epoch || from < r.from || from > r.upto+1 {
		return from, false
	}
	return r.walkLocked(from, func(m *Message) bool { return fn(m.Seq, m.Subject, m.Event, m.Frame) }), true
}

// walkLocked calls fn with the messages from from on, in order, while it
// returns true; it returns the sequence of the message fn refused, or one
// past the last the ring covers. r.mu is held.
func (r *recent) walkLocked(from uint64, fn func(m *Message) bool) uint64 {
	at := func(i int) *Message { return &r.msgs[(r.head+i)%len(r.msgs)] }
	for i := sort.Search(r.n, func(i int) bool { return at(i).Seq >= from }); i < r.n; i++ {
		if m := at(i); !fn(m) {
			return m.Seq
		}
	}
	return r.upto + 1
}

// get returns the messages of [from, upto] if the ring covers all of it
// for epoch.
func (r *recent) get(epoch string, from, upto uint64) ([]Message, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.from == 0 || epoch != r.epoch || from < r.from || upto > r.upto || from > upto {
		return nil, false
	}
	var out []Message
	r.walkLocked(from, func(m *Message) bool {
		if m.Seq > upto {
			return false
		}
		out = append(out, *m)
		return true
	})
	return out, true
}

// Recent returns the messages of the stream from from to upto, in order,
// if the live feed's ring of recent messages holds every one of them for
// the stream's incarnation epoch (the messages are shared: read only).
// ok false means the replay must read the stream.
func (h *Hub) Recent(epoch string, from, upto uint64) (msgs []Message, ok bool) {
	return h.recent.get(epoch, from, upto)
}

// Backlog walks the ring of recent messages for a lagging client (see
// client.Backlog).
func (h *Hub) Backlog(epoch string, from uint64, fn func(seq uint64, subj string, ev *event.Event, frame []byte) bool) (next uint64, ok bool) {
	return h.recent.each(epoch, from, fn)
}

// BacklogFrom is the first sequence the ring of recent messages holds (0:
// none).
func (h *Hub) BacklogFrom() uint64 { return h.recent.first.Load() }
