package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/dockcast/dockcast/gateway/auth"
	"github.com/dockcast/dockcast/gateway/client"
	"github.com/dockcast/dockcast/gateway/dockerapi"
	"github.com/dockcast/dockcast/gateway/replay"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/filter"
)

// SinceSlack is how much earlier than Docker's since (an event time) the
// replay of an /events request starts by the stream's store time: the
// NATS server's clock may be behind the engine's. Events stored even
// earlier than that before their own time are not found.
const SinceSlack = 5 * time.Minute

// eventsCredits is how many frames an /events client hands its writer at
// once (the writer writes them as one batch).
const eventsCredits = 256

// dockerAPI is the handler of Docker's Engine API paths (/_ping, /version,
// /events, under /v1.NN/ too; 404 for the rest), over the gateway's
// admission and clients.
func (s *Server) dockerAPI(version string) http.Handler {
	return dockerapi.NewHandler(s.log, dockerapi.Config{Version: version, Admit: s.admitEvents}, eventsSource{s})
}

// admitEvents admits an /events request as /ws's are (token from
// Authorization: Bearer, narrowing or 403, limits) and decides where its
// replay starts: since (by store time, SinceSlack earlier), where the
// last events of each node begin for until without since (Open plans it),
// or none (only new events).
func (s *Server) admitEvents(r *http.Request, q *dockerapi.Query) error {
	a, ref := s.AdmitQuery(r, Query{Filter: q.Filter, Subjects: q.Filter.Subjects()})
	if ref != nil {
		s.count(ref.Auth, ref.Limit)
		s.log.Debug("request refused", "remote", r.RemoteAddr, "status", ref.Status, "reason", ref.Reason)
		return &dockerapi.Error{Status: ref.Status, Message: ref.Reason}
	}
	switch {
	case q.Tail > 0:
		// An engine's memory holds its last events whatever they are: the
		// client reads every event its token may read, the query's filter
		// applies to the last ones (dockerapi's writer applies it).
		var all filter.Filter
		a.Spec.Filter, a.Spec.Subjects, a.Spec.Exact = all, all.Subjects(), true
		if a.Spec.Patterns != nil {
			n, err := auth.Narrow(a.Spec.Patterns, all.Subjects())
			if err != nil {
				a.Release()
				return &dockerapi.Error{Status: http.StatusForbidden, Message: err.Error()}
			}
			a.Spec.Subjects, a.Spec.Exact = n.Subjects, n.Exact
		}
		a.Query.FromSeq = 1 // Open plans where it starts (replay.TailStart)
	case !q.Since.IsZero():
		a.Query.Since = q.Since.Add(-SinceSlack)
	}
	q.Caller = a
	return nil
}

// eventsSource opens /events requests as gateway clients: the same queue,
// credit, slow-consumer rule, replay and live feed as /ws, without
// bookmarks (Docker has none).
type eventsSource struct{ s *Server }

func (src eventsSource) Open(ctx context.Context, q dockerapi.Query) (dockerapi.Cursor, error) {
	s := src.s
	a, ok := q.Caller.(*Admitted)
	if !ok {
		return nil, errors.New("events request not admitted")
	}
	if !q.Follow {
		// The history ends where the live feed is when the client joins:
		// let it reach what the stream holds now.
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.deps.Hub.CaughtUp(cctx)
		cancel()
		if err != nil {
			a.Release()
			return nil, fmt.Errorf("events: live feed behind the stream: %w", err)
		}
	}
	var early []replay.TailMessage
	if q.Tail > 0 {
		// The replay starts where the nodes' last events begin, not at
		// the stream's start; quiet nodes' older tails come read apart.
		plan, err := s.deps.Replayer.TailStart(ctx, replay.TailSpec{
			Subjects: a.Spec.Subjects, Patterns: a.Spec.Patterns, Exact: a.Spec.Exact, Until: q.Until, N: q.Tail,
		})
		switch {
		case err == nil:
			a.Query.FromSeq, early = plan.Start, plan.Early
		case ctx.Err() != nil:
			a.Release()
			return nil, fmt.Errorf("events: %w", ctx.Err())
		default:
			s.log.Warn("events: the tail's start not found; reading the whole stream", "err", err)
		}
	}
	opts := s.clientOpts
	opts.Credits, opts.BookmarkInterval = eventsCredits, -1
	spec := a.Spec
	spec.OnSlow = s.onSlow(a.Peer)
	c := client.New(spec, opts)
	s.wg.Add(1)
	s.clients.Store(c, a)
	cur := &eventsCursor{s: s, a: a, c: c, q: q, sink: client.NewChanSink(opts.Credits)}
	if q.Tail > 0 {
		cur.tail = map[string]*nodeTail{}
		for _, m := range early {
			cur.addTail(dockerapi.Item{Seq: m.Seq, Event: m.Event})
		}
	}
	if tokens := s.tokens.Load(); tokens != a.tokens && !s.stillGranted(tokens, c) {
		cur.release()
		return nil, &dockerapi.Error{Status: http.StatusUnauthorized, Message: "invalid token"}
	}
	c.Attach(cur.sink)
	cur.connected = true
	s.connected(c)
	return cur, nil
}

