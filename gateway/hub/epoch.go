package hub

import (
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/gateway/client"
)

// SameStream reports whether info describes the incarnation of the stream
// named by epoch, having delivered up to lastSeq (0: no such bound): the
// same creation time, and a last sequence that did not go backwards. It is
// the one place where a stream reset is recognised (the live feed's
// watchdog, its re-attach, and every replay use it).
func SameStream(epoch string, lastSeq uint64, info *jetstream.StreamInfo) bool {
	return client.EpochOf(info.Created) == epoch && info.State.LastSeq >= lastSeq
}
