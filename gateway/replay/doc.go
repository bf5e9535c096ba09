// Package replay sends a client the stream's history (since / from_seq)
// and hands it over to the live feed at exactly the next sequence. It is
// the only part of the gateway that reads JetStream for one client.
//
// The client first joins the hub in buffering state, which fixes liveFrom
// (the hub's last sequence + 1): live events from liveFrom on are held in
// the client's queue. The replay then reads the history in turns. A turn
// takes one of a bounded number of replay slots, makes a short-lived
// ephemeral pull consumer (AckNone, memory storage, filtered on the
// client's subjects) at the next unread sequence, queues the events the
// client wants below liveFrom, deletes the consumer and lets the slot go.
// A turn ends when the replay is done, when it read its budget
// (TurnMessages, TurnBytes: a replay of the whole stream yields to every
// waiting replay in between, in arrival order), or when the client's queue
// is half full: the replay then waits for the client to drain it without
// holding a slot, so that clients that do not read cannot starve the
// others. When the history is read it sends {"type":"live"} and releases
// the held events: no gap and no duplicate at the handoff. A failed
// consumer (a NATS blip) is retried, with backoff, from the next unread
// sequence.
//
// A from_seq replay whose whole range the live feed's ring of recent
// messages holds (hub.Recent: every client resuming after a gateway
// restart) is served from it instead, without a slot or any JetStream
// call, with the same frames in the same order; Replayer.StreamOnly turns
// that off (tests of the stream's path).
//
// For since, the first consumer starts by time and names the first
// sequence stored at or after it; from there on the replay is one by
// sequence. Messages removed by the stream's limits are detected from its
// first sequence, checked after each consumer is made and whenever a
// fetched message leaves a hole before it: before any event the client
// gets the gap frame (with the first sequence actually replayed), after
// events it is ended with replay_lost and an exact resume_from_seq (close
// 1013), as a gap frame may only precede events; reconnecting from there
// yields it. For since, messages stored after the start that were removed
// before the replay began are recognised by the stored time of the last
// removed message (the stream's LastTime when it is empty, else what the
// hub remembers of it): a purge long before the start is no gap. A stream
// that is not the client's incarnation any more ends it with stream_reset.
//
// Entry points: New, Replayer.Run.
package replay
