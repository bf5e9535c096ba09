// Package app runs the whole gateway: NATS connection, live feed (hub),
// replays, HTTP server, until its context ends; then it shuts down in
// reverse order. Tests call Run in-process.
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
	"github.com/dockcast/dockcast/shared/natsutil"
)

// Options tune Run beyond the environment; zero values take defaults.
type Options struct {
	Server server.Options
	// ReplayConcurrency bounds replays running at once (default 32).
	ReplayConcurrency int
	// HubCheckInterval is how often the live feed checks the stream (default 2s).
	HubCheckInterval time.Duration
	// ShutdownTimeout bounds the graceful shutdown (default 10s).
	ShutdownTimeout time.Duration
	// Listening, if set, is called with the bound address before serving.
	Listening func(addr net.Addr)
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
	log.Info("gateway access: "+cfg.Access(), "allowed_origins", cfg.Origins, "max_clients", cfg.MaxClients)

	m := metrics.New()
	var h *hub.Hub
	var hmu sync.Mutex
	nc, err := natsutil.Connect(natsutil.Options{
		URL: cfg.NATSURL, Creds: cfg.NATSCreds, Name: "dockcast-gateway", Logger: log.With("component", "nats"),
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
	hmu.Unlock()
	rp := replay.New(js, cfg.Stream, h, o.ReplayConcurrency, log, m)
	srv := server.NewServer(log, cfg, server.Deps{
		Hub: h, Replayer: rp, Metrics: m, Options: o.Server,
		NATSConnected: func() bool { return nc.Status() == nats.CONNECTED },
	})

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s (GATEWAY_ADDR): %w", cfg.Addr, err)
	}
	log.Info("gateway listening", "addr", ln.Addr().String(), "stream", cfg.Stream, "nats", cfg.NATSURL)
	if o.Listening != nil {
		o.Listening(ln.Addr())
	}
	httpSrv := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}

	hctx, hcancel := context.WithCancel(context.Background())
	defer hcancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = h.Run(hctx)
	}()
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpSrv.Serve(ln) }()

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runErr = fmt.Errorf("http server: %w", err)
	}
	log.Info("gateway shutting down", "clients", srv.Clients())
	sctx, scancel := context.WithTimeout(context.Background(), o.ShutdownTimeout)
	defer scancel()
	if err := httpSrv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("http shutdown", "err", err)
	}
	srv.Shutdown(sctx)
	hcancel()
	wg.Wait()
	log.Info("gateway stopped")
	return runErr
}
