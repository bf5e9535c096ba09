package app_test

import (
	"encoding/base64"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/dockcast/dockcast/gateway/app"
	"github.com/dockcast/dockcast/gateway/server"
	"github.com/dockcast/dockcast/shared/testkit"
)

// reverseProxy is a real HTTP reverse proxy on loopback in front of the
// gateway, as nginx or Caddy on the same host would be: it forwards
// WebSocket upgrades and appends the client's address to X-Forwarded-For.
func reverseProxy(t testing.TB, g *gateway) string {
	t.Helper()
	target, err := url.Parse(g.base)
	if err != nil {
		t.Fatal(err)
	}
	p := httptest.NewServer(httputil.NewSingleHostReverseProxy(target))
	t.Cleanup(p.Close)
	return "ws" + strings.TrimPrefix(p.URL, "http") + "/ws"
}

// TestProtectedModeBehindProxy: in protected mode (no tokens, anonymous
// not allowed) a proxy on the same host connects from loopback, but the
// clients it forwards are not local: refused with 401. A loopback client
// that sends forwarding headers itself is refused too. Direct loopback
// clients are served. With the proxy trusted (GATEWAY_TRUSTED_PROXIES),
// the address it names decides: a loopback client through it is served,
// a remote one (or one spoofing an address before the proxy's) is not.
func TestProtectedModeBehindProxy(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	newStream(t, js, "PROXIED", 0)
	g := startGateway(t, ns.ClientURL(), "PROXIED", nil, app.Options{})
	viaProxy := reverseProxy(t, g)
	if code, body, err := dialStatus(viaProxy, nil); err != nil || code != http.StatusUnauthorized || !strings.Contains(body, "proxy") {
		t.Fatalf("through a loopback proxy: %d %q %v, want 401 saying it came through a proxy", code, body, err)
	}
	for _, h := range []string{"Forwarded", "X-Forwarded-For", "X-Real-IP"} {
		hdr := http.Header{h: {"for=127.0.0.1"}}
		if h != "Forwarded" {
			hdr = http.Header{h: {"127.0.0.1"}}
		}
		if code, _, err := dialStatus(g.wsURL(""), hdr); err != nil || code != http.StatusUnauthorized {
			t.Errorf("loopback request with %s: %d %v, want 401", h, code, err)
		}
	}
	if code, body, err := dialStatus(g.wsURL(""), nil); err != nil || code != http.StatusSwitchingProtocols {
		t.Fatalf("direct loopback: %d %q %v", code, body, err)
	}

	trusted := startGateway(t, ns.ClientURL(), "PROXIED", map[string]string{"GATEWAY_TRUSTED_PROXIES": "127.0.0.1/32"}, app.Options{})
	viaTrusted := reverseProxy(t, trusted)
	if code, body, err := dialStatus(viaTrusted, nil); err != nil || code != http.StatusSwitchingProtocols {
		t.Fatalf("loopback client through a trusted loopback proxy: %d %q %v, want served", code, body, err)
	}
	// The proxy appends the client's real address after what the client
	// sent: the last untrusted address is the spoofed one, not loopback.
	if code, _, err := dialStatus(viaTrusted, http.Header{"X-Forwarded-For": {"203.0.113.9"}}); err != nil || code != http.StatusUnauthorized {
		t.Fatalf("remote address through a trusted proxy: %d %v, want 401", code, err)
	}
}

// TestAdminAddr: with GATEWAY_ADMIN_ADDR, /metrics moves there; the main
// address answers 404 for it and keeps serving the page and /ws.
func TestAdminAddr(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	newStream(t, js, "ADMIN", 0)
	adminCh := make(chan net.Addr, 1)
	g := startGateway(t, ns.ClientURL(), "ADMIN", map[string]string{"GATEWAY_ADMIN_ADDR": "127.0.0.1:0"},
		app.Options{AdminListening: func(a net.Addr) { adminCh <- a }})
	admin := "http://" + (<-adminCh).String()
	if code, body := get(admin + "/metrics"); code != http.StatusOK || !strings.Contains(body, "dockcast_gateway_") {
		t.Fatalf("admin /metrics: %d", code)
	}
	if code, _ := get(admin + "/readyz"); code != http.StatusOK {
		t.Fatalf("admin /readyz: %d", code)
	}
	if code, _ := get(g.base + "/metrics"); code != http.StatusNotFound {
		t.Fatalf("main /metrics: %d, want 404", code)
	}
	if code, _ := get(g.base + "/"); code != http.StatusOK {
		t.Fatalf("main /: %d", code)
	}
}

