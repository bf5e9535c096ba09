package app_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/dockcast/dockcast/gateway/app"
	"github.com/dockcast/dockcast/gateway/client"
	"github.com/dockcast/dockcast/gateway/server"
	"github.com/dockcast/dockcast/gateway/ws"
	"github.com/dockcast/dockcast/shared/natsutil"
	"github.com/dockcast/dockcast/shared/testkit"
)

// TestSlowConsumer: a client that stops reading is cut off as a slow
// consumer once it has fallen behind the recent messages the gateway holds
// (its queue's bound, then its lag past the ring of 512 messages: see
// TestLaggingClientIsRefilled for a client that falls behind less), while a
// second client on the same events receives every one of them promptly. The slow client reads nothing until the gateway's
// slow-consumer metric shows it was cut off; then it must find, after the
// events that reached it, the slow_consumer error frame with
// resume_from_seq and a 1008 close, and resuming from there loses nothing.
//
// Sizing: the gateway's writes to the stalled socket block once the kernel
// buffers are full; the client's queue then overflows (MaxQueueBytes) and
// the error and close frames wait behind the blocked write. WriteWait and
// CloseTimeout are generous so that the connection is still open when the
// client starts reading, and everything queued in melody is delivered.
// Only the slow client may be cut off: the metric must read exactly 1.
func TestSlowConsumer(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	stream := "SLOW"
	newStream(t, js, stream, 0)
	node := testkit.Unique("node")
	g := startGateway(t, ns.ClientURL(), stream, nil, app.Options{RecentKept: 512, Server: server.Options{
		WS: ws.Options{WriteWait: time.Minute, PongWait: 2 * time.Minute, Buffer: 8},
		// Well above a burst of the live feed (it pulls 512 messages at a
		// time, ~1.2 MB of these events), so that only a stalled client
		// overflows.
		Client: client.Options{MaxQueueBytes: 4 << 20, CloseTimeout: time.Minute},
	}})

	// The slow client asks the kernel for a small receive buffer, so that
	// its socket fills quickly.
	slow, _, err := stallingDialer.Dial(g.wsURL(q("filter", "node="+node)), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if f := read(t, slow, 30*time.Second); f.Type != "live" {
		t.Fatalf("slow: first frame %+v", f)
	}
	goodConn := dial(t, g.wsURL(q("filter", "node="+node)), nil)
	if f := read(t, goodConn, 30*time.Second); f.Type != "live" {
		t.Fatalf("good: first frame %+v", f)
	}
	good := collect(goodConn)

	big := strings.Repeat("x", 2000)
	var pubs []published
	pubTimes := map[uint64]time.Time{}
	slowDone := false
	// Publish until the slow client is cut off (at least 200 events).
	for i := 0; i < 40000 && (!slowDone || i < 200); i++ {
		ev := mkEvent(node, "start", map[string]string{"pad": big})
		before := time.Now()
		seq := publish(t, js, ev)
		pubs = append(pubs, published{seq, ev})
		pubTimes[seq] = before
		if i%20 == 19 {
			slowDone = metricValue(t, g, "dockcast_gateway_slow_consumers_total") >= 1
		}
	}
	if !slowDone {
		t.Fatal("the slow client was never cut off")
	}
	if v := metricValue(t, g, "dockcast_gateway_slow_consumers_total"); v != 1 {
		t.Fatalf("slow_consumers_total = %v, want 1 (only the slow client)", v)
	}
	all := want(t, pubs, 1)
	// The good client got every event, each promptly: it was not starved
	// by the slow one (a generous bound; it is a correctness property).
	testkit.Eventually(t, 60*time.Second, func() error {
		fs, err := good.snapshot()
		if err != nil {
			return err
		}
		return checkFrames(append([]frame{{Type: "live"}}, fs...), all)
	})
	const prompt = 5 * time.Second
	recv := good.received()
	var worst time.Duration
	for _, seq := range all {
		d := recv[seq].Sub(pubTimes[seq])
		worst = max(worst, d)
		if d > prompt {
			t.Errorf("good client got event %d %v after its publish, want under %v", seq, d, prompt)
		}
	}
	t.Logf("good client: %d events, worst publish-to-receipt delay %v", len(all), worst)

	// Only now the slow client reads: the events that reached it, in
	// order from the first, then slow_consumer with resume_from_seq, then
	// a 1008 close.
	var got []uint64
	var resume uint64
	var epoch string
	for {
		f, err := tryRead(slow, 60*time.Second)
		if err != nil {
			if resume == 0 {
				t.Fatalf("slow client: %v after %d events, before any slow_consumer frame", err, len(got))
			}
			if !isClose(err, websocket.ClosePolicyViolation) {
				t.Fatalf("after slow_consumer: %v, want close 1008", err)
			}
			break
		}
		switch f.Type {
		case "event":
			if resume > 0 {
				t.Fatal("event after the error frame")
			}
			if n := len(got); n >= len(all) || f.Seq != all[n] {
				t.Fatalf("slow client: event %d is seq %d, want the stream's events in order %v", n, f.Seq, short(all[:min(n+1, len(all))]))
			}
			checkID(t, pubs, f)
			got = append(got, f.Seq)
		case "error":
			if f.Code != "slow_consumer" || f.ResumeFromSeq == 0 || f.Message == "" || f.Epoch == "" {
				t.Fatalf("error frame %+v", f)
			}
			if resume > 0 {
				t.Fatal("two error frames")
			}
			resume, epoch = f.ResumeFromSeq, f.Epoch
		default:
			t.Fatalf("slow client: unexpected frame %+v", f)
		}
	}
	if len(got) >= len(all) {
		t.Fatal("the slow client was not behind")
	}
	if resume != all[len(got)] {
		t.Fatalf("resume_from_seq %d, but the slow client got %d events and the next is %d", resume, len(got), all[len(got)])
	}
	t.Logf("slow client got %d of %d events, resumes from %d", len(got), len(all), resume)
	again := collect(dial(t, g.wsURL(q("filter", "node="+node, "from_seq", strconv.FormatUint(resume, 10), "epoch", epoch)), nil))
	testkit.Eventually(t, 60*time.Second, func() error {
		fs, err := again.snapshot()
		if err != nil {
			return err
		}
		return checkFrames(fs, want(t, pubs, resume))
	})
	// The ids too: what the slow client got, then the resumed connection,
	// is every published event once, in order.
	fs, _ := again.snapshot()
	for _, f := range fs {
		if f.Type == "event" {
			checkID(t, pubs, f)
		}
	}
}

// checkID checks that an event frame carries the event published at its
// sequence.
func checkID(t testing.TB, pubs []published, f frame) {
	t.Helper()
	ev := decodeEvent(t, f)
	for _, p := range pubs {
		if p.seq == f.Seq {
			if p.ev.ID != ev.ID {
				t.Fatalf("event %d: id %s, the stream holds %s", f.Seq, ev.ID, p.ev.ID)
			}
			return
		}
	}
	t.Fatalf("event %d was never published", f.Seq)
}

func metricValue(t testing.TB, g *gateway, name string) float64 {
	t.Helper()
	resp, err := http.Get(g.base + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	for _, line := range strings.Split(sb.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return -1
}

// TestBadInput: every malformed request is refused before the upgrade with
// the right status and a reason, while a good client keeps receiving.
func TestBadInput(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	stream := "BAD"
	newStream(t, js, stream, 0)
	node := testkit.Unique("node")
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("# test tokens\ngood-token-0123456789 docker.events.>\nnarrow-token-0123456789 docker.events."+node+".container.>\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, ns.ClientURL(), stream, map[string]string{
		"GATEWAY_TOKENS_FILE": tokens, "GATEWAY_MAX_CLIENTS": "3", "GATEWAY_ALLOWED_ORIGINS": "https://app.example.com",
	}, app.Options{})
	goodConn := dial(t, g.wsURL(q("token", "good-token-0123456789", "filter", "node="+node)), nil)
	if f := read(t, goodConn, 30*time.Second); f.Type != "live" {
		t.Fatalf("good client: %+v", f)
	}
	good := collect(goodConn)
	var pubs []published
	pub := func() {
		ev := mkEvent(node, "start", nil)
		pubs = append(pubs, published{publish(t, js, ev), ev})
	}
	pub()

	tok := "good-token-0123456789"
	cases := []struct {
		name   string
		query  string
		header http.Header
		status int
		reason string
	}{
		{"filter without =", q("token", tok, "filter", "bogus"), nil, 400, "filter"},
		{"filter empty value", q("token", tok, "filter", "type="), nil, 400, "empty value"},
		{"filter unknown key", q("token", tok, "filter", "colour=red"), nil, 400, "unknown key"},
		{"filter label empty key", q("token", tok, "filter", "label==x"), nil, 400, "label"},
		{"since garbage", q("token", tok, "since", "yesterday"), nil, 400, "since"},
		{"since negative", q("token", tok, "since", "-5m"), nil, 400, "since"},
		{"since zero duration", q("token", tok, "since", "0s"), nil, 400, "positive"},
		{"since empty", q("token", tok, "since", ""), nil, 400, "since"},
		{"since twice", q("token", tok, "since", "1m", "since", "2m"), nil, 400, "once"},
		{"from_seq zero", q("token", tok, "from_seq", "0"), nil, 400, "from_seq"},
		{"from_seq negative", q("token", tok, "from_seq", "-3"), nil, 400, "from_seq"},
		{"from_seq text", q("token", tok, "from_seq", "ten"), nil, 400, "from_seq"},
		{"from_seq overflow", q("token", tok, "from_seq", "99999999999999999999999"), nil, 400, "from_seq"},
		{"since and from_seq", q("token", tok, "since", "1m", "from_seq", "3"), nil, 400, "exclude"},
		{"unknown parameter", q("token", tok, "limit", "3"), nil, 400, "unknown parameter"},
		{"missing token", q("filter", "type=container"), nil, 401, "missing token"},
		{"wrong token", q("token", "nope"), nil, 401, "invalid token"},
		{"wrong bearer", "", http.Header{"Authorization": {"Bearer nope"}}, 401, "invalid token"},
		{"token without the right", q("token", "narrow-token-0123456789", "filter", "node=other-node"), nil, 403, "may not read"},
		{"token without the right for type", q("token", "narrow-token-0123456789", "filter", "node="+node, "filter", "type=image"), nil, 403, "may not read"},
		{"foreign origin", q("token", tok), http.Header{"Origin": {"https://evil.example.com"}}, 403, "origin"},
		{"bad origin", q("token", tok), http.Header{"Origin": {"null"}}, 403, "origin"},
	}
	for _, c := range cases {
		code, body, err := dialStatus(g.wsURL(c.query), c.header)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if code != c.status || !strings.Contains(body, c.reason) || strings.Count(strings.TrimSpace(body), "\n") != 0 {
			t.Errorf("%s: HTTP %d %q, want %d with a one-line reason containing %q", c.name, code, body, c.status, c.reason)
		}
	}
	// Allowed: the narrow token within its right, a bearer header, the
	// configured origin and the gateway's own host.
	okCases := []struct {
		name   string
		query  string
		header http.Header
	}{
		{"narrow token", q("token", "narrow-token-0123456789", "filter", "node="+node, "filter", "type=container"), nil},
		{"narrow token, no filter (narrowed)", q("token", "narrow-token-0123456789"), nil},
		{"bearer", q("filter", "type=container"), http.Header{"Authorization": {"Bearer good-token-0123456789"}}},
		{"allowed origin", q("token", tok), http.Header{"Origin": {"https://app.example.com"}}},
		{"same host", q("token", tok), http.Header{"Origin": {g.base}}},
	}
	for _, c := range okCases {
		// The connections closed before leave the count (GATEWAY_MAX_CLIENTS=3)
		// as soon as the gateway notices, which under load may take a moment.
		var conn *websocket.Conn
		testkit.Eventually(t, 30*time.Second, func() error {
			cc, resp, err := websocket.DefaultDialer.Dial(g.wsURL(c.query), c.header)
			if err != nil {
				if resp != nil && resp.StatusCode != http.StatusServiceUnavailable {
					t.Fatalf("%s: %v (HTTP %d)", c.name, err, resp.StatusCode)
				}
				return fmt.Errorf("%s: %w", c.name, err)
			}
			conn = cc
			return nil
		})
		if f := read(t, conn, 30*time.Second); f.Type != "live" {
			t.Errorf("%s: first frame %+v", c.name, f)
		}
		_ = conn.Close()
	}
	pub()

	// A frame over 4 KiB closes the connection with 1009.
	big := dial(t, g.wsURL(q("token", tok)), nil)
	if f := read(t, big, 30*time.Second); f.Type != "live" {
		t.Fatalf("big: %+v", f)
	}
	if err := big.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("a", 5000))); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := tryRead(big, 30*time.Second)
		if err != nil {
			if !isClose(err, websocket.CloseMessageTooBig) {
				t.Fatalf("after a 5000-byte frame: %v, want close 1009", err)
			}
			break
		}
	}
	// A small frame and a ping are fine.
	small := dial(t, g.wsURL(q("token", tok)), nil)
	if err := small.WriteMessage(websocket.TextMessage, []byte(`{"hello":1}`)); err != nil {
		t.Fatal(err)
	}
	pong := make(chan struct{}, 1)
	small.SetPongHandler(func(string) error {
		select {
		case pong <- struct{}{}:
		default:
		}
		return nil
	})
	if err := small.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if f := read(t, small, 30*time.Second); f.Type != "live" {
		t.Fatalf("small: %+v", f)
	}
	pub()
	if f := read(t, small, 30*time.Second); f.Type != "event" {
		t.Fatalf("small: %+v", f)
	}
	// The pong handler runs inside a read: the pong may come after the
	// event (the gateway reads the ping whenever its read loop gets to it),
	// so keep reading until it does.
	_ = small.SetReadDeadline(time.Time{})
	go func() {
		for {
			if _, _, err := small.ReadMessage(); err != nil {
				return
			}
		}
	}()
	select {
	case <-pong:
	case <-time.After(30 * time.Second):
		t.Fatal("no pong")
	}

	// Over GATEWAY_MAX_CLIENTS (3: good, small, this one) -> 503.
	// The connections closed above leave the count as soon as the gateway
	// notices, which under load may take a moment.
	var third *websocket.Conn
	testkit.Eventually(t, 30*time.Second, func() error {
		c, resp, err := websocket.DefaultDialer.Dial(g.wsURL(q("token", tok)), nil)
		if err != nil {
			if resp != nil {
				return fmt.Errorf("third client: %w (HTTP %d)", err, resp.StatusCode)
			}
			return fmt.Errorf("third client: %w", err)
		}
		third = c
		return nil
	})
	defer third.Close()
	_ = read(t, third, 30*time.Second)
	code, body, err := dialStatus(g.wsURL(q("token", tok)), nil)
	if err != nil || code != http.StatusServiceUnavailable || !strings.Contains(body, "GATEWAY_MAX_CLIENTS") {
		t.Fatalf("over max clients: %d %q %v, want 503", code, body, err)
	}
	_ = third.Close()
	_ = small.Close()
	testkit.Eventually(t, 30*time.Second, func() error {
		if code, _, _ := dialStatus(g.wsURL(q("token", tok)), nil); code != http.StatusSwitchingProtocols {
			return fmt.Errorf("after closing two: %d", code)
		}
		return nil
	})
	if v := metricValue(t, g, `dockcast_gateway_auth_failures_total{reason="invalid_token"}`); v != 2 {
		t.Errorf("auth_failures_total{invalid_token} = %v, want 2", v)
	}

	// The good client received every event throughout.
	pub()
	testkit.Eventually(t, 30*time.Second, func() error {
		fs, err := good.snapshot()
		if err != nil {
			return err
		}
		return checkFrames(append([]frame{{Type: "live"}}, fs...), want(t, pubs, 1))
	})
}