// eventsCursor is one /events request's client, read by dockerapi's writer.
type eventsCursor struct {
	s    *Server
	a    *Admitted
	c    *client.Client
	q    dockerapi.Query
	sink *client.ChanSink
	owed int // frames the writer got with the last Next: credited on the next
	// tail, until the live frame: the last engine events of each node.
	tail      map[string]*nodeTail
	connected bool
	once      sync.Once
}

// Next returns the next events: with q.Tail, none until the history is
// read, then the last events of each node in stream order; without
// q.Follow, io.EOF once the history is read.
func (cur *eventsCursor) Next(ctx context.Context) ([]dockerapi.Item, error) {
	cur.credit()
	for {
		var frames [][]byte
		closed := false
		select {
		case f := <-cur.sink.Frames:
			frames = append(frames, f)
		case <-cur.sink.Closed():
			closed = true
		case <-cur.sink.Aborted():
			return nil, errors.New("events: connection aborted")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	drain:
		for {
			select {
			case f := <-cur.sink.Frames:
				frames = append(frames, f)
			default:
				break drain
			}
		}
		cur.owed += len(frames)
		items, err := cur.take(frames)
		if err == nil && closed {
			err = io.EOF // shutdown: the end of the response
		}
		if len(items) > 0 || err != nil {
			return items, err
		}
		cur.credit() // nothing for the writer in these frames
	}
}

func (cur *eventsCursor) credit() {
	for ; cur.owed > 0; cur.owed-- {
		cur.c.Sent()
	}
}

// take turns frames into items; its error ends the response (io.EOF when
// the history alone was asked for and is read).
func (cur *eventsCursor) take(frames [][]byte) ([]dockerapi.Item, error) {
	var items []dockerapi.Item
	for _, data := range frames {
		var f client.Frame
		if err := json.Unmarshal(data, &f); err != nil {
			return items, fmt.Errorf("events: frame: %w", err)
		}
		switch f.Type {
		case "event":
			ev, err := event.Decode(f.Event)
			if err != nil {
				cur.s.log.Warn("events: event frame not decoded", "seq", f.Seq, "err", err)
				continue
			}
			it := dockerapi.Item{Seq: f.Seq, Event: ev}
			if cur.tail != nil {
				cur.addTail(it)
				continue
			}
			items = append(items, it)
		case "live":
			if cur.tail != nil {
				items = append(items, cur.tailItems()...)
				cur.tail = nil
			}
			if !cur.q.Follow {
				return items, io.EOF
			}
		case "error":
			return items, fmt.Errorf("events: %s: %s", f.Code, f.Message)
		}
	}
	return items, nil
}

// nodeTail is what an engine's memory would hold of one node: its last
// q.Tail engine events at or before until, with dockcast's synthetic
// events among them (which no engine held: they do not count).
type nodeTail struct {
	items  []dockerapi.Item
	engine int
}

func synthetic(e *event.Event) bool {
	return e.Type == event.TypeDockcast || e.Action == event.ActionState
}

func (cur *eventsCursor) addTail(it dockerapi.Item) {
	if !cur.q.Until.IsZero() && it.Event.TimeNano > cur.q.Until.UnixNano() {
		return
	}
	nt := cur.tail[it.Event.Node]
	if nt == nil {
		nt = &nodeTail{}
		cur.tail[it.Event.Node] = nt
	}
	nt.items = append(nt.items, it)
	if !synthetic(&it.Event) {
		nt.engine++
	}
	drop := 0
	for nt.engine > cur.q.Tail {
		if !synthetic(&nt.items[drop].Event) {
			nt.engine--
		}
		drop++
	}
	for drop < len(nt.items) && synthetic(&nt.items[drop].Event) && nt.engine == cur.q.Tail {
		drop++ // older than the oldest event kept
	}
	nt.items = nt.items[drop:] // append reallocates with only what is kept
}

// tailItems is every node's tail, in stream order.
func (cur *eventsCursor) tailItems() []dockerapi.Item {
	var out []dockerapi.Item
	for _, nt := range cur.tail {
		out = append(out, nt.items...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out
}

// Close ends the client and gives back its slots.
func (cur *eventsCursor) Close() {
	cur.c.End(client.Shutdown, "request ended")
	cur.release()
}

func (cur *eventsCursor) release() {
	cur.once.Do(func() {
		cur.c.Disconnected()
		if cur.connected {
			cur.s.disconnected(cur.c)
		}
		cur.s.clients.Delete(cur.c)
		cur.a.Release()
		cur.s.wg.Done()
	})
}
