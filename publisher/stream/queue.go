package stream

import (
	"context"
	"sync"

	"github.com/dockcast/dockcast/shared/event"
)

// DefaultQueueCapacity is the default number of events the queue holds.
const DefaultQueueCapacity = 10000

// Queue is a bounded FIFO of events with one producer and one consumer.
type Queue struct {
	mu     sync.Mutex
	items  []event.Event
	head   int
	cap    int
	closed bool
	ready  chan struct{} // signalled when an item is added or the queue closes
	room   chan struct{} // signalled when an item is removed
}

// NewQueue returns an empty queue holding at most capacity events
// (DefaultQueueCapacity if capacity < 1).
func NewQueue(capacity int) *Queue {
	if capacity < 1 {
		capacity = DefaultQueueCapacity
	}
	return &Queue{cap: capacity, ready: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Cap is the queue's capacity.
func (q *Queue) Cap() int { return q.cap }

// Len is the number of events waiting.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}

// TryPush appends e unless the queue is full or closed; it never blocks.
func (q *Queue) TryPush(e event.Event) bool {
	q.mu.Lock()
	if q.closed || len(q.items)-q.head >= q.cap {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, e)
	q.mu.Unlock()
	signal(q.ready)
	return true
}

// Push appends e, waiting for room until ctx ends.
func (q *Queue) Push(ctx context.Context, e event.Event) error {
	for {
		if q.TryPush(e) {
			return nil
		}
		if err := q.WaitRoom(ctx, q.cap-1); err != nil {
			return err
		}
	}
}

// WaitRoom waits until at most maxLen events are queued.
func (q *Queue) WaitRoom(ctx context.Context, maxLen int) error {
	for q.Len() > maxLen {
		select {
		case <-q.room:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Pop removes the oldest event, if any.
func (q *Queue) Pop() (event.Event, bool) {
	q.mu.Lock()
	if q.head == len(q.items) {
		q.mu.Unlock()
		return event.Event{}, false
	}
	e := q.items[q.head]
	q.items[q.head] = event.Event{}
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head > 1024 && q.head > len(q.items)/2 {
		n := copy(q.items, q.items[q.head:])
		q.items, q.head = q.items[:n], 0
	}
	q.mu.Unlock()
	signal(q.room)
	return e, true
}

// Ready is signalled after a push or Close; check Pop and Done again after it fires.
func (q *Queue) Ready() <-chan struct{} { return q.ready }

// Close refuses further pushes; the consumer drains what is left.
func (q *Queue) Close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	signal(q.ready)
}

// Done reports whether the queue is closed and empty.
func (q *Queue) Done() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed && q.head == len(q.items)
}
