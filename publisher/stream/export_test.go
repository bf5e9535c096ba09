package stream

import (
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// SetTestHooks installs fault injection on w before Run: publish replaces
// each asynchronous send (next is the real one); recovering is called when
// a recovery starts.
func SetTestHooks(w *Writer,
	publish func(next PublishFunc, m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error),
	recovering func(inFlight int)) {
	w.publishHook = publish
	w.onRecover = recovering
}
