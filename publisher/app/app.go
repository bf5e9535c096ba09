package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/docker/client"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/publisher/config"
	"github.com/dockcast/dockcast/publisher/docker"
	"github.com/dockcast/dockcast/publisher/embedded"
	"github.com/dockcast/dockcast/publisher/metrics"
	"github.com/dockcast/dockcast/publisher/stream"
	shared "github.com/dockcast/dockcast/shared/config"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/natsutil"
	"github.com/dockcast/dockcast/shared/status"
)

// Run runs the publisher until ctx ends. A configuration problem is
// returned as a [shared.Problems] (one "VARIABLE: problem" line each);
// main exits with status 2 for it.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 1 {
		return shared.Problems{fmt.Sprintf("%s: unexpected arguments %q (the publisher is configured by environment variables)", "ARGS", args[1:])}
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	a := &App{Config: cfg, Getenv: getenv, Log: cfg.NewLogger(stderr)}
	return a.Run(ctx)
}

// App is one publisher. Config and Log are required; the other fields
// have defaults.
type App struct {
	Config config.Config
	Log    *slog.Logger
	// Getenv reads Docker's variables (DOCKER_HOST, …); default: none set.
	Getenv func(string) string

	QueueCapacity int           // stream.DefaultQueueCapacity
	Window        int           // stream.DefaultWindow
	AckTimeout    time.Duration // stream.DefaultAckTimeout
	DrainTimeout  time.Duration // 30s: how long shutdown waits for the queue to drain
	// DockerBackoffMin/Max bound the Docker reconnect backoff.
	DockerBackoffMin, DockerBackoffMax time.Duration
	// PingInterval is how often a live Docker subscription pings the engine.
	PingInterval time.Duration
	// Published is called for every acknowledged event (see stream.Writer).
	Published func(e event.Event, duplicate bool)
	// Listening, if set, is called with the HTTP server's address.
	Listening func(addr string)

	Metrics *metrics.Metrics // set by Run
	Queue   *stream.Queue    // set by Run

	dockerUp, natsUp, resumed atomic.Bool
	nodeName                  atomic.Value // string

	// runWriter runs the writer (tests inject failures; default: w.Run).
	runWriter func(ctx context.Context, w *stream.Writer) error
}

// Run runs the publisher until ctx ends, then shuts down gracefully.
func (a *App) Run(ctx context.Context) error {
	cfg := a.Config
	log := a.Log
	if a.Getenv == nil {
		a.Getenv = func(string) string { return "" }
	}
	if a.DrainTimeout <= 0 {
		a.DrainTimeout = 30 * time.Second
	}
	cli, err := a.dockerClient()
	if err != nil {
		return err
	}
	defer cli.Close()

	// The embedded server starts first and stops last.
	natsURL := cfg.NATSURL
	if cfg.Embedded() {
		host, port, _ := config.SplitHostPort(cfg.EmbeddedNATS)
		ns, err := embedded.Start(embedded.Options{Host: host, Port: port, StoreDir: cfg.DataDir, Logger: log})
		if err != nil {
			return fmt.Errorf("start embedded nats on %s: %w", cfg.EmbeddedNATS, err)
		}
		defer ns.Shutdown()
		natsURL = ns.ClientURL()
		log.Info("embedded nats server running", "url", natsURL, "data_dir", cfg.DataDir)
	}

	a.Queue = stream.NewQueue(a.QueueCapacity)
	a.Metrics = metrics.New(func() float64 { return float64(a.Queue.Len()) })
	m := a.Metrics

	var natsWasDown atomic.Bool
	nc, err := natsutil.Connect(natsutil.Options{
		URL: natsURL, Creds: cfg.NATSCreds, Name: "dockcast-publisher", Logger: log.With("component", "nats"),
		OnChange: func(up bool) {
			a.natsUp.Store(up)
			if !up {
				natsWasDown.Store(true)
			} else if natsWasDown.Swap(false) {
				m.Reconnects.WithLabelValues("nats").Inc()
			}
		},
	})
	if err != nil {
		return err
	}
	defer nc.Close()
	if nc.IsConnected() {
		a.natsUp.Store(true)
	}

	// HTTP first, so /healthz answers while we wait for NATS.
	srv, ln, err := a.httpServer()
	if err != nil {
		return err
	}
	httpDone := make(chan error, 1)
	go func() { httpDone <- srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-httpDone
	}()
	log.Info("http listening", "addr", ln.Addr().String())
	if a.Listening != nil {
		a.Listening(ln.Addr().String())
	}

	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	st, kv, err := a.setupStream(ctx, js)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}

	statusW := &stream.StatusWriter{KV: kv, Log: log.With("component", "status")}
	// The status and the writer outlive ctx (they drain at shutdown); the
	// watcher stops with ctx, or earlier when the writer fails.
	statusCtx, stopStatus := context.WithCancel(context.WithoutCancel(ctx))
	defer stopStatus()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); statusW.Run(statusCtx) }()

	writer := &stream.Writer{
		Conn: nc, Queue: a.Queue, Metrics: m, Log: log.With("component", "writer"),
		Window: a.Window, AckTimeout: a.AckTimeout, Published: a.Published,
	}
	writerCtx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWriter()
	runWriter := a.runWriter
	if runWriter == nil {
		runWriter = func(ctx context.Context, w *stream.Writer) error { return w.Run(ctx) }
	}
	writerDone := make(chan error, 1)
	go func() { writerDone <- runWriter(writerCtx, writer) }()

	watcher := &docker.Watcher{
		Client: cli, Node: cfg.Node, Filter: cfg.EngineFilter(), Queue: a.Queue, Metrics: m,
		Log: log.With("component", "docker"),
		Resume: func(ctx context.Context, node string, window time.Duration) ([]event.Event, error) {
			return stream.RecentEvents(ctx, st, node, window)
		},
		Status: func(s status.Status) {
			a.dockerUp.Store(s.Docker == status.Connected)
			a.nodeName.Store(s.Node)
			statusW.Set(s)
		},
		Ready:      func(r bool) { a.resumed.Store(r) },
		BackoffMin: a.DockerBackoffMin, BackoffMax: a.DockerBackoffMax, PingInterval: a.PingInterval,
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	watchDone := make(chan error, 1)
	go func() { watchDone <- watcher.Run(watchCtx) }()

	// Shutdown, in reverse order: stop reading Docker, drain the queue,
	// write the status, close NATS, stop the embedded server (deferred).
	var werr error
	select {
	case <-ctx.Done():
		<-watchDone
	case werr = <-writerDone: // only on an internal failure
		log.Error("writer stopped", "err", werr)
		if werr == nil { // cannot happen before the queue is closed; never report success
			werr = errors.New("writer stopped unexpectedly")
		}
		werr = fmt.Errorf("writer: %w", werr)
		stopWatch()
	}
	a.resumed.Store(false)
	a.Queue.Close()
	if werr == nil {
		log.Info("shutting down: draining the queue", "queue", a.Queue.Len(), "deadline", a.DrainTimeout)
		timer := time.AfterFunc(a.DrainTimeout, stopWriter)
		werr = <-writerDone
		timer.Stop()
		if werr != nil {
			log.Error("queue not drained before the deadline", "left", a.Queue.Len(), "err", werr)
			werr = fmt.Errorf("drain queue: %d events not published: %w", a.Queue.Len(), werr)
		}
	} else {
		<-watchDone
	}
	if node := watcher.NodeName(); node != "" {
		statusW.Set(stoppedStatus(node))
	}
	stopStatus()
	wg.Wait()
	if err := nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		log.Debug("nats drain", "err", err)
	}
	log.Info("publisher stopped")
	return werr
}

