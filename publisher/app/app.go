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
	"golang.org/x/sync/errgroup"

	"github.com/dockcast/dockcast/publisher/config"
	"github.com/dockcast/dockcast/publisher/containerkv"
	"github.com/dockcast/dockcast/publisher/docker"
	"github.com/dockcast/dockcast/publisher/embedded"
	"github.com/dockcast/dockcast/publisher/history"
	"github.com/dockcast/dockcast/publisher/metrics"
	"github.com/dockcast/dockcast/publisher/queue"
	"github.com/dockcast/dockcast/publisher/statuskv"
	"github.com/dockcast/dockcast/publisher/stream"
	"github.com/dockcast/dockcast/shared/backoff"
	shared "github.com/dockcast/dockcast/shared/config"
	"github.com/dockcast/dockcast/shared/containerstate"
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
	tuneGC(getenv, int64(cfg.QueueMaxBytes), a.Log)
	return a.Run(ctx)
}

// App is one publisher. Config and Log are required; the other fields
// have defaults.
type App struct {
	Config config.Config
	Log    *slog.Logger
	// Getenv reads Docker's variables (DOCKER_HOST, …); default: none set.
	Getenv func(string) string

	AckTimeout   time.Duration // stream.DefaultAckTimeout
	DrainTimeout time.Duration // 30s: how long shutdown waits for the queue to drain
	// DockerBackoffMin/Max bound the Docker reconnect backoff.
	DockerBackoffMin, DockerBackoffMax time.Duration
	// PingInterval is how often a live Docker subscription pings the engine.
	PingInterval time.Duration
	// StatusRenew is how often the node's lease and status are rewritten
	// (statuskv.DefaultRenew).
	StatusRenew time.Duration
	// Stages run, in order, on every event between the Docker reader and
	// the writer, after the health-check tag (docker.HealthTagger); they
	// may wait (the reader never does).
	Stages []queue.Stage
	// Stored, if set, is called for every event stored, in stream order,
	// with its stream sequence (stream.Writer.Stored); it must not block.
	Stored func(seq uint64, it *queue.Item)
	// StatesPoll is how often an edge publisher folds the central stream
	// into the container states (default 2s).
	StatesPoll time.Duration
	// Listening, if set, is called with the HTTP server's address.
	Listening func(addr string)

	// Edge mode: HubWait bounds the wait for the leaf link at start
	// (DefaultHubWait), HubReconnect is the leaf's wait between attempts to
	// reach the hub (1 s), CentreEvery how often the node's source in the
	// central stream is checked (DefaultCentreEvery), LagEvery how often
	// the sourcing lag is read (DefaultLagEvery), HubPing how often a
	// silent leaf link is pinged (embedded.DefaultLeafPing).
	HubWait, HubReconnect, CentreEvery, LagEvery, HubPing time.Duration

	Metrics *metrics.Metrics // set by Run
	Queue   *queue.Queue     // set by Run: the queue the Docker reader fills

	maxBatch                  int // the writer's; 0: stream.DefaultMaxBatch
	dockerUp, natsUp, resumed atomic.Bool
	writer                    atomic.Pointer[stream.Writer]
	nodeName                  atomic.Value // string
}

