// Package app runs the whole gateway: NATS connection, live feed (hub),
// replays, HTTP server (and the admin listener when GATEWAY_ADMIN_ADDR is
// set), until its context ends; then it shuts down in reverse order.
// Tests call Run in-process.
//
// Entry point: Run.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/gateway/config"
	"github.com/dockcast/dockcast/gateway/hub"
	"github.com/dockcast/dockcast/gateway/metrics"
	"github.com/dockcast/dockcast/gateway/replay"
	"github.com/dockcast/dockcast/gateway/server"
	"github.com/dockcast/dockcast/gateway/snapshot"
	"github.com/dockcast/dockcast/shared/natsutil"
)

// Options tune Run beyond the environment; zero values take defaults.
type Options struct {
	Server server.Options
	// ReplayConcurrency bounds replay turns running at once (default 32).
	ReplayConcurrency int
	// ReplayTurnMessages is a replay's budget of messages per turn
	// (default 2048).
	ReplayTurnMessages int
	// RecentKept is how many of the stream's last messages the live feed
	// keeps in memory (default hub.DefaultRecentKept).
	RecentKept int
	// HubCheckInterval is how often the live feed checks the stream (default 2s).
	HubCheckInterval time.Duration
	// StatusStaleAfter is how long a node's status may go unwritten before
	// clients are told it is stale (default status.StaleAfter, 45s).
	StatusStaleAfter time.Duration
	// MaxHandshakes bounds connections still in their TCP/HTTP handshake
	// (default 1024); past it the oldest is closed.
	MaxHandshakes int
	// ShutdownTimeout bounds the graceful shutdown (default 10s).
	ShutdownTimeout time.Duration
	// Listening, if set, is called with the bound address before serving;
	// AdminListening likewise for GATEWAY_ADMIN_ADDR.
	Listening      func(addr net.Addr)
	AdminListening func(addr net.Addr)
	// Reload, when it delivers, re-reads GATEWAY_TOKENS_FILE (SIGHUP).
	Reload <-chan struct{}
	// Listener, if set, is served instead of listening on GATEWAY_ADDR.
	Listener net.Listener
	// SnapshotHook, if set, is called at each stage of a snapshot=1
	// (snapshot.Source.Hook; tests make a snapshot slow with it).
	SnapshotHook func(stage string)
}

// Run serves until ctx ends. Only a failure to listen is an error: NATS
// is reconnected forever.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger, o Options) error {
	if o.ReplayConcurrency <= 0 {
		o.ReplayConcurrency = 32
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 10 * time.Second
	}
	log.Info("gateway access: "+cfg.Access(), "allowed_origins", cfg.Origins, "max_clients", cfg.MaxClients,
		"max_clients_per_ip", cfg.MaxClientsPerIP, "trusted_proxies", cfg.TrustedProxies, "nats_tls", cfg.NATSTLS.String())

	m := metrics.New()
	var h *hub.Hub
	var hmu sync.Mutex
	nc, err := natsutil.Connect(natsutil.Options{
		URL: cfg.NATSURL, Creds: cfg.NATSCreds, TLS: cfg.NATSTLS, Name: "dockcast-gateway", Logger: log.With("component", "nats"),
		OnChange: func(up bool) {
			hmu.Lock()
			defer hmu.Unlock()
			if h != nil {
				h.Reconnected(up)
			}
		},
	})
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	hmu.Lock()
	h = hub.New(js, cfg.Stream, log, m)
	if o.HubCheckInterval > 0 {
		h.CheckInterval = o.HubCheckInterval
	}
	h.StatusStaleAfter = o.StatusStaleAfter
	if o.RecentKept > 0 {
		h.RecentKept = o.RecentKept
	}
	hmu.Unlock()
	rp := replay.New(js, cfg.Stream, h, o.ReplayConcurrency, log, m)
	if o.ReplayTurnMessages > 0 {
		rp.TurnMessages = o.ReplayTurnMessages
	}
	snap := &snapshot.Source{JS: js, Stream: cfg.Stream, Log: log.With("component", "snapshot"), Hook: o.SnapshotHook}
	srv := server.NewServer(log, cfg, server.Deps{
		Hub: h, Replayer: rp, Snapshot: snap, Metrics: m, Options: o.Server,
		NATSConnected: func() bool { return nc.Status() == nats.CONNECTED },
	})

	ln := o.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Addr); err != nil {
			return fmt.Errorf("listen on %s (GATEWAY_ADDR): %w", cfg.Addr, err)
		}
	}
	var servers []*http.Server
	serveErr := make(chan error, 2)
	serve := func(ln net.Listener, handler http.Handler) {
		hs := &http.Server{Handler: handler, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
		server.ConfigureHTTP(hs)
		servers = append(servers, hs)
		gl := server.Guard(ln, o.MaxHandshakes, func() { m.Refused.WithLabelValues("handshake").Inc() })
		go func() { serveErr <- hs.Serve(gl) }()
	}
	if cfg.AdminAddr != "" {
		aln, err := net.Listen("tcp", cfg.AdminAddr)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("listen on %s (GATEWAY_ADMIN_ADDR): %w", cfg.AdminAddr, err)
		}
		log.Info("gateway admin listening", "addr", aln.Addr().String())
		if o.AdminListening != nil {
			o.AdminListening(aln.Addr())
		}
		serve(aln, srv.AdminHandler())
	}
	log.Info("gateway listening", "addr", ln.Addr().String(), "stream", cfg.Stream, "nats", cfg.NATSURL)
	if o.Listening != nil {
		o.Listening(ln.Addr())
	}

	hctx, hcancel := context.WithCancel(context.Background())
	defer hcancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = h.Run(hctx)
	}()
	serve(ln, srv)

	var runErr error
	for runErr == nil && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case err := <-serveErr:
			runErr = fmt.Errorf("http server: %w", err)
		case <-o.Reload:
			if err := srv.ReloadTokens(); err != nil {
				log.Error("SIGHUP", "err", err)
			}
		}
	}
	log.Info("gateway shutting down", "clients", srv.Clients())
	sctx, scancel := context.WithTimeout(context.Background(), o.ShutdownTimeout)
	defer scancel()
	srv.Drain() // streaming responses (/sse, /events) end before the HTTP servers wait for them
	for _, hs := range servers {
		if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("http shutdown", "err", err)
		}
	}
	srv.Shutdown(sctx)
	hcancel()
	wg.Wait()
	log.Info("gateway stopped")
	return runErr
}
