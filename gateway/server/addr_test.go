package server

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/dockcast/dockcast/gateway/config"
)

func TestPeerOf(t *testing.T) {
	t.Parallel()
	trusted, err := config.ParseProxies("127.0.0.1, 10.0.0.0/8, 2001:db8::/32")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		remote  string
		header  http.Header
		addr    string
		known   bool
		local   bool
		trusted bool
	}{
		{"direct loopback", "127.0.0.1:5000", nil, "127.0.0.1", true, true, true},
		{"direct remote", "203.0.113.5:5000", nil, "203.0.113.5", true, false, false},
		{"untrusted peer's header ignored", "203.0.113.5:5000", http.Header{"X-Forwarded-For": {"127.0.0.1"}}, "203.0.113.5", true, false, false},
		{"loopback untrusted by none: header makes it not local", "127.0.0.2:5000", http.Header{"X-Real-Ip": {"127.0.0.2"}}, "127.0.0.2", true, false, false},
		{"trusted loopback proxy, loopback client", "127.0.0.1:5000", http.Header{"X-Forwarded-For": {"127.0.0.1"}}, "127.0.0.1", true, true, true},
		{"trusted proxy, remote client", "10.1.2.3:5000", http.Header{"X-Forwarded-For": {"198.51.100.7"}}, "198.51.100.7", true, false, true},
		{"chain: last untrusted wins", "10.1.2.3:5000", http.Header{"X-Forwarded-For": {"1.1.1.1, 198.51.100.7, 10.9.9.9"}}, "198.51.100.7", true, false, true},
		{"several header lines", "10.1.2.3:5000", http.Header{"X-Forwarded-For": {"1.1.1.1", "198.51.100.8"}}, "198.51.100.8", true, false, true},
		{"every hop trusted", "10.1.2.3:5000", http.Header{"X-Forwarded-For": {"10.0.0.1, 10.0.0.2"}}, "10.0.0.1", true, false, true},
		{"xff with port", "10.1.2.3:5000", http.Header{"X-Forwarded-For": {"198.51.100.7:4711"}}, "198.51.100.7", true, false, true},
		{"forwarded", "10.1.2.3:5000", http.Header{"Forwarded": {`for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8:cafe::17]:4711"`}}, "192.0.2.60", true, false, true},
		{"forwarded v6 untrusted", "10.1.2.3:5000", http.Header{"Forwarded": {`for="[2001:dba::17]:4711"`}}, "2001:dba::17", true, false, true},
		{"forwarded unknown", "10.1.2.3:5000", http.Header{"Forwarded": {"for=unknown"}}, "10.1.2.3", false, false, true},
		{"forwarded obfuscated", "10.1.2.3:5000", http.Header{"Forwarded": {"for=_hidden, for=10.0.0.9"}}, "10.1.2.3", false, false, true},
		{"xff preferred over forwarded", "10.1.2.3:5000", http.Header{"Forwarded": {"for=1.2.3.4"}, "X-Forwarded-For": {"198.51.100.9"}}, "198.51.100.9", true, false, true},
		{"garbage xff", "10.1.2.3:5000", http.Header{"X-Forwarded-For": {"not an address"}}, "10.1.2.3", false, false, true},
		{"v4-mapped peer", "[::ffff:10.1.2.3]:5000", http.Header{"X-Forwarded-For": {"198.51.100.7"}}, "198.51.100.7", true, false, true},
	}
	for _, c := range cases {
		p := PeerOf(c.remote, c.header, trusted)
		if p.Addr.String() != c.addr || p.Known != c.known || p.Local() != c.local || p.Trusted != c.trusted {
			t.Errorf("%s: %+v (local %v), want addr %s known %v local %v trusted %v", c.name, p, p.Local(), c.addr, c.known, c.local, c.trusted)
		}
	}
	// Without trusted proxies, a loopback request carrying any forwarding
	// header is not local.
	for _, h := range []string{"Forwarded", "X-Forwarded-For", "X-Real-IP"} {
		if p := PeerOf("127.0.0.1:1", http.Header{http.CanonicalHeaderKey(h): {"127.0.0.1"}}, nil); p.Local() {
			t.Errorf("loopback with %s is local", h)
		}
	}
	if p := PeerOf("[::1]:1", nil, nil); !p.Local() {
		t.Error("::1 is not local")
	}
}

func TestPeerKey(t *testing.T) {
	t.Parallel()
	a := PeerOf("[2001:db8:1:2:3::1]:1", nil, nil).Key()
	b := PeerOf("[2001:db8:1:2:ffff::9]:1", nil, nil).Key()
	c := PeerOf("[2001:db8:1:3::1]:1", nil, nil).Key()
	if a != b || a == c || a.Bits() != 64 {
		t.Fatalf("IPv6 keys %v %v %v: want one /64 per host", a, b, c)
	}
	if k := PeerOf("192.0.2.1:1", nil, nil).Key(); k.Bits() != 32 || k.Addr() != netip.MustParseAddr("192.0.2.1") {
		t.Fatalf("IPv4 key %v", k)
	}
}

