// Package ws is the WebSocket transport of the gateway, over melody: it
// upgrades an admitted request, binds the connection to its
// transport-neutral client (package client) as the client's Sink, reports
// each frame written, and sizes melody so that it never drops a frame:
// melody's session buffer holds MessageBufferSize frames, the client gets
// MessageBufferSize-2 credits, which keeps two slots for the closing error
// frame and the close. Every write has a deadline; frames over
// MaxMessageSize from the client close the connection (1009).
//
// An idle connection is kept small: Serve takes the connection from
// net/http and serves it on a goroutine of its own (an idle client keeps
// neither net/http's buffers nor its handler's stack), the session drops
// its request once connected and finds its client through its connection
// (no map of keys), melody's buffer is 4 frames (the least) and gorilla's read buffer
// one control frame. What is left is mostly melody's own: two
// goroutines of 4 KiB of stack each (docs/benchmarks.md, "Fan-out").
//
// conn.go: under gorilla, the connection holds back what
// is written while more frames wait in melody and writes it at once (one
// system call per 64 KiB for a client with a backlog, none delayed); a
// train (client.TrainSink) goes out with one writev, also through the
// listener's wrapper (Unwrapper), together with the frames its client
// queued while it waited for the writer (client.Client.TakeQueued); and
// it sets the socket's write deadline only when it moved by more than a
// second.
//
// Entry points: New, Transport.Serve, Transport.Credits, Transport.Abort,
// Subprotocol.
package ws
