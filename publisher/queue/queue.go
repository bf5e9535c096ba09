package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/dockcast/dockcast/shared/event"
)

// DefaultMaxBytes is the default bound of a Queue (PUBLISHER_QUEUE_MAX_BYTES):
// about 100,000 typical events.
const DefaultMaxBytes = 64 << 20

// ErrClosed is returned by Push and PushAll once the queue is closed.
var ErrClosed = errors.New("queue closed")

// Item is one event on its way to the stream, encoded once at ingest.
type Item struct {
	Event   event.Event
	Subject string // Event.Subject()
	Data    []byte // Event's JSON payload
	// Group, on the first item of a group that must be stored together
	// (a gap announcement), is the number of items in the group: Next
	// does not start such a group in a batch that has no room left for
	// all of it.
	Group int
}

// NewItem encodes e.
func NewItem(e event.Event) (Item, error) {
	data, err := e.Marshal()
	if err != nil {
		return Item{}, err
	}
	return Item{Event: e, Subject: e.Subject(), Data: data}, nil
}

// Reencode refreshes Subject and Data after a stage changed Event.
func (it *Item) Reencode() error {
	data, err := it.Event.Marshal()
	if err != nil {
		return err
	}
	it.Subject, it.Data = it.Event.Subject(), data
	return nil
}

// Size is what the item counts against the queue's bound: its payload and
// subject bytes.
func (it *Item) Size() int64 { return int64(len(it.Data) + len(it.Subject)) }

// Queue is a FIFO of items bounded in bytes, for one producer and one
// consumer at a time. The zero value is not usable; make one with New.
//
// One item is always accepted into an empty queue, however large, so that
// an item larger than the bound still makes progress.
type Queue struct {
	max int64

	mu      sync.Mutex
	items   []Item
	head    int
	bytes   int64
	closed  bool
	changed chan struct{} // closed (and replaced) on a change while watched
	watched bool          // someone holds changed
}

// New returns an empty queue holding at most maxBytes (DefaultMaxBytes if
// maxBytes < 1).
func New(maxBytes int64) *Queue {
	if maxBytes < 1 {
		maxBytes = DefaultMaxBytes
	}
	return &Queue{max: maxBytes, changed: make(chan struct{})}
}

// MaxBytes is the queue's bound.
func (q *Queue) MaxBytes() int64 { return q.max }

// notifyLocked wakes everyone waiting for a change.
func (q *Queue) notifyLocked() {
	if q.watched {
		close(q.changed)
		q.changed, q.watched = make(chan struct{}), false
	}
}

// watchLocked returns the channel closed at the next change.
func (q *Queue) watchLocked() <-chan struct{} {
	q.watched = true
	return q.changed
}

// Len is the number of items waiting.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}

// Bytes is the size of the items waiting.
func (q *Queue) Bytes() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes
}

// fitsLocked reports whether size more bytes fit now.
func (q *Queue) fitsLocked(size int64) bool {
	return q.head == len(q.items) || q.bytes+size <= q.max
}

func (q *Queue) appendLocked(items ...Item) {
	for i := range items {
		q.bytes += items[i].Size()
	}
	q.items = append(q.items, items...)
	q.notifyLocked()
}

// TryPush appends it unless it does not fit or the queue is closed; it
// never blocks.
func (q *Queue) TryPush(it Item) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || !q.fitsLocked(it.Size()) {
		return false
	}
	q.appendLocked(it)
	return true
}

// TryPushAll appends every item at once, or none when they do not fit or
// the queue is closed; it never blocks.
func (q *Queue) TryPushAll(items []Item) bool {
	var size int64
	for i := range items {
		size += items[i].Size()
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || !q.fitsLocked(size) {
		return false
	}
	q.appendLocked(items...)
	return true
}

// Push appends it, waiting for room until ctx ends; ErrClosed once the
// queue is closed.
func (q *Queue) Push(ctx context.Context, it Item) error { return q.PushAll(ctx, []Item{it}) }

// PushAll appends every item at once or none: it waits until all of them
// fit (or the queue is empty), until ctx ends, or until the queue is
// closed (ErrClosed).
func (q *Queue) PushAll(ctx context.Context, items []Item) error {
	var size int64
	for i := range items {
		size += items[i].Size()
	}
	var err error
	waitErr := q.until(ctx, func() bool {
		switch {
		case q.closed:
			err = ErrClosed
		case q.fitsLocked(size):
			q.appendLocked(items...)
		default:
			return false
		}
		return true
	})
	if waitErr != nil {
		return fmt.Errorf("queue full: %w", waitErr)
	}
	return err
}

// WaitBytes waits until at most maxBytes are queued (or the queue is
// closed) or ctx ends.
func (q *Queue) WaitBytes(ctx context.Context, maxBytes int64) error {
	return q.until(ctx, func() bool { return q.bytes <= maxBytes || q.closed })
}

// until calls done with the lock held, at once and after every change of
// the queue, until it returns true (nil) or ctx ends (ctx's error).
func (q *Queue) until(ctx context.Context, done func() bool) error {
	for {
		q.mu.Lock()
		if done() {
			q.mu.Unlock()
			return nil
		}
		changed := q.watchLocked()
		q.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Next moves up to maxItems items, and no more than maxBytes (but at
// least one), from the head of the queue to dst, all of the same node as
// the first, and returns dst; a group that fits in maxItems starts a new
// batch rather than being split. It waits until there is an item; it returns
// dst unchanged (and nil) once the queue is closed and drained, or ctx's
// error.
func (q *Queue) Next(ctx context.Context, dst []Item, maxItems int, maxBytes int64) ([]Item, error) {
	err := q.until(ctx, func() bool {
		if q.head == len(q.items) && !q.closed {
			return false
		}
		dst = q.popLocked(dst, maxItems, maxBytes)
		return true
	})
	return dst, err
}

// PopBatch is Next without the wait: it returns dst unchanged when the
// queue is empty.
func (q *Queue) PopBatch(dst []Item, maxItems int, maxBytes int64) []Item {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.popLocked(dst, maxItems, maxBytes)
}

func (q *Queue) popLocked(dst []Item, maxItems int, maxBytes int64) []Item {
	var size int64
	start := len(dst)
	for q.head < len(q.items) && len(dst)-start < maxItems {
		it := &q.items[q.head]
		n := len(dst) - start
		if n > 0 && (size+it.Size() > maxBytes || it.Event.Node != dst[start].Event.Node || it.Group > maxItems-n && it.Group <= maxItems) {
			break
		}
		size += it.Size()
		dst = append(dst, *it)
		*it = Item{}
		q.head++
	}
	if len(dst) == start {
		return dst
	}
	q.bytes -= size
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head > 1024 && q.head > len(q.items)/2 {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.notifyLocked()
	return dst
}

// Close refuses further pushes; the consumer drains what is left.
func (q *Queue) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		q.notifyLocked()
	}
}

// Done reports whether the queue is closed and empty.
func (q *Queue) Done() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed && q.head == len(q.items)
}
