package replay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/gateway/auth"
	"github.com/dockcast/dockcast/gateway/client"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/subject"
)

// tailWindow is the first window TailStart reads back from the stream's
// end, per node it covers and per event it looks for; each further window
// is tailGrowth times the one before, up to tailMaxWindow messages.
const (
	tailWindow    = 4
	tailGrowth    = 4
	tailMaxWindow = 1 << 16
	tailFetch     = 1024
)

// TailSpec is what TailStart looks for: the last N engine events of every
// node with an event time at or before Until, on the subjects a client
// reads.
type TailSpec struct {
	// Subjects are the client's subject filters; Patterns, when not nil,
	// what its token may read of them (checked per subject unless Exact).
	Subjects []string
	Patterns []string
	Exact    bool
	Until    time.Time
	N        int
}

func (s TailSpec) reads(subj string) bool {
	return auth.Matches(s.Subjects, subj) && (s.Exact || s.Patterns == nil || auth.Matches(s.Patterns, subj))
}

// engineEvent reports whether ev is one of an engine's own events (not
// dockcast's gap/lost events nor its container states: no engine held
// them).
func engineEvent(ev *event.Event) bool {
	return ev.Type != event.TypeDockcast && ev.Action != event.ActionState
}

// tailNode is what TailStart learnt of one node.
type tailNode struct {
	total uint64 // messages the stream holds for it (on the client's subjects)
	seen  uint64 // of those, read so far
	first uint64 // the first sequence read
	have  int    // engine events by Until read, up to N
	nth   uint64 // the earliest of those
}

// TailStart is the sequence a replay for `docker events --until T`
// (without since) may start from and still hold, for every node, its
// last spec.N engine events (in stream order) whose event time is at or
// before spec.Until: the history an engine's memory would hold. It reads
// the stream back from its end in growing windows (at most tailMaxWindow
// messages each, each in a replay slot of its own, as a replay's turns)
// until every node the client's subjects cover has spec.N such events
// after the start or has been read entirely, so that the replay from there
// no longer reads what lies before.
func (r *Replayer) TailStart(ctx context.Context, spec TailSpec) (uint64, error) {
	var (
		stream      jetstream.Stream
		first, last uint64
		nodes       = map[string]*tailNode{}
	)
	err := r.inSlot(ctx, func() error {
		var err error
		if stream, err = r.js.Stream(ctx, r.stream); err != nil {
			return fmt.Errorf("look up stream %s: %w", r.stream, err)
		}
		info, err := stream.Info(ctx, jetstream.WithSubjectFilter(subject.All))
		if err != nil {
			return fmt.Errorf("stream %s subjects: %w", r.stream, err)
		}
		first, last = max(info.State.FirstSeq, 1), info.State.LastSeq
		for subj, n := range info.State.Subjects {
			p, ok := subject.Parse(subj)
			if !ok || !spec.reads(subj) {
				continue
			}
			nd := nodes[p.Node]
			if nd == nil {
				nd = &tailNode{}
				nodes[p.Node] = nd
			}
			nd.total += n
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if len(nodes) == 0 || last < first {
		return first, nil
	}
	hi := last + 1
	window := min(uint64(max(spec.N, 1))*uint64(len(nodes))*tailWindow, tailMaxWindow)
	for hi > first {
		lo := first
		if hi-first > window {
			lo = hi - window
		}
		if err := r.inSlot(ctx, func() error { return r.tailScan(ctx, stream, spec, lo, hi, nodes) }); err != nil {
			return 0, err
		}
		hi = lo
		window = min(window*tailGrowth, tailMaxWindow)
		if tailDone(nodes, spec.N) {
			break
		}
	}
	start := last + 1
	for _, nd := range nodes {
		switch {
		case nd.have >= spec.N:
			start = min(start, nd.nth)
		case nd.seen > 0:
			start = min(start, nd.first)
		}
	}
	if hi <= first && !tailDone(nodes, spec.N) {
		start = first // messages removed while it read: everything left
	}
	return max(start, first), nil
}

func tailDone(nodes map[string]*tailNode, n int) bool {
	for _, nd := range nodes {
		if nd.have < n && nd.seen < nd.total {
			return false
		}
	}
	return true
}

// tailScan reads the client's subjects from lo to hi-1 and adds what it
// read to nodes: a window read later is older, so its events only fill a
// node's tail up to spec.N.
func (r *Replayer) tailScan(ctx context.Context, stream jetstream.Stream, spec TailSpec, lo, hi uint64, nodes map[string]*tailNode) error {
	cfg := r.consumerConfig(spec.Subjects)
	cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, lo
	cons, err := stream.CreateConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("create tail consumer: %w", err)
	}
	defer r.deleteConsumer(stream, cons)
	// This window's engine events by Until, per node, the last ones.
	window := map[*tailNode][]uint64{}
	until := spec.Until.UnixNano()
	pending := cons.CachedInfo().NumPending
	for pending > 0 {
		batch, err := cons.Fetch(tailFetch, jetstream.FetchMaxWait(r.FetchWait))
		if err != nil {
			return fmt.Errorf("tail fetch: %w", err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			meta, err := msg.Metadata()
			if err != nil {
				return fmt.Errorf("tail message metadata: %w", err)
			}
			pending = meta.NumPending
			seq := meta.Sequence.Stream
			if seq >= hi {
				pending = 0
				break
			}
			tailCount(spec, nodes, window, seq, msg, until)
			if pending == 0 {
				break // the fetch would wait out FetchWait for more
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("tail fetch: %w", err)
		}
		if n == 0 {
			// Nothing within FetchWait: the window's messages went
			// (aged out) while it read.
			ci, err := cons.Info(ctx)
			if err != nil {
				return fmt.Errorf("tail consumer info: %w", err)
			}
			pending = ci.NumPending
			if ci.Delivered.Stream+1 >= hi {
				pending = 0
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	for nd, w := range window {
		nd.have += len(w)
		nd.nth = w[0]
	}
	return nil
}

// tailCount adds message seq to its node (if the client reads it): seen,
// and, if an engine event by until while the node's tail is not full,
// to this window's last ones.
func tailCount(spec TailSpec, nodes map[string]*tailNode, window map[*tailNode][]uint64, seq uint64, msg jetstream.Msg, until int64) {
	p, ok := subject.Parse(msg.Subject())
	nd := nodes[p.Node]
	if !ok || nd == nil || !spec.reads(msg.Subject()) {
		return
	}
	nd.seen++
	if nd.first == 0 || seq < nd.first {
		nd.first = seq
	}
	if nd.have >= spec.N {
		return
	}
	// What the replay cannot decode it reports and skips: it counts for
	// nothing here either.
	if ev, err := client.Decode(msg.Data()); err == nil && engineEvent(&ev) && ev.TimeNano <= until {
		w := append(window[nd], seq)
		if len(w) > spec.N-nd.have {
			w = w[1:]
		}
		window[nd] = w
	}
}
