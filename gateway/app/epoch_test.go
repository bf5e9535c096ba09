package app_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/dockcast/dockcast/gateway/app"
	"github.com/dockcast/dockcast/gateway/client"
	"github.com/dockcast/dockcast/shared/testkit"
)

// readUntil reads frames up to and including the first of type typ.
func readUntil(t testing.TB, c *websocket.Conn, typ string) []frame {
	t.Helper()
	var fs []frame
	for {
		f := read(t, c, 30*time.Second)
		fs = append(fs, f)
		if f.Type == typ {
			return fs
		}
	}
}

// readEvents reads frames until the live frame and n event frames have
// arrived, on either side of live: events published just before a client
// connects may not have reached the gateway's live feed yet, and then
// they follow live instead of preceding it (exactly once either way).
func readEvents(t testing.TB, c *websocket.Conn, n int) []frame {
	t.Helper()
	var fs []frame
	live, events := false, 0
	for !live || events < n {
		f, err := tryRead(c, 30*time.Second)
		if err != nil {
			t.Fatalf("after %d events (live %v), want %d: %v", events, live, n, err)
		}
		fs = append(fs, f)
		switch f.Type {
		case "live":
			live = true
		case "event":
			events++
		}
	}
	return fs
}

// expectEnd reads the rest of a connection: it must end with an error
// frame of code, then a close with closeCode. It returns the error frame.
func expectEnd(t testing.TB, c *websocket.Conn, code client.Code, closeCode int) frame {
	t.Helper()
	var last frame
	for {
		f, err := tryRead(c, 30*time.Second)
		if err != nil {
			if last.Type != "error" || last.Code != string(code) {
				t.Fatalf("connection ended (%v) after %+v, want an error frame %s first", err, last, code)
			}
			if !isClose(err, closeCode) {
				t.Fatalf("after %s: %v, want close %d", code, err, closeCode)
			}
			return last
		}
		last = f
	}
}

// TestEpoch: live frames name the stream's epoch (its creation time in
// Unix nanoseconds); from_seq with that epoch resumes, with another one it
// gets stream_reset (1012) naming the current epoch; when the stream is
// deleted and made again, connected clients (live and replaying) get
// stream_reset with the new epoch, and the old epoch is refused from then
// on.
func TestEpoch(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	stream := "EPOCH"
	newStream(t, js, stream, 0)
	node := testkit.Unique("node")
	for i := 0; i < 5; i++ {
		publish(t, js, mkEvent(node, "start", nil))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	epoch := strconv.FormatInt(s.CachedInfo().Created.UnixNano(), 10)

	g := startGateway(t, ns.ClientURL(), stream, nil, app.Options{})
	live := dial(t, g.wsURL(""), nil)
	if f := read(t, live, 30*time.Second); f.Type != "live" || f.Seq != 5 || f.Epoch != epoch {
		t.Fatalf("live frame %+v, want seq 5 epoch %s", f, epoch)
	}
	// The right epoch resumes.
	ok := dial(t, g.wsURL(q("from_seq", "3", "epoch", epoch)), nil)
	fs := readUntil(t, ok, "live")
	if err := checkFrames(fs, []uint64{3, 4, 5}); err != nil || fs[len(fs)-1].Epoch != epoch {
		t.Fatalf("from_seq=3 with its epoch: %v %+v", err, fs)
	}
	// Another epoch gets stream_reset, naming the stream's.
	wrong := dial(t, g.wsURL(q("from_seq", "3", "epoch", "1234567890")), nil)
	if f := expectEnd(t, wrong, client.StreamReset, websocket.CloseServiceRestart); f.Epoch != epoch || f.ResumeFromSeq != 0 || f.Message == "" {
		t.Fatalf("wrong epoch: %+v, want stream_reset with epoch %s and no resume_from_seq", f, epoch)
	}

	// A client that resumed with from_seq, and the live one: the stream is
	// deleted and made again.
	slow := dial(t, g.wsURL(q("from_seq", "1", "epoch", epoch)), nil)
	_ = readUntil(t, slow, "live")
	if err := js.DeleteStream(ctx, stream); err != nil {
		t.Fatal(err)
	}
	newStream(t, js, stream, 0)
	s, err = js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	epoch2 := strconv.FormatInt(s.CachedInfo().Created.UnixNano(), 10)
	if epoch2 == epoch {
		t.Fatal("the new stream has the old epoch")
	}
	seq := publish(t, js, mkEvent(node, "start", nil))
	for name, c := range map[string]*websocket.Conn{"live": live, "resumed": slow} {
		if f := expectEnd(t, c, client.StreamReset, websocket.CloseServiceRestart); f.Epoch != epoch2 {
			t.Fatalf("%s: %+v, want stream_reset naming epoch %s", name, f, epoch2)
		}
	}
	// The old epoch is refused; the new one resumes at the new sequences.
	testkit.Eventually(t, 30*time.Second, func() error {
		c, _, err := websocket.DefaultDialer.Dial(g.wsURL(q("from_seq", "6", "epoch", epoch)), nil)
		if err != nil {
			return err
		}
		defer c.Close()
		f, err := tryRead(c, 30*time.Second)
		if err != nil {
			return err
		}
		if f.Type != "error" || f.Code != string(client.StreamReset) || f.Epoch != epoch2 {
			return errorString("old epoch: got " + f.Type + " " + f.Code + " " + f.Epoch)
		}
		return nil
	})
	fresh := dial(t, g.wsURL(q("from_seq", "1", "epoch", epoch2)), nil)
	fs = readUntil(t, fresh, "live")
	if err := checkFrames(fs, []uint64{seq}); err != nil || fs[len(fs)-1].Epoch != epoch2 {
		t.Fatalf("new epoch: %v %+v", err, fs)
	}
}
