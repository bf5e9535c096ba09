// Package ws is one WebSocket client of the gateway: its filter, its bounded
// outgoing queue counted in bytes, and the pump that hands frames to melody
// only while melody's own buffer has room, so that melody never drops a
// frame silently. It also builds the protocol's frames.
//
// Entry points: NewClient, Client (JoinLive, JoinBuffering, Live, Replay,
// GoLive, Frame, Sent, Close, Disconnected) and the *Frame functions.
//
// Flow control: melody's session buffer holds at most MessageBufferSize
// frames; the client counts frames handed to melody and frames melody
// reports sent (HandleSentMessage) and hands a frame only while
// handed-sent < MessageBufferSize-2, keeping two slots for an error frame
// and a close frame. Frames that cannot be handed wait in the client's
// queue; when the queue exceeds MaxQueueBytes the client is closed with a
// slow_consumer error carrying resume_from_seq, a 1008 close frame, and a
// timer that closes the TCP connection if that close frame cannot be
// written. Nothing here ever blocks the hub.
package ws
