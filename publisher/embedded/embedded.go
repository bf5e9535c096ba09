package embedded

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options configure the embedded server.
type Options struct {
	Host     string // listen host; empty means every interface
	Port     int    // listen port; 0 picks a free one
	StoreDir string // JetStream storage directory, created if missing
	// Sync is JetStream's sync_interval (PUBLISHER_EMBEDDED_SYNC): 0 means
	// "always", an fsync after every write, so that an acknowledged event
	// survives a power failure; otherwise the interval between fsyncs
	// (nats-server's own default is 2 minutes).
	Sync time.Duration
	// MaxBatch is the largest atomic batch the server accepts
	// (DefaultMaxBatch when 0); the writer's batches are bounded by it.
	MaxBatch int
	Logger   *slog.Logger
	// ReadyTimeout bounds the wait for the server to accept clients (default 10s).
	ReadyTimeout time.Duration
}

// DefaultMaxBatch is the embedded server's atomic batch limit: four times
// nats-server's default, since every batch of a single-server file stream
// is staged in a store of its own and synced, so fewer, larger batches
// store faster (measured in docs/benchmarks.md).
const DefaultMaxBatch = 4000

// Server is a running embedded NATS server.
type Server struct {
	ns       *server.Server
	maxBatch int
}

// MaxBatch is the largest atomic batch the server accepts.
func (s *Server) MaxBatch() int { return s.maxBatch }

// Start creates the store directory and starts a JetStream-enabled server.
func Start(o Options) (*Server, error) {
	if err := os.MkdirAll(o.StoreDir, 0o750); err != nil {
		return nil, fmt.Errorf("embedded nats: create data dir: %w", err)
	}
	port := o.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	so := &server.Options{
		ServerName: "dockcast-publisher",
		Host:       o.Host,
		Port:       port,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		NoSigs:     true,
	}
	if o.Sync <= 0 {
		so.SyncAlways = true
	} else {
		so.SyncInterval = o.Sync
	}
	return launch(o, so)
}

// launch starts a server with so (and the batch limit of o) and waits
// until it accepts clients.
func launch(o Options, so *server.Options) (*Server, error) {
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	so.JetStreamLimits.MaxBatchSize = o.MaxBatch
	ns, err := server.NewServer(so)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	if o.Logger != nil {
		ns.SetLoggerV2(&logger{o.Logger.With("component", "nats-server")}, false, false, false)
	}
	go ns.Start()
	wait := o.ReadyTimeout
	if wait == 0 {
		wait = 10 * time.Second
	}
	if !ns.ReadyForConnections(wait) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("embedded nats: not ready for connections after %v (is %s:%d free?)", wait, o.Host, o.Port)
	}
	return &Server{ns: ns, maxBatch: o.MaxBatch}, nil
}

// SyncAlways reports whether the server fsyncs every write, and
// SyncInterval its interval otherwise (what the running server uses).
func (s *Server) SyncAlways() bool { return s.ns.JetStreamConfig().SyncAlways }

// SyncInterval is the server's JetStream sync interval (0 with SyncAlways).
func (s *Server) SyncInterval() time.Duration { return s.ns.JetStreamConfig().SyncInterval }

// ClientURL is the URL clients use to connect.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// Shutdown stops the server and waits for it.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// logger adapts slog to the nats-server logger.
type logger struct{ l *slog.Logger }

func (l *logger) Noticef(format string, v ...any) { l.l.Debug(fmt.Sprintf(format, v...)) }
func (l *logger) Warnf(format string, v ...any)   { l.l.Warn(fmt.Sprintf(format, v...)) }
func (l *logger) Fatalf(format string, v ...any)  { l.l.Error(fmt.Sprintf(format, v...)) }
func (l *logger) Errorf(format string, v ...any)  { l.l.Error(fmt.Sprintf(format, v...)) }
func (l *logger) Debugf(format string, v ...any)  { l.l.Debug(fmt.Sprintf(format, v...)) }
func (l *logger) Tracef(format string, v ...any)  { l.l.Debug(fmt.Sprintf(format, v...)) }