// setupStream waits for NATS and ensures the stream and the status bucket.
func (a *App) setupStream(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, jetstream.KeyValue, error) {
	cfg := a.Config
	want := natsutil.StreamConfig(cfg.Stream, cfg.MaxAge, int64(cfg.MaxBytes), cfg.Replicas)
	wait := 250 * time.Millisecond
	for {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		st, err := natsutil.EnsureStream(sctx, js, want, a.Log)
		var kv jetstream.KeyValue
		if err == nil {
			kv, err = natsutil.EnsureStatusBucket(sctx, js, cfg.Replicas)
		}
		cancel()
		if err == nil {
			return st, kv, nil
		}
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		if isPermanent(err) {
			return nil, nil, err
		}
		a.Log.Warn("waiting for JetStream", "err", err, "wait", wait)
		if stream.Sleep(ctx, stream.Jitter(wait)) != nil {
			return nil, nil, ctx.Err()
		}
		wait = min(2*wait, 10*time.Second)
	}
}

// isPermanent reports JetStream API errors that retrying will not fix:
// a stream name in use with another configuration (10058), subjects that
// overlap another stream (10065), an invalid configuration (10052),
// replicas on a server that is not clustered (10074).
func isPermanent(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case 10058, 10065, 10052, 10074:
		return true
	}
	return false
}

func (a *App) dockerClient() (*client.Client, error) {
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if h := a.Getenv("DOCKER_HOST"); h != "" {
		if err := checkDockerHost(h); err != nil {
			return nil, shared.Problems{"DOCKER_HOST: " + err.Error()}
		}
		opts = append(opts, client.WithHost(h))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, shared.Problems{"DOCKER_HOST: " + err.Error()}
	}
	return cli, nil
}

func checkDockerHost(h string) error {
	u, err := url.Parse(h)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %v", h, err)
	}
	switch u.Scheme {
	case "unix", "npipe":
		if u.Path == "" {
			return fmt.Errorf("%q: no socket path", h)
		}
	case "tcp", "http", "https":
		if u.Host == "" {
			return fmt.Errorf("%q: no host", h)
		}
	case "ssh":
		return fmt.Errorf("%q: ssh is not supported; forward the socket (ssh -NL /tmp/docker.sock:/var/run/docker.sock host) and use unix:///tmp/docker.sock", h)
	default:
		return fmt.Errorf("%q: scheme must be unix, tcp, http or https", h)
	}
	return nil
}

func (a *App) httpServer() (*http.Server, net.Listener, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if reason := a.notReady(); reason != "" {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, reason+"\n")
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	mux.Handle("GET /metrics", a.Metrics.Handler())
	ln, err := net.Listen("tcp", a.Config.HTTPAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen on PUBLISHER_HTTP_ADDR %s: %w", a.Config.HTTPAddr, err)
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.Log.Handler(), slog.LevelWarn),
	}
	return srv, ln, nil
}

// notReady is "" when ready, else the reason.
func (a *App) notReady() string {
	var why []string
	if !a.natsUp.Load() {
		why = append(why, "nats disconnected")
	}
	if !a.dockerUp.Load() {
		why = append(why, "docker disconnected")
	}
	if !a.resumed.Load() {
		why = append(why, "not following docker events (resuming)")
	}
	if len(why) == 0 {
		return ""
	}
	return "not ready: " + strings.Join(why, ", ")
}

// Ready reports what /readyz reports.
func (a *App) Ready() (bool, string) {
	r := a.notReady()
	return r == "", r
}

// Node is the node name in use ("" until known).
func (a *App) Node() string {
	s, _ := a.nodeName.Load().(string)
	return s
}

func stoppedStatus(node string) status.Status {
	return status.Status{Node: node, Docker: status.Disconnected, Error: "publisher stopped", Since: time.Now().UTC()}
}
