package replay_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/dockcast/dockcast/gateway/client"
	"github.com/dockcast/dockcast/gateway/replay"
	"github.com/dockcast/dockcast/gateway/server"
	"github.com/dockcast/dockcast/gateway/ws"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/testkit"
)

// stalling's clients fill their sockets at once when they do not read, so
// that frames stay queued in the gateway.
var stalling = websocket.Dialer{NetDial: testkit.DialStalling, ReadBufferSize: 1024}

// TestReplayLostResumeIsExact: the stream loses the replay's position
// (purged at once, as limits would remove it) while events the replay
// already queued wait in the client's queue (the client is not reading).
// The client gets the events that reached its socket, then replay_lost
// whose resume_from_seq is the very next one (nothing queued is thrown
// away unannounced); resuming there starts with a gap frame covering
// exactly what the stream removed: with the event ids checked against what
// was published, every event is either received or inside the gap.
func TestReplayLostResumeIsExact(t *testing.T) {
	t.Parallel()
	// The gateway's sockets have small send buffers, so that frames stay
	// queued.
	const n = 2000
	f := newFixtureOpts(t, n, 1000, server.Options{WS: ws.Options{Buffer: 4, WriteWait: time.Minute}}, 4, true)
	f.rp.Batch = 100
	f.rp.FetchWait = 100 * time.Millisecond
	var fired atomic.Pointer[client.Client]
	replay.SetHook(f.rp, func(stage string, c *client.Client) {
		if stage != "fetch" || fired.Load() != nil {
			return
		}
		if _, _, queued := c.Stats(); queued > 64<<10 && fired.CompareAndSwap(nil, c) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := f.js.Stream(ctx, "AGED")
			if err == nil {
				err = s.Purge(ctx) // the stream now holds nothing; its next sequence is n+1
			}
			if err != nil {
				t.Error(err)
			}
		}
	})
	c, _, err := stalling.Dial(f.url+"?from_seq=1&filter=node="+f.node, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The client reads only once the gateway has ended it.
	testkit.Eventually(t, 60*time.Second, func() error {
		if c := fired.Load(); c == nil || !c.Closed() {
			return errors.New("the replay was not lost with frames queued")
		}
		return nil
	})
	fs, err := read(t, c, "")
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseTryAgainLater {
		t.Fatalf("end: %v, want close 1013 after %d frames", err, len(fs))
	}
	got := seqs(fs)
	last := fs[len(fs)-1]
	if len(got) == 0 || !equal(got, span(1, got[len(got)-1])) {
		t.Fatalf("events before the error: %v, want 1..k", got)
	}
	k := got[len(got)-1]
	if last.Code != "replay_lost" || last.ResumeFromSeq != k+1 || last.Epoch == "" {
		t.Fatalf("last frame %+v, want replay_lost resume_from_seq %d (the first event not received) with the epoch", last, k+1)
	}
	if k+1 >= n {
		t.Fatalf("nothing was left queued (k=%d): the test did not test", k)
	}
	t.Logf("received 1..%d, resume_from_seq %d", k, last.ResumeFromSeq)
	c2, _, err := websocket.DefaultDialer.Dial(f.url+"?filter=node="+f.node+"&from_seq="+strconv.FormatUint(last.ResumeFromSeq, 10)+"&epoch="+last.Epoch, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	fs2, err := read(t, c2, "live")
	if err != nil {
		t.Fatal(err)
	}
	if fs2[0].Type != "gap" || fs2[0].RequestedSeq != k+1 || fs2[0].FirstSeq != n+1 {
		t.Fatalf("after resuming: first frame %+v, want gap %d -> %d", fs2[0], k+1, n+1)
	}
	liveSeq := fs2[len(fs2)-1].Seq
	if got := seqs(fs2); !equal(got, span(n+1, liveSeq)) {
		t.Fatalf("after resuming: %v, want %d..%d", got, n+1, liveSeq)
	}
	// Every event id received matches the stream's at that sequence; the
	// ones not received are exactly the gap.
	f.mu.Lock()
	defer f.mu.Unlock()
	received := map[uint64]bool{}
	for _, fr := range append(fs, fs2...) {
		if fr.Type != "event" {
			continue
		}
		ev, err := event.Decode(fr.Event)
		if err != nil || ev.ID != f.ids[fr.Seq] {
			t.Fatalf("event %d: id %q (%v), published %q", fr.Seq, ev.ID, err, f.ids[fr.Seq])
		}
		received[fr.Seq] = true
	}
	for seq := uint64(1); seq <= liveSeq; seq++ {
		inGap := seq >= fs2[0].RequestedSeq && seq < fs2[0].FirstSeq
		if received[seq] == inGap {
			t.Fatalf("seq %d: received %v, inside the gap %v", seq, received[seq], inGap)
		}
	}
}

// TestReplayBudget: with one replay slot, a replay of a long history takes
// turns of TurnMessages messages; a client that connects meanwhile gets
// the slot between two turns and goes live while the long replay is still
// going (without the budget it would wait for all of it).
func TestReplayBudget(t *testing.T) {
	t.Parallel()
	const n = 3000
	f := newFixtureOpts(t, n, 0, server.Options{}, 1, false)
	f.rp.TurnMessages = 100
	var mu sync.Mutex
	var long *client.Client
	longTurns := 0
	shortLive := make(chan struct{})
	var shortConn *websocket.Conn
	shortDone := make(chan []frame, 1)
	replay.SetHook(f.rp, func(stage string, c *client.Client) {
		if stage != "turn" {
			return
		}
		mu.Lock()
		if long == nil {
			long = c
		}
		isLong := c == long
		if isLong {
			longTurns++
		}
		turns := longTurns
		mu.Unlock()
		switch {
		case isLong && turns == 1:
			// A second client arrives while the long replay holds the slot.
			sc, _, err := websocket.DefaultDialer.Dial(f.url+"?from_seq="+strconv.Itoa(n-5), nil)
			if err != nil {
				t.Error(err)
				return
			}
			shortConn = sc
			go func() {
				fs, _ := read(t, sc, "live")
				shortDone <- fs
				close(shortLive)
			}()
			testkit.Eventually(t, 30*time.Second, func() error {
				if v := testutilGauge(f); v != 1 {
					return errors.New("the second replay is not waiting for the slot")
				}
				return nil
			})
		case isLong && turns == 2:
			select { // the second client went live between the two turns
			case <-shortLive:
			case <-time.After(30 * time.Second):
				t.Error("the second client did not go live before the long replay's second turn")
			}
		}
	})
	c, _, err := websocket.DefaultDialer.Dial(f.url+"?from_seq=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fs, err := read(t, c, "live")
	if err != nil {
		t.Fatal(err)
	}
	if got := seqs(fs); !equal(got, span(1, n)) {
		t.Fatalf("long replay: %d events, want 1..%d", len(got), n)
	}
	select {
	case sfs := <-shortDone:
		if got := seqs(sfs); !equal(got, span(n-5, n)) {
			t.Fatalf("short replay: %v", got)
		}
	case <-ctx.Done():
		t.Fatal("the short replay did not finish")
	}
	if shortConn != nil {
		_ = shortConn.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	if longTurns < n/100 {
		t.Fatalf("the long replay took %d turns, want at least %d", longTurns, n/100)
	}
}

func testutilGauge(f *fixture) float64 {
	return gaugeValue(f.m.ReplaysWaiting)
}
