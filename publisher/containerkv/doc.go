// Package containerkv keeps the key-value bucket of container states
// (containerstate.Bucket: DOCKER_CONTAINERS beside DOCKER_EVENTS) for one
// node, from the same events the writer stores: [Keeper.Stored] is the
// writer's Stored seam (called after the stream acknowledged each event,
// with its sequence; it never blocks), and [Keeper.Run] folds them
// (containerstate.Set.Apply) and writes what changed: key <node>.<id>
// = {"seq": <sequence of the last event the state reflects>, "event":
// <container.state payload>}, deleted on destroy; then the node's
// watermark <node>._applied = {"seq", "epoch"}, the sequence up to which
// every event of the node is reflected. Entries are always written before
// the watermark that covers them: a reader that reads the watermark first
// and the entries after it sees at least that much (the gateway's
// snapshot relies on it). Writes are coalesced: at most one per
// Keeper.Interval (DefaultInterval), each container the events since the
// last write changed once, with its latest state, then the watermark; so
// a burst of events costs one write per container it touched, not one
// per event, and the snapshot folds the few events the entries lag
// behind from the stream.
//
// On start it reads its node's entries back and folds what the stream
// holds after the watermark (events stored by a previous run that it had
// not written yet); without a watermark of the stream's epoch it starts
// over from the node's last dockcast.gap, which the container.state
// events of every existing container follow. After a gap the same
// happens by the fold: the gap forgets the node's containers, its state
// events restore the ones that exist. When more than MaxPending events
// wait (the bucket unreachable for long) it drops them and folds from the
// stream instead, so nothing is missed.
//
// In edge mode the writer's sequences are the local stream's, not the
// central one the gateways read: there the keeper is not fed by Stored
// but folds the central stream (across the leaf link, in the hub's
// domain) every Poll, and writes the central bucket; the sequences are
// then the central stream's, as the gateways need.
package containerkv
