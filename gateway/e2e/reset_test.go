package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	gwclient "github.com/dockcast/dockcast/gateway/client"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/natsutil"
	"github.com/dockcast/dockcast/shared/testkit"
)

// gatewayOnly is a NATS server and a gateway, each a process, over the
// stream DOCKER_EVENTS that the test fills itself (no Docker engine: these
// tests are about the stream, not the engine).
type gatewayOnly struct {
	t       testing.TB
	NATS    *testkit.NATSProcess
	Gateway *testkit.Process
	Addr    string
	js      jetstream.JetStream
}

func startGatewayOnly(t testing.TB, env ...string) *gatewayOnly {
	t.Helper()
	g := &gatewayOnly{t: t, NATS: testkit.StartNATSProcess(t)}
	_, g.js = testkit.Connect(t, g.NATS.URL())
	g.makeStream()
	g.Addr = "127.0.0.1:" + strconv.Itoa(testkit.FreePort(t))
	g.Gateway = testkit.StartProcess(t, "gateway", nil, append([]string{"NATS_URL=" + g.NATS.URL(), "GATEWAY_ADDR=" + g.Addr, "LOG_LEVEL=debug"}, env...)...)
	waitHTTP(t, "http://"+g.Addr+"/readyz")
	return g
}

func (g *gatewayOnly) makeStream() {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := natsutil.EnsureStream(ctx, g.js, natsutil.StreamConfig("DOCKER_EVENTS", time.Hour, -1, 1), testkit.Logger(g.t)); err != nil {
		g.t.Fatal(err)
	}
}

func (g *gatewayOnly) epoch() string {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := g.js.Stream(ctx, "DOCKER_EVENTS")
	if err != nil {
		g.t.Fatal(err)
	}
	return gwclient.EpochOf(s.CachedInfo().Created)
}

// event publishes a container event of a container called name and
// returns its sequence.
func (g *gatewayOnly) event(node, name, action string) uint64 {
	g.t.Helper()
	ev := event.New(node, "container", action, "", fmt.Sprintf("%064x", time.Now().UnixNano()), map[string]string{"name": name, "image": "probe"}, time.Now())
	data, err := ev.Marshal()
	if err != nil {
		g.t.Fatal(err)
	}
	return g.raw(ev.Subject(), data, ev.ID)
}

func (g *gatewayOnly) raw(subject string, data []byte, id string) uint64 {
	g.t.Helper()
	msg := nats.NewMsg(subject)
	msg.Data = data
	if id != "" {
		msg.Header.Set(nats.MsgIdHdr, id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ack, err := g.js.PublishMsg(ctx, msg)
	if err != nil {
		g.t.Fatal(err)
	}
	return ack.Sequence
}

func (g *gatewayOnly) wsURL(q url.Values) string { return "ws://" + g.Addr + "/ws?" + q.Encode() }

func readFrame(t testing.TB, c *websocket.Conn) (gwclient.Frame, error) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(eventTimeout))
	_, data, err := c.ReadMessage()
	if err != nil {
		return gwclient.Frame{}, err
	}
	var f gwclient.Frame
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("frame %q: %v", data, err)
	}
	return f, nil
}

// untilEnd reads a connection to its end; it must close with closeCode
// right after an error frame of code, which it returns.
func untilEnd(t testing.TB, c *websocket.Conn, code gwclient.Code, closeCode int) gwclient.Frame {
	t.Helper()
	var last gwclient.Frame
	for {
		f, err := readFrame(t, c)
		if err != nil {
			var ce *websocket.CloseError
			if last.Code != string(code) || !errors.As(err, &ce) || ce.Code != closeCode {
				t.Fatalf("connection ended with %v after %+v, want error %s then close %d", err, last, code, closeCode)
			}
			return last
		}
		last = f
	}
}

func httpGet(u string) (string, error) {
	res, err := http.Get(u)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return string(b), err
}

func rowNames(rows []pageRow) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r.Name+"/"+r.Action)
	}
	sort.Strings(out)
	return out
}

