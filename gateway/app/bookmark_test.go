package app_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/dockcast/dockcast/gateway/app"
	"github.com/dockcast/dockcast/gateway/client"
	"github.com/dockcast/dockcast/gateway/server"
	"github.com/dockcast/dockcast/shared/testkit"
)

// TestBookmark: a live connection with a narrow filter that is sent
// nothing for the bookmark interval gets {"type":"bookmark","seq":N}, N the
// last sequence its filter was checked against (past many events it does
// not want); resuming from N+1 gets exactly the next matching events, on
// /ws (from_seq) and on /sse (the bookmark's id as Last-Event-ID).
func TestBookmark(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	newStream(t, js, "BOOKMARK", 0)
	g := startGateway(t, ns.ClientURL(), "BOOKMARK", nil,
		app.Options{Server: server.Options{Client: client.Options{BookmarkInterval: 300 * time.Millisecond}}})
	node := testkit.Unique("bm")
	rare := map[string]string{"team": "rare"}
	const narrow = "label=team=rare"

	// noise publishes n events the filter drops and returns the last seq.
	noise := func(n int) uint64 {
		var last uint64
		for range n {
			last = publish(t, js, mkEvent(node, "start", map[string]string{"team": "other"}))
		}
		return last
	}

	for _, transport := range []string{"ws", "sse"} {
		t.Run(transport, func(t *testing.T) {
			var frames func(n int) []frame // reads until n events (after live)
			var bookmark func(atLeast uint64) (frame, string)
			switch transport {
			case "ws":
				c := dial(t, g.wsURL(q("filter", narrow)), nil)
				// Live first: only events after the join are sent, so the
				// first one is published after it.
				pre := readUntil(t, c, "live")
				frames = func(n int) []frame {
					fs := pre
					for end := time.Now().Add(60 * time.Second); len(eventSeqs(fs)) < n; {
						if time.Now().After(end) {
							t.Fatalf("%d of %d events within 60 s", len(eventSeqs(fs)), n)
						}
						fs = append(fs, read(t, c, 30*time.Second))
					}
					return fs
				}
				bookmark = func(atLeast uint64) (frame, string) {
					for {
						f := read(t, c, 30*time.Second)
						if f.Type == "bookmark" && f.Seq >= atLeast {
							return f, ""
						}
						if f.Type == "event" {
							t.Fatalf("event %d, want only bookmarks", f.Seq)
						}
					}
				}
			case "sse":
				s := openSSE(t, g.sseURL(q("filter", narrow)), nil)
				pre := s.frames("live", "")
				frames = func(n int) []frame {
					fs := pre
					for end := time.Now().Add(60 * time.Second); len(eventSeqs(fs)) < n; {
						if time.Now().After(end) {
							t.Fatalf("%d of %d events within 60 s", len(eventSeqs(fs)), n)
						}
						fs = append(fs, s.frames("event", pre[len(pre)-1].Epoch)...)
					}
					return fs
				}
				bookmark = func(atLeast uint64) (frame, string) {
					for {
						m, err := s.next(30 * time.Second)
						if err != nil {
							t.Fatal(err)
						}
						f := decodeFrame(t, []byte(m.Data))
						if f.Type == "bookmark" && f.Seq >= atLeast {
							return f, m.ID
						}
						if f.Type == "event" {
							t.Fatalf("event %d, want only bookmarks", f.Seq)
						}
					}
				}
			}
			first := publish(t, js, mkEvent(node, "start", rare))
			fs := frames(1)
			epoch := ""
			for _, f := range fs {
				if f.Type == "live" {
					epoch = f.Epoch
				}
			}
			if got := eventSeqs(fs); len(got) != 1 || got[0] != first {
				t.Fatalf("events %v, want [%d]", got, first)
			}
			last := noise(200)
			bm, id := bookmark(last)
			if bm.Seq != last {
				t.Fatalf("bookmark %d, want %d (the last event checked)", bm.Seq, last)
			}
			// What follows the bookmark: matches among more noise.
			var wantSeqs []uint64
			for range 3 {
				noise(5)
				wantSeqs = append(wantSeqs, publish(t, js, mkEvent(node, "die", rare)))
			}
			switch transport {
			case "ws":
				c := dial(t, g.wsURL(q("filter", narrow, "from_seq", strconv.FormatUint(bm.Seq+1, 10), "epoch", epoch)), nil)
				if err := checkFrames(readEvents(t, c, len(wantSeqs)), wantSeqs); err != nil {
					t.Fatal(err)
				}
			case "sse":
				if id != epoch+":"+strconv.FormatUint(bm.Seq, 10) {
					t.Fatalf("bookmark id %q", id)
				}
				s := openSSE(t, g.sseURL(q("filter", narrow)), http.Header{"Last-Event-ID": {id}})
				if err := checkFrames(s.events(len(wantSeqs), epoch), wantSeqs); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