func writeTokens(t testing.TB, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func tokenProtocols(token string) []string {
	return []string{"dockcast.v1", "dockcast.token." + base64.RawURLEncoding.EncodeToString([]byte(token))}
}

// TestAuthRateLimit: after a burst of wrong tokens from one address, that
// address is refused with 429 and Retry-After before any token is looked
// at (a right one too), while other addresses are not affected.
func TestAuthRateLimit(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	newStream(t, js, "AUTHRATE", 0)
	const good = "good-token-0123456789"
	g := startGateway(t, ns.ClientURL(), "AUTHRATE", map[string]string{"GATEWAY_TOKENS_FILE": writeTokens(t, good+" docker.events.>")},
		app.Options{Server: server.Options{AuthLimit: server.AuthLimit{Burst: 3, Every: time.Hour}}})
	attacker := dialerFrom("127.0.0.3")
	for i := 0; i < 3; i++ {
		if _, code, body := dialStatusWith(attacker, g.wsURL(q("token", "wrong-token-0123456789")), nil); code != http.StatusUnauthorized {
			t.Fatalf("wrong token %d: %d %q, want 401", i, code, body)
		}
	}
	c, resp, err := attacker.Dial(g.wsURL(q("token", good)), nil)
	if err == nil {
		_ = c.Close()
		t.Fatal("a right token from a blocked address was let in")
	}
	if resp == nil || resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("after the burst: %v %v, want 429 with Retry-After", resp, err)
	}
	if c, code, body := dialStatusWith(dialerFrom("127.0.0.4"), g.wsURL(q("token", good)), nil); c == nil {
		t.Fatalf("another address: %d %q", code, body)
	} else {
		_ = c.Close()
	}
}

// TestSubprotocolToken: a browser passes its token as the subprotocol
// dockcast.token.<base64url> beside dockcast.v1, and the gateway answers
// dockcast.v1; malformed or conflicting tokens are refused with 400.
func TestSubprotocolToken(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	newStream(t, js, "SUBPROTO", 0)
	const good = "good-token-ü-0123456789"
	g := startGateway(t, ns.ClientURL(), "SUBPROTO", map[string]string{"GATEWAY_TOKENS_FILE": writeTokens(t, good+" docker.events.>")}, app.Options{})
	d := websocket.Dialer{Subprotocols: tokenProtocols(good)}
	c, resp, err := d.Dial(g.wsURL(""), nil)
	if err != nil {
		t.Fatalf("token subprotocol: %v %v", resp, err)
	}
	defer c.Close()
	if c.Subprotocol() != "dockcast.v1" {
		t.Fatalf("answered subprotocol %q, want dockcast.v1", c.Subprotocol())
	}
	if f := read(t, c, 30*time.Second); f.Type != "live" {
		t.Fatalf("first frame %+v", f)
	}
	bad := []struct {
		name   string
		protos []string
		query  string
		status int
	}{
		{"wrong token", tokenProtocols("wrong-token-0123456789"), "", http.StatusUnauthorized},
		{"without dockcast.v1", tokenProtocols(good)[1:], "", http.StatusBadRequest},
		{"not base64url", []string{"dockcast.v1", "dockcast.token.***"}, "", http.StatusBadRequest},
		{"two tokens", append(tokenProtocols(good), "dockcast.token.eHl6"), "", http.StatusBadRequest},
		{"differs from the parameter", tokenProtocols(good), q("token", "other-token-0123456789"), http.StatusBadRequest},
		{"none", []string{"dockcast.v1"}, "", http.StatusUnauthorized},
	}
	for _, b := range bad {
		d := websocket.Dialer{Subprotocols: b.protos}
		c, resp, err := d.Dial(g.wsURL(b.query), nil)
		if err == nil {
			_ = c.Close()
			t.Errorf("%s: accepted", b.name)
			continue
		}
		if resp == nil || resp.StatusCode != b.status {
			t.Errorf("%s: %v %v, want %d", b.name, resp, err, b.status)
		}
	}
	// The same token as parameter and subprotocol is fine.
	d = websocket.Dialer{Subprotocols: tokenProtocols(good)}
	if c, _, err := d.Dial(g.wsURL(q("token", good)), nil); err != nil {
		t.Fatalf("same token twice: %v", err)
	} else {
		_ = c.Close()
	}
}

// TestTokenNarrowing: a token for one node, with a filter that names no
// other node, is narrowed to its node (it gets that node's events only);
// a filter that names another node is refused with 403.
func TestTokenNarrowing(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	newStream(t, js, "NARROW", 0)
	nodeA, nodeB := testkit.Unique("web-a"), testkit.Unique("web-b")
	const tokA = "token-for-node-a-0123"
	g := startGateway(t, ns.ClientURL(), "NARROW", map[string]string{"GATEWAY_TOKENS_FILE": writeTokens(t, tokA+" docker.events."+nodeA+".>")}, app.Options{})
	var pubs []published
	for i := 0; i < 6; i++ {
		n := nodeA
		if i%2 == 1 {
			n = nodeB
		}
		ev := mkEvent(n, "start", map[string]string{"team": "x"})
		pubs = append(pubs, published{publish(t, js, ev), ev})
	}
	for name, query := range map[string]string{
		"no filter":   q("token", tokA, "from_seq", "1"),
		"type filter": q("token", tokA, "from_seq", "1", "filter", "type=container"),
		"label only":  q("token", tokA, "from_seq", "1", "filter", "label=team=x"),
	} {
		c := dial(t, g.wsURL(query), nil)
		w := want(t, pubs, 1, "node="+nodeA)
		if err := checkFrames(readEvents(t, c, len(w)), w); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, query := range map[string]string{
		"other node":     q("token", tokA, "filter", "node="+nodeB),
		"both nodes":     q("token", tokA, "filter", "node="+nodeA, "filter", "node="+nodeB),
		"other node too": q("token", tokA, "filter", "node="+nodeB, "filter", "type=container"),
	} {
		if code, body, err := dialStatus(g.wsURL(query), nil); err != nil || code != http.StatusForbidden || !strings.Contains(body, nodeB) {
			t.Errorf("%s: %d %q %v, want 403 naming %s", name, code, body, err, nodeB)
		}
	}
}
