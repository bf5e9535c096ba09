package queue_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dockcast/dockcast/publisher/queue"
	"github.com/dockcast/dockcast/shared/event"
)

func items(t testing.TB, node string, n int) []queue.Item {
	t.Helper()
	out := make([]queue.Item, n)
	for i := range out {
		it, err := queue.NewItem(event.New(node, "container", "start", "", fmt.Sprintf("c%04d", i), nil, time.Unix(1_700_000_000, int64(i))))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = it
	}
	return out
}

func TestBoundedInBytes(t *testing.T) {
	t.Parallel()
	its := items(t, "n", 4)
	three := its[0].Size() + its[1].Size() + its[2].Size()
	q := queue.New(three)
	for _, it := range its[:3] {
		if !q.TryPush(it) {
			t.Fatal("push refused below the bound")
		}
	}
	if q.TryPush(its[3]) {
		t.Fatal("push accepted above the bound")
	}
	if q.Len() != 3 || q.Bytes() != three {
		t.Fatalf("len %d bytes %d", q.Len(), q.Bytes())
	}
	got := q.PopBatch(nil, 2, 1<<20)
	if len(got) != 2 || got[0].Event.ID != its[0].Event.ID || got[1].Event.ID != its[1].Event.ID {
		t.Fatalf("PopBatch %v: not the two oldest", got)
	}
	if q.Bytes() != its[2].Size() {
		t.Fatalf("bytes %d after popping two", q.Bytes())
	}
	// A single item larger than the bound still goes into an empty queue.
	small := queue.New(1)
	if !small.TryPush(its[0]) || small.TryPush(its[1]) {
		t.Fatal("an empty queue must take one item of any size, and only one")
	}
}

func TestPopBatchStopsAtBytesAndNode(t *testing.T) {
	t.Parallel()
	q := queue.New(1 << 20)
	a, b := items(t, "a", 5), items(t, "b", 2)
	for _, it := range append(a, b...) {
		q.TryPush(it)
	}
	if got := q.PopBatch(nil, 100, a[0].Size()+a[1].Size()); len(got) != 2 {
		t.Fatalf("%d items within two items' bytes", len(got))
	}
	if got := q.PopBatch(nil, 100, 1); len(got) != 1 {
		t.Fatalf("%d items when one is larger than maxBytes, want 1", len(got))
	}
	if got := q.PopBatch(nil, 100, 1<<20); len(got) != 2 || got[1].Event.Node != "a" {
		t.Fatalf("batch %v crosses from node a to node b", got)
	}
	if got := q.PopBatch(nil, 100, 1<<20); len(got) != 2 || got[0].Event.Node != "b" {
		t.Fatalf("batch %v", got)
	}
}

// Push on a closed queue returns ErrClosed at once instead of spinning
// until its context ends (issue 7, item 10).
func TestPushOnClosedQueue(t *testing.T) {
	t.Parallel()
	its := items(t, "n", 2)
	q := queue.New(its[0].Size())
	q.TryPush(its[0])
	q.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := q.Push(ctx, its[1]); !errors.Is(err, queue.ErrClosed) {
		t.Fatalf("Push on a closed full queue: %v, want ErrClosed", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Push took %v to notice the queue was closed", d)
	}
	if q.Done() {
		t.Fatal("done while holding an item")
	}
	q.PopBatch(nil, 1, 1<<20)
	if !q.Done() {
		t.Fatal("closed and empty queue not done")
	}
}

// Push waits for room and PushAll puts all of its items in at once.
func TestPushWaitsForRoomAllOrNothing(t *testing.T) {
	t.Parallel()
	its := items(t, "n", 4)
	q := queue.New(its[1].Size() + its[2].Size())
	q.TryPush(its[0])
	pushed := make(chan error, 1)
	go func() { pushed <- q.PushAll(context.Background(), its[1:3]) }()
	select {
	case err := <-pushed:
		t.Fatalf("PushAll of two items into a queue with room for one returned %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	if q.Len() != 1 {
		t.Fatalf("PushAll put in part of its items: len %d", q.Len())
	}
	q.PopBatch(nil, 1, 1<<20)
	if err := <-pushed; err != nil {
		t.Fatal(err)
	}
	if q.Len() != 2 {
		t.Fatalf("len %d after PushAll", q.Len())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := q.Push(ctx, its[3]); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Push into a full queue: %v, want the context's deadline", err)
	}
	if err := q.WaitBytes(ctx, 0); err == nil {
		t.Fatal("WaitBytes(0) returned with items queued")
	}
}

// Relay runs its stages on every item, in order, and closes the next
// queue when the first is drained.
func TestRelayRunsStagesInOrder(t *testing.T) {
	t.Parallel()
	its := items(t, "n", 300)
	from, to := queue.New(1<<20), queue.New(1<<20)
	for _, it := range its {
		from.TryPush(it)
	}
	from.Close()
	tag := func(_ context.Context, it *queue.Item) error {
		it.Event.Actor.Attributes["tagged"] = "yes"
		return it.Reencode()
	}
	if err := queue.Relay(context.Background(), from, to, tag); err != nil {
		t.Fatal(err)
	}
	got := to.PopBatch(nil, 1000, 1<<30)
	if len(got) != len(its) || !to.Done() {
		t.Fatalf("%d items relayed of %d, done %v", len(got), len(its), to.Done())
	}
	for i, it := range got {
		e, err := event.Decode(it.Data)
		if err != nil || it.Event.ID != its[i].Event.ID || e.Actor.Attributes["tagged"] != "yes" {
			t.Fatalf("item %d: %v %+v", i, err, e)
		}
	}
}

// A group (a gap announcement) is not split over two batches when it fits
// in one.
func TestNextKeepsAGroupTogether(t *testing.T) {
	t.Parallel()
	q := queue.New(1 << 20)
	its := items(t, "n", 10)
	its[3].Group = 5 // items 3..7
	if !q.TryPushAll(its) {
		t.Fatal("TryPushAll refused")
	}
	ctx := context.Background()
	got, _ := q.Next(ctx, nil, 6, 1<<20)
	if len(got) != 3 {
		t.Fatalf("first batch has %d items, want 3 (the group does not fit after them)", len(got))
	}
	got, _ = q.Next(ctx, nil, 6, 1<<20)
	if len(got) != 6 || got[0].Group != 5 {
		t.Fatalf("second batch %d items starting with group %d, want the group of 5 and one more", len(got), got[0].Group)
	}
	full := queue.New(its[0].Size())
	full.TryPush(its[0])
	if full.TryPushAll(its[1:3]) || full.Len() != 1 {
		t.Fatal("TryPushAll put in part of its items")
	}
}
