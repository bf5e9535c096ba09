// Package stream is the publisher's writer: [Writer] drains the queue
// into the JetStream stream, every event exactly once and in the engine's
// order, with atomic batches that expect the node's last sequence
// ([Writer.store] states the ordering rule, [Writer.settle] the "nothing
// twice" rule). An event the stream can never take is replaced by a
// dockcast.lost stand-in; [Writer.Err] tells /readyz when it is not
// storing.
package stream
