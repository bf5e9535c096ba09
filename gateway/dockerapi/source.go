package dockerapi

import (
	"context"

	"github.com/dockcast/dockcast/shared/event"
)

// Item is one event of the stream with its stream sequence.
type Item struct {
	Seq   uint64
	Event event.Event
}

// Source opens the events an /events request asks for, from every node the
// caller may read. The gateway implements it over its replay and live feed.
type Source interface {
	// Open starts the feed for q. Its error is the request's answer, before
	// any event: an *Error with its status, any other error 503.
	Open(ctx context.Context, q Query) (Cursor, error)
}

// Cursor is one request's feed of events, in stream order.
type Cursor interface {
	// Next blocks until events are ready and returns them: in stream order,
	// sequences increasing within and across calls. First the history (the
	// events of q's window, or with q.Tail the last q.Tail engine events of
	// each node at or before q.Until), then, with q.Follow, every new event
	// as the stream stores it, until ctx ends.
	//
	// Next may return events the query does not want: the writer applies
	// q.Match to each, so a cursor may hand over everything on
	// q.Filter.Subjects().
	//
	// Calling Next is the writer's credit: it asks again only once it has
	// written and flushed what the last call returned, so the cursor hands
	// over whatever piled up meanwhile (bounded, its own slow-client rule).
	//
	// It returns io.EOF after the history when q.Follow is false, ctx's
	// error when ctx ends, any other error to end the response early.
	Next(ctx context.Context) ([]Item, error)
	// Close releases the feed. The writer calls it once, when it is done.
	Close()
}
