package client

import (
	"encoding/json"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/dockcast/dockcast/shared/event"
)

// recorder is a transport that writes nothing until told: it records what
// it is handed, in order, so that tests can see exactly what reached the
// transport when a client ends.
type recorder struct {
	mu     sync.Mutex
	frames []Frame
	code   int
}

func (r *recorder) Send(b []byte) error {
	var f Frame
	if err := json.Unmarshal(b, &f); err != nil {
		panic(err)
	}
	r.mu.Lock()
	r.frames = append(r.frames, f)
	r.mu.Unlock()
	return nil
}
func (r *recorder) Close(code int, _ string) error {
	r.mu.Lock()
	r.code = code
	r.mu.Unlock()
	return nil
}
func (r *recorder) Abort() {}

func (r *recorder) events() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []uint64
	for _, f := range r.frames {
		if f.Type == "event" {
			out = append(out, f.Seq)
		}
	}
	return out
}

func (r *recorder) last() Frame {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.frames[len(r.frames)-1]
}

func eventFrame(seq uint64) []byte {
	return EventFrame(seq, "docker.events.n.container.start", []byte(`{"v":1,"type":"container","action":"start"}`))
}

// TestResumeIsFirstUnsent: whatever the phase, the resume_from_seq of an
// ending client is the first event the transport was not handed, so
// resuming there repeats and skips nothing.
func TestResumeIsFirstUnsent(t *testing.T) {
	t.Parallel()
	const credits = 3
	opts := Options{Credits: credits, MaxQueueBytes: 1 << 20, CloseTimeout: time.Minute}
	feed := &Position{}

	// Replaying: events 10..29 queued, 3 handed; then the replay is lost.
	c := New(Spec{}, opts)
	rec := &recorder{}
	c.Attach(rec)
	c.JoinBuffering(nil, 100, 10, 10, "42", feed)
	for s := uint64(10); s < 30; s++ {
		c.Replay(s, eventFrame(s))
	}
	c.Live(100, eventFrame(100)) // held back
	c.End(ReplayLost, "lost")
	if got, last := rec.events(), rec.last(); len(got) != credits || last.Code != string(ReplayLost) || last.ResumeFromSeq != 10+credits || last.Epoch != "42" || rec.code != CloseTryAgainLater {
		t.Fatalf("replay lost: handed %v, then %+v (close %d); want resume %d", got, last, rec.code, 10+credits)
	}

	// Replay read up to liveFrom, held-back live events not handed: they come next.
	c = New(Spec{}, opts)
	rec = &recorder{}
	c.Attach(rec)
	c.JoinBuffering(nil, 50, 40, 40, "42", feed)
	for s := uint64(40); s < 43; s++ {
		c.Replay(s, eventFrame(s))
	}
	c.SetReplayNext(50)
	c.Live(55, eventFrame(55))
	c.End(SlowConsumer, "slow")
	if last := rec.last(); last.ResumeFromSeq != 55 {
		t.Fatalf("held-back live events: %+v, want resume 55", last)
	}

	// Live, everything handed: one past what the live feed checked.
	c = New(Spec{}, opts)
	rec = &recorder{}
	c.Attach(rec)
	c.JoinLive(nil, 7, "42", feed)
	c.Live(8, eventFrame(8))
	feed.Store(20) // the feed checked 9..20 against the filter: none matched
	if got := c.Checked(); got != 20 {
		t.Fatalf("Checked %d, want 20", got)
	}
	c.End(TokenRevoked, "revoked")
	if last := rec.last(); last.ResumeFromSeq != 21 || rec.code != ClosePolicyViolation {
		t.Fatalf("live: %+v close %d, want resume 21 and 1008", last, rec.code)
	}

	// Overflow: slow_consumer with the first unhanded event.
	small := opts
	small.MaxQueueBytes = 4 * len(eventFrame(1))
	var slowAt uint64
	small2 := Spec{OnSlow: func(r uint64) { slowAt = r }}
	c = New(small2, small)
	rec = &recorder{}
	c.Attach(rec)
	feed2 := &Position{}
	c.JoinLive(nil, 0, "42", feed2)
	for s := uint64(1); s <= 20; s++ {
		c.Live(s, eventFrame(s))
	}
	handed := rec.events()
	if last := rec.last(); last.Code != string(SlowConsumer) || last.ResumeFromSeq != handed[len(handed)-1]+1 || slowAt != last.ResumeFromSeq {
		t.Fatalf("overflow: handed %v then %+v (hook %d)", handed, last, slowAt)
	}
	// Shutdown: close 1001, no error frame.
	c = New(Spec{}, opts)
	rec = &recorder{}
	c.Attach(rec)
	c.JoinLive(nil, 3, "42", feed)
	n := len(rec.frames)
	c.End(Shutdown, "bye")
	if len(rec.frames) != n || rec.code != CloseGoingAway {
		t.Fatalf("shutdown: %d frames after, close %d", len(rec.frames)-n, rec.code)
	}
	// stream_reset names the new epoch, no resume.
	c = New(Spec{}, opts)
	rec = &recorder{}
	c.Attach(rec)
	c.JoinLive(nil, 3, "42", feed)
	c.Reset("43", "made again")
	if last := rec.last(); last.Code != string(StreamReset) || last.Epoch != "43" || last.ResumeFromSeq != 0 || rec.code != CloseServiceRestart {
		t.Fatalf("reset: %+v close %d", last, rec.code)
	}
}

