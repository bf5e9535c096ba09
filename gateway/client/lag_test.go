package client

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dockcast/dockcast/shared/event"
)

// ringBacklog is the hub's ring in miniature (hub.recent is the real one,
// tested in package hub and through the gateway in app's
// TestLaggingClientIsRefilled): the last kept messages, every subject.
type ringBacklog struct {
	mu   sync.Mutex
	kept int
	msgs []ringMsg
	upto uint64
}

type ringMsg struct {
	seq   uint64
	subj  string
	frame []byte
}

var anyEvent = &event.Event{V: 1, Type: "container", Action: "start"}

func (b *ringBacklog) add(seq uint64, subj string) []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	f := EventFrame(seq, subj, []byte(`{"v":1,"type":"container","action":"start"}`))
	b.msgs = append(b.msgs, ringMsg{seq, subj, f})
	if len(b.msgs) > b.kept {
		b.msgs = b.msgs[1:]
	}
	b.upto = seq
	return f
}

func (b *ringBacklog) Backlog(_ string, from uint64, fn func(uint64, string, *event.Event, []byte) bool) (uint64, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.msgs) == 0 || from < b.msgs[0].seq {
		return from, false
	}
	for _, m := range b.msgs {
		if m.seq < from {
			continue
		}
		if !fn(m.seq, m.subj, anyEvent, m.frame) {
			return m.seq, true
		}
	}
	return b.upto + 1, true
}

func (b *ringBacklog) BacklogFrom() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.msgs) == 0 {
		return 0
	}
	return b.msgs[0].seq
}

// reader acknowledges the frames a recorder was handed, as a transport
// reports each one written.
type reader struct {
	rec   *recorder
	c     *Client
	acked int
}

// read acknowledges up to n frames; it reports how many.
func (r *reader) read(n int) int {
	done := 0
	for done < n {
		r.rec.mu.Lock()
		have := len(r.rec.frames)
		r.rec.mu.Unlock()
		if r.acked >= have {
			break
		}
		r.acked++
		done++
		r.c.Sent()
	}
	return done
}

func (r *reader) readAll() {
	for r.read(1) > 0 {
	}
}

const (
	mine   = "docker.events.n.container.start"
	others = "docker.events.m.container.start"
)

func lagClient(t *testing.T, b *ringBacklog, onSlow func(uint64)) (*Client, *recorder, *reader) {
	t.Helper()
	opts := Options{Credits: 2, MaxQueueBytes: 4 * len(eventFrame(100)), CloseTimeout: time.Minute, Backlog: b}
	c := New(Spec{Subjects: []string{"docker.events.n.>"}, OnSlow: onSlow}, opts)
	rec := &recorder{}
	c.Attach(rec)
	return c, rec, &reader{rec: rec, c: c}
}

// TestLaggingClientIsRefilledFromTheBacklog: a live client whose queue
// would pass its bound stops being queued live events and is refilled from
// the backlog as it reads (only its subjects: half the messages are another
// node's), then takes live events again: every one of its events once, in
// order, and never a slow consumer.
func TestLaggingClientIsRefilledFromTheBacklog(t *testing.T) {
	t.Parallel()
	b := &ringBacklog{kept: 1000}
	lagged := 0
	c, rec, rd := lagClient(t, b, func(uint64) { t.Fatal("slow consumer") })
	c.opts.OnLag = func() { lagged++ }
	c.JoinLive(nil, 0, "42", &Position{})
	var want []uint64
	for s := uint64(1); s <= 400; s++ {
		subj := mine
		if s%2 == 0 {
			subj = others
		}
		f := b.add(s, subj)
		if subj == mine { // the hub's index offers only what the client's subjects cover
			want = append(want, s)
			c.Live(s, f)
		}
		if s%7 == 0 {
			rd.read(1) // a reader slower than the feed
		}
	}
	rd.readAll()
	if got := rec.events(); !slices.Equal(got, want) {
		t.Fatalf("got %d events %v…, want %d", len(got), got[:min(len(got), 10)], len(want))
	}
	if lagged == 0 {
		t.Fatal("the client never lagged: the test proves nothing")
	}
	if c.lagging {
		t.Fatal("still lagging after reading everything")
	}
	// Live again: the next event goes straight to the transport.
	c.Live(401, b.add(401, mine))
	rd.readAll()
	if got := rec.events(); got[len(got)-1] != 401 {
		t.Fatalf("after catching up, last event %d, want 401", got[len(got)-1])
	}
}