// FuzzPeerOf: whatever the headers, the client address of an untrusted
// peer is the peer; from a trusted peer it is the peer, an address in the
// headers, or unknown; a request with forwarding headers from an untrusted
// loopback peer is never local.
func FuzzPeerOf(f *testing.F) {
	f.Add("127.0.0.1:1", "127.0.0.1", "", "")
	f.Add("10.0.0.1:1", "1.1.1.1, 10.0.0.2", `for="[::1]:80"`, "")
	f.Add("[::1]:1", "", `for=unknown;proto=http, for=_x`, "x")
	f.Add("10.0.0.1:1", "", `for="a,b"; by=c, for=192.0.2.1`, "")
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	f.Fuzz(func(t *testing.T, remote, xff, fwd, real string) {
		h := http.Header{}
		if xff != "" {
			h.Set("X-Forwarded-For", xff)
		}
		if fwd != "" {
			h.Set("Forwarded", fwd)
		}
		if real != "" {
			h.Set("X-Real-Ip", real)
		}
		p := PeerOf(remote, h, trusted)
		tcp := parseHostAddr(remote)
		if p.TCP != tcp {
			t.Fatalf("TCP %v, want %v", p.TCP, tcp)
		}
		if !p.Trusted && p.Addr != tcp {
			t.Fatalf("untrusted peer %v: address %v from the headers", tcp, p.Addr)
		}
		if p.Trusted && !p.Known && p.Addr != tcp {
			t.Fatalf("unknown client: address %v, want the proxy's %v", p.Addr, tcp)
		}
		if p.Trusted && p.Known && p.Addr != tcp && !inAny(tcp, trusted) {
			t.Fatalf("address %v taken from the headers of an untrusted peer", p.Addr)
		}
		if !p.Trusted && len(h) > 0 && p.Local() {
			t.Fatalf("forwarded request from untrusted %v is local", tcp)
		}
		if p.Local() && !(p.Addr.IsLoopback() && tcp.IsLoopback()) {
			t.Fatalf("%v via %v is local", p.Addr, tcp)
		}
		_ = p.Key()
		_ = p.String()
	})
}

func TestSubprotocolToken(t *testing.T) {
	t.Parallel()
	cases := []struct {
		header []string
		token  string
		err    string
	}{
		{nil, "", ""},
		{[]string{"dockcast.v1"}, "", ""},
		{[]string{"dockcast.v1, dockcast.token.c2VjcmV0LXRva2VuLTAxMjM0NTY"}, "secret-token-0123456", ""},
		{[]string{"dockcast.token.c2VjcmV0LXRva2VuLTAxMjM0NTY=, dockcast.v1"}, "secret-token-0123456", ""},
		{[]string{"dockcast.v1", "dockcast.token.c2VjcmV0LXRva2VuLTAxMjM0NTY"}, "secret-token-0123456", ""},
		{[]string{"dockcast.token.c2VjcmV0LXRva2VuLTAxMjM0NTY"}, "", "needs dockcast.v1"},
		{[]string{"dockcast.v1, dockcast.token."}, "", "base64url"},
		{[]string{"dockcast.v1, dockcast.token.a+b/"}, "", "base64url"},
		{[]string{"dockcast.v1, dockcast.token.eHl6, dockcast.token.eHl6"}, "", "at most once"},
		{[]string{"chat, superchat"}, "", ""},
	}
	for _, c := range cases {
		h := http.Header{}
		for _, v := range c.header {
			h.Add("Sec-WebSocket-Protocol", v)
		}
		tok, err := subprotocolToken(h)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || strings.Contains(err.Error(), "\n") {
				t.Errorf("%q: %q %v, want an error with %q", c.header, tok, err, c.err)
			}
			continue
		}
		if err != nil || tok != c.token {
			t.Errorf("%q: %q %v, want %q", c.header, tok, err, c.token)
		}
	}
}

// FuzzSubprotocolToken: a token accepted from the header is what the
// header encodes, and errors are one line.
func FuzzSubprotocolToken(f *testing.F) {
	f.Add("dockcast.v1, dockcast.token.c2VjcmV0LXRva2VuLTAxMjM0NTY")
	f.Add("dockcast.token.=, dockcast.v1")
	f.Add(",,dockcast.v1,,")
	f.Fuzz(func(t *testing.T, header string) {
		h := http.Header{"Sec-Websocket-Protocol": {header}}
		tok, err := subprotocolToken(h)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		if tok != "" && !strings.Contains(header, TokenSubprotocolPrefix) {
			t.Fatalf("token %q from %q", tok, header)
		}
	})
}
