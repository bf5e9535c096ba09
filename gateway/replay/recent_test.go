package replay_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	dto "github.com/prometheus/client_model/go"

	"github.com/dockcast/dockcast/gateway/client"
	"github.com/dockcast/dockcast/gateway/replay"
	"github.com/dockcast/dockcast/gateway/server"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/natsutil"
	"github.com/dockcast/dockcast/shared/testkit"
	"github.com/nats-io/nats.go/jetstream"
)

// publishAction publishes one event of f's node with action, recording its
// id by sequence.
func (f *fixture) publishAction(t *testing.T, action string) uint64 {
	t.Helper()
	ev := event.New(f.node, "container", action, "", fmt.Sprintf("%064d", time.Now().UnixNano()), map[string]string{"name": "c"}, time.Now())
	data, err := ev.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := f.js.Publish(ctx, ev.Subject(), data)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.ids[ack.Sequence] = ev.ID
	f.mu.Unlock()
	return ack.Sequence
}

// checkIDs fails unless every event frame carries the event published at
// its sequence.
func (f *fixture) checkIDs(t *testing.T, fs []frame) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fr := range fs {
		if fr.Type != "event" {
			continue
		}
		ev, err := event.Decode(fr.Event)
		if err != nil || ev.ID != f.ids[fr.Seq] {
			t.Fatalf("event %d: id %q (%v), published %q", fr.Seq, ev.ID, err, f.ids[fr.Seq])
		}
	}
}

func (f *fixture) waitLive(t *testing.T, seq uint64) {
	t.Helper()
	testkit.Eventually(t, 60*time.Second, func() error {
		if s := f.h.LastSeq(); s != seq {
			return fmt.Errorf("live feed at %d, want %d", s, seq)
		}
		return nil
	})
}

