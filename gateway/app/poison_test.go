package app_test

import (
	"context"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/dockcast/dockcast/gateway/app"
	"github.com/dockcast/dockcast/shared/testkit"
)

// rawFrames reads text frames as bytes until n event frames came.
func rawEvents(t testing.TB, c *websocket.Conn, n int) [][]byte {
	t.Helper()
	var out [][]byte
	events := 0
	for events < n {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, data, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("after %d frames: %v", len(out), err)
		}
		out = append(out, data)
		if f := decodeFrame(t, data); f.Type == "event" {
			events++
		}
	}
	return out
}

// TestPoisonMessages: messages on docker.events.> that are not valid
// events (invalid UTF-8 inside otherwise valid JSON, not JSON, another
// payload version, no type) are skipped for every client, live or
// replaying (from_seq and since), counted once each in
// dockcast_gateway_invalid_messages_total, and close no connection: each
// follower gets the events around them, only valid UTF-8 frames, and the
// next event too.
func TestPoisonMessages(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	stream := "POISON"
	newStream(t, js, stream, 0)
	node := testkit.Unique("node")
	g := startGateway(t, ns.ClientURL(), stream, nil, app.Options{})
	live := dial(t, g.wsURL(q("filter", "node="+node)), nil)
	if f := read(t, live, 30*time.Second); f.Type != "live" {
		t.Fatalf("first frame %+v", f)
	}
	before := time.Now()
	a := publish(t, js, mkEvent(node, "start", nil))
	subj := "docker.events." + node + ".container.start"
	garbage := [][]byte{
		[]byte(`{"v":1,"id":"x","node":"` + node + `","type":"container","action":"start","action_detail":"","actor":{"id":"y","attributes":{"name":"bad` + "\xff\xfe" + `"}},"scope":"local","time":"2026-11-25T19:04:25Z","time_nano":1}`),
		[]byte("not json at all"),
		[]byte(`{"v":2,"type":"container","action":"start"}`),
		[]byte(`{"v":1,"action":"start"}`),
		[]byte(`[1,2,3]`),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, gb := range garbage {
		if _, err := js.Publish(ctx, subj, gb); err != nil {
			t.Fatal(err)
		}
	}
	b := publish(t, js, mkEvent(node, "die", nil))

	check := func(name string, frames [][]byte) {
		t.Helper()
		var seqs []uint64
		for _, data := range frames {
			if !utf8.Valid(data) {
				t.Fatalf("%s: a frame is not UTF-8 (a browser drops the connection): %q", name, data)
			}
			if f := decodeFrame(t, data); f.Type == "event" {
				seqs = append(seqs, f.Seq)
			}
		}
		if len(seqs) != 2 || seqs[0] != a || seqs[1] != b {
			t.Fatalf("%s: events %v, want %d and %d", name, seqs, a, b)
		}
	}
	check("live", rawEvents(t, live, 2))
	replayers := map[string]*websocket.Conn{
		"from_seq": dial(t, g.wsURL(q("filter", "node="+node, "from_seq", "1")), nil),
		"since":    dial(t, g.wsURL(q("filter", "node="+node, "since", before.Add(-time.Second).Format(time.RFC3339Nano))), nil),
		"all":      dial(t, g.wsURL(q("from_seq", "1")), nil),
	}
	for name, c := range replayers {
		check(name, rawEvents(t, c, 2))
	}
	// Everyone is still connected and gets the next event.
	c := publish(t, js, mkEvent(node, "destroy", nil))
	for name, conn := range map[string]*websocket.Conn{"live": live, "from_seq": replayers["from_seq"], "since": replayers["since"], "all": replayers["all"]} {
		for {
			f := read(t, conn, 30*time.Second)
			if f.Type == "event" {
				if f.Seq != c {
					t.Fatalf("%s: event %d, want %d", name, f.Seq, c)
				}
				break
			}
		}
	}
	if v := metricValue(t, g, "dockcast_gateway_invalid_messages_total"); v != float64(len(garbage)) {
		t.Fatalf("invalid_messages_total = %v, want %d (each counted once)", v, len(garbage))
	}
}