// TestEndBeforeAttach: a client ended before its transport is attached
// hands it the error frame and close on Attach.
func TestEndBeforeAttach(t *testing.T) {
	t.Parallel()
	c := New(Spec{}, Options{})
	c.Reset("9", "x")
	rec := &recorder{}
	c.Attach(rec)
	if len(rec.frames) != 1 || rec.frames[0].Code != string(StreamReset) || rec.code != CloseServiceRestart {
		t.Fatalf("%+v close %d", rec.frames, rec.code)
	}
}

func TestCodes(t *testing.T) {
	t.Parallel()
	for code, close := range map[Code]int{SlowConsumer: 1008, ReplayLost: 1013, StreamReset: 1012, TokenRevoked: 1008, Shutdown: 1001} {
		if code.Close() != close {
			t.Errorf("%s closes with %d, want %d", code, code.Close(), close)
		}
	}
}

func FuzzCheckEpoch(f *testing.F) {
	for _, s := range []string{"1764097465217300886", "1", "0", "01", "-1", "9223372036854775807", "9223372036854775808", "", "12a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if CheckEpoch(s) != nil {
			return
		}
		if EpochOf(time.Unix(0, mustInt(t, s))) != s {
			t.Fatalf("epoch %q does not round-trip through a time", s)
		}
	})
}

func mustInt(t *testing.T, s string) int64 {
	var n int64
	for _, r := range s {
		n = n*10 + int64(r-'0')
	}
	if n <= 0 {
		t.Fatalf("%q accepted but not positive", s)
	}
	return n
}

// FuzzDecode: a payload Decode accepts embeds into an event frame that is
// valid UTF-8 JSON decoding back to the same event.
func FuzzDecode(f *testing.F) {
	ev := event.New("n", "container", "start", "", "abc", map[string]string{"name": "x"}, time.Unix(1, 0))
	good, _ := ev.Marshal()
	f.Add(good)
	f.Add([]byte(`{"v":1,"type":"container","action":"start","actor":{"attributes":{"name":"` + "\xff" + `"}}}`))
	f.Add([]byte(`{"v":2,"type":"x","action":"y"}`))
	f.Add([]byte("null"))
	f.Fuzz(func(t *testing.T, payload []byte) {
		ev, err := Decode(payload)
		if err != nil {
			return
		}
		frame := EventFrame(7, ev.Subject(), payload)
		if !utf8.Valid(frame) || !json.Valid(frame) {
			t.Fatalf("frame of an accepted payload is not UTF-8 JSON: %q", frame)
		}
		var fr Frame
		if err := json.Unmarshal(frame, &fr); err != nil || fr.Seq != 7 {
			t.Fatalf("frame %q: %+v %v", frame, fr, err)
		}
		back, err := event.Decode(fr.Event)
		if err != nil || back.Type != ev.Type || back.Action != ev.Action || back.ID != ev.ID {
			t.Fatalf("frame's event %+v %v, want %+v", back, err, ev)
		}
	})
}

func (r *recorder) count(typ string) (n int, last Frame) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.frames {
		if f.Type == typ {
			n, last = n+1, f
		}
	}
	return n, last
}

// TestBookmarkRules: a bookmark goes only to a live client that was handed
// nothing for the interval, names the feed's position (what its filter was
// checked against), never while frames wait for the transport's credit,
// never during a replay, and never with BookmarkInterval < 0.
func TestBookmarkRules(t *testing.T) {
	t.Parallel()
	const interval = 50 * time.Millisecond
	waitBookmark := func(r *recorder, atLeast int) Frame {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if n, f := r.count("bookmark"); n >= atLeast {
				return f
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("no bookmark %d within 30 s", atLeast)
		return Frame{}
	}

	// Live, idle: the feed's position moves past events the filter drops.
	var feed Position
	r := &recorder{}
	c := New(Spec{}, Options{BookmarkInterval: interval})
	c.Attach(r)
	c.JoinLive(nil, 10, "1", &feed)
	c.Live(11, eventFrame(11))
	feed.Store(40) // 12..40 checked, none for this client
	if f := waitBookmark(r, 1); f.Seq != 40 {
		t.Fatalf("bookmark %d, want 40", f.Seq)
	}
	feed.Store(41)
	if f := waitBookmark(r, 2); f.Seq != 41 {
		t.Fatalf("second bookmark %d, want 41", f.Seq)
	}
	c.Disconnected()

	// Frames waiting for credit: no bookmark (nothing may be left unsent).
	r2 := &recorder{}
	c2 := New(Spec{}, Options{BookmarkInterval: interval, Credits: 1})
	c2.Attach(r2)
	c2.JoinLive(nil, 10, "1", &feed) // the live frame takes the only credit
	c2.Live(50, eventFrame(50))      // waits for Sent
	time.Sleep(10 * interval)
	if n, _ := r2.count("bookmark"); n != 0 {
		t.Fatalf("%d bookmarks while a frame waited for credit", n)
	}
	c2.Disconnected()

	// Replaying (buffering), and bookmarks off: none.
	r3, r4 := &recorder{}, &recorder{}
	c3 := New(Spec{}, Options{BookmarkInterval: interval})
	c3.Attach(r3)
	c3.JoinBuffering(nil, 100, 1, 1, "1", &feed)
	c4 := New(Spec{}, Options{BookmarkInterval: -1})
	c4.Attach(r4)
	c4.JoinLive(nil, 10, "1", &feed)
	time.Sleep(10 * interval)
	if n, _ := r3.count("bookmark"); n != 0 {
		t.Errorf("%d bookmarks during a replay", n)
	}
	if n, _ := r4.count("bookmark"); n != 0 {
		t.Errorf("%d bookmarks with BookmarkInterval -1", n)
	}
	c3.Disconnected()
	c4.Disconnected()
}