// Run runs the publisher until ctx ends, then shuts down gracefully: it
// stops reading Docker, drains the queue (at most DrainTimeout), marks the
// node stopped in DOCKER_STATUS (releasing its lease), and closes NATS and
// the embedded server.
func (a *App) Run(ctx context.Context) error {
	cfg := a.Config
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
	a.Queue = queue.New(int64(cfg.QueueMaxBytes))
	a.Metrics = metrics.New(a.Queue)

	// The embedded server starts first and stops last. In edge mode its
	// JetStream domain is the node, so the node comes first.
	natsURL, node := cfg.NATSURL, ""
	var leaf *embedded.Server
	switch {
	case cfg.Edge():
		if node, err = a.node(ctx, cli); err != nil {
			return nil // ctx ended
		}
		if leaf, err = a.startEdgeServer(node); err != nil {
			return err
		}
		defer leaf.Shutdown()
		natsURL, a.maxBatch = leaf.ClientURL(), leaf.MaxBatch()
	case cfg.Embedded():
		host, port, _ := config.SplitHostPort(cfg.EmbeddedNATS)
		ns, err := embedded.Start(embedded.Options{Host: host, Port: port, StoreDir: cfg.DataDir, Sync: cfg.SyncInterval(), Logger: a.Log})
		if err != nil {
			return fmt.Errorf("start embedded nats on %s: %w", cfg.EmbeddedNATS, err)
		}
		defer ns.Shutdown()
		natsURL, a.maxBatch = ns.ClientURL(), ns.MaxBatch()
		a.Log.Info("embedded nats server running", "url", natsURL, "data_dir", cfg.DataDir, "sync", cfg.EmbeddedSync)
	}

	nc, err := a.connect(natsURL)
	if err != nil {
		return err
	}
	defer func() {
		if err := nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			a.Log.Debug("nats drain", "err", err)
		}
	}()

	// HTTP first, so /healthz answers while we wait for NATS and Docker.
	stopHTTP, err := a.serveHTTP()
	if err != nil {
		return err
	}
	defer stopHTTP()

	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	var out sink
	var key *statuskv.Key
	if cfg.Edge() {
		a.nodeName.Store(node)
		e, k, err := a.setupEdge(ctx, leaf, nc, js, node)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		out, key = e.sink(), k
	} else {
		st, kv, err := a.setupStream(ctx, js)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if node, err = a.node(ctx, cli); err != nil {
			return nil // ctx ended
		}
		a.nodeName.Store(node)
		key = &statuskv.Key{KV: kv, Node: node, Log: a.Log.With("component", "status"), Renew: a.StatusRenew}
		starting := status.Status{Docker: status.Disconnected, Error: "publisher starting", Since: time.Now().UTC()}
		if err := key.Acquire(ctx, starting); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		a.Log.Info("node lease taken", "node", node, "holder", key.Holder)
		want := a.streamConfig()
		out = sink{name: cfg.Stream, current: func() jetstream.Stream { return st }, central: js, missing: func(ctx context.Context) error {
			_, err := natsutil.EnsureSharedStream(ctx, js, want, cfg.Explicit(), a.Log)
			return err
		}}
	}
	return a.runStages(ctx, cli, out, key, node, nc)
}

