package app_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/dockcast/dockcast/gateway/app"
	"github.com/dockcast/dockcast/shared/testkit"
)

// dialerFrom dials from a local loopback address (127.0.0.0/8 is all
// loopback on Linux).
func dialerFrom(ip string) *websocket.Dialer {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &websocket.Dialer{NetDial: d.Dial, HandshakeTimeout: 30 * time.Second}
}

func dialStatusWith(d *websocket.Dialer, u string, h http.Header) (*websocket.Conn, int, string) {
	c, resp, err := d.Dial(u, h)
	if err == nil {
		return c, http.StatusSwitchingProtocols, ""
	}
	if resp == nil {
		return nil, 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return nil, resp.StatusCode, strings.TrimSpace(string(b))
}

// TestPerAddressLimit: one address may hold GATEWAY_MAX_CLIENTS_PER_IP
// connections; one more is refused with 429 and a reason, while another
// address still connects, and a slot freed is usable again.
func TestPerAddressLimit(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	newStream(t, js, "PERIP", 0)
	g := startGateway(t, ns.ClientURL(), "PERIP", map[string]string{"GATEWAY_MAX_CLIENTS_PER_IP": "2"}, app.Options{})
	one := dialerFrom("127.0.0.1")
	var held []*websocket.Conn
	for i := 0; i < 2; i++ {
		c, code, body := dialStatusWith(one, g.wsURL(""), nil)
		if c == nil {
			t.Fatalf("connection %d: %d %q", i, code, body)
		}
		held = append(held, c)
	}
	_, code, body := dialStatusWith(one, g.wsURL(""), nil)
	if code != http.StatusTooManyRequests || !strings.Contains(body, "GATEWAY_MAX_CLIENTS_PER_IP=2") {
		t.Fatalf("third connection from one address: %d %q, want 429 naming GATEWAY_MAX_CLIENTS_PER_IP", code, body)
	}
	if c, code, body := dialStatusWith(dialerFrom("127.0.0.2"), g.wsURL(""), nil); c == nil {
		t.Fatalf("another address: %d %q", code, body)
	} else {
		_ = c.Close()
	}
	_ = held[0].Close()
	testkit.Eventually(t, 30*time.Second, func() error {
		c, code, body := dialStatusWith(one, g.wsURL(""), nil)
		if c == nil {
			return fmt.Errorf("after closing one: %d %q", code, body)
		}
		return c.Close()
	})
	if v := metricValue(t, g, `dockcast_gateway_refused_total{reason="max_clients_per_ip"}`); v < 1 {
		t.Fatalf("refused_total{max_clients_per_ip} = %v", v)
	}
}

// TestHandshakeGuard: connections that open and send nothing take at most
// the handshake bound; past it the oldest is closed, so a real client
// still connects while they hang.
func TestHandshakeGuard(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	newStream(t, js, "GUARD", 0)
	g := startGateway(t, ns.ClientURL(), "GUARD", nil, app.Options{MaxHandshakes: 3})
	addr := strings.TrimPrefix(g.base, "http://")
	var idle []net.Conn
	for i := 0; i < 6; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
		defer c.Close()
	}
	// The three oldest were closed to keep three pending.
	for i, c := range idle[:3] {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("idle connection %d: %v, want closed by the gateway", i, err)
		}
	}
	// A real client gets in (its connection evicts another idle one).
	c := dial(t, g.wsURL(""), nil)
	if f := read(t, c, 30*time.Second); f.Type != "live" {
		t.Fatalf("real client: %+v", f)
	}
	if v := metricValue(t, g, `dockcast_gateway_refused_total{reason="handshake"}`); v < 3 {
		t.Fatalf("refused_total{handshake} = %v, want at least 3", v)
	}
}

// TestRequestSizeLimits: a URL over 8 KiB gets 414 and a header over
// 16 KiB gets 431 (Go's default would read a 1 MiB header).
func TestRequestSizeLimits(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	newStream(t, js, "SIZES", 0)
	g := startGateway(t, ns.ClientURL(), "SIZES", nil, app.Options{})
	addr := strings.TrimPrefix(g.base, "http://")
	raw := func(req string) int {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		go func() { _, _ = io.WriteString(c, req) }()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("read response: %v", err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	long := "/ws?filter=" + strings.Repeat("a", 9000)
	if code := raw("GET " + long + " HTTP/1.1\r\nHost: x\r\n\r\n"); code != http.StatusRequestURITooLong {
		t.Errorf("9 KB URL: %d, want 414", code)
	}
	if code := raw("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 32<<10) + "\r\n\r\n"); code != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("32 KB header: %d, want 431", code)
	}
	if code := raw("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Small: " + strings.Repeat("b", 4<<10) + "\r\n\r\n"); code != http.StatusOK {
		t.Errorf("4 KB header: %d, want 200", code)
	}
}
