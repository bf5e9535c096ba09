package queue

import (
	"context"
	"errors"
	"fmt"
)

// Stage works on each item between the Docker reader and the writer, in
// order: it may change it.Event (then it calls it.Reencode) and it may
// wait (on a container inspect, say), since the reader has already handed
// the item over. An error ends the relay.
type Stage func(ctx context.Context, it *Item) error

// Relay moves every item from `from` to `to` through stages, in order,
// until `from` is closed and drained (then it closes `to` and returns nil)
// or ctx ends. It is the seam for ordered enrichment: the reader pushes to
// `from` without waiting, the writer drains `to`.
func Relay(ctx context.Context, from, to *Queue, stages ...Stage) error {
	defer to.Close()
	var batch []Item
	for {
		var err error
		batch, err = from.Next(ctx, batch[:0], 256, to.MaxBytes())
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			return nil
		}
		for i := range batch {
			for _, stage := range stages {
				if err := stage(ctx, &batch[i]); err != nil {
					return fmt.Errorf("stage on %s: %w", batch[i].Event.ID, err)
				}
			}
		}
		// One push per batch (it fits: Next bounded it by to's size).
		if err := to.PushAll(ctx, batch); err != nil {
			if errors.Is(err, ErrClosed) {
				return fmt.Errorf("relay: %w", err)
			}
			return err
		}
	}
}