// runStages runs the publisher's stages under one errgroup: the Docker
// reader, the optional ordered stages, the writer and the status key.
// Reading stops with ctx; the writer then drains the queue; the status key
// writes the node's "stopped" status last. A stage that fails (the lease
// taken by another publisher, a failing enrichment stage) stops all of
// them at once and is Run's error.
func (a *App) runStages(ctx context.Context, cli *client.Client, out sink, key *statuskv.Key, node string, nc *nats.Conn) error {
	cfg, log := a.Config, a.Log
	readCtx, stopRead := context.WithCancel(ctx)
	defer stopRead()
	writeCtx, stopWrite := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWrite()
	statusCtx, stopStatus := context.WithCancel(context.WithoutCancel(ctx))
	defer stopStatus()
	var failMu sync.Mutex
	var failure error
	fail := func(err error) {
		failMu.Lock()
		if failure == nil {
			failure = err
		}
		failMu.Unlock()
		stopRead()
		stopWrite()
	}

	// The health-check tag first: the ordered stage that may wait on a
	// container's inspect, between the reader and the writer.
	tagger := docker.NewHealthTagger(cli, log.With("component", "healthcheck"))
	stages := append([]queue.Stage{tagger.Stage}, a.Stages...)
	writeQueue := queue.New(int64(cfg.QueueMaxBytes) / 8)
	// The container states for list-then-watch, kept where the gateways
	// read: from what the writer stored (direct mode), or by folding the
	// central stream (edge mode: the writer's sequences are the local
	// stream's).
	stored := a.Stored
	keeper := &containerkv.Keeper{Node: node, Log: log.With("component", "containers"),
		Open: func(ctx context.Context) (jetstream.KeyValue, error) {
			return containerstate.EnsureBucket(ctx, out.central, cfg.Stream, cfg.Replicas)
		},
		OpenStream: func(ctx context.Context) (jetstream.Stream, error) { return out.central.Stream(ctx, cfg.Stream) },
	}
	if cfg.Edge() {
		keeper.Poll = a.statesPoll()
	} else {
		keeper.Stream = out.current()
		stored = keeper.Stored
		if a.Stored != nil {
			stored = func(seq uint64, it *queue.Item) {
				keeper.Stored(seq, it)
				a.Stored(seq, it)
			}
		}
	}
	writer := &stream.Writer{
		Conn: nc, Stream: out.name, Queue: writeQueue, Metrics: a.Metrics, Log: log.With("component", "writer"),
		AckTimeout: a.AckTimeout, Stored: stored, MaxBatch: a.maxBatch,
	}
	writer.StreamMissing = func(ctx context.Context) error {
		err := out.missing(ctx)
		if err == nil && out.renamed != nil {
			writer.Stream = out.renamed() // on the writer's goroutine, which calls StreamMissing
		}
		return err
	}
	a.writer.Store(writer)
	watcher := &docker.Watcher{
		Client: cli, Node: node, Filter: cfg.EngineFilter(), Queue: a.Queue, Metrics: a.Metrics,
		Log: log.With("component", "docker"),
		Resume: func(ctx context.Context, node string, window time.Duration, atLeast int) ([]event.Event, error) {
			return history.Recent(ctx, out.current(), node, window, atLeast)
		},
		Status: func(s status.Status) {
			a.dockerUp.Store(s.Docker == status.Connected)
			key.Set(s)
		},
		Ready:      func(r bool) { a.resumed.Store(r) },
		BackoffMin: a.DockerBackoffMin, BackoffMax: a.DockerBackoffMax, PingInterval: a.PingInterval,
	}

	var g errgroup.Group
	drained := make(chan struct{})
	g.Go(func() error { // 1. the Docker reader, until ctx ends
		defer a.Queue.Close()
		return watcher.Run(readCtx)
	})
	g.Go(func() error { // 2. ordered stages: the health-check tag, then a.Stages
		err := queue.Relay(writeCtx, a.Queue, writeQueue, stages...)
		if err != nil && writeCtx.Err() == nil {
			err = fmt.Errorf("enrichment: %w", err)
			fail(err)
			return err
		}
		return nil
	})
	g.Go(func() error { // 3. the writer, until the queue is drained
		defer close(drained)
		err := writer.Run(writeCtx)
		if err != nil {
			err = fmt.Errorf("drain queue: %d events not stored: %w", a.Queue.Len()+writeQueue.Len(), err)
		}
		a.resumed.Store(false)
		failMu.Lock()
		lost := failure != nil
		failMu.Unlock()
		if !lost {
			key.Set(status.Status{Docker: status.Disconnected, Error: statuskv.StoppedError, Since: time.Now().UTC()})
		}
		stopStatus()
		return err
	})
	g.Go(func() error { // 4. the node's status and lease, until the writer is done
		if key.KV == nil { // edge mode, the centre out of reach at start
			kv, err := out.bucket(statusCtx)
			if err != nil {
				return nil // stopped before the centre answered
			}
			key.KV = kv
			log.Info("node lease: central status bucket reachable", "node", node, "holder", key.Holder)
		}
		if err := key.Run(statusCtx); err != nil {
			fail(err)
			return err
		}
		return nil
	})
	g.Go(func() error { // 7. the container states, until the writer is done
		return keeper.Run(statusCtx)
	})
	g.Go(func() error { // 5. the drain deadline
		<-readCtx.Done()
		log.Info("shutting down: draining the queue", "queue", a.Queue.Len(), "deadline", a.DrainTimeout)
		t := time.NewTimer(a.DrainTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			stopWrite()
		case <-drained:
		}
		return nil
	})
	if out.upkeep != nil {
		g.Go(func() error { // 6. edge mode: the centre's side, until the writer is done
			out.upkeep(statusCtx)
			return nil
		})
	}
	err := g.Wait()
	failMu.Lock()
	defer failMu.Unlock()
	if failure != nil {
		log.Error("publisher stopped", "err", failure)
		return failure
	}
	if err != nil {
		log.Error("queue not drained before the deadline", "err", err)
		return err
	}
	log.Info("publisher stopped")
	return nil
}