// TestPageStreamResetAndPoison: messages that are not valid events (one
// with invalid UTF-8 in a string, one not JSON) pass between two events:
// the page and a WebSocket client get both events and stay on their first
// connection. Then the stream is deleted and made again while they are
// connected: the client gets stream_reset naming the new epoch (1012), a
// client resuming with the old epoch gets it too, and the page starts
// over: it says so, and shows exactly the new stream's events, none of the
// old ones (which the new stream's restarted sequences would otherwise
// shadow as duplicates).
func TestPageStreamResetAndPoison(t *testing.T) {
	t.Parallel()
	g := startGatewayOnly(t)
	node := testkit.Unique("reset")
	for i := 1; i <= 3; i++ {
		g.event(node, fmt.Sprintf("old-%d", i), "start")
	}
	b := newBrowser(t)
	b.do(chromedp.Navigate("http://" + g.Addr + "/?node=" + url.QueryEscape(node)))
	b.waitState("live")
	waitRow(b, "old-3", "start")
	epoch1 := g.epoch()
	ws, _, err := websocket.DefaultDialer.Dial(g.wsURL(url.Values{"filter": {"node=" + node}}), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if f, err := readFrame(t, ws); err != nil || f.Type != "live" || f.Epoch != epoch1 {
		t.Fatalf("live frame %+v %v, want epoch %s", f, err, epoch1)
	}

	// Poison between two events.
	subj := "docker.events." + node + ".container.start"
	g.raw(subj, []byte(`{"v":1,"id":"p","node":"`+node+`","type":"container","action":"start","action_detail":"","actor":{"id":"x","attributes":{"name":"poison-`+"\xc3\x28"+`"}},"scope":"local","time":"2026-11-25T19:04:25Z","time_nano":1}`), "")
	g.raw(subj, []byte("{not json"), "")
	mid := g.event(node, "mid", "start")
	waitRow(b, "mid", "start")
	if f, err := readFrame(t, ws); err != nil || f.Type != "event" || f.Seq != mid {
		t.Fatalf("after the poison: %+v %v, want event %d", f, err, mid)
	}
	st, err := b.stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Connects != 1 || st.State != "live" {
		t.Fatalf("the page reconnected over the poison: %+v", st)
	}
	if rows, _ := b.rows(); slices.ContainsFunc(rows, func(r pageRow) bool { return strings.HasPrefix(r.Name, "poison") }) {
		t.Fatal("the page shows the invalid message")
	}

	// The stream is deleted and made again; new events go to it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.js.DeleteStream(ctx, "DOCKER_EVENTS"); err != nil {
		t.Fatal(err)
	}
	g.makeStream()
	epoch2 := g.epoch()
	g.event(node, "new-1", "start")
	g.event(node, "new-2", "start")
	if f := untilEnd(t, ws, gwclient.StreamReset, websocket.CloseServiceRestart); f.Epoch != epoch2 {
		t.Fatalf("stream_reset %+v, want the new epoch %s (old %s)", f, epoch2, epoch1)
	}
	old, _, err := websocket.DefaultDialer.Dial(g.wsURL(url.Values{"filter": {"node=" + node}, "from_seq": {strconv.FormatUint(mid+1, 10)}, "epoch": {epoch1}}), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if f := untilEnd(t, old, gwclient.StreamReset, websocket.CloseServiceRestart); f.Epoch != epoch2 {
		t.Fatalf("resuming with the old epoch: %+v", f)
	}

	want := []string{"new-1/start", "new-2/start"}
	testkit.Eventually(t, eventTimeout, func() error {
		rows, err := b.rows()
		if err != nil {
			return err
		}
		if got := rowNames(rows); !slices.Equal(got, want) {
			return fmt.Errorf("page rows %v, want exactly %v", got, want)
		}
		st, err := b.stats()
		if err != nil {
			return err
		}
		if st.State != "live" || st.Epoch != epoch2 {
			return fmt.Errorf("page state %s epoch %s, want live on %s", st.State, st.Epoch, epoch2)
		}
		return nil
	})
	notices, err := evalJS[string](b, `document.getElementById('notices').textContent`)
	if err != nil || !strings.Contains(notices, "made again") || !strings.Contains(notices, "starts over") {
		t.Fatalf("the page did not say it started over: %q %v", notices, err)
	}
	// And it follows the new stream live.
	g.event(node, "new-3", "die")
	waitRow(b, "new-3", "die")
	if rows, _ := b.rows(); len(rows) != 3 {
		t.Fatalf("rows %v after a new live event", rowNames(rows))
	}
}

// TestTokenRevokedOnSIGHUP: SIGHUP re-reads the tokens file. The session
// of a token that is gone ends with token_revoked (1008) and an exact
// resume_from_seq, and the page asks for a token again; the other
// sessions go on, the revoked token is refused from then on, and a broken
// file keeps the tokens in force.
func TestTokenRevokedOnSIGHUP(t *testing.T) {
	t.Parallel()
	const keep, revoke = "keep-token-0123456789", "revoke-token-0123456789"
	tokens := filepath.Join(t.TempDir(), "tokens")
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(tokens, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(keep + " docker.events.>\n" + revoke + " docker.events.>\n")
	g := startGatewayOnly(t, "GATEWAY_TOKENS_FILE="+tokens)
	node := testkit.Unique("hup")
	dialToken := func(token string) *websocket.Conn {
		t.Helper()
		c, resp, err := websocket.DefaultDialer.Dial(g.wsURL(url.Values{"filter": {"node=" + node}, "token": {token}}), nil)
		if err != nil {
			t.Fatalf("dial with %s: %v %v", token[:4], resp, err)
		}
		t.Cleanup(func() { _ = c.Close() })
		if f, err := readFrame(t, c); err != nil || f.Type != "live" {
			t.Fatalf("first frame %+v %v", f, err)
		}
		return c
	}
	a, r := dialToken(keep), dialToken(revoke)
	b := newBrowser(t)
	b.do(chromedp.Navigate("http://" + g.Addr + "/?node=" + url.QueryEscape(node)))
	testkit.Eventually(t, eventTimeout, func() error {
		open, err := evalJS[bool](b, `document.getElementById('token-dialog').open`)
		if err != nil || !open {
			return fmt.Errorf("no token dialog: %v", err)
		}
		return nil
	})
	b.do(chromedp.SetValue(chromedp.ID("token-input"), revoke), chromedp.Click(chromedp.ID("token-ok")))
	b.waitState("live")
	e1 := g.event(node, "c1", "start")
	waitRow(b, "c1", "start")
	for _, c := range []*websocket.Conn{a, r} {
		if f, err := readFrame(t, c); err != nil || f.Seq != e1 {
			t.Fatalf("event %+v %v, want %d", f, err, e1)
		}
	}

	write("# the revoke token is gone\n" + keep + " docker.events.>\n")
	if err := syscall.Kill(g.Gateway.Pid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if f := untilEnd(t, r, gwclient.TokenRevoked, websocket.ClosePolicyViolation); f.ResumeFromSeq != e1+1 || f.Epoch == "" || !strings.Contains(f.Message, "removed") {
		t.Fatalf("revoked session: %+v, want resume_from_seq %d with the epoch", f, e1+1)
	}
	testkit.Eventually(t, eventTimeout, func() error {
		why, err := evalJS[string](b, `document.getElementById('token-dialog').open ? document.getElementById('token-why').textContent : ''`)
		if err != nil || !strings.Contains(why, "revoked") {
			return fmt.Errorf("page dialog says %q (%v)", why, err)
		}
		return nil
	})
	e2 := g.event(node, "c2", "start")
	if f, err := readFrame(t, a); err != nil || f.Seq != e2 {
		t.Fatalf("kept session: %+v %v, want event %d", f, err, e2)
	}
	if _, resp, err := websocket.DefaultDialer.Dial(g.wsURL(url.Values{"token": {revoke}}), nil); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("revoked token after SIGHUP: %v %v, want 401", resp, err)
	}
	// A broken file is not loaded: the kept token still works.
	write(keep + " docker.events.>\nshort docker.events.>\n")
	if err := syscall.Kill(g.Gateway.Pid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, eventTimeout, func() error {
		body, err := httpGet("http://" + g.Addr + "/metrics")
		if err != nil {
			return err
		}
		if !strings.Contains(body, `dockcast_gateway_token_reloads_total{result="error"} 1`) {
			return fmt.Errorf("no failed reload counted yet")
		}
		return nil
	})
	_ = dialToken(keep)
	e3 := g.event(node, "c3", "start")
	if f, err := readFrame(t, a); err != nil || f.Seq != e3 {
		t.Fatalf("kept session after a broken reload: %+v %v", f, err)
	}
}
