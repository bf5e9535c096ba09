package server

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dockcast/dockcast/gateway/auth"
	"github.com/dockcast/dockcast/gateway/config"
	"github.com/dockcast/dockcast/gateway/hub"
	"github.com/dockcast/dockcast/gateway/metrics"
)

// TestAnonymousOutsideLoopback: without tokens, a client from outside
// loopback gets 401 unless GATEWAY_ALLOW_ANONYMOUS=true; forwarded headers
// are not trusted.
func TestAnonymousOutsideLoopback(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.DiscardHandler)
	h := hub.New(nil, "S", log, nil)
	cases := []struct {
		remote string
		anon   bool
		header string
		want   int
	}{
		{"203.0.113.5:1234", false, "", http.StatusUnauthorized},
		{"203.0.113.5:1234", false, "127.0.0.1", http.StatusUnauthorized},
		{"[2001:db8::1]:1234", false, "", http.StatusUnauthorized},
		{"127.0.0.1:1234", false, "", http.StatusServiceUnavailable}, // passes auth; hub not started
		{"[::1]:1234", false, "", http.StatusServiceUnavailable},
		{"203.0.113.5:1234", true, "", http.StatusServiceUnavailable},
	}
	for _, c := range cases {
		cfg := config.Config{AllowAnonymous: c.anon, MaxClients: 10}
		s := NewServer(log, cfg, Deps{Hub: h, Metrics: metrics.New()})
		req := httptest.NewRequest(http.MethodGet, "/ws", nil)
		req.RemoteAddr = c.remote
		if c.header != "" {
			req.Header.Set("X-Forwarded-For", c.header)
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%s anon=%v: %d %q, want %d", c.remote, c.anon, rec.Code, rec.Body, c.want)
		}
		if c.want == http.StatusUnauthorized && !strings.Contains(rec.Body.String(), "loopback") {
			t.Errorf("%s: reason %q does not explain", c.remote, rec.Body)
		}
	}
	// Other methods are refused.
	s := NewServer(log, config.Config{MaxClients: 1}, Deps{Hub: h})
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/ws", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /ws: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("healthz: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "not ready") {
		t.Errorf("readyz before the feed: %d %q", rec.Code, rec.Body)
	}
}

// TestDNSRebinding: an anonymous browser request (Origin header, no tokens
// file) must reach the gateway by IP literal or localhost, unless its
// origin is listed: a page at http://evil.com:8080 whose name was
// re-pointed to 127.0.0.1 passes the loopback and same-host checks and
// would otherwise read every event. Non-browser and token requests are
// not affected.
func TestDNSRebinding(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.DiscardHandler)
	h := hub.New(nil, "S", log, nil)
	tokens, err := auth.Parse(strings.NewReader("tok-0123456789abcdef docker.events.>\n"))
	if err != nil {
		t.Fatal(err)
	}
	const passed = http.StatusServiceUnavailable // past every check; hub not started
	cases := []struct {
		name, remote, host, origin, query string
		anon                              bool
		allowed                           string
		tokens                            *auth.Tokens
		want                              int
	}{
		{"rebound name from loopback", "127.0.0.1:5555", "evil.com:8080", "http://evil.com:8080", "", false, "", nil, http.StatusForbidden},
		{"rebound name, anonymous open", "203.0.113.5:5555", "evil.com:8080", "http://evil.com:8080", "", true, "", nil, http.StatusForbidden},
		{"rebound name without port", "127.0.0.1:5555", "evil.com", "http://evil.com", "", false, "", nil, http.StatusForbidden},
		{"localhost look-alike", "127.0.0.1:5555", "localhost.evil.com:8080", "http://localhost.evil.com:8080", "", false, "", nil, http.StatusForbidden},
		{"ipv4 literal", "127.0.0.1:5555", "127.0.0.1:8080", "http://127.0.0.1:8080", "", false, "", nil, passed},
		{"ipv6 literal", "[::1]:5555", "[::1]:8080", "http://[::1]:8080", "", false, "", nil, passed},
		{"ipv6 literal without port", "[::1]:5555", "[::1]", "http://[::1]", "", false, "", nil, passed},
		{"localhost", "127.0.0.1:5555", "localhost:8080", "http://localhost:8080", "", false, "", nil, passed},
		{"LOCALHOST.", "127.0.0.1:5555", "LOCALHOST.:8080", "http://LOCALHOST.:8080", "", false, "", nil, passed},
		{"sub.localhost", "127.0.0.1:5555", "app.localhost:8080", "http://app.localhost:8080", "", false, "", nil, passed},
		{"anonymous open by ip", "203.0.113.5:5555", "192.0.2.7:8080", "http://192.0.2.7:8080", "", true, "", nil, passed},
		{"no origin", "127.0.0.1:5555", "evil.com:8080", "", "", false, "", nil, passed},
		{"listed origin", "127.0.0.1:5555", "dockcast.example.com:8080", "http://dockcast.example.com:8080", "", false, "http://dockcast.example.com:8080", nil, passed},
		{"listed other origin", "127.0.0.1:5555", "dockcast.example.com", "https://app.example.com", "", false, "https://app.example.com", nil, passed},
		{"token", "203.0.113.5:5555", "dockcast.example.com", "http://dockcast.example.com", "?token=tok-0123456789abcdef", false, "", tokens, passed},
	}
	for _, c := range cases {
		origins, err := config.ParseOrigins(c.allowed)
		if err != nil {
			t.Fatal(err)
		}
		cfg := config.Config{AllowAnonymous: c.anon, MaxClients: 10, Origins: origins, Tokens: c.tokens}
		s := NewServer(log, cfg, Deps{Hub: h, Metrics: metrics.New()})
		req := httptest.NewRequest(http.MethodGet, "/ws"+c.query, nil)
		req.RemoteAddr = c.remote
		req.Host = c.host
		if c.origin != "" {
			req.Header.Set("Origin", c.origin)
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		body := strings.TrimSpace(rec.Body.String())
		if rec.Code != c.want {
			t.Errorf("%s: %d %q, want %d", c.name, rec.Code, body, c.want)
			continue
		}
		if c.want == http.StatusForbidden {
			for _, w := range []string{"DNS rebinding", "GATEWAY_ALLOWED_ORIGINS", "GATEWAY_TOKENS_FILE"} {
				if !strings.Contains(body, w) {
					t.Errorf("%s: reason %q does not mention %s", c.name, body, w)
				}
			}
			if strings.Contains(body, "\n") {
				t.Errorf("%s: reason %q is not one line", c.name, body)
			}
		}
	}
}
