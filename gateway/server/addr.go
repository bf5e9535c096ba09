package server

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Peer is who a request comes from.
type Peer struct {
	// Addr is the client's address: the TCP peer's, or, from a trusted
	// proxy, the last untrusted address the proxy names.
	Addr netip.Addr
	// TCP is the TCP peer's address.
	TCP netip.Addr
	// Known is false when a trusted proxy named no usable address
	// ("unknown", an obfuscated name): Addr is then the proxy's.
	Known bool
	// Trusted: the TCP peer is a trusted proxy (GATEWAY_TRUSTED_PROXIES).
	Trusted bool
	// Forwarded: the request carries Forwarded, X-Forwarded-For or X-Real-IP.
	Forwarded bool
}

// Local reports whether the client is on the gateway's own host: a
// loopback client, connected over loopback, not through an untrusted
// proxy (a proxy on the same host makes every client it forwards look
// local, so forwarding headers from an untrusted peer are never local).
func (p Peer) Local() bool {
	return p.Known && p.Addr.IsLoopback() && p.TCP.IsLoopback() && (p.Trusted || !p.Forwarded)
}

// Key is the unit per-address limits count by: the address, or its /64
// for IPv6 (one host's usual allocation).
func (p Peer) Key() netip.Prefix {
	a := p.Addr.Unmap()
	if a.Is6() {
		pfx, _ := a.Prefix(64)
		return pfx
	}
	pfx, _ := a.Prefix(a.BitLen())
	return pfx
}

// String is the address for logs.
func (p Peer) String() string {
	if !p.Known {
		return "unknown via " + p.TCP.String()
	}
	if p.Addr != p.TCP {
		return p.Addr.String() + " via " + p.TCP.String()
	}
	return p.Addr.String()
}

// PeerOf works out who a request comes from. remote is the request's
// RemoteAddr; trusted lists the reverse proxies whose X-Forwarded-For
// (preferred, as proxies append to it) or Forwarded header is believed:
// the client is the last address in it that is not a trusted proxy.
func PeerOf(remote string, h http.Header, trusted []netip.Prefix) Peer {
	tcp := parseHostAddr(remote)
	p := Peer{Addr: tcp, TCP: tcp, Known: true,
		Forwarded: len(h.Values("Forwarded")) > 0 || len(h.Values("X-Forwarded-For")) > 0 || len(h.Values("X-Real-IP")) > 0}
	if !tcp.IsValid() || !inAny(tcp, trusted) {
		return p
	}
	p.Trusted = true
	var hops []string
	if xff := h.Values("X-Forwarded-For"); len(xff) > 0 {
		for _, line := range xff {
			hops = append(hops, strings.Split(line, ",")...)
		}
	} else {
		for _, line := range h.Values("Forwarded") {
			hops = append(hops, forwardedFor(line)...)
		}
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a := parseHostAddr(strings.Trim(strings.TrimSpace(hops[i]), `"`))
		if !a.IsValid() {
			p.Known, p.Addr = false, tcp
			return p
		}
		p.Addr = a
		if !inAny(a, trusted) {
			return p
		}
	}
	return p // every hop trusted: the first one is the client
}

// forwardedFor returns the for= values of a Forwarded header line
// (RFC 7239), one per element, "" for an element without one.
func forwardedFor(line string) []string {
	var out []string
	for _, elem := range splitQuoted(line, ',') {
		v := ""
		for _, pair := range splitQuoted(elem, ';') {
			k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "for") {
				v = strings.Trim(strings.TrimSpace(val), `"`)
			}
		}
		out = append(out, v)
	}
	return out
}

// splitQuoted splits s at sep outside double quotes.
func splitQuoted(s string, sep byte) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '"':
			quoted = !quoted
		case s[i] == sep && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// parseHostAddr parses an address with or without a port: 192.0.2.1,
// 192.0.2.1:80, 2001:db8::1, [2001:db8::1], [2001:db8::1]:80. It returns
// the zero Addr for anything else.
func parseHostAddr(s string) netip.Addr {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.WithZone("").Unmap()
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	} else {
		s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return a.WithZone("").Unmap()
}

func inAny(a netip.Addr, nets []netip.Prefix) bool {
	for _, n := range nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}
