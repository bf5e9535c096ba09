package app_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dockcast/dockcast/gateway/app"
	"github.com/dockcast/dockcast/gateway/server"
	"github.com/dockcast/dockcast/gateway/sse"
	"github.com/dockcast/dockcast/shared/testkit"
)

// sseMsg is one message (or comment) of an event stream as a client reads it.
type sseMsg struct {
	Event, ID, Data, Comment string
}

// sseStream is an open GET /sse response, read in the background as
// `curl -N` would.
type sseStream struct {
	t    testing.TB
	resp *http.Response
	msgs chan sseMsg
	err  chan error
}

// openSSE opens url with the headers; it fails the test unless the answer
// is 200 (see sseStatus for refusals).
func openSSE(t testing.TB, u string, h http.Header) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		cancel()
		t.Fatalf("GET %s: %s %s", u, resp.Status, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("Content-Type %q", ct)
	}
	s := &sseStream{t: t, resp: resp, msgs: make(chan sseMsg, 10000), err: make(chan error, 1)}
	t.Cleanup(func() { cancel(); _ = resp.Body.Close() })
	go s.read()
	return s
}

func (s *sseStream) read() {
	sc := bufio.NewScanner(s.resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var m sseMsg
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if m != (sseMsg{}) {
				s.msgs <- m
			}
			m = sseMsg{}
		case strings.HasPrefix(line, ":"):
			m.Comment = strings.TrimSpace(line[1:])
		default:
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimPrefix(v, " ")
			switch k {
			case "event":
				m.Event = v
			case "id":
				m.ID = v
			case "data":
				m.Data = v
			}
		}
	}
	err := sc.Err()
	if err == nil {
		err = io.EOF
	}
	s.err <- err
	close(s.msgs)
}

// next returns the next message that is not a comment.
func (s *sseStream) next(timeout time.Duration) (sseMsg, error) {
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-s.msgs:
			if !ok {
				return sseMsg{}, fmt.Errorf("stream ended: %v", <-s.err)
			}
			if m.Comment != "" && m.Event == "" && m.Data == "" {
				continue
			}
			return m, nil
		case <-deadline:
			return sseMsg{}, fmt.Errorf("no message within %s", timeout)
		}
	}
}

// frames reads messages up to and including the first of type until,
// checking that each message's event and id fields match its frame (epoch
// "": the one the live frame names).
func (s *sseStream) frames(until string, epoch string) []frame {
	s.t.Helper()
	var out []frame
	var msgs []sseMsg
	for {
		m, err := s.next(30 * time.Second)
		if err != nil {
			s.t.Fatalf("after %d frames: %v", len(out), err)
		}
		f := decodeFrame(s.t, []byte(m.Data))
		if f.Type == "live" && epoch == "" {
			epoch = f.Epoch
		}
		out, msgs = append(out, f), append(msgs, m)
		if f.Type == until {
			break
		}
	}
	for i, f := range out {
		m := msgs[i]
		if m.Event != f.Type {
			s.t.Errorf("event: %q for a %s frame", m.Event, f.Type)
		}
		e := epoch
		if f.Epoch != "" {
			e = f.Epoch
		}
		if want := sse.FrameID(f.Type, f.Code, e, f.Seq); m.ID != want {
			s.t.Errorf("%s frame %d: id %q, want %q", f.Type, f.Seq, m.ID, want)
		}
	}
	return out
}

// events reads frames until the live frame and n event frames came
// (events published just before connecting may follow live).
func (s *sseStream) events(n int, epoch string) []frame {
	s.t.Helper()
	fs := s.frames("live", epoch)
	if epoch == "" {
		epoch = fs[len(fs)-1].Epoch
	}
	for len(eventSeqs(fs)) < n {
		fs = append(fs, s.frames("event", epoch)...)
	}
	return fs
}

func sseStatus(u string, h http.Header) (int, string) {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	for k, vs := range h {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b)
}

func (g *gateway) sseURL(q string) string { return g.base + "/sse" + q }

