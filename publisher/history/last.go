package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/subject"
)

// DefaultAPIPrefix is the JetStream API of the account (edge mode reaches
// another domain's as $JS.<domain>.API).
const DefaultAPIPrefix = "$JS.API"

// Errors of Last.
var (
	// ErrNoMessage: the stream holds no message of the node.
	ErrNoMessage = errors.New("no message of the node in the stream")
	// ErrStreamNotFound: the stream does not exist.
	ErrStreamNotFound = errors.New("stream not found")
)

// LastMsg is a node's last message in the stream.
type LastMsg struct {
	Seq uint64 // its stream sequence
	ID  string // the event id of its payload ("" when it is not a dockcast event)
}

// Last asks the stream's leader (the JetStream API's STREAM.MSG.GET, not a
// direct get that a lagging replica could answer) for the node's last
// message. apiPrefix is DefaultAPIPrefix unless another domain's API is
// meant.
func Last(ctx context.Context, nc *nats.Conn, apiPrefix, stream, node string) (LastMsg, error) {
	if apiPrefix == "" {
		apiPrefix = DefaultAPIPrefix
	}
	subj := subject.Node(node)
	req, _ := json.Marshal(struct {
		LastFor string `json:"last_by_subj"`
	}{subj})
	resp, err := nc.RequestWithContext(ctx, apiPrefix+".STREAM.MSG.GET."+stream, req)
	if err != nil {
		return LastMsg{}, fmt.Errorf("last message of %s: %w", subj, err)
	}
	var r struct {
		Message *struct {
			Seq  uint64 `json:"seq"`
			Data []byte `json:"data"`
		} `json:"message"`
		Error *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return LastMsg{}, fmt.Errorf("last message of %s: bad response %q: %w", subj, resp.Data, err)
	}
	switch {
	case r.Error != nil && r.Error.ErrCode == 10037: // no message found
		return LastMsg{}, ErrNoMessage
	case r.Error != nil && r.Error.ErrCode == 10059:
		return LastMsg{}, fmt.Errorf("%s: %w", stream, ErrStreamNotFound)
	case r.Error != nil:
		return LastMsg{}, fmt.Errorf("last message of %s: %s (%d)", subj, r.Error.Description, r.Error.ErrCode)
	case r.Message == nil:
		return LastMsg{}, fmt.Errorf("last message of %s: empty response", subj)
	}
	last := LastMsg{Seq: r.Message.Seq}
	if e, err := event.Decode(r.Message.Data); err == nil {
		last.ID = e.ID
	}
	return last, nil
}
