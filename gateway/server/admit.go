package server

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/dockcast/dockcast/gateway/auth"
	"github.com/dockcast/dockcast/gateway/client"
	"github.com/dockcast/dockcast/gateway/config"
	"github.com/dockcast/dockcast/gateway/ws"
)

// TokenSubprotocolPrefix starts the WebSocket subprotocol that carries a
// token, base64url-encoded (as Kubernetes does), so that browsers keep it
// out of URLs and proxy logs: Sec-WebSocket-Protocol: dockcast.v1,
// dockcast.token.<base64url of the token>.
const TokenSubprotocolPrefix = "dockcast.token."

// Admitted is a request that admission let in: everything a transport
// needs to serve it. Release it when the connection ends.
type Admitted struct {
	Query Query
	// Spec is the client's filter, narrowed subjects and token rights.
	Spec client.Spec
	Peer Peer
	// tokens is the tokens file the request was checked against.
	tokens  *auth.Tokens
	release func()
}

// Release gives back the connection slots the request holds.
func (a *Admitted) Release() {
	if a.release != nil {
		a.release()
		a.release = nil
	}
}

// takeRelease returns the function that gives back the request's slots
// and leaves a with nothing to release: the caller calls it once, and a
// need not be kept for it.
func (a *Admitted) takeRelease() func() {
	release := a.release
	a.release = nil
	if release == nil {
		return func() {}
	}
	return release
}

// Refusal is the answer to a request refused before any upgrade.
type Refusal struct {
	Status int
	// Reason is one line, sent as the body.
	Reason string
	// Auth is the auth_failures_total reason, Limit the refused_total
	// reason ("" for none).
	Auth, Limit string
	// RetryAfter, when set, is sent as Retry-After.
	RetryAfter time.Duration
}

// Admit decides about a client request in one pass: the query (400), the
// origin and DNS rebinding (403), the token or anonymous access (400, 401,
// 403, 429 after too many failed tokens from the address), readiness
// (503), and the per-address and global connection limits (429, 503). Any
// transport serves what it returns.
func (s *Server) Admit(r *http.Request) (*Admitted, *Refusal) {
	q, err := ParseQuery(r.URL.Query(), time.Now())
	if err != nil {
		return nil, &Refusal{Status: http.StatusBadRequest, Reason: err.Error()}
	}
	return s.AdmitQuery(r, q)
}

// AdmitQuery is Admit for a query the transport parsed itself (/sse's
// resume point, Docker's /events arguments): everything after the query.
func (s *Server) AdmitQuery(r *http.Request, q Query) (*Admitted, *Refusal) {
	now := time.Now()
	peer := PeerOf(r.RemoteAddr, r.Header, s.cfg.Proxies)
	if origin := r.Header.Get("Origin"); origin != "" {
		if !s.originAllowed(r) {
			return nil, &Refusal{Status: http.StatusForbidden, Auth: "origin",
				Reason: fmt.Sprintf("origin %q is not allowed (same host only, or GATEWAY_ALLOWED_ORIGINS)", truncate(origin))}
		}
		if s.tokens.Load() == nil && !s.originListed(origin) && !localHost(r.Host) {
			return nil, &Refusal{Status: http.StatusForbidden, Auth: "rebinding",
				Reason: fmt.Sprintf("anonymous browser access through host name %q is refused to prevent DNS rebinding: open the page by IP address or localhost, or list the origin in GATEWAY_ALLOWED_ORIGINS, or set GATEWAY_TOKENS_FILE", truncate(r.Host))}
		}
	}
	a := &Admitted{Query: q, Peer: peer}
	if ref := s.authorize(r, a, now); ref != nil {
		return nil, ref
	}
	if s.closing.Load() {
		return nil, &Refusal{Status: http.StatusServiceUnavailable, Reason: "gateway is shutting down"}
	}
	if ok, reason := s.deps.Hub.Serving(); !ok {
		return nil, &Refusal{Status: http.StatusServiceUnavailable, Reason: "not ready: " + reason}
	}
	key := peer.Key()
	if !s.perAddr.acquire(key) {
		return nil, &Refusal{Status: http.StatusTooManyRequests, Limit: "max_clients_per_ip", RetryAfter: 10 * time.Second,
			Reason: fmt.Sprintf("too many connections from %s (GATEWAY_MAX_CLIENTS_PER_IP=%d)", peer.Addr, s.cfg.MaxClientsPerIP)}
	}
	if n := s.active.Add(1); n > int64(s.cfg.MaxClients) {
		s.active.Add(-1)
		s.perAddr.release(key)
		return nil, &Refusal{Status: http.StatusServiceUnavailable, Limit: "max_clients", RetryAfter: 10 * time.Second,
			Reason: fmt.Sprintf("too many clients (GATEWAY_MAX_CLIENTS=%d)", s.cfg.MaxClients)}
	}
	a.release = func() {
		s.active.Add(-1)
		s.perAddr.release(key)
	}
	return a, nil
}

