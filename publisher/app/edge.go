package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/publisher/config"
	"github.com/dockcast/dockcast/publisher/embedded"
	"github.com/dockcast/dockcast/publisher/statuskv"
	"github.com/dockcast/dockcast/shared/backoff"
	"github.com/dockcast/dockcast/shared/natsutil"
	"github.com/dockcast/dockcast/shared/status"
)

// Edge mode (contract "Edge mode"): the embedded server is a leaf node of
// the central NATS with the node's own JetStream domain; the writer stores
// into the node's local stream on that server, which never goes away; the
// central stream, in the hub's domain, sources the local stream across the
// leaf link. Everything that needs the centre (the central stream and this
// node's source in it, the status bucket and the node's lease, the
// sourcing lag) is done in the background and done again when the link
// comes back, so the writer never waits on the WAN.

// Defaults of edge mode's App fields.
const (
	DefaultHubWait     = 10 * time.Second // at start: how long to wait for the leaf link
	DefaultCentreEvery = 30 * time.Second // how often the node's source is checked
	DefaultLagEvery    = 5 * time.Second  // how often the sourcing lag is read
)

// sink is where the writer stores and what resume reads: the shared
// stream in direct mode, the node's local stream in edge mode.
type sink struct {
	name    string                          // the stream the writer writes at start
	current func() jetstream.Stream         // the stream resume reads
	missing func(ctx context.Context) error // the writer's StreamMissing
	// In edge mode only: renamed tells the writer its stream's new name
	// (set by missing, read on the writer's goroutine); upkeep keeps the
	// centre's side until ctx ends; bucket opens the central status
	// bucket once the centre answers.
	renamed func() string
	upkeep  func(ctx context.Context)
	bucket  func(ctx context.Context) (jetstream.KeyValue, error)
	// central is the JetStream of the stream gateways read (the hub's
	// domain in edge mode): the container states are kept there.
	central jetstream.JetStream
}

// edge is the state of a publisher in edge mode.
type edge struct {
	a       *App
	node    string
	srv     *embedded.Server
	local   jetstream.JetStream // the node's own domain
	hub     jetstream.JetStream // the hub's domain, across the leaf link
	sources natsutil.Sources
	spec    embedded.LocalStream

	mu      sync.Mutex
	stream  jetstream.Stream // the current local stream
	copied  uint64           // the central source's last copied local sequence, as last read
	copyOf  string           // the local stream copied refers to
	attach  chan struct{}    // a new local stream waits for its source
	started time.Time
}

// startEdgeServer starts the embedded server as a leaf node of the hub.
func (a *App) startEdgeServer(node string) (*embedded.Server, error) {
	cfg := a.Config
	host, port, _ := config.SplitHostPort(cfg.EmbeddedNATS)
	var hub []string
	for _, u := range strings.Split(cfg.Hub, ",") {
		if u = strings.TrimSpace(u); u != "" {
			hub = append(hub, u)
		}
	}
	ns, err := embedded.StartEdge(
		embedded.Options{Host: host, Port: port, StoreDir: cfg.DataDir, Sync: cfg.SyncInterval(), Logger: a.Log},
		embedded.Edge{Node: node, Hub: hub, Creds: cfg.HubCreds, CA: cfg.HubCA, Cert: cfg.HubCert, Key: cfg.HubKey,
			Sync: cfg.SyncInterval(), ReconnectInterval: a.HubReconnect, PingInterval: a.HubPing})
	if err != nil {
		return nil, fmt.Errorf("start embedded nats (edge mode) on %s: %w", cfg.EmbeddedNATS, err)
	}
	a.Log.Info("embedded nats server running as a leaf node", "url", ns.ClientURL(), "hub", cfg.Hub,
		"domain", node, "hub_domain", cfg.HubDomain, "data_dir", cfg.DataDir, "sync", cfg.EmbeddedSync)
	return ns, nil
}

