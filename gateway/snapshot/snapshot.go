package snapshot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/shared/containerstate"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/filter"
	"github.com/dockcast/dockcast/shared/subject"
)

// Stages a test Hook is called at.
const (
	StageBucketRead = "bucket_read" // after the bucket was read, before the stream's position
	StageStreamRead = "stream_read" // after the stream's position was read, before the fold
)

// Source takes snapshots of the container states of one stream.
type Source struct {
	JS     jetstream.JetStream
	Stream string
	Log    *slog.Logger
	// Hook, if set, is called at each stage of Take (tests: a snapshot
	// made slow deterministically).
	Hook func(stage string)
}

// Snapshot is the state of the selected containers at stream sequence Seq.
type Snapshot struct {
	States []containerstate.State
	Seq    uint64 // M: every event at or below it is reflected
	Epoch  string // the stream's epoch Seq belongs to
}

// SelectionKeys are the filter keys that select containers; the other
// keys (type, event, …) apply to the events after the snapshot only.
var SelectionKeys = []string{"node", "container", "image", "label"}

// Selection is the part of f that selects containers.
func Selection(f filter.Filter) (filter.Filter, error) {
	var terms []string
	for _, k := range SelectionKeys {
		for _, v := range f.Values(k) {
			terms = append(terms, k+"="+v)
		}
	}
	return filter.Parse(terms, filter.GatewayKeys)
}

func (s *Source) hook(stage string) {
	if s.Hook != nil {
		s.Hook(stage)
	}
}

// Take returns the states of the containers sel matches whose
// container.state subject may passes (nil: all), at one stream sequence.
func (s *Source) Take(ctx context.Context, sel filter.Filter, may func(subject string) bool) (Snapshot, error) {
	var got containerstate.Contents
	kv, err := s.JS.KeyValue(ctx, containerstate.Bucket(s.Stream))
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound): // no publisher keeps states yet
		got.Applied = map[string]containerstate.Applied{}
	case err != nil:
		return Snapshot{}, fmt.Errorf("open bucket %s: %w", containerstate.Bucket(s.Stream), err)
	default:
		if got, err = containerstate.ReadBucket(ctx, kv, ">"); err != nil {
			return Snapshot{}, err
		}
	}
	s.hook(StageBucketRead)
	stream, err := s.JS.Stream(ctx, s.Stream)
	if err != nil {
		return Snapshot{}, fmt.Errorf("look up stream %s: %w", s.Stream, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return Snapshot{}, fmt.Errorf("stream %s info: %w", s.Stream, err)
	}
	snap := Snapshot{Seq: info.State.LastSeq, Epoch: strconv.FormatInt(info.Created.UnixNano(), 10)}
	s.hook(StageStreamRead)
	nodes := sel.Values("node")
	wanted := func(node string) bool {
		if len(nodes) == 0 {
			return true
		}
		for _, n := range nodes {
			if subject.Token(n) == node {
				return true
			}
		}
		return false
	}
	states := got.States
	for node, a := range got.Applied {
		if !wanted(node) {
			continue
		}
		if a.Epoch != snap.Epoch {
			s.Log.Debug("snapshot: container states of another epoch ignored", "node", node, "epoch", a.Epoch, "stream_epoch", snap.Epoch)
			continue
		}
		if a.Seq >= snap.Seq {
			continue
		}
		if _, err := containerstate.Fold(ctx, stream, node, a.Seq, snap.Seq, func(seq uint64, e *event.Event) {
			states.Apply(seq, e)
		}); err != nil {
			return Snapshot{}, fmt.Errorf("snapshot of %s: %w", node, err)
		}
	}
	for _, st := range states.All() {
		a, ok := got.Applied[st.Node()]
		if !ok || a.Epoch != snap.Epoch || !wanted(st.Node()) || !sel.Match(&st.Event) {
			continue
		}
		if may != nil && !may(st.Event.Subject()) {
			continue
		}
		snap.States = append(snap.States, st)
	}
	s.Log.Debug("snapshot taken", "seq", snap.Seq, "bucket_states", got.States.Len(), "nodes", len(got.Applied), "states", len(snap.States))
	return snap, nil
}

// Frames are the snapshot's frames: one state frame per container, then
// snapshot_end.
func (snap *Snapshot) Frames() ([][]byte, error) {
	out := make([][]byte, 0, len(snap.States)+1)
	for i := range snap.States {
		payload, err := snap.States[i].Event.Marshal()
		if err != nil {
			return nil, err
		}
		f := make([]byte, 0, len(payload)+48)
		f = append(f, `{"type":"state","seq":`...)
		f = strconv.AppendUint(f, snap.States[i].Seq, 10)
		f = append(f, `,"event":`...)
		f = append(f, payload...)
		f = append(f, '}')
		out = append(out, f)
	}
	end := append([]byte(`{"type":"snapshot_end","seq":`), strconv.FormatUint(snap.Seq, 10)...)
	out = append(out, append(end, '}'))
	return out, nil
}
