// Package snapshot is list-then-watch for snapshot=1: [Source.Take]
// returns the state of every container a filter selects, consistent with
// one stream sequence M, so that a client that applies the events after M
// in order holds the engines' true state. The gateway sends them as
// {"type":"state","seq":N,"event":{…container.state…}} frames ([Frames]),
// then {"type":"snapshot_end","seq":M}, then replays from M+1 and goes
// live as for from_seq=M+1.
//
// Where the states come from: the bucket containerstate.Bucket(stream)
// (DOCKER_CONTAINERS), which each publisher keeps for its node from the
// events the stream acknowledged (package publisher/containerkv): entries
// <node>.<id> = {seq, container.state payload}, and a watermark
// <node>._applied = {seq W, epoch}: every event of the node up to W is
// reflected in the entries, which are written before the watermark that
// covers them.
//
// Why it is consistent. Take reads (1) the bucket, then (2) the stream's
// last sequence M, then (3) for each node folds the node's events in
// (W, M] from the stream into its entries (containerstate.Set.Apply, the
// same fold the publisher uses). For one node n:
//   - the watermark W_n is the first value read, and every entry is read
//     after it was written or later, so the entries reflect every event of n
//     up to W_n, and some of them later events too (never a later event
//     than M: the publisher only folds what the stream stored, and the
//     stream's last sequence is read after the bucket);
//   - folding (W_n, M] adds what the entries may lack; an event at or
//     below a container's own sequence is already in its entry and is
//     skipped, so folding again from W_n changes nothing an entry already
//     shows, and an entry deleted (destroy) after W_n is deleted again by
//     the same destroy, which is at or below M;
//   - so each container's state is the fold of every event of n up to M,
//     and N (its seq) is the sequence of the last event that changed it.
//
// The events after snapshot_end are those after M, in stream order: a
// client applying them to the states holds the fold of the whole stream,
// which is the engines' state as far as the stream has it. A container
// that starts or dies while the snapshot is taken is in the states (its
// event is at or below M) or in the events (above M), never in both and
// never in neither. A dockcast.gap of a node means its containers are
// unknown until the container.state events that follow it: a client
// forgets the node's containers at a gap (containerstate.Set.Apply does).
//
// Epochs: a watermark of another epoch (the stream was made again since)
// is ignored with its node's entries. Edge mode: the sequences must be
// the central stream's that the gateway reads, not the local stream's the
// edge writer gets; an edge publisher therefore keeps the central bucket
// by folding its node's events of the central stream (see
// publisher/containerkv), so the argument above holds unchanged. Nodes
// that are not in the bucket at all (publishers older than the bucket)
// are not in the snapshot.
package snapshot