// setupEdge opens (or makes) the node's local stream and, if the centre
// answers soon, takes the node's lease in the central DOCKER_STATUS (a
// node held by another publisher is Run's error); when it does not, the
// lease is taken in the background as soon as it does.
func (a *App) setupEdge(ctx context.Context, srv *embedded.Server, nc *nats.Conn, local jetstream.JetStream, node string) (*edge, *statuskv.Key, error) {
	cfg := a.Config
	if err := natsutil.ValidEdgeNode(node, cfg.HubDomain); err != nil {
		return nil, nil, fmt.Errorf("PUBLISHER_NODE: node %w", err)
	}
	hub, err := jetstream.NewWithDomain(nc, cfg.HubDomain)
	if err != nil {
		return nil, nil, fmt.Errorf("jetstream (domain %s): %w", cfg.HubDomain, err)
	}
	e := &edge{a: a, node: node, srv: srv, local: local, hub: hub, attach: make(chan struct{}, 1), started: time.Now()}
	e.sources = natsutil.Sources{JS: hub, Stream: cfg.Stream, Log: a.Log.With("component", "centre")}
	e.spec = embedded.LocalStream{
		Central: cfg.Stream, Node: node, MaxAge: cfg.MaxAge, MaxBytes: int64(cfg.MaxBytes), Duplicates: cfg.DuplicateWindow,
		Taken: e.taken(embedded.CentralTaken(e.sources, node, 5*time.Second)), Log: a.Log.With("component", "local-stream"),
	}
	wait := a.HubWait
	if wait <= 0 {
		wait = DefaultHubWait
	}
	linked := e.waitLink(ctx, wait)
	if !linked {
		a.Log.Warn("the hub is not reachable yet: storing locally, the centre catches up when the link is up", "hub", cfg.Hub, "waited", wait)
	}
	st, err := e.ensureLocal(ctx)
	if err != nil {
		return nil, nil, err
	}
	key := &statuskv.Key{Node: node, Log: a.Log.With("component", "status"), Renew: a.StatusRenew}
	starting := status.Status{Docker: status.Disconnected, Error: "publisher starting", Since: time.Now().UTC()}
	if linked {
		actx, cancel := context.WithTimeout(ctx, 2*wait)
		kv, err := e.openBucket(actx)
		if err == nil {
			key.KV = kv
			err = key.Acquire(actx, starting)
		}
		cancel()
		var held *statuskv.HeldError
		switch {
		case errors.As(err, &held):
			return nil, nil, err
		case ctx.Err() != nil:
			return nil, nil, ctx.Err()
		case err == nil:
			a.Log.Info("node lease taken", "node", node, "holder", key.Holder)
		default:
			a.Log.Warn("cannot take the node's lease in the central status bucket yet: going on, it is taken when the centre answers", "node", node, "err", err)
			key.KV = nil
		}
	}
	if key.KV == nil {
		key.Set(starting)
	}
	e.stream = st
	return e, key, nil
}

// taken asks the centre whether a local stream name is in use, a few
// times while the leaf link is up: right after the link comes up the hub's
// JetStream API may not answer across it yet, and an unanswered question
// costs the base name (a suffixed one is made instead).
func (e *edge) taken(ask func(context.Context, string) (bool, error)) func(context.Context, string) (bool, error) {
	return func(ctx context.Context, name string) (bool, error) {
		var err error
		for range 5 {
			var yes bool
			if yes, err = ask(ctx, name); err == nil || !e.srv.LeafConnected() {
				return yes, err
			}
			if backoff.Sleep(ctx, 500*time.Millisecond) != nil {
				break
			}
		}
		return false, err
	}
}

// waitLink waits (at most d) for the leaf link; it reports whether it is up.
func (e *edge) waitLink(ctx context.Context, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !e.srv.LeafConnected() {
		if time.Now().After(deadline) || backoff.Sleep(ctx, 50*time.Millisecond) != nil {
			return false
		}
	}
	return true
}