// TestLaggingClientBehindTheBacklogIsSlow: a lagging client that falls
// behind what the backlog holds ends as a slow consumer at the next event
// offered, with the first event it was not handed as resume_from_seq.
func TestLaggingClientBehindTheBacklogIsSlow(t *testing.T) {
	t.Parallel()
	b := &ringBacklog{kept: 20}
	var slowAt uint64
	c, rec, _ := lagClient(t, b, func(r uint64) { slowAt = r })
	c.JoinLive(nil, 0, "42", &Position{})
	for s := uint64(1); s <= 100 && !c.Closed(); s++ {
		c.Live(s, b.add(s, mine))
	}
	handed := rec.events()
	last := rec.last()
	if last.Code != string(SlowConsumer) || last.ResumeFromSeq != handed[len(handed)-1]+1 || slowAt != last.ResumeFromSeq {
		t.Fatalf("handed %v then %+v (hook %d), want slow_consumer resuming after the last handed", handed, last, slowAt)
	}
}

// TestReplayingClientLagsThenCatchesUp: live events held back during a
// replay that pass the queue's bound make the client lag from the first
// one not held; once the replay ends, the refill continues from there:
// replay, held-back and refilled events, each once, in order.
func TestReplayingClientLagsThenCatchesUp(t *testing.T) {
	t.Parallel()
	b := &ringBacklog{kept: 1000}
	c, rec, rd := lagClient(t, b, func(uint64) { t.Fatal("slow consumer") })
	c.JoinBuffering(nil, 50, 10, 10, "42", &Position{})
	for s := uint64(50); s <= 120; s++ {
		c.Live(s, b.add(s, mine))
	}
	if !c.lagging {
		t.Fatal("the held-back events did not pass the bound: the test proves nothing")
	}
	for s := uint64(10); s < 50; s++ {
		if !c.Replay(s, eventFrame(s)) {
			for !c.HasRoom() && rd.read(1) > 0 {
			}
		}
	}
	c.GoLive(49)
	rd.readAll()
	var want []uint64
	for s := uint64(10); s <= 120; s++ {
		want = append(want, s)
	}
	if got := rec.events(); !slices.Equal(got, want) {
		t.Fatalf("got %v, want 10..120", got)
	}
}

// TestLaggingClientWithNothingInFlightIsRefilled: a frame larger than the
// queue's bound lags a client whose queue is empty and whose transport has
// nothing to write: no written frame would start the refill, so it starts at
// once, and the events after it follow.
func TestLaggingClientWithNothingInFlightIsRefilled(t *testing.T) {
	t.Parallel()
	b := &ringBacklog{kept: 1000}
	c, rec, rd := lagClient(t, b, func(uint64) { t.Fatal("slow consumer") })
	c.JoinLive(nil, 0, "42", &Position{})
	rd.readAll() // the live frame
	big := EventFrame(1, mine, []byte(`{"v":1,"type":"container","action":"start","pad":"`+strings.Repeat("x", 5*len(eventFrame(100)))+`"}`))
	b.mu.Lock()
	b.msgs, b.upto = append(b.msgs, ringMsg{1, mine, big}), 1
	b.mu.Unlock()
	c.Live(1, big)
	for s := uint64(2); s <= 10; s++ {
		c.Live(s, b.add(s, mine))
		rd.readAll()
	}
	if got, want := rec.events(), []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestContextEndsWithTheClient: Context ends when the client is closed,
// and with its parent.
func TestContextEndsWithTheClient(t *testing.T) {
	t.Parallel()
	c := New(Spec{}, Options{})
	ctx, cancel := c.Context(context.Background())
	defer cancel()
	if ctx.Err() != nil {
		t.Fatal("ended before the client closed")
	}
	c.Disconnected()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the context did not end with the client")
	}
	parent, stop := context.WithCancel(context.Background())
	ctx2, cancel2 := New(Spec{}, Options{}).Context(parent)
	defer cancel2()
	stop()
	select {
	case <-ctx2.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the context did not end with its parent")
	}
}
