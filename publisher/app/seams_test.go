package app_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dockcast/dockcast/publisher/queue"
	"github.com/dockcast/dockcast/shared/testkit"
)

// The seams for issue 10: ordered stages between the reader and the
// writer may wait and may change events (the stored payload is the
// changed one), and Stored sees every stored event with its sequence, in
// stream order.
func TestStagesAndStoredSeams(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seqs []uint64
	js, e, p := withFakeEngine(t, testkit.FakeEngineOptions{}, func(a *appT) {
		a.Stages = []queue.Stage{func(ctx context.Context, it *queue.Item) error {
			if it.Event.Type != "container" {
				return nil
			}
			select { // a stage may wait (an inspect, say); the reader never does
			case <-time.After(time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
			it.Event.Actor.Attributes["dockcast.test.stage"] = "seen"
			return it.Reencode()
		}}
		a.Stored = func(seq uint64, _ *queue.Item) {
			mu.Lock()
			seqs = append(seqs, seq)
			mu.Unlock()
		}
	})
	for i := range 50 {
		e.Emit(containerEvent(i))
	}
	msgs := waitHistory(t, js, e, p.Node, time.Minute)
	for _, m := range engineEvents(msgs) {
		if m.Event.Actor.Attributes["dockcast.test.stage"] != "seen" {
			t.Fatalf("event at seq %d not changed by the stage: %v", m.Seq, m.Event.Actor.Attributes)
		}
	}
	testkit.Eventually(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(seqs) != len(msgs) {
			return fmt.Errorf("Stored saw %d events, the stream holds %d", len(seqs), len(msgs))
		}
		return nil
	})
	for i, m := range msgs {
		if seqs[i] != m.Seq {
			t.Fatalf("Stored gave sequence %d for the event at %d", seqs[i], m.Seq)
		}
	}
}