// ensureLocal opens the node's current local stream, or makes one under a
// name never used (retrying while the local server is not answering).
func (e *edge) ensureLocal(ctx context.Context) (jetstream.Stream, error) {
	retry := backoff.New(100*time.Millisecond, 2*time.Second)
	for {
		lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		st, made, err := embedded.EnsureLocalStream(lctx, e.local, e.spec)
		cancel()
		if err == nil {
			if made {
				select {
				case e.attach <- struct{}{}:
				default:
				}
			}
			return st, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if isPermanent(err) {
			return nil, err
		}
		e.a.Log.Warn("local stream not ready", "err", err)
		if err := retry.Wait(ctx); err != nil {
			return nil, err
		}
	}
}

// openBucket opens (or creates) the central DOCKER_STATUS bucket.
func (e *edge) openBucket(ctx context.Context) (jetstream.KeyValue, error) {
	return natsutil.EnsureStatusBucket(ctx, e.hub, e.a.Config.Replicas)
}

// current is the local stream the writer writes and resume reads.
func (e *edge) current() jetstream.Stream {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stream
}

func (e *edge) currentName() string { return e.current().CachedInfo().Config.Name }

// missing is the writer's StreamMissing: the local stream disappeared, so
// the newest other one is used, or a new one made under a new name, and
// the central source moved to it (by upkeep, at once).
func (e *edge) missing(ctx context.Context) error {
	st, err := e.ensureLocal(ctx)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.stream = st
	e.mu.Unlock()
	select {
	case e.attach <- struct{}{}:
	default:
	}
	return nil
}

// sink is what the writer and resume use in edge mode.
func (e *edge) sink() sink {
	return sink{
		name: e.currentName(), current: e.current, missing: e.missing, renamed: e.currentName,
		upkeep: e.upkeep, bucket: e.waitBucket, central: e.hub,
	}
}

// waitBucket opens the central status bucket, retrying until it answers.
func (e *edge) waitBucket(ctx context.Context) (jetstream.KeyValue, error) {
	retry := backoff.New(250*time.Millisecond, 5*time.Second)
	for {
		bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		kv, err := e.openBucket(bctx)
		cancel()
		if err == nil {
			return kv, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		e.a.Log.Debug("central status bucket not reachable yet", "err", err)
		if err := retry.Wait(ctx); err != nil {
			return nil, err
		}
	}
}

// upkeep keeps the centre's side until ctx ends: the central stream
// exists (created when missing), sources this node's current local
// stream (a source whose local stream is gone is moved), and the node's
// sourcing lag is measured.
func (e *edge) upkeep(ctx context.Context) {
	every, lagEvery := e.a.CentreEvery, e.a.LagEvery
	if every <= 0 {
		every = DefaultCentreEvery
	}
	if lagEvery <= 0 {
		lagEvery = DefaultLagEvery
	}
	lagTick := time.NewTicker(lagEvery)
	defer lagTick.Stop()
	retry := backoff.New(500*time.Millisecond, 10*time.Second)
	var next <-chan time.Time // nil: attach now
	for {
		if next == nil {
			if err := e.attachSource(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				wait := retry.Next()
				e.a.Log.Warn("central stream: this node's source not in place yet", "node", e.node, "err", err, "retry_in", wait)
				next = time.After(wait)
			} else {
				retry.Reset()
				next = time.After(every)
			}
			e.measureLag(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-e.attach:
			next = nil
		case <-next:
			next = nil
		case <-lagTick.C:
			e.measureLag(ctx)
		}
	}
}

// attachSource ensures the central stream and this node's source in it.
func (e *edge) attachSource(ctx context.Context) error {
	cfg := e.a.Config
	if !e.srv.LeafConnected() {
		return errors.New("leaf link to the hub is down")
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	want := natsutil.CentralStreamConfig(cfg.Stream, cfg.MaxAge, cfg.DuplicateWindow, cfg.Replicas)
	if _, err := natsutil.EnsureCentralStream(cctx, e.hub, want, e.a.Log.With("component", "centre")); err != nil {
		return err
	}
	actx, cancel2 := context.WithTimeout(ctx, natsutil.DefaultUpdateTimeout)
	defer cancel2()
	return embedded.AttachSource(actx, e.local, e.sources, e.node, e.currentName())
}

// measureLag sets the node's sourcing lag: the local stream's messages
// the central stream has not copied yet. The central stream's source info
// tells how far it has copied; while the centre is out of reach the last
// answer is used, so the lag grows with what is stored meanwhile.
func (e *edge) measureLag(ctx context.Context) {
	m := e.a.Metrics
	m.LeafConnected.Set(boolGauge(e.srv.LeafConnected()))
	name := e.currentName()
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := e.local.Stream(lctx, name)
	if err != nil {
		return
	}
	state := st.CachedInfo().State
	if e.srv.LeafConnected() {
		if lags, err := e.sources.Lags(lctx); err == nil {
			for _, l := range lags {
				if l.Node == e.node && l.Stream == name {
					e.copied, e.copyOf = l.Seq, name
				}
			}
		}
	}
	copied := uint64(0)
	if e.copyOf == name {
		copied = e.copied
	}
	if state.FirstSeq > 0 && copied < state.FirstSeq-1 {
		copied = state.FirstSeq - 1
	}
	lag := uint64(0)
	if state.LastSeq > copied {
		lag = state.LastSeq - copied
	}
	m.SourceLag.WithLabelValues(e.node).Set(float64(lag))
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
