// Package server is the gateway's HTTP surface: NewServer builds one
// handler with every route (GET / the live page, /ws, /healthz, /readyz,
// /metrics). /ws answers bad queries (400), missing or wrong tokens and
// anonymous clients outside loopback (401), tokens without the right,
// foreign origins and anonymous browser requests through a host name that
// DNS rebinding could forge (403) and a full house (503) before any upgrade; then
// melody runs the WebSocket, with every write under a deadline and a 4 KiB
// read limit (a bigger frame closes the connection with 1009).
//
// Entry points: NewServer, Server.Shutdown.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/olahol/melody"

	"github.com/dockcast/dockcast/gateway/auth"
	"github.com/dockcast/dockcast/gateway/config"
	"github.com/dockcast/dockcast/gateway/hub"
	"github.com/dockcast/dockcast/gateway/metrics"
	"github.com/dockcast/dockcast/gateway/query"
	"github.com/dockcast/dockcast/gateway/replay"
	"github.com/dockcast/dockcast/gateway/web"
	"github.com/dockcast/dockcast/gateway/ws"
)

// MaxMessageSize is the largest frame a client may send.
const MaxMessageSize = 4096

// Options tune the WebSocket side; zero values take the defaults.
type Options struct {
	WriteWait  time.Duration // deadline of every write (default 10s)
	PongWait   time.Duration // a client silent this long is dropped (default 60s)
	PingPeriod time.Duration // ping interval (default 54s, < PongWait)
	Client     ws.Options    // queue limits
}

// Deps are the parts the server serves from.
type Deps struct {
	Hub      *hub.Hub
	Replayer *replay.Replayer
	Metrics  *metrics.Metrics
	// NATSConnected reports the NATS connection state, for /readyz.
	NATSConnected func() bool
	Options       Options
}

// Server is the gateway's HTTP handler.
type Server struct {
	log     *slog.Logger
	cfg     config.Config
	deps    Deps
	opts    Options
	mux     *http.ServeMux
	m       *melody.Melody
	active  atomic.Int64
	closing atomic.Bool
	wg      sync.WaitGroup // /ws handlers and replays
	clients sync.Map       // *ws.Client -> struct{}: connected clients
}

const keyClient, keyRequest = "client", "request"

// NewServer builds the handler.
func NewServer(log *slog.Logger, cfg config.Config, deps Deps) *Server {
	o := deps.Options
	if o.WriteWait <= 0 {
		o.WriteWait = 10 * time.Second
	}
	if o.PongWait <= 0 {
		o.PongWait = 60 * time.Second
	}
	if o.PingPeriod <= 0 || o.PingPeriod >= o.PongWait {
		o.PingPeriod = o.PongWait * 9 / 10
	}
	o.Client = o.Client.Defaults()
	s := &Server{log: log.With("component", "server"), cfg: cfg, deps: deps, opts: o, mux: http.NewServeMux()}

	m := melody.New()
	m.Config.WriteWait = o.WriteWait
	m.Config.PongWait = o.PongWait
	m.Config.PingPeriod = o.PingPeriod
	m.Config.MaxMessageSize = MaxMessageSize
	m.Config.MessageBufferSize = o.Client.MelodyBuffer
	m.Upgrader.CheckOrigin = s.originAllowed
	m.Upgrader.WriteBufferPool = &sync.Pool{}
	m.HandleConnect(s.connected)
	m.HandleDisconnect(s.disconnected)
	m.HandleSentMessage(func(sess *melody.Session, msg []byte) {
		if c := client(sess); c != nil {
			c.Sent()
		}
		if deps.Metrics != nil {
			deps.Metrics.MessagesSent.Inc()
			deps.Metrics.BytesSent.Add(float64(len(msg)))
		}
	})
	m.HandleError(func(sess *melody.Session, err error) {
		if errors.Is(err, melody.ErrMessageBufferFull) {
			s.log.Error("melody buffer full: a frame was dropped", "remote", sess.Request.RemoteAddr)
			return
		}
		s.log.Debug("websocket", "remote", sess.Request.RemoteAddr, "err", err)
	})
	s.m = m

	s.mux.Handle("GET /", web.Handler())
	s.mux.HandleFunc("GET /ws", s.serveWS)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprintln(w, "ok")
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	if deps.Metrics != nil {
		s.mux.Handle("GET /metrics", deps.Metrics.Handler())
	}
	return s
}

