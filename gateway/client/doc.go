// Package client is one consumer of the gateway's event feed, whatever the
// transport: its filter and token rights, its outgoing queue bounded in
// bytes, the credit-based hand-off of frames to the transport, resume
// bookkeeping (resume_from_seq, epoch), slow-consumer handling, and the
// protocol's frames, error codes and close codes, defined once here.
//
// Entry points: New, Client (Attach, JoinLive, JoinBuffering, Live, Status,
// Replay, WaitRoom, GoLive, Sent, Written, TakeQueued, End, Reset,
// Disconnected, Checked), MaxBatchBytes, the
// Sink a transport implements (ChanSink for transports that write on a
// goroutine of their own), the *Frame builders, Decode (is a stream
// message a valid event), Code and the Close* constants, EpochOf and
// CheckEpoch.
//
// Flow control: a Sink holds at most Options.Credits frames plus two (the
// closing error frame and the close); the client counts frames handed to
// the sink and frames the transport reports written (Sent) and hands a
// frame only while fewer than Credits are in flight, all in one function
// (flush). Frames that cannot be handed wait in the client's queue. A live
// event that would take the queue past MaxQueueBytes is not queued: the
// client lags, and each time its transport has drained the queue to a
// quarter it is refilled from the live feed's ring of recent messages
// (Options.Backlog), until it has caught up and takes live events again;
// so a burst is held once for every client, in the ring, and a client that
// reads slower than the burst comes but faster than the ring turns over
// loses nothing and stays connected. A client that falls behind the ring
// (or, without a backlog, passes the bound) ends with slow_consumer and an
// exact resume_from_seq, and a timer aborts the connection if the close
// cannot be written within CloseTimeout. Nothing here blocks the hub.
//
// Batch (Options.Batch, the batch=1 parameter): one frame in flight; the
// next joins every frame queued meanwhile, newline-separated, up to
// MaxBatchBytes (a larger frame goes alone), in a pooled buffer that
// Written gives back. No frame holds a line break (EventFrame and
// StatusFrame compact JSON that has one), so the lines are exactly the
// frames a client without batch gets.
//
// Trains (a TrainSink, without batch): one train in flight; the next
// carries every frame queued meanwhile, framed, up to MaxBatchBytes. When
// the transport writes a train's first frame it may take the frames queued
// since the train was handed (TakeQueued) and write them after it, in the
// same system call: they count as part of that train.
//
// Resume: resume_from_seq is always the first event frame not handed to
// the sink; when none is queued, one past the highest sequence the
// client's filter has been checked against (Checked): the replay's
// position while replaying, the live feed's Position once live.
//
// Bookmarks: a live client handed no frame for Options.BookmarkInterval
// (30 s) gets {"type":"bookmark","seq":Checked} if nothing waits for it in
// its queue, and again after each further interval of silence; a negative
// interval turns them off (Docker's /events).
package client
