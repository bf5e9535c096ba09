package ws

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"weak"

	"github.com/gorilla/websocket"

	"github.com/dockcast/dockcast/gateway/client"
	"github.com/dockcast/dockcast/shared/testkit"
)

// served is a transport behind an httptest server, with what its handler
// saw: a weak pointer to each request and the clients connected.
type served struct {
	tr  *Transport
	srv *httptest.Server

	mu       sync.Mutex
	requests []weak.Pointer[http.Request]
	clients  []*client.Client
}

func serveTransport(t *testing.T, o Options) *served {
	t.Helper()
	sv := &served{}
	sv.tr = New(slog.New(slog.DiscardHandler), o, Hooks{Connected: func(c *client.Client) {
		sv.mu.Lock()
		sv.clients = append(sv.clients, c)
		sv.mu.Unlock()
	}})
	sv.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sv.mu.Lock()
		sv.requests = append(sv.requests, weak.Make(r))
		sv.mu.Unlock()
		c := client.New(client.Spec{}, client.Options{Credits: sv.tr.Credits()})
		if err := sv.tr.Serve(w, r, c, func() {}); err != nil {
			t.Logf("serve: %v", err) // a refused handshake
		}
	}))
	t.Cleanup(sv.srv.Close)
	return sv
}

func (sv *served) dial(t *testing.T) *websocket.Conn {
	t.Helper()
	u := "ws" + strings.TrimPrefix(sv.srv.URL, "http") + "/ws?filter=type%3Dcontainer&token=" + strings.Repeat("t", 200)
	h := http.Header{"X-Padding": {strings.Repeat("h", 1000)}}
	ws, _, err := websocket.DefaultDialer.Dial(u, h)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	return ws
}

func (sv *served) connected(t *testing.T, n int) []*client.Client {
	t.Helper()
	var cs []*client.Client
	testkit.Eventually(t, 10*time.Second, func() error {
		sv.mu.Lock()
		defer sv.mu.Unlock()
		if len(sv.clients) < n {
			return errors.New("not connected yet")
		}
		cs = append([]*client.Client(nil), sv.clients...)
		return nil
	})
	return cs
}

// TestSessionKeepsNoRequest: once connected, an idle connection keeps
// nothing of its HTTP request (header, URL, context: about 1.5 KiB per
// client): melody's session drops it and no goroutine of the transport
// holds it, so a collection frees it while the connection goes on.
func TestSessionKeepsNoRequest(t *testing.T) {
	t.Parallel()
	sv := serveTransport(t, Options{})
	ws := sv.dial(t)
	c := sv.connected(t, 1)[0]

	sessions, err := sv.tr.m.Sessions()
	if err != nil || len(sessions) != 1 {
		t.Fatalf("sessions: %d, %v", len(sessions), err)
	}
	if sessions[0].Request != nil {
		t.Errorf("the session still references its request (%s)", sessions[0].Request.URL.Path)
	}
	sv.mu.Lock()
	req := sv.requests[0]
	sv.mu.Unlock()
	testkit.Eventually(t, 10*time.Second, func() error {
		runtime.GC()
		if req.Value() != nil {
			return errors.New("the connection's request is still reachable after a collection")
		}
		return nil
	})

	// The connection still serves.
	c.JoinLive(nil, 7, "e1", &client.Position{})
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, msg, err := ws.ReadMessage()
	if err != nil || !bytes.Contains(msg, []byte(`"type":"live"`)) {
		t.Fatalf("after the request was freed: %q, %v", msg, err)
	}
}

// TestSmallReadBuffer: gorilla reads through a buffer of one control
// frame's payload (readBufferSize, held by every idle connection); the
// largest ping is still answered, and a text frame of MaxMessageSize is
// read through it without ending the connection.
func TestSmallReadBuffer(t *testing.T) {
	t.Parallel()
	sv := serveTransport(t, Options{})
	ws := sv.dial(t)
	sv.connected(t, 1)

	pong := make(chan string, 4)
	ws.SetPongHandler(func(data string) error {
		pong <- data
		return nil
	})
	// Pongs are handled by the reader: read until the test ends.
	go func() {
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	ping := func(payload string) {
		t.Helper()
		if err := ws.WriteControl(websocket.PingMessage, []byte(payload), time.Now().Add(5*time.Second)); err != nil {
			t.Fatalf("ping: %v", err)
		}
		select {
		case got := <-pong:
			if got != payload {
				t.Fatalf("pong %d bytes, want the ping's %d", len(got), len(payload))
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no pong to a ping of %d bytes", len(payload))
		}
	}
	ping(strings.Repeat("p", 125)) // the largest control frame
	if err := ws.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte("x"), 4096)); err != nil {
		t.Fatal(err)
	}
	ping("after a large frame")
}

// TestUpgradeAsGorillaReads: a handshake gorilla accepts is served on a
// connection of the transport's own (a version list that includes 13);
// one it refuses is answered by gorilla and ends the client, without a
// session.
func TestUpgradeAsGorillaReads(t *testing.T) {
	t.Parallel()
	sv := serveTransport(t, Options{})
	handshake := func(version string) string {
		t.Helper()
		nc, err := net.Dial("tcp", strings.TrimPrefix(sv.srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = nc.Close() })
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(nc, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: %s\r\n\r\n", version)
		line, err := bufio.NewReader(nc).ReadString('\n')
		if err != nil {
			t.Fatalf("version %q: %v", version, err)
		}
		return strings.TrimSpace(line)
	}
	if got := handshake("8, 13"); got != "HTTP/1.1 101 Switching Protocols" {
		t.Errorf("version list with 13: %q", got)
	}
	sv.connected(t, 1)
	if got := handshake("8"); !strings.HasPrefix(got, "HTTP/1.1 400") {
		t.Errorf("version 8 alone: %q, want 400", got)
	}
	if sessions, _ := sv.tr.m.Sessions(); len(sessions) != 1 {
		t.Errorf("%d sessions, want the one upgraded", len(sessions))
	}
}
