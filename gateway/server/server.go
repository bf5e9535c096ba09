// Package server is the gateway's HTTP surface. NewServer builds one
// handler with every route (GET / the live page, /ws, /sse, Docker's
// Engine API paths /_ping, /version, /events and its 404s, /healthz,
// /readyz, /metrics unless GATEWAY_ADMIN_ADDR moves it to AdminHandler)
// and the one admission every client transport goes through (Admit, or
// AdmitQuery for a query the transport parsed itself: origin, authorize
// with token narrowing, limits), producing an Admitted value. /ws hands it
// to the WebSocket transport (package ws), /sse to the SSE transport
// (package sse), /events to package dockerapi's writer through a Source of
// gateway clients (events.go); each client starts live or through a
// replay. Around the handler: Guard bounds the
// connections still in their handshake, ConfigureHTTP sets header and
// time limits, and every request URL is bounded (414).
//
// Entry points: NewServer, Server.Admit, Server.AdmitQuery, Server.Drain, Server.Shutdown,
// Server.ReloadTokens, Server.AdminHandler, Guard, ConnContext,
// ConfigureHTTP, PeerOf, ParseQuery, ParseSSEQuery.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dockcast/dockcast/gateway/auth"
	"github.com/dockcast/dockcast/gateway/client"
	"github.com/dockcast/dockcast/gateway/config"
	"github.com/dockcast/dockcast/gateway/dockerapi"
	"github.com/dockcast/dockcast/gateway/hub"
	"github.com/dockcast/dockcast/gateway/metrics"
	"github.com/dockcast/dockcast/gateway/replay"
	"github.com/dockcast/dockcast/gateway/snapshot"
	"github.com/dockcast/dockcast/gateway/sse"
	"github.com/dockcast/dockcast/gateway/web"
	"github.com/dockcast/dockcast/gateway/ws"
	"github.com/dockcast/dockcast/shared/backoff"
)

// Limits on a request.
const (
	// MaxURLBytes bounds a request's URL (414 beyond).
	MaxURLBytes = 8 << 10
	// MaxHeaderBytes bounds a request's header, request line included
	// (431 beyond; Go's default is 1 MiB).
	MaxHeaderBytes = 16 << 10
)

// Options tune the server; zero values take the defaults.
type Options struct {
	WS ws.Options
	// SSE tunes /sse (its KeepAlive is the comment interval).
	SSE sse.Options
	// Client sizes each client's queue; its Credits follow WS.
	Client client.Options
	// AuthLimit bounds failed token checks per address.
	AuthLimit AuthLimit
	// Version is the gateway's version, in Docker's /version (default "dev").
	Version string
}

// Deps are the parts the server serves from.
type Deps struct {
	Hub      *hub.Hub
	Replayer *replay.Replayer
	// Snapshot takes the container states for snapshot=1 (nil: refused).
	Snapshot *snapshot.Source
	Metrics  *metrics.Metrics
	// NATSConnected reports the NATS connection state, for /readyz.
	NATSConnected func() bool
	Options       Options
}

// Server is the gateway's HTTP handler.
type Server struct {
	log        *slog.Logger
	cfg        config.Config
	deps       Deps
	clientOpts client.Options
	mux        *http.ServeMux
	ws         *ws.Transport
	docker     http.Handler // Docker's Engine API paths
	sse        *sse.Transport
	tokens     atomic.Pointer[auth.Tokens]
	perAddr    *perAddr
	authLimit  *authLimiter
	filters    sharedFilters
	active     atomic.Int64
	closing    atomic.Bool
	ctx        context.Context // replays; cancelled when Shutdown ends
	cancel     context.CancelFunc
	wg         sync.WaitGroup // connections and replays
	clients    sync.Map       // *client.Client -> *Admitted: connected clients
}

// NewServer builds the handler.
func NewServer(log *slog.Logger, cfg config.Config, deps Deps) *Server {
	o := deps.Options
	s := &Server{log: log.With("component", "server"), cfg: cfg, deps: deps, mux: http.NewServeMux(),
		perAddr: newPerAddr(max(cfg.MaxClientsPerIP, 1)), authLimit: newAuthLimiter(o.AuthLimit)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if cfg.Tokens != nil {
		s.tokens.Store(cfg.Tokens)
	}
	s.ws = ws.New(log, o.WS, ws.Hooks{Connected: s.connected, Disconnected: s.disconnected, Written: func(frames, n int) {
		if deps.Metrics != nil {
			deps.Metrics.MessagesSent.Add(float64(frames))
			deps.Metrics.BytesSent.Add(float64(n))
		}
	}})
	s.sse = sse.NewTransport(log, o.SSE, sse.Hooks{Connected: s.connected, Disconnected: s.disconnected, Written: func(frames, n int) {
		if deps.Metrics != nil {
			deps.Metrics.MessagesSent.Add(float64(frames))
			deps.Metrics.BytesSent.Add(float64(n))
		}
	}})
	s.clientOpts = o.Client
	s.clientOpts.Credits = s.ws.Credits()
	if deps.Hub != nil && s.clientOpts.Backlog == nil {
		s.clientOpts.Backlog = deps.Hub
	}
	if deps.Metrics != nil && s.clientOpts.OnLag == nil {
		s.clientOpts.OnLag = deps.Metrics.Lagging.Inc
	}
	s.clientOpts = s.clientOpts.Defaults()

	s.mux.Handle("GET /", web.Handler())
	s.mux.HandleFunc("GET /ws", s.serveWS)
	s.mux.HandleFunc("GET /sse", s.serveSSE)
	s.docker = s.dockerAPI(o.Version)
	s.health(s.mux)
	if deps.Metrics != nil && cfg.AdminAddr == "" {
		s.mux.Handle("GET /metrics", deps.Metrics.Handler())
	}
	return s
}

func (s *Server) health(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.readyz)
}

