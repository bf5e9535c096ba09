package replay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/dockcast/dockcast/gateway/client"
	"github.com/dockcast/dockcast/gateway/config"
	"github.com/dockcast/dockcast/gateway/hub"
	"github.com/dockcast/dockcast/gateway/metrics"
	"github.com/dockcast/dockcast/gateway/replay"
	"github.com/dockcast/dockcast/gateway/server"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/natsutil"
	"github.com/dockcast/dockcast/shared/testkit"
)

type frame = client.Frame

// fixture is a gateway (hub, replayer, server) over a stream keeping
// at most maxMsgs messages, holding 1..maxMsgs.
type fixture struct {
	js   jetstream.JetStream
	rp   *replay.Replayer
	url  string
	node string
	pad  string            // added to every event, to make it bigger
	ids  map[uint64]string // event id by stream sequence, of every publish
	mu   sync.Mutex
	m    *metrics.Metrics
	h    *hub.Hub
}

func newFixture(t *testing.T, maxMsgs int64) *fixture {
	return newFixtureOpts(t, maxMsgs, 0, server.Options{}, 4, false)
}

// newFixtureOpts: pad bytes in every event, server options, replay slots;
// tinySend gives every accepted connection a 4 KiB send buffer, so that a
// client that does not read leaves frames queued in the gateway at once
// (the kernel would otherwise absorb megabytes).
func newFixtureOpts(t *testing.T, maxMsgs int64, pad int, o server.Options, slots int, tinySend bool) *fixture {
	t.Helper()
	return newFixtureRing(t, maxMsgs, maxMsgs, pad, o, slots, tinySend, 0)
}

// newFixtureRing is newFixtureOpts with initial messages published first
// and the live feed keeping the last ring messages for resumes
// (hub.RecentKept); ring 0 makes every replay read the stream
// (Replayer.StreamOnly): the tests of the stream's path. It returns once
// the gateway is ready (the ring warmed up).
func newFixtureRing(t *testing.T, maxMsgs, initial int64, pad int, o server.Options, slots int, tinySend bool, ring int) *fixture {
	t.Helper()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := natsutil.StreamConfig("AGED", 0, -1, 1)
	cfg.Storage = jetstream.MemoryStorage
	cfg.MaxMsgs = maxMsgs
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	f := &fixture{js: js, node: testkit.Unique("node"), pad: strings.Repeat("p", pad), ids: map[uint64]string{}, m: metrics.New()}
	f.publish(t, int(initial))
	log := testkit.Logger(t)
	h := hub.New(js, "AGED", log, nil)
	if ring > 0 {
		h.RecentKept = ring
	}
	f.h = h
	hctx, hcancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = h.Run(hctx)
	}()
	f.rp = replay.New(js, "AGED", h, slots, log, f.m)
	f.rp.StreamOnly = ring == 0
	srv := server.NewServer(log, config.Config{MaxClients: 100, MaxClientsPerIP: 100}, server.Deps{Hub: h, Replayer: f.rp, Metrics: f.m, Options: o})
	hs := httptest.NewUnstartedServer(srv)
	if tinySend {
		hs.Listener = testkit.SmallSendBuffers(hs.Listener)
	}
	hs.Start()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		srv.Shutdown(sctx)
		hs.Close()
		hcancel()
		<-done
	})
	f.url = "ws" + hs.URL[len("http"):] + "/ws"
	testkit.Eventually(t, 30*time.Second, func() error {
		if s := h.LastSeq(); s != uint64(initial) {
			return fmt.Errorf("live feed at %d", s)
		}
		if ok, why := h.Ready(); !ok {
			return errors.New(why)
		}
		return nil
	})
	return f
}

