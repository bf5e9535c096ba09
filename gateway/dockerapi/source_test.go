package dockerapi

import (
	"context"
	"io"
	"sync"

	"github.com/dockcast/dockcast/shared/event"
)

// memSource is an in-memory stream for the handler's tests, with the
// semantics the gateway's source must have: a history by time window or,
// with Tail, the last engine events of each node, then (Follow) every
// event added later.
type memSource struct {
	mu      sync.Mutex
	items   []Item
	changed chan struct{} // closed and replaced by add
	queries []Query
	openErr error
}

func newMemSource(evs ...event.Event) *memSource {
	s := &memSource{changed: make(chan struct{})}
	s.add(evs...)
	return s
}

func (s *memSource) add(evs ...event.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range evs {
		s.items = append(s.items, Item{Seq: uint64(len(s.items) + 1), Event: e})
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *memSource) failOpen(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.openErr = err
}

// query returns the i-th query opened (negative: from the end).
func (s *memSource) query(i int) Query {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i < 0 {
		i += len(s.queries)
	}
	return s.queries[i]
}

func (s *memSource) Open(_ context.Context, q Query) (Cursor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queries = append(s.queries, q)
	if s.openErr != nil {
		return nil, s.openErr
	}
	return &memCursor{s: s, q: q}, nil
}

type memCursor struct {
	s       *memSource
	q       Query
	started bool
	next    int // index of the next live item
}

func (c *memCursor) Next(ctx context.Context) ([]Item, error) {
	c.s.mu.Lock()
	if !c.started {
		c.started = true
		hist := c.history()
		c.next = len(c.s.items)
		c.s.mu.Unlock()
		if len(hist) > 0 || c.q.Follow {
			return hist, nil
		}
		return nil, io.EOF
	}
	if !c.q.Follow {
		c.s.mu.Unlock()
		return nil, io.EOF
	}
	for c.next >= len(c.s.items) {
		changed := c.s.changed
		c.s.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		c.s.mu.Lock()
	}
	out := append([]Item(nil), c.s.items[c.next:]...)
	c.next = len(c.s.items)
	c.s.mu.Unlock()
	return out, nil
}

// history: with Tail, from the Tail-th last engine event of each node at or
// before Until; else everything (the writer applies the time window).
func (c *memCursor) history() []Item {
	if c.q.Tail == 0 {
		if c.q.Since.IsZero() && c.q.Until.IsZero() {
			return nil // only new events
		}
		return append([]Item(nil), c.s.items...)
	}
	until := c.q.Until.UnixNano()
	from := map[string]int{} // node -> index of its oldest kept event
	count := map[string]int{}
	for i := len(c.s.items) - 1; i >= 0; i-- {
		e := &c.s.items[i].Event
		if e.TimeNano > until || e.Type == event.TypeDockcast || e.Action == event.ActionState || count[e.Node] == c.q.Tail {
			continue
		}
		count[e.Node]++
		from[e.Node] = i
	}
	var out []Item
	for i, it := range c.s.items {
		if f, ok := from[it.Event.Node]; ok && i >= f {
			out = append(out, it)
		}
	}
	return out
}

func (c *memCursor) Close() {}
