package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/dockcast/dockcast/gateway/app"
	"github.com/dockcast/dockcast/shared/testkit"
)

// TestSinceGaps: since reports a gap exactly when the stream removed
// messages stored at or after that time. The stream is purged (as limits
// or an operator would) while a gateway runs and after it started:
// an empty stream that had messages after since gives a gap frame
// (requested_time, first_seq = the next sequence) before live; after new
// messages, a since between the purge and them gives none, while a since
// before the purged messages still gives the gap.
func TestSinceGaps(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	stream := "SINCEGAPS"
	newStream(t, js, stream, 0)
	node := testkit.Unique("node")
	g := startGateway(t, ns.ClientURL(), stream, nil, app.Options{})
	watch := dial(t, g.wsURL(""), nil)
	_ = readUntil(t, watch, "live")

	beforeOld := time.Now().Add(-time.Second)
	for i := 0; i < 5; i++ {
		publish(t, js, mkEvent(node, "start", nil))
	}
	for {
		if f := read(t, watch, 30*time.Second); f.Type == "event" && f.Seq == 5 {
			break // the gateway saw the messages that are about to go
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(ctx); err != nil {
		t.Fatal(err)
	}

	sinceFrames := func(since time.Time) []frame {
		t.Helper()
		c, _, err := websocket.DefaultDialer.Dial(g.wsURL(q("since", since.Format(time.RFC3339Nano))), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return readUntil(t, c, "live")
	}
	// Empty, but it held messages stored after since.
	fs := sinceFrames(beforeOld)
	if len(fs) != 2 || fs[0].Type != "gap" || fs[0].FirstSeq != 6 || fs[0].RequestedTime == "" || fs[1].Seq != 5 {
		t.Fatalf("empty stream that had messages: %+v, want gap (first_seq 6) then live 5", fs)
	}
	// Empty, and nothing was stored after since: no gap.
	if fs := sinceFrames(time.Now()); len(fs) != 1 || fs[0].Type != "live" || fs[0].Seq != 5 {
		t.Fatalf("since now on the empty stream: %+v, want live 5 only", fs)
	}

	afterPurge := time.Now() // after the purged messages were stored, before the new ones
	var want []uint64
	for i := 0; i < 3; i++ {
		want = append(want, publish(t, js, mkEvent(node, "start", nil)))
	}
	for {
		if f := read(t, watch, 30*time.Second); f.Type == "event" && f.Seq == want[len(want)-1] {
			break // the live feed has them: a replay's live frame comes after them
		}
	}
	// After the purge: since between the purge and the new messages is no gap.
	fs = sinceFrames(afterPurge)
	if err := checkFrames(fs, want); err != nil || fs[0].Type == "gap" {
		t.Fatalf("since after the purge: %v (frames %+v), want events %v and no gap", err, fs, want)
	}
	// since before the purged messages: they are gone, a gap first.
	fs = sinceFrames(beforeOld)
	if fs[0].Type != "gap" || fs[0].FirstSeq != 6 {
		t.Fatalf("since before the purged messages: first frame %+v, want gap first_seq 6", fs[0])
	}
	if err := checkFrames(fs, want); err != nil {
		t.Fatal(err)
	}
}