func (a *App) statesPoll() time.Duration {
	if a.StatesPoll > 0 {
		return a.StatesPoll
	}
	return 2 * time.Second
}

// connect dials NATS (it reconnects forever on its own).
func (a *App) connect(url string) (*nats.Conn, error) {
	var wasDown atomic.Bool
	nc, err := natsutil.Connect(natsutil.Options{
		URL: url, Creds: a.Config.NATSCreds, TLS: a.Config.NATSTLS, Name: "dockcast-publisher",
		Logger: a.Log.With("component", "nats"),
		OnChange: func(up bool) {
			a.natsUp.Store(up)
			if !up {
				wasDown.Store(true)
			} else if wasDown.Swap(false) {
				a.Metrics.Reconnects.WithLabelValues("nats").Inc()
			}
		},
	})
	if err != nil {
		return nil, err
	}
	if nc.IsConnected() {
		a.natsUp.Store(true)
	}
	return nc, nil
}

// streamConfig is the stream this publisher wants.
func (a *App) streamConfig() jetstream.StreamConfig {
	cfg := a.Config
	want := natsutil.StreamConfig(cfg.Stream, cfg.MaxAge, int64(cfg.MaxBytes), cfg.Replicas)
	want.Duplicates = cfg.DuplicateWindow
	return want
}

// setupStream waits for NATS and ensures the stream and the status bucket.
func (a *App) setupStream(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, jetstream.KeyValue, error) {
	cfg := a.Config
	want := a.streamConfig()
	retry := backoff.New(250*time.Millisecond, 10*time.Second)
	for {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		st, err := natsutil.EnsureSharedStream(sctx, js, want, cfg.Explicit(), a.Log)
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
		wait := retry.Next()
		a.Log.Warn("waiting for JetStream", "err", err, "wait", wait)
		if backoff.Sleep(ctx, wait) != nil {
			return nil, nil, ctx.Err()
		}
	}
}

// node is PUBLISHER_NODE, else the engine's name (waiting for the engine).
func (a *App) node(ctx context.Context, cli *client.Client) (string, error) {
	if a.Config.Node != "" {
		return a.Config.Node, nil
	}
	retry := backoff.New(a.DockerBackoffMin, a.DockerBackoffMax)
	if a.DockerBackoffMin <= 0 {
		retry = backoff.New(docker.DefaultBackoffMin, docker.DefaultBackoffMax)
	}
	for {
		cctx, cancel := context.WithTimeout(ctx, docker.DefaultCallTimeout)
		info, err := cli.Info(cctx)
		cancel()
		if err == nil {
			node := config.SanitizeNode(info.Name)
			a.Log.Info("node name taken from the engine", "node", node, "engine_name", info.Name)
			return node, nil
		}
		a.Log.Warn("waiting for docker to learn the node name (or set PUBLISHER_NODE)", "err", err)
		if err := retry.Wait(ctx); err != nil {
			return "", err
		}
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

// serveHTTP serves /healthz, /readyz and /metrics until the returned
// function stops it.
func (a *App) serveHTTP() (stop func(), err error) {
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
		return nil, fmt.Errorf("listen on PUBLISHER_HTTP_ADDR %s: %w", a.Config.HTTPAddr, err)
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.Log.Handler(), slog.LevelWarn),
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	a.Log.Info("http listening", "addr", ln.Addr().String())
	if a.Listening != nil {
		a.Listening(ln.Addr().String())
	}
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-done
	}, nil
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
	if w := a.writer.Load(); w == nil {
		why = append(why, "writer not started")
	} else if err := w.Err(); err != nil {
		why = append(why, "writer "+err.Error())
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
