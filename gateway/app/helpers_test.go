package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/gateway/app"
	"github.com/dockcast/dockcast/gateway/client"
	"github.com/dockcast/dockcast/gateway/config"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/natsutil"
	"github.com/dockcast/dockcast/shared/testkit"
)

// gateway is a gateway run in-process by a test.
type gateway struct {
	base   string // http://127.0.0.1:port
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
	err    error         // Run's result
}

func (g *gateway) wsURL(q string) string {
	return "ws" + g.base[len("http"):] + "/ws" + q
}

// stop shuts the gateway down and waits for Run to return.
func (g *gateway) stop(t testing.TB) {
	t.Helper()
	g.cancel()
	select {
	case <-g.done:
		if g.err != nil {
			t.Errorf("gateway Run: %v", g.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("gateway did not stop within 30s")
	}
}

// startGateway runs app.Run against natsURL and stream on a free loopback
// port; env adds or overrides variables. It waits until /readyz is 200.
func startGateway(t testing.TB, natsURL, stream string, env map[string]string, o app.Options) *gateway {
	t.Helper()
	vars := map[string]string{"NATS_URL": natsURL, "GATEWAY_STREAM": stream, "GATEWAY_ADDR": "127.0.0.1:0", "LOG_LEVEL": "debug"}
	if addr, ok := env["GATEWAY_ADDR"]; ok {
		vars["GATEWAY_ADDR"] = addr
	}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := config.Load(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	addrCh := make(chan net.Addr, 1)
	o.Listening = func(a net.Addr) { addrCh <- a }
	if o.HubCheckInterval == 0 {
		o.HubCheckInterval = 500 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &gateway{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(g.done)
		g.err = app.Run(ctx, cfg, testkit.Logger(t), o)
	}()
	select {
	case a := <-addrCh:
		g.base = "http://" + a.String()
	case <-g.done:
		t.Fatalf("gateway did not start: %v", g.err)
	case <-time.After(30 * time.Second):
		t.Fatal("gateway did not listen within 30s")
	}
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() {
			cancel()
			select {
			case <-g.done:
			case <-time.After(30 * time.Second):
			}
		})
	})
	waitReady(t, g)
	return g
}

func waitReady(t testing.TB, g *gateway) {
	t.Helper()
	testkit.Eventually(t, 30*time.Second, func() error {
		code, body := get(g.base + "/readyz")
		if code != http.StatusOK {
			return fmt.Errorf("readyz %d: %s", code, body)
		}
		return nil
	})
}

func get(u string) (int, string) {
	resp, err := http.Get(u)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b [4096]byte
	n, _ := resp.Body.Read(b[:])
	return resp.StatusCode, string(b[:n])
}

// newStream creates a stream (maxMsgs 0 = unlimited) on a fresh embedded
// JetStream server.
func newStream(t testing.TB, js jetstream.JetStream, name string, maxMsgs int64) {
	t.Helper()
	cfg := natsutil.StreamConfig(name, 0, -1, 1)
	cfg.Storage = jetstream.MemoryStorage
	if maxMsgs > 0 {
		cfg.MaxMsgs = maxMsgs
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatalf("create stream: %v", err)
	}
}

// published is an event and its stream sequence.
type published struct {
	seq uint64
	ev  event.Event
}

// publish publishes an event and returns its sequence.
func publish(t testing.TB, js jetstream.JetStream, ev event.Event) uint64 {
	t.Helper()
	seq, err := tryPublish(js, ev)
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

func tryPublish(js jetstream.JetStream, ev event.Event) (uint64, error) {
	data, err := ev.Marshal()
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msg := nats.NewMsg(ev.Subject())
	msg.Data = data
	msg.Header.Set(nats.MsgIdHdr, ev.ID)
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		return 0, fmt.Errorf("publish %s: %w", ev.Subject(), err)
	}
	return ack.Sequence, nil
}

var evCounter struct {
	sync.Mutex
	n int64
}

// mkEvent makes a distinct synthetic container event.
func mkEvent(node, action string, attrs map[string]string) event.Event {
	evCounter.Lock()
	evCounter.n++
	n := evCounter.n
	evCounter.Unlock()
	a := map[string]string{"name": "c" + strconv.FormatInt(n, 10)}
	for k, v := range attrs {
		a[k] = v
	}
	return event.New(node, "container", action, "", fmt.Sprintf("%064d", n), a, time.Now().Add(time.Duration(n)))
}

// frame is any server frame.
type frame = client.Frame

// decodeEvent decodes the payload of an event frame.
func decodeEvent(t testing.TB, f frame) event.Event {
	t.Helper()
	ev, err := event.Decode(f.Event)
	if err != nil {
		t.Fatalf("event frame %d: %v", f.Seq, err)
	}
	return ev
}

func dial(t testing.TB, u string, h http.Header) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(u, h)
	if err != nil {
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", u, err, code)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// dialStatus dials and returns the HTTP status and body of a refusal.
func dialStatus(u string, h http.Header) (int, string, error) {
	c, resp, err := websocket.DefaultDialer.Dial(u, h)
	if err == nil {
		_ = c.Close()
		return http.StatusSwitchingProtocols, "", nil
	}
	if resp == nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var b [4096]byte
	n, _ := resp.Body.Read(b[:])
	return resp.StatusCode, string(b[:n]), nil
}

func read(t testing.TB, c *websocket.Conn, timeout time.Duration) frame {
	t.Helper()
	f, err := tryRead(c, timeout)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func tryRead(c *websocket.Conn, timeout time.Duration) (frame, error) {
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	typ, data, err := c.ReadMessage()
	if err != nil {
		return frame{}, fmt.Errorf("read frame: %w", err)
	}
	if typ != websocket.TextMessage {
		return frame{}, fmt.Errorf("frame type %d, want text", typ)
	}
	var f frame
	if err := json.Unmarshal(data, &f); err != nil {
		return frame{}, fmt.Errorf("frame %q: %w", data, err)
	}
	return f, nil
}

func decodeFrame(t testing.TB, data []byte) frame {
	t.Helper()
	var f frame
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("frame %q: %v", data, err)
	}
	return f
}

// collector reads frames from a connection in the background.
type collector struct {
	mu     sync.Mutex
	frames []frame
	times  []time.Time // when each frame was read
	err    error
	done   chan struct{}
}

func collect(c *websocket.Conn) *collector {
	col := &collector{done: make(chan struct{})}
	go func() {
		defer close(col.done)
		for {
			f, err := tryRead(c, 5*time.Minute)
			col.mu.Lock()
			if err != nil {
				col.err = err
				col.mu.Unlock()
				return
			}
			col.frames = append(col.frames, f)
			col.times = append(col.times, time.Now())
			col.mu.Unlock()
		}
	}()
	return col
}

func (col *collector) snapshot() ([]frame, error) {
	col.mu.Lock()
	defer col.mu.Unlock()
	return append([]frame(nil), col.frames...), col.err
}

// received returns when each event frame was read, by sequence.
func (col *collector) received() map[uint64]time.Time {
	col.mu.Lock()
	defer col.mu.Unlock()
	out := map[uint64]time.Time{}
	for i, f := range col.frames {
		if f.Type == "event" {
			out[f.Seq] = col.times[i]
		}
	}
	return out
}

// events returns the event frames' sequences.
func eventSeqs(fs []frame) []uint64 {
	var out []uint64
	for _, f := range fs {
		if f.Type == "event" {
			out = append(out, f.Seq)
		}
	}
	return out
}

// checkStream checks the frames of one connection against the contract:
// strictly increasing event sequences, exactly one live frame whose seq
// splits them, and event sequences equal to want.
func checkFrames(fs []frame, want []uint64) error {
	var got []uint64
	lives := 0
	var liveSeq uint64
	for _, f := range fs {
		switch f.Type {
		case "event":
			if len(got) > 0 && f.Seq <= got[len(got)-1] {
				return fmt.Errorf("event seq %d after %d", f.Seq, got[len(got)-1])
			}
			if lives > 0 && f.Seq <= liveSeq {
				return fmt.Errorf("event seq %d after live %d", f.Seq, liveSeq)
			}
			got = append(got, f.Seq)
		case "live":
			lives++
			liveSeq = f.Seq
			if len(got) > 0 && got[len(got)-1] > liveSeq {
				return fmt.Errorf("live %d after event %d", liveSeq, got[len(got)-1])
			}
		}
	}
	if lives != 1 {
		return fmt.Errorf("%d live frames, want 1", lives)
	}
	if len(got) != len(want) {
		return fmt.Errorf("got %d events %v, want %d %v", len(got), short(got), len(want), short(want))
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Errorf("event %d: seq %d, want %d", i, got[i], want[i])
		}
	}
	return nil
}

func short(s []uint64) []uint64 {
	if len(s) > 20 {
		return s[len(s)-20:]
	}
	return s
}

func isClose(err error, code int) bool {
	var ce *websocket.CloseError
	return errors.As(err, &ce) && ce.Code == code
}

func q(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return "?" + v.Encode()
}
