package replay

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/gateway/client"
	"github.com/dockcast/dockcast/gateway/hub"
)

// checkLoss compares the stream's first sequence with the replay's
// position. Limits and purges remove messages from the front, so messages
// the replay still needed are gone exactly when the first sequence has
// passed st.next; for since, also when, at the start, the message just
// before the first one was stored after since (removedSince). Before any
// event the client gets a gap frame and the replay goes on from the first
// sequence; after events (a gap frame must come before them) the client is
// ended with replay_lost and an exact resume_from_seq, so that it
// reconnects and gets a proper gap frame. upto, when not 0, is the
// sequence of the message about to be sent: the gap frame's first_seq is
// at most it. A stream that is not the client's incarnation any more ends
// the client with stream_reset.
func (r *Replayer) checkLoss(ctx context.Context, stream jetstream.Stream, st *state, upto uint64) error {
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s info: %w", r.stream, err)
	}
	if !hub.SameStream(st.epoch, 0, info) {
		epoch := client.EpochOf(info.Created)
		st.c.Reset(epoch, fmt.Sprintf("stream %s was deleted and made again (epoch %s), its sequences restarted", r.stream, epoch))
		return errLost
	}
	first := info.State.FirstSeq
	if upto > 0 {
		first = min(first, upto)
	}
	lost := first > st.next
	if !lost && st.requested == 0 && !st.checked {
		st.checked = true
		lost = r.removedSince(info, st.next, st.since)
		first = max(first, st.next)
	}
	if !lost {
		return nil
	}
	if st.eventSent || st.gapSent {
		// Events (or a gap frame) were sent already: a gap frame now
		// would come too late.
		r.log.Warn("replay lost events after sending frames: ending the client with replay_lost",
			"next_seq", st.next, "stream_first_seq", info.State.FirstSeq)
		st.c.End(client.ReplayLost, fmt.Sprintf("events from seq %d on were removed from the stream during the replay", st.next))
		return errLost
	}
	frame := client.GapSeqFrame(st.requested, first)
	if st.requested == 0 {
		frame = client.GapTimeFrame(st.since, first)
	}
	st.c.Replay(0, frame)
	st.gapSent = true
	st.next = first
	st.c.SetReplayNext(first)
	return nil
}

// removedSince reports whether, for a replay by time starting at start
// (the first message stored at or after since), messages stored at or
// after since were removed before it: start is the stream's first
// sequence and the last removed message, start-1, was stored at or after
// since. Its stored time is the stream's LastTime when the stream is
// empty, else what the hub remembers; unknown counts as removed (the
// message at start was stored after since, so it may well have been).
func (r *Replayer) removedSince(info *jetstream.StreamInfo, start uint64, since time.Time) bool {
	s := info.State
	if start <= 1 || start != s.FirstSeq {
		// Nothing was ever removed, or the message before start is still
		// in the stream (stored before since).
		return false
	}
	removed := start - 1
	if s.Msgs == 0 && removed == s.LastSeq {
		return !s.LastTime.Before(since)
	}
	if t, ok := r.hub.StoredTime(removed); ok {
		return !t.Before(since)
	}
	return true
}