// TestSSE: GET /sse as curl -N reads it: the same frames as /ws, one SSE
// message each (event: type, id: <epoch>:<seq> on event and live), comment
// lines while idle, exact resume from the Last-Event-ID header (which wins
// over since, from_seq and last_event_id in the URL) and from the
// last_event_id parameter, stream_reset with <new epoch>:0 for an epoch
// that is not the stream's, and /ws's refusals (400, 401, 403).
func TestSSE(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	newStream(t, js, "SSE", 0)
	nodeA, nodeB := testkit.Unique("web-a"), testkit.Unique("web-b")
	const tok = "sse-token-node-a-0123"
	g := startGateway(t, ns.ClientURL(), "SSE", map[string]string{"GATEWAY_TOKENS_FILE": writeTokens(t, tok+" docker.events."+nodeA+".>")},
		app.Options{Server: server.Options{SSE: sse.Options{KeepAlive: 200 * time.Millisecond}}})
	bearer := http.Header{"Authorization": {"Bearer " + tok}}
	var pubs []published
	for i := range 8 {
		n := nodeA
		if i%2 == 1 {
			n = nodeB
		}
		ev := mkEvent(n, "start", nil)
		pubs = append(pubs, published{publish(t, js, ev), ev})
	}
	wantA := want(t, pubs, 1, "node="+nodeA)

	s := openSSE(t, g.sseURL(q("from_seq", "1")), bearer)
	fs := s.events(len(wantA), "")
	var epoch string
	for _, f := range fs {
		if f.Type == "live" {
			epoch = f.Epoch
		}
	}
	if err := checkFrames(fs, wantA); err != nil {
		t.Fatal(err)
	}
	// Idle: comment lines.
	select {
	case m := <-s.msgs:
		if m.Comment == "" {
			t.Errorf("idle stream: %+v, want a comment", m)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no comment line on an idle stream")
	}
	// Live.
	ev := mkEvent(nodeA, "die", nil)
	seq := publish(t, js, ev)
	if f := s.frames("event", epoch); f[len(f)-1].Seq != seq {
		t.Fatalf("live event %d, want %d", f[len(f)-1].Seq, seq)
	}
	pubs = append(pubs, published{seq, ev})
	wantA = append(wantA, seq)

	// Resume after the second event of node A: the header wins over the URL.
	after := wantA[1]
	id := epoch + ":" + strconv.FormatUint(after, 10)
	for name, c := range map[string]struct {
		query string
		h     http.Header
	}{
		"header over from_seq":      {q("from_seq", "1", "epoch", epoch), http.Header{"Last-Event-ID": {id}}},
		"header over since":         {q("since", "1h"), http.Header{"Last-Event-ID": {id}}},
		"header over last_event_id": {q("last_event_id", epoch+":1"), http.Header{"Last-Event-ID": {id}}},
		"last_event_id parameter":   {q("last_event_id", id), nil},
	} {
		h := c.h.Clone()
		if h == nil {
			h = http.Header{}
		}
		h.Set("Authorization", "Bearer "+tok)
		fs := openSSE(t, g.sseURL(c.query), h).events(len(wantA)-2, epoch)
		if err := checkFrames(fs, wantA[2:]); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Another epoch: stream_reset naming the stream's, id <epoch>:0.
	rs := openSSE(t, g.sseURL(""), http.Header{"Last-Event-ID": {"17:5"}, "Authorization": {"Bearer " + tok}})
	if f := rs.frames("error", ""); f[len(f)-1].Code != "stream_reset" || f[len(f)-1].Epoch != epoch {
		t.Errorf("wrong epoch: %+v", f[len(f)-1])
	}
	if _, err := rs.next(30 * time.Second); err == nil || !strings.Contains(err.Error(), "stream ended") {
		t.Errorf("after stream_reset: %v, want the end of the stream", err)
	}

	for name, c := range map[string]struct {
		query string
		h     http.Header
		code  int
		says  string
	}{
		"no token":              {"", nil, http.StatusUnauthorized, "missing token"},
		"other node":            {q("filter", "node="+nodeB), bearer, http.StatusForbidden, nodeB},
		"batch":                 {q("batch", "1"), bearer, http.StatusBadRequest, "batch"},
		"bad Last-Event-ID":     {"", http.Header{"Last-Event-ID": {"17"}, "Authorization": {"Bearer " + tok}}, http.StatusBadRequest, "Last-Event-ID"},
		"last_event_id + since": {q("last_event_id", id, "since", "1h"), bearer, http.StatusBadRequest, "last_event_id"},
		"unknown parameter":     {q("colour", "red"), bearer, http.StatusBadRequest, "colour"},
	} {
		if code, body := sseStatus(g.sseURL(c.query), c.h); code != c.code || !strings.Contains(body, c.says) {
			t.Errorf("%s: %d %q, want %d saying %q", name, code, body, c.code, c.says)
		}
	}
}