// TestNATSRestart: /readyz follows NATS; a connected client keeps receiving
// events after a NATS restart, without gap or duplicate.
func TestNATSRestart(t *testing.T) {
	t.Parallel()
	p := testkit.StartNATSProcess(t)
	_, js := testkit.Connect(t, p.URL())
	stream := "NATSRESTART"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := natsutil.EnsureStream(ctx, js, natsutil.StreamConfig(stream, 0, -1, 1), testkit.Logger(t)); err != nil {
		t.Fatal(err)
	}
	node := testkit.Unique("node")
	g := startGateway(t, p.URL(), stream, nil, app.Options{})
	conn := dial(t, g.wsURL(q("filter", "node="+node)), nil)
	if f := read(t, conn, 30*time.Second); f.Type != "live" {
		t.Fatalf("first frame %+v", f)
	}
	col := collect(conn)
	var pubs []published
	pub := func(n int) {
		for i := 0; i < n; i++ {
			ev := mkEvent(node, "start", nil)
			var seq uint64
			testkit.Eventually(t, 60*time.Second, func() error {
				s, err := tryPublish(js, ev)
				seq = s
				return err
			})
			pubs = append(pubs, published{seq, ev})
		}
	}
	pub(10)
	testkit.Eventually(t, 30*time.Second, func() error {
		fs, err := col.snapshot()
		if err != nil {
			return err
		}
		return checkFrames(append([]frame{{Type: "live"}}, fs...), want(t, pubs, 1))
	})
	p.Stop(syscall.SIGTERM)
	testkit.Eventually(t, 30*time.Second, func() error {
		if code, body := get(g.base + "/readyz"); code != http.StatusServiceUnavailable {
			return fmt.Errorf("readyz %d %q with NATS down", code, body)
		}
		return nil
	})
	if code, _ := get(g.base + "/healthz"); code != http.StatusOK {
		t.Fatalf("healthz %d", code)
	}
	p.Start()
	waitReady(t, g)
	pub(10)
	testkit.Eventually(t, 60*time.Second, func() error {
		fs, err := col.snapshot()
		if err != nil {
			return err
		}
		return checkFrames(append([]frame{{Type: "live"}}, fs...), want(t, pubs, 1))
	})
}