// authorize fills a.Spec: the token's rights and the filter narrowed to
// them, or anonymous access (loopback only unless allowed).
func (s *Server) authorize(r *http.Request, a *Admitted, now time.Time) *Refusal {
	q := a.Query
	a.Spec = client.Spec{Filter: q.Filter, Subjects: q.Subjects, Exact: true}
	token, err := requestToken(r, q)
	if err != nil {
		return &Refusal{Status: http.StatusBadRequest, Reason: err.Error()}
	}
	tokens := s.tokens.Load()
	a.tokens = tokens
	if tokens == nil {
		if !s.cfg.AllowAnonymous && !a.Peer.Local() {
			why := "anonymous access is limited to loopback clients (the operator may set GATEWAY_TOKENS_FILE or GATEWAY_ALLOW_ANONYMOUS=true)"
			if a.Peer.Forwarded && !a.Peer.Trusted {
				why = "anonymous access is limited to loopback clients, and a request carrying Forwarded, X-Forwarded-For or X-Real-IP came through a proxy, not from loopback (the operator may set GATEWAY_TOKENS_FILE, GATEWAY_ALLOW_ANONYMOUS=true or GATEWAY_TRUSTED_PROXIES)"
			}
			return &Refusal{Status: http.StatusUnauthorized, Auth: "not_loopback", Reason: why}
		}
		return nil
	}
	if token == "" {
		return &Refusal{Status: http.StatusUnauthorized, Auth: "missing_token",
			Reason: "missing token: pass ?token=…, an Authorization: Bearer header, or the subprotocols dockcast.v1, dockcast.token.<base64url of the token>"}
	}
	key := a.Peer.Key()
	if wait, blocked := s.authLimit.blocked(key, now); blocked {
		return &Refusal{Status: http.StatusTooManyRequests, Limit: "auth_rate", RetryAfter: wait,
			Reason: fmt.Sprintf("too many failed token checks from %s: retry in %d s", a.Peer.Addr, int(math.Ceil(wait.Seconds())))}
	}
	grant, ok := tokens.Lookup(token)
	if !ok {
		s.authLimit.failed(key, now)
		return &Refusal{Status: http.StatusUnauthorized, Auth: "invalid_token", Reason: "invalid token"}
	}
	n, err := auth.Narrow(grant.Patterns, q.Subjects)
	if err != nil {
		return &Refusal{Status: http.StatusForbidden, Auth: "forbidden", Reason: err.Error()}
	}
	a.Spec.Subjects, a.Spec.Exact, a.Spec.Patterns, a.Spec.Token = n.Subjects, n.Exact, grant.Patterns, grant.ID
	return nil
}

// requestToken returns the token of a request: the token parameter, an
// Authorization: Bearer header, or the dockcast.token.<base64url>
// subprotocol (beside dockcast.v1). Two different tokens are an error.
func requestToken(r *http.Request, q Query) (string, error) {
	var found []string
	if q.Token != "" {
		found = append(found, q.Token)
	}
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, _ := strings.Cut(strings.TrimSpace(h), " ")
		if strings.EqualFold(scheme, "bearer") && strings.TrimSpace(tok) != "" {
			found = append(found, strings.TrimSpace(tok))
		}
	}
	tok, err := subprotocolToken(r.Header)
	if err != nil {
		return "", err
	}
	if tok != "" {
		found = append(found, tok)
	}
	for _, t := range found[min(1, len(found)):] {
		if t != found[0] {
			return "", errors.New("token: given more than once (parameter, Authorization header, subprotocol), and differently")
		}
	}
	if len(found) == 0 {
		return "", nil
	}
	return found[0], nil
}

// subprotocolToken returns the token of a dockcast.token.<base64url>
// subprotocol, "" without one.
func subprotocolToken(h http.Header) (string, error) {
	var tok string
	v1, n := false, 0
	for _, line := range h.Values("Sec-Websocket-Protocol") {
		for _, p := range strings.Split(line, ",") {
			p = strings.TrimSpace(p)
			switch {
			case p == ws.Subprotocol:
				v1 = true
			case strings.HasPrefix(p, TokenSubprotocolPrefix):
				n++
				enc := strings.TrimRight(strings.TrimPrefix(p, TokenSubprotocolPrefix), "=")
				b, err := base64.RawURLEncoding.DecodeString(enc)
				if err != nil || len(b) == 0 {
					return "", fmt.Errorf("subprotocol %s…: the token must be base64url-encoded (RFC 4648, section 5)", TokenSubprotocolPrefix)
				}
				tok = string(b)
			}
		}
	}
	switch {
	case n > 1:
		return "", fmt.Errorf("subprotocol %s…: given %d times, at most once", TokenSubprotocolPrefix, n)
	case n == 1 && !v1:
		return "", fmt.Errorf("subprotocol %s… needs %s beside it (the protocol the gateway answers)", TokenSubprotocolPrefix, ws.Subprotocol)
	}
	return tok, nil
}

// originAllowed accepts requests without Origin, from the gateway's own
// host, or from GATEWAY_ALLOWED_ORIGINS.
func (s *Server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	norm, err := config.NormaliseOrigin(origin)
	if err != nil {
		return false
	}
	if u, err := url.Parse(norm); err == nil && strings.EqualFold(u.Host, r.Host) {
		return true
	}
	return s.originListed(origin)
}

// originListed reports whether origin is in GATEWAY_ALLOWED_ORIGINS.
func (s *Server) originListed(origin string) bool {
	norm, err := config.NormaliseOrigin(origin)
	if err != nil {
		return false
	}
	for _, o := range s.cfg.Origins {
		if o == norm {
			return true
		}
	}
	return false
}

// localHost reports whether a Host header names the gateway by an IP
// literal, localhost or a *.localhost name: names a DNS rebinding attack
// cannot point at the gateway. Anonymous browser requests (no tokens file)
// must use one of them unless their origin is listed explicitly, because
// the same-host origin check alone accepts a page at http://evil.com:8080
// whose name was re-pointed to 127.0.0.1.
func localHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	if host == "" {
		return false
	}
	if net.ParseIP(host) != nil {
		return true
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}