// ServeHTTP serves every route.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Clients is the number of /ws connections being served.
func (s *Server) Clients() int { return int(s.active.Load()) }

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if s.deps.NATSConnected != nil && !s.deps.NATSConnected() {
		http.Error(w, "not ready: NATS is disconnected", http.StatusServiceUnavailable)
		return
	}
	if ok, reason := s.deps.Hub.Ready(); !ok {
		http.Error(w, "not ready: "+reason, http.StatusServiceUnavailable)
		return
	}
	_, _ = fmt.Fprintln(w, "ready")
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, code int, reason, metric string) {
	if metric != "" && s.deps.Metrics != nil {
		s.deps.Metrics.AuthFailures.WithLabelValues(metric).Inc()
	}
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="dockcast"`)
	}
	s.log.Debug("ws refused", "remote", r.RemoteAddr, "status", code, "reason", reason)
	http.Error(w, reason, code)
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "use GET", http.StatusMethodNotAllowed)
		return
	}
	req, err := query.Parse(r.URL.Query(), time.Now())
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err.Error(), "")
		return
	}
	if origin := r.Header.Get("Origin"); origin != "" && !s.originAllowed(r) {
		s.fail(w, r, http.StatusForbidden, fmt.Sprintf("origin %q is not allowed (same host only, or GATEWAY_ALLOWED_ORIGINS)", truncate(origin)), "origin")
		return
	}
	if origin := r.Header.Get("Origin"); origin != "" && s.cfg.Tokens == nil && !s.originListed(origin) && !localHost(r.Host) {
		s.fail(w, r, http.StatusForbidden, fmt.Sprintf("anonymous browser access through host name %q is refused to prevent DNS rebinding: open the page by IP address or localhost, or list the origin in GATEWAY_ALLOWED_ORIGINS, or set GATEWAY_TOKENS_FILE", truncate(r.Host)), "rebinding")
		return
	}
	patterns, code, reason, metric := s.authorize(r, req)
	if code != 0 {
		s.fail(w, r, code, reason, metric)
		return
	}
	if s.closing.Load() {
		http.Error(w, "gateway is shutting down", http.StatusServiceUnavailable)
		return
	}
	if !s.deps.Hub.Started() {
		http.Error(w, "not ready: not yet attached to the event stream", http.StatusServiceUnavailable)
		return
	}
	if n := s.active.Add(1); n > int64(s.cfg.MaxClients) {
		s.active.Add(-1)
		http.Error(w, fmt.Sprintf("too many clients (GATEWAY_MAX_CLIENTS=%d)", s.cfg.MaxClients), http.StatusServiceUnavailable)
		return
	}
	defer s.active.Add(-1)
	s.wg.Add(1)
	defer s.wg.Done()
	c := ws.NewClient(req.Filter, req.Subjects, s.opts.Client, func(resume uint64) {
		if s.deps.Metrics != nil {
			s.deps.Metrics.SlowConsumers.Inc()
		}
		s.log.Info("slow consumer disconnected", "remote", r.RemoteAddr, "resume_from_seq", resume)
	})
	c.Patterns = patterns
	keys := map[string]any{keyClient: c, keyRequest: req}
	if err := s.m.HandleRequestWithKeys(w, r, keys); err != nil {
		s.log.Debug("websocket upgrade", "remote", r.RemoteAddr, "err", err)
	}
}

// authorize returns the token's subject patterns (nil: anonymous, may read
// everything) and 0, or the refusal's status, reason and metric label.
func (s *Server) authorize(r *http.Request, req query.Request) ([]string, int, string, string) {
	token := req.Token
	if token == "" {
		if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
			token = strings.TrimSpace(h[7:])
		}
	}
	if s.cfg.Tokens != nil {
		if token == "" {
			return nil, http.StatusUnauthorized, "missing token: pass ?token=… or an Authorization: Bearer header", "missing_token"
		}
		patterns, ok := s.cfg.Tokens.Lookup(token)
		if !ok {
			return nil, http.StatusUnauthorized, "invalid token", "invalid_token"
		}
		if err := auth.Allowed(patterns, req.Subjects); err != nil {
			return nil, http.StatusForbidden, err.Error(), "forbidden"
		}
		return patterns, 0, "", ""
	}
	if !s.cfg.AllowAnonymous && !loopback(r.RemoteAddr) {
		return nil, http.StatusUnauthorized, "anonymous access is limited to loopback clients (the operator may set GATEWAY_TOKENS_FILE or GATEWAY_ALLOW_ANONYMOUS=true)", "not_loopback"
	}
	return nil, 0, "", ""
}

func loopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
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

func client(sess *melody.Session) *ws.Client {
	v, ok := sess.Get(keyClient)
	if !ok {
		return nil
	}
	return v.(*ws.Client)
}

func (s *Server) connected(sess *melody.Session) {
	c := client(sess)
	c.Attach(sess)
	s.clients.Store(c, struct{}{})
	if s.closing.Load() {
		c.Close(melody.CloseGoingAway, "gateway shutting down", nil)
	}
	if s.deps.Metrics != nil {
		s.deps.Metrics.Clients.Inc()
	}
	v, _ := sess.Get(keyRequest)
	req := v.(query.Request)
	if !req.Replay() {
		s.deps.Hub.JoinLive(c)
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.deps.Replayer.Run(c, req.FromSeq, req.Since)
	}()
}

func (s *Server) disconnected(sess *melody.Session) {
	c := client(sess)
	c.Disconnected()
	s.clients.Delete(c)
	s.deps.Hub.Leave(c)
	if s.deps.Metrics != nil {
		s.deps.Metrics.Clients.Dec()
	}
}

// Shutdown refuses new clients, sends every client a 1001 close frame and
// waits until they are gone or ctx ends; then it closes what is left.
func (s *Server) Shutdown(ctx context.Context) {
	s.closing.Store(true)
	s.clients.Range(func(k, _ any) bool {
		k.(*ws.Client).Close(melody.CloseGoingAway, "gateway shutting down", nil)
		return true
	})
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	if sessions, err := s.m.Sessions(); err == nil {
		for _, sess := range sessions {
			_ = sess.WebsocketConnection().Close()
		}
	}
	<-done
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