// AdminHandler serves /metrics, /healthz and /readyz, for
// GATEWAY_ADMIN_ADDR.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	if s.deps.Metrics != nil {
		mux.Handle("GET /metrics", s.deps.Metrics.Handler())
	}
	s.health(mux)
	return mux
}

// ServeHTTP serves every route.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	headerRead(r)
	if len(r.RequestURI) > MaxURLBytes {
		s.count("", "uri_too_long")
		http.Error(w, fmt.Sprintf("request URL longer than %d bytes", MaxURLBytes), http.StatusRequestURITooLong)
		return
	}
	if dockerapi.IsAPIPath(r.URL.Path) {
		s.docker.ServeHTTP(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// ConfigureHTTP sets the limits of the http.Server serving the gateway:
// header size and read timeouts, and the ConnContext of Guard.
func ConfigureHTTP(hs *http.Server) {
	hs.MaxHeaderBytes = MaxHeaderBytes
	hs.ReadHeaderTimeout = 10 * time.Second
	hs.ReadTimeout = 30 * time.Second
	hs.WriteTimeout = 30 * time.Second
	hs.IdleTimeout = time.Minute
	hs.ConnContext = ConnContext
}

// Clients is the number of client connections being served.
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

func (s *Server) count(authReason, limitReason string) {
	if s.deps.Metrics == nil {
		return
	}
	if authReason != "" {
		s.deps.Metrics.AuthFailures.WithLabelValues(authReason).Inc()
	}
	if limitReason != "" {
		s.deps.Metrics.Refused.WithLabelValues(limitReason).Inc()
	}
}

// refuse answers a refused request.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, ref *Refusal) {
	s.count(ref.Auth, ref.Limit)
	switch {
	case ref.Status == http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="dockcast"`)
	case ref.RetryAfter > 0:
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(ref.RetryAfter.Round(time.Second)/time.Second))))
	}
	s.log.Debug("request refused", "remote", r.RemoteAddr, "status", ref.Status, "reason", ref.Reason)
	http.Error(w, ref.Reason, ref.Status)
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	a, ref := s.Admit(r)
	if ref != nil {
		s.refuse(w, r, ref)
		return
	}
	s.wg.Add(1)
	spec := a.Spec
	spec.Filter, spec.Subjects = s.shareSpecFilter(spec.Filter, spec.Subjects)
	spec.OnSlow = s.onSlow(a.Peer)
	opts := s.clientOpts
	opts.Batch = a.Query.Batch
	c := client.New(spec, opts)
	// connected takes the admission out of clients once it has read the
	// query: what stays for the connection's life is the client and its
	// slots (release), not the admission.
	s.clients.Store(c, a)
	release := a.takeRelease()
	// The connection outlives this handler (ws.Serve): ended releases it.
	ended := func() {
		s.clients.Delete(c)
		s.wg.Done()
		release()
	}
	// A tokens file reloaded since admission may have revoked the token:
	// ReloadTokens did not see this client yet.
	if cur := s.tokens.Load(); cur != a.tokens && !s.stillGranted(cur, c) {
		s.refuse(w, r, &Refusal{Status: http.StatusUnauthorized, Auth: "invalid_token", Reason: "invalid token"})
		ended()
		return
	}
	if err := s.ws.Serve(w, r, c, ended); err != nil {
		s.log.Debug("websocket upgrade", "remote", r.RemoteAddr, "err", err)
	}
}

// connected starts a client whose transport is attached: live at once,
// or through a replay.
func (s *Server) connected(c *client.Client) {
	if s.deps.Metrics != nil {
		s.deps.Metrics.Clients.Inc()
	}
	if s.closing.Load() {
		c.End(client.Shutdown, "gateway shutting down")
		return
	}
	v, ok := s.clients.Load(c)
	if !ok {
		return
	}
	a, ok := v.(*Admitted)
	if !ok { // started already (cannot be: a transport connects once)
		return
	}
	q := a.Query
	// From here the client is all a connection needs: drop the admission
	// (its query, token parameter, peer) for the connection's life.
	s.clients.CompareAndSwap(c, v, started{})
	if q.Snapshot && !q.Replay() { // (an SSE reconnect resumes from its Last-Event-ID instead)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.snapshot(c, q)
		}()
		return
	}
	if !q.Replay() {
		s.deps.Hub.JoinLive(c)
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.deps.Replayer.Run(s.ctx, c, replay.Request{FromSeq: q.FromSeq, Epoch: q.Epoch, Since: q.Since})
	}()
}

// started is the value of a client in Server.clients once connected has
// read its admission.
type started struct{}

// snapshot sends c the container states its filter selects, then the
// events after them (package snapshot); a failing snapshot (NATS away) is
// retried, as replay turns are, until the client leaves.
func (s *Server) snapshot(c *client.Client, q Query) {
	ctx, cancel := c.Context(s.ctx)
	defer cancel()
	if s.deps.Snapshot == nil {
		c.End(client.Shutdown, "snapshot=1 is not available on this gateway")
		return
	}
	sel, err := snapshot.Selection(q.Filter)
	if err != nil { // cannot be: the terms were parsed already
		s.log.Error("snapshot selection", "err", err)
		c.End(client.Shutdown, "snapshot: "+err.Error())
		return
	}
	may := func(subj string) bool {
		return c.Spec.Patterns == nil || auth.Allowed(c.Spec.Patterns, []string{subj}) == nil
	}
	retry := backoff.New(250*time.Millisecond, 5*time.Second)
	for {
		snap, err := s.deps.Snapshot.Take(ctx, sel, may)
		var frames [][]byte
		if err == nil {
			frames, err = snap.Frames()
		}
		if err == nil {
			_ = s.deps.Replayer.Run(ctx, c, replay.Request{FromSeq: snap.Seq + 1, Epoch: snap.Epoch, Prelude: frames})
			return
		}
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("snapshot failed; retrying", "err", err)
		if retry.Wait(ctx) != nil {
			return
		}
	}
}

func (s *Server) disconnected(c *client.Client) {
	s.deps.Hub.Leave(c)
	if s.deps.Metrics != nil {
		s.deps.Metrics.Clients.Dec()
	}
}

// stillGranted reports whether c's token is in tokens with the same rights.
func (s *Server) stillGranted(tokens *auth.Tokens, c *client.Client) bool {
	if tokens == nil {
		return c.Spec.Token == auth.ID{}
	}
	g, ok := tokens.ByID(c.Spec.Token)
	return ok && slices.Equal(g.Patterns, c.Spec.Patterns)
}

// ReloadTokens reads GATEWAY_TOKENS_FILE again (on SIGHUP). When it is
// valid it replaces the tokens, and every session whose token is gone, or
// whose token's patterns changed, ends with token_revoked (1008); when it
// is not, the previous tokens stay and the error says why.
func (s *Server) ReloadTokens() error {
	if s.cfg.TokensFile == "" {
		return errors.New("no GATEWAY_TOKENS_FILE to reload")
	}
	t, err := auth.LoadFile(s.cfg.TokensFile)
	if err != nil {
		if s.deps.Metrics != nil {
			s.deps.Metrics.TokenReloads.WithLabelValues("error").Inc()
		}
		return fmt.Errorf("GATEWAY_TOKENS_FILE not reloaded, the previous tokens stay in force: %w", err)
	}
	s.tokens.Store(t)
	revoked := 0
	s.clients.Range(func(k, _ any) bool {
		c := k.(*client.Client)
		if s.stillGranted(t, c) {
			return true
		}
		reason := "the token was removed from the gateway's tokens file"
		if _, ok := t.ByID(c.Spec.Token); ok {
			reason = "the token's rights changed in the gateway's tokens file"
		}
		c.End(client.TokenRevoked, reason)
		revoked++
		return true
	})
	if s.deps.Metrics != nil {
		s.deps.Metrics.TokenReloads.WithLabelValues("ok").Inc()
		s.deps.Metrics.Revoked.Add(float64(revoked))
	}
	s.log.Info("tokens file reloaded", "tokens", t.Len(), "sessions_revoked", revoked)
	return nil
}

// Drain refuses new clients and ends every client (a 1001 close; the end
// of an /sse or /events response), without waiting: call it before the
// http.Server's Shutdown, which waits for responses still streaming.
func (s *Server) Drain() {
	s.closing.Store(true)
	s.clients.Range(func(k, _ any) bool {
		k.(*client.Client).End(client.Shutdown, "gateway shutting down")
		return true
	})
}

// Shutdown refuses new clients, sends every client a 1001 close and waits
// until they are gone or ctx ends; then it closes what is left.
func (s *Server) Shutdown(ctx context.Context) {
	s.Drain()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.ws.Abort()
		s.cancel()
		<-done
	}
	s.cancel()
}
