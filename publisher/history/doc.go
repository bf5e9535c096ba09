// Package history reads what the stream already holds for a node:
//
//   - [Recent]: the node's newest events, those within a window of the
//     newest one by the events' own time (the resume point and the ids a
//     resume must not repeat);
//   - [Last]: the node's last message, asked of the stream's leader, so
//     that the writer learns whether a batch whose acknowledgement never
//     came was stored.
package history
