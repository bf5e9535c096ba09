package replay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/gateway/auth"
	"github.com/dockcast/dockcast/gateway/client"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/subject"
)

// tailWindow is the first window TailStart reads back from the stream's
// end, per node it covers and per event it looks for; each further window
// is tailGrowth times the one before (up to Replayer.TailWindow messages
// on the client's subjects).
const (
	tailWindow = 4
	tailGrowth = 4
	tailFetch  = 1024
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
	// early, for a node read on its own subjects: what it read by Until,
	// in stream order (TailPlan.Early).
	early []TailMessage
}

func (nd *tailNode) done(n int) bool { return nd.have >= n || nd.seen >= nd.total }

// left is how many of its messages are not read yet.
func (nd *tailNode) left() uint64 { return nd.total - min(nd.seen, nd.total) }

// start is where the node's tail begins.
func (nd *tailNode) start(n int) uint64 {
	if nd.have >= n {
		return nd.nth
	}
	return nd.first
}

// TailPlan is how to serve `docker events --until T` without since: a
// replay from Start, after Early.
type TailPlan struct {
	// Start is where the replay begins.
	Start uint64
	// Early holds, in stream order, what the replay would have read
	// before Start of the nodes whose tail begins there: nodes with few
	// or old events, read on their own subjects, so that the replay does
	// not read everything since their first event.
	Early []TailMessage
}

// TailMessage is one message of TailPlan.Early.
type TailMessage struct {
	Seq     uint64
	Subject string
	Event   event.Event
}

// TailStart plans a replay for `docker events --until T` (without since)
// that holds, for every node, its last spec.N engine events (in stream
// order) whose event time is at or before spec.Until: the history an
// engine's memory would hold, without reading the stream from its start.
// It reads the stream back from its end on the client's subjects, in
// growing windows, while a node not done yet has many messages left (more
// than 4 × spec.N) and at most Replayer.TailWindow messages are read; the
// replay starts there. A node not done by then is read on its own
// subjects, back from that start (at once if it has few messages left,
// else in growing windows), and its messages before the start are
// TailPlan.Early.
// Each window is read in a replay slot of its own, as a replay's turns
// are.
func (r *Replayer) TailStart(ctx context.Context, spec TailSpec) (TailPlan, error) {
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
	if err != nil || len(nodes) == 0 || last < first {
		return TailPlan{Start: first}, err
	}
	n := max(spec.N, 1)
	// All the client's subjects at once, back from the end.
	hi, read := last+1, uint64(0)
	most := uint64(max(r.TailWindow, 1))
	window := min(uint64(n)*uint64(len(nodes))*tailWindow, most)
	for hi > first && read < most && tailWider(nodes, n) {
		lo := hi - min(window, hi-first)
		if err := r.inSlot(ctx, func() error { return r.tailScan(ctx, stream, spec, spec.Subjects, lo, hi, nodes, nil) }); err != nil {
			return TailPlan{}, err
		}
		read += hi - lo
		hi, window = lo, min(window*tailGrowth, most)
	}
	plan := TailPlan{Start: hi}
	if tailDone(nodes, n) {
		plan.Start = last + 1
		for _, nd := range nodes {
			if nd.seen > 0 {
				plan.Start = min(plan.Start, nd.start(n))
			}
		}
		plan.Start = max(plan.Start, first)
		return plan, nil
	}
	// Each node not done on its own subjects, back from the start.
	for node, nd := range nodes {
		h := hi
		w := uint64(n) * tailWindow
		if nd.left() <= w {
			w = h - first // few messages left: at once
		}
		for h > first && !nd.done(n) {
			lo := h - min(w, h-first)
			one := map[string]*tailNode{node: nd}
			if err := r.inSlot(ctx, func() error {
				return r.tailScan(ctx, stream, spec, []string{subject.Node(node)}, lo, h, one, nd)
			}); err != nil {
				return TailPlan{}, err
			}
			h, w = lo, w*tailGrowth
		}
		from := nd.start(n)
		for _, m := range nd.early {
			if m.Seq >= from {
				plan.Early = append(plan.Early, m)
			}
		}
		nd.early = nil
	}
	slices.SortFunc(plan.Early, func(a, b TailMessage) int { return cmp.Compare(a.Seq, b.Seq) })
	return plan, nil
}

// tailWider reports whether a node not done has more messages left than
// it would cost to read on its own subjects at once: then another window
// on all subjects pays.
func tailWider(nodes map[string]*tailNode, n int) bool {
	for _, nd := range nodes {
		if !nd.done(n) && nd.left() > uint64(n)*tailWindow {
			return true
		}
	}
	return false
}

func tailDone(nodes map[string]*tailNode, n int) bool {
	for _, nd := range nodes {
		if !nd.done(n) {
			return false
		}
	}
	return true
}

// tailScan reads subjects from lo to hi-1 and adds what it read to nodes:
// a window read later is older, so its events only fill a node's tail up
// to spec.N. With keep, the node's messages by Until it read are added
// before the ones kept from later windows.
func (r *Replayer) tailScan(ctx context.Context, stream jetstream.Stream, spec TailSpec, subjects []string, lo, hi uint64, nodes map[string]*tailNode, keep *tailNode) error {
	cfg := r.consumerConfig(subjects)
	cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, lo
	cons, err := stream.CreateConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("create tail consumer: %w", err)
	}
	defer r.deleteConsumer(stream, cons)
	// This window's engine events by Until, per node, the last ones.
	window := map[*tailNode][]uint64{}
	var kept []TailMessage
	until := spec.Until.UnixNano()
	pending := cons.CachedInfo().NumPending
	for pending > 0 {
		batch, err := cons.Fetch(tailFetch, jetstream.FetchMaxWait(r.FetchWait))
		if err != nil {
			return fmt.Errorf("tail fetch: %w", err)
		}
		got := 0
		for msg := range batch.Messages() {
			got++
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
			p, ok := subject.Parse(msg.Subject())
			nd := nodes[p.Node]
			if !ok || nd == nil || !spec.reads(msg.Subject()) {
				continue
			}
			nd.seen++
			if nd.first == 0 || seq < nd.first {
				nd.first = seq
			}
			if nd.have < spec.N || keep != nil {
				// What the replay cannot decode it reports and skips: it
				// counts for nothing here either.
				if ev, err := client.Decode(msg.Data()); err == nil && ev.TimeNano <= until {
					if engineEvent(&ev) && nd.have < spec.N {
						w := append(window[nd], seq)
						if len(w) > spec.N-nd.have {
							w = w[1:]
						}
						window[nd] = w
					}
					if keep != nil {
						kept = append(kept, TailMessage{Seq: seq, Subject: msg.Subject(), Event: ev})
					}
				}
			}
			if pending == 0 {
				break // the fetch would wait out FetchWait for more
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("tail fetch: %w", err)
		}
		if got == 0 {
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
	if keep != nil {
		// Only what lies from the node's tail on is needed.
		from := keep.start(spec.N)
		i := 0
		for i < len(kept) && kept[i].Seq < from {
			i++
		}
		keep.early = append(kept[i:], keep.early...)
	}
	return nil
}