// TestResumeFromRing: resumes from_seq that the live feed's ring of recent
// messages covers are served from it, without a replay turn (no JetStream
// call), exactly: the same events, in order, with the filter applied, then
// live. A start before the ring goes to the stream, and a start the stream
// no longer holds still gets its gap frame. An epoch that is not the
// stream's gets stream_reset; after the stream is made again, the ring
// holds the new incarnation's messages only.
func TestResumeFromRing(t *testing.T) {
	t.Parallel()
	const n, ring = 1000, 100
	f := newFixtureRing(t, n, n, 0, server.Options{}, 4, false, ring)
	var turns atomic.Int64
	replay.SetHook(f.rp, func(stage string, _ *client.Client) {
		if stage == "turn" {
			turns.Add(1)
		}
	})
	resume := func(query string) []frame {
		t.Helper()
		c, _, err := websocket.DefaultDialer.Dial(f.url+"?filter=node="+f.node+"&"+query, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fs, err := read(t, c, "live")
		if err != nil {
			t.Fatalf("%s: %v after %d frames", query, err, len(fs))
		}
		f.checkIDs(t, fs)
		return fs
	}
	expect := func(name string, fs []frame, want []uint64, live uint64, fromRing bool, before int64) {
		t.Helper()
		if got := seqs(fs); !equal(got, want) {
			t.Fatalf("%s: events %v, want %v", name, got, want)
		}
		if last := fs[len(fs)-1]; last.Type != "live" || last.Seq != live || last.Epoch == "" {
			t.Fatalf("%s: last frame %+v, want live %d", name, last, live)
		}
		if used := turns.Load() - before; fromRing != (used == 0) {
			t.Fatalf("%s: %d replay turns; from the ring: %v", name, used, fromRing)
		}
	}

	// The ring warmed up with the stream's last 100 messages at start.
	b := turns.Load()
	fs := resume("from_seq=950")
	expect("inside the warmed ring", fs, span(950, n), n, true, b)
	epoch := fs[len(fs)-1].Epoch

	// Live messages join it; the filter applies.
	var stops []uint64
	for i := 0; i < 20; i++ {
		action := "start"
		if i%3 == 0 {
			action = "stop"
		}
		seq := f.publishAction(t, action)
		if action == "stop" {
			stops = append(stops, seq)
		}
	}
	last := uint64(n + 20)
	f.waitLive(t, last)
	b = turns.Load()
	expect("filtered", resume("from_seq=990&filter=event=stop"), stops, last, true, b)
	b = turns.Load()
	expect("with epoch", resume("from_seq=1010&epoch="+epoch), span(1010, last), last, true, b)

	// Before the ring: the stream.
	b = turns.Load()
	expect("before the ring", resume("from_seq=850"), span(850, last), last, false, b)
	// Before the stream's first message (it keeps 1000: 21..1020): the gap frame.
	b = turns.Load()
	fs = resume("from_seq=5")
	if fs[0].Type != "gap" || fs[0].RequestedSeq != 5 || fs[0].FirstSeq != 21 {
		t.Fatalf("before the stream: first frame %+v, want gap 5 -> 21", fs[0])
	}
	expect("before the stream", fs[1:], span(21, last), last, false, b)

	// Not the stream's epoch.
	refused := func(name, query string) {
		t.Helper()
		c, _, err := websocket.DefaultDialer.Dial(f.url+"?"+query, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if fs, _ := read(t, c, ""); len(fs) == 0 || fs[len(fs)-1].Code != string(client.StreamReset) || seqs(fs) != nil {
			t.Fatalf("%s: %+v, want stream_reset and no event", name, fs)
		}
	}
	refused("wrong epoch", "from_seq=1000&epoch=1")

	// The stream made again: its messages, not the old ones, and the old
	// epoch is refused.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.js.DeleteStream(ctx, "AGED"); err != nil {
		t.Fatal(err)
	}
	cfg := natsutil.StreamConfig("AGED", 0, -1, 1)
	cfg.Storage = jetstream.MemoryStorage
	if _, err := f.js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 30; i++ {
		f.publishAction(t, "start")
	}
	testkit.Eventually(t, 60*time.Second, func() error {
		if e, s := f.h.Epoch(), f.h.LastSeq(); e == epoch || s != 30 {
			return fmt.Errorf("live feed at epoch %s seq %d", e, s)
		}
		return nil
	})
	b = turns.Load()
	fs = resume("from_seq=20&epoch=" + f.h.Epoch())
	expect("new incarnation", fs, span(20, 30), 30, true, b)
	refused("old epoch", "from_seq=20&epoch="+epoch)
}

// TestSlowBatchClientResumesExactly: a batch=1 client that stops reading
// while live events keep coming lags, then is ended as a slow consumer once
// it is behind the ring (2,000 messages); its resume_from_seq is the first
// event it was not sent, and resuming there (from the stream: the ring has
// moved past it) yields every later event once: nothing lost, nothing
// twice.
func TestSlowBatchClientResumesExactly(t *testing.T) {
	t.Parallel()
	f := newFixtureRing(t, 100000, 10, 1000, server.Options{}, 4, true, 2000)
	c, _, err := stalling.Dial(f.url+"?batch=1&filter=node="+f.node, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	first, err := read(t, c, "live")
	if err != nil {
		t.Fatalf("%v after %+v", err, first)
	}
	// Publish until the gateway ends the client (its queue holds 1 MiB,
	// then it lags until the ring has moved past it).
	for slowCount(f) == 0 {
		f.publish(t, 100)
		if t.Failed() {
			return
		}
	}
	fs, err := read(t, c, "")
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation {
		t.Fatalf("end: %v, want close 1008", err)
	}
	end := fs[len(fs)-1]
	got := seqs(fs)
	live := first[len(first)-1].Seq
	if end.Code != string(client.SlowConsumer) || len(got) == 0 || !equal(got, span(live+1, got[len(got)-1])) {
		t.Fatalf("before the end: events %d..(%d events), then %+v", live+1, len(got), end)
	}
	k := got[len(got)-1]
	if end.ResumeFromSeq != k+1 || end.Epoch == "" {
		t.Fatalf("resume_from_seq %d, want %d (the first event not received)", end.ResumeFromSeq, k+1)
	}
	f.checkIDs(t, fs)
	c2, _, err := websocket.DefaultDialer.Dial(f.url+"?batch=1&filter=node="+f.node+"&from_seq="+strconv.FormatUint(end.ResumeFromSeq, 10)+"&epoch="+end.Epoch, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	fs2, err := read(t, c2, "live")
	if err != nil {
		t.Fatal(err)
	}
	liveSeq := fs2[len(fs2)-1].Seq
	if got := seqs(fs2); !equal(got, span(k+1, liveSeq)) || fs2[0].Type == "gap" {
		t.Fatalf("after resuming: %d events from %v, want %d..%d", len(got), fs2[0], k+1, liveSeq)
	}
	f.checkIDs(t, fs2)
}

func slowCount(f *fixture) float64 {
	var m dto.Metric
	if err := f.m.SlowConsumers.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
