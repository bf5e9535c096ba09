// Package sse frames dockcast's server frames as Server-Sent Events for
// GET /sse (the contract's "Server-Sent Events"): one SSE message per frame,
// with `event: <frame type>`, `data: <the frame's JSON>` (one line: a frame
// never holds a newline), and `id: <epoch>:<seq>` where the frame is a
// resume point, so that a browser's EventSource resumes by itself.
//
// Entry points:
//   - NewWriter / Writer: the response side (headers, messages, comment
//     lines to keep proxies from closing an idle stream, flushing).
//   - ParseCursor / Cursor: the <epoch>:<seq> resume point; ResumeFrom reads
//     it from a request's Last-Event-ID header (which wins) or its
//     last_event_id query parameter.
//   - FrameID: which frames carry an id, and which.
//   - NewTransport / Transport.Serve: a gateway client (package client)
//     served on one response, written by the request's goroutine, with
//     a comment line after Options.KeepAlive without a write.
package sse
