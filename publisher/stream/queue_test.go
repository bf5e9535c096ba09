package stream_test

import (
	"context"
	"testing"
	"time"

	"github.com/dockcast/dockcast/publisher/stream"
)

func TestQueue(t *testing.T) {
	t.Parallel()
	q := stream.NewQueue(3)
	evs := synthetic("q", 0, 4)
	for _, e := range evs[:3] {
		if !q.TryPush(e) {
			t.Fatal("push refused below capacity")
		}
	}
	if q.TryPush(evs[3]) {
		t.Fatal("push accepted above capacity")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := q.WaitRoom(ctx, 1); err == nil {
		t.Fatal("WaitRoom returned with a full queue")
	}
	if e, ok := q.Pop(); !ok || e.ID != evs[0].ID {
		t.Fatal("not FIFO")
	}
	if q.Len() != 2 {
		t.Fatalf("len %d", q.Len())
	}
	q.Close()
	if q.TryPush(evs[3]) || q.Done() {
		t.Fatal("closed queue accepts pushes or is done while holding events")
	}
	q.Pop()
	q.Pop()
	if _, ok := q.Pop(); ok || !q.Done() {
		t.Fatal("closed and empty queue not done")
	}
}
