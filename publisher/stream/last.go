package stream

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/subject"
)

// ErrUndecodable is returned by LastEvent when the node's last message is
// not a dockcast event.
var ErrUndecodable = errors.New("last message is not a dockcast event")

// LastEvent returns the newest event of node in the stream; ok is false
// when the stream has none.
func LastEvent(ctx context.Context, s jetstream.Stream, node string) (e event.Event, ok bool, err error) {
	subj := subject.Node(node)
	msg, err := s.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return event.Event{}, false, nil
	}
	if err != nil {
		return event.Event{}, false, fmt.Errorf("last message of %s: %w", subj, err)
	}
	e, err = event.Decode(msg.Data)
	if err != nil {
		return event.Event{}, false, fmt.Errorf("last message of %s (seq %d): %w: %v", subj, msg.Sequence, ErrUndecodable, err)
	}
	return e, true, nil
}