func (f *fixture) publish(t *testing.T, n int) {
	for i := 0; i < n; i++ {
		ev := event.New(f.node, "container", "start", "", fmt.Sprintf("%064d", i), map[string]string{"name": "c", "pad": f.pad}, time.Now())
		data, err := ev.Marshal()
		if err != nil {
			t.Error(err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ack, err := f.js.Publish(ctx, ev.Subject(), data)
		cancel()
		if err != nil {
			t.Error(err)
			return
		}
		f.mu.Lock()
		f.ids[ack.Sequence] = ev.ID
		f.mu.Unlock()
	}
}

// read returns the frames up to and including the first of type until,
// or up to the connection's end (a batch=1 text frame holds one per line).
func read(t *testing.T, c *websocket.Conn, until string) ([]frame, error) {
	t.Helper()
	var out []frame
	for {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, data, err := c.ReadMessage()
		if err != nil {
			return out, err
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			var f frame
			if err := json.Unmarshal(line, &f); err != nil {
				t.Fatalf("frame %q: %v", line, err)
			}
			out = append(out, f)
			if f.Type == until {
				return out, nil
			}
		}
	}
}

func seqs(fs []frame) []uint64 {
	var out []uint64
	for _, f := range fs {
		if f.Type == "event" {
			out = append(out, f.Seq)
		}
	}
	return out
}

func span(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestGapAfterConsumerCreated: the start ages out after the replay made
// its consumer (and checked the stream) but before the first fetch; the
// gap frame still comes first, with the first sequence actually replayed.
func TestGapAfterConsumerCreated(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 50) // stream holds 1..50
	var once atomic.Bool
	replay.SetHook(f.rp, func(stage string, _ *client.Client) {
		if stage == "created" && once.CompareAndSwap(false, true) {
			f.publish(t, 10) // now 11..60
		}
	})
	c, _, err := websocket.DefaultDialer.Dial(f.url+"?from_seq=1&filter=node="+f.node, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fs, err := read(t, c, "live")
	if err != nil {
		t.Fatalf("before live: %v (frames %+v)", err, fs)
	}
	if !once.Load() {
		t.Fatal("the hook did not run")
	}
	if len(fs) == 0 || fs[0].Type != "gap" || fs[0].RequestedSeq != 1 || fs[0].FirstSeq != 11 {
		t.Fatalf("first frame %+v, want gap requested_seq 1 first_seq 11", fs[0])
	}
	if got := seqs(fs); !equal(got, span(11, 50)) {
		t.Fatalf("replayed %v, want 11..50", got)
	}
	if live := fs[len(fs)-1]; live.Seq != 50 {
		t.Fatalf("live %+v, want seq 50", live)
	}
}

// TestReplayLostAfterEvents: the replay's position ages out after events
// were sent; a gap frame may not follow events, so the client is closed
// with replay_lost and resume_from_seq, and reconnecting from there gets
// a proper gap frame.
func TestReplayLostAfterEvents(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 50)
	f.rp.Batch = 5
	var fetches atomic.Int32
	replay.SetHook(f.rp, func(stage string, _ *client.Client) {
		if stage == "fetch" && fetches.Add(1) == 2 { // after events 1..5
			f.publish(t, 20) // now 21..70
		}
	})
	c, _, err := websocket.DefaultDialer.Dial(f.url+"?from_seq=1&filter=node="+f.node, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fs, err := read(t, c, "")
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseTryAgainLater {
		t.Fatalf("end: %v, want close 1013 (frames %+v)", err, fs)
	}
	if got := seqs(fs); !equal(got, span(1, 5)) {
		t.Fatalf("events %v, want 1..5", got)
	}
	for _, fr := range fs {
		if fr.Type == "gap" {
			t.Fatalf("gap frame %+v among the events", fr)
		}
	}
	last := fs[len(fs)-1]
	if last.Type != "error" || last.Code != "replay_lost" || last.ResumeFromSeq != 6 {
		t.Fatalf("last frame %+v, want error replay_lost resume_from_seq 6", last)
	}
	c2, _, err := websocket.DefaultDialer.Dial(f.url+"?filter=node="+f.node+"&from_seq="+strconv.FormatUint(last.ResumeFromSeq, 10), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	fs, err = read(t, c2, "live")
	if err != nil {
		t.Fatal(err)
	}
	if fs[0].Type != "gap" || fs[0].RequestedSeq != 6 || fs[0].FirstSeq != 21 {
		t.Fatalf("after reconnecting: first frame %+v, want gap 6 -> 21", fs[0])
	}
	live := fs[len(fs)-1].Seq // the live feed may have seen some of 51..70
	if live < 50 || live > 70 {
		t.Fatalf("after reconnecting: live %d", live)
	}
	if got := seqs(fs); !equal(got, span(21, live)) {
		t.Fatalf("after reconnecting: replayed %v, want 21..%d", got, live)
	}
}

func gaugeValue(g prometheus.Gauge) float64 {
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		return -1
	}
	return m.GetGauge().GetValue()
}
