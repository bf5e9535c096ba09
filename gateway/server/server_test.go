package server

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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
