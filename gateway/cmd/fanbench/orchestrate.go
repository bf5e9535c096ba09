package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/shared/natsutil"
)

// streamName is the stream every peer reads.
const streamName = "DOCKER_EVENTS"

// Scenario names, as in BENCH_SCENARIOS.
const (
	scIdle      = "idle"
	scFlat      = "flat"
	scLatency   = "latency"
	scHeld      = "held"
	scStorm     = "storm"
	scBreakdown = "breakdown"
	scPublisher = "publisher"
)

// scale sizes the scenarios.
type scale struct {
	FlatClients, FlatEvents int
	LatClients, LatRate     int
	LatDuration             time.Duration
	IdleClients             int
	HeldClients, HeldEvents int
	StormClients, StormBack int
	StormDial               int
	PubEvents               int
	// PubContainers is how many containers the pipeline's start events
	// are about (cycled): the publisher keeps each container's state in
	// a key-value bucket, so that all-distinct containers would add a
	// key write per event, which no engine's load causes.
	PubContainers int
}

// override sets fields from "Field=value,…" (BENCH_SCALE): integers, and
// durations for LatDuration.
func (s *scale) override(spec string) error {
	v := reflect.ValueOf(s).Elem()
	for _, kv := range strings.Split(spec, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		name, val, _ := strings.Cut(kv, "=")
		f := v.FieldByName(name)
		if !f.IsValid() {
			return fmt.Errorf("BENCH_SCALE: no field %q (see scale in orchestrate.go)", name)
		}
		if f.Type() == reflect.TypeOf(time.Duration(0)) {
			d, err := time.ParseDuration(val)
			if err != nil || d <= 0 {
				return fmt.Errorf("BENCH_SCALE: %s=%q is not a positive duration", name, val)
			}
			f.SetInt(int64(d))
			continue
		}
		n, err := strconv.Atoi(val)
		if err != nil || n <= 0 {
			return fmt.Errorf("BENCH_SCALE: %s=%q is not a positive integer", name, val)
		}
		f.SetInt(int64(n))
	}
	return nil
}

var fullScale = scale{
	FlatClients: 200, FlatEvents: 20000,
	LatClients: 200, LatRate: 1000, LatDuration: 10 * time.Second,
	IdleClients: 2000,
	HeldClients: 10000, HeldEvents: 200,
	StormClients: 10000, StormBack: 20, StormDial: 1000,
	PubEvents: 100000, PubContainers: 1000,
}

var quickScale = scale{
	FlatClients: 200, FlatEvents: 2000,
	LatClients: 200, LatRate: 1000, LatDuration: 3 * time.Second,
	IdleClients: 500,
	HeldClients: 1000, HeldEvents: 50,
	StormClients: 1000, StormBack: 20, StormDial: 1000,
	PubEvents: 20000, PubContainers: 1000,
}

// orchestrator runs the comparison.
type orchestrator struct {
	root, dir, self string
	quick           bool
	sc              scale
	peers           []string
	scenarios       []string
	profileDir      string
	gatewayLog      string // LOG_LEVEL of the gateways (BENCH_GATEWAY_LOG, default warn)
	pipelineOpen    bool   // BENCH_PIPELINE_OPEN=1: drive the stand-in engine open loop
	publisherBin    string // BENCH_PUBLISHER: the publisher binary (default bin/publisher), to compare builds
	gatewayBin      string // BENCH_GATEWAY: the gateway binary (default bin/gateway), to compare builds
	traceDir        string // BENCH_TRACE: where the latency load's execution trace goes
	log             io.Writer

	nats    *child
	natsURL string
	monitor string
	wsPort  int
	nc      *nats.Conn
	js      jetstream.JetStream
	pub     *eventPublisher

	res report
}

func runOrchestrator(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	o := &orchestrator{log: stderr, quick: getenv("BENCH_QUICK") != ""}
	o.sc = fullScale
	if o.quick {
		o.sc = quickScale
	}
	o.peers = listEnv(getenv("BENCH_PEERS"), []string{peerDockcast, peerDockcastBatch, peerNATS, peerCentrifugo})
	o.scenarios = listEnv(getenv("BENCH_SCENARIOS"), []string{scIdle, scFlat, scLatency, scHeld, scStorm, scBreakdown, scPublisher})
	o.profileDir = getenv("BENCH_PROFILE")
	o.pipelineOpen = getenv("BENCH_PIPELINE_OPEN") != ""
	o.publisherBin = getenv("BENCH_PUBLISHER")
	o.gatewayBin = getenv("BENCH_GATEWAY")
	o.traceDir = getenv("BENCH_TRACE")
	if o.gatewayLog = getenv("BENCH_GATEWAY_LOG"); o.gatewayLog == "" {
		o.gatewayLog = "warn"
	}
	if err := o.sc.override(getenv("BENCH_SCALE")); err != nil {
		return err
	}
	var err error
	if o.self, err = os.Executable(); err != nil {
		return err
	}
	if o.root, err = repoRoot(); err != nil {
		return err
	}
	for _, b := range []string{"nats-server", "gateway"} {
		if _, err := os.Stat(filepath.Join(o.root, "bin", b)); err != nil {
			return fmt.Errorf("bin/%s: %w (run make build)", b, err)
		}
	}
	if err := raiseFileLimit(1024); err != nil {
		return err
	}
	if o.dir, err = os.MkdirTemp("", "fanbench-"); err != nil {
		return err
	}
	if getenv("BENCH_KEEP") == "" {
		defer os.RemoveAll(o.dir)
	} else {
		o.logf("logs and stores in %s", o.dir)
	}
	if err := o.startNATS(ctx); err != nil {
		return err
	}
	defer o.nats.stop()
	defer o.nc.Close()

	o.res.Quick, o.res.Scale, o.res.Started, o.res.LoadStart = o.quick, o.sc, time.Now(), loadAvg()
	o.res.PayloadBytes = payloadSize()
	var peers []peer
	for _, name := range o.peers {
		p, err := o.peer(name)
		if err != nil {
			return err
		}
		peers = append(peers, p)
		o.res.Peers = append(o.res.Peers, &peerResult{Name: p.name(), Title: p.title(), Errors: map[string]string{}})
	}
	// Scenario by scenario, every peer in turn: the figures compared
	// with each other are taken minutes apart at most, whatever else the
	// machine does over the run.
	for _, sc := range []string{scIdle, scFlat, scLatency, scHeld} {
		for i, p := range peers {
			if o.has(sc) {
				o.runScenario(ctx, p, o.res.Peers[i], sc)
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	if o.has(scStorm) && slices.Contains(o.peers, peerDockcast) {
		o.res.Storm = o.storm(ctx)
	}
	if o.has(scBreakdown) && slices.Contains(o.peers, peerDockcast) {
		o.res.Breakdown = o.breakdown(ctx)
	}
	if o.profileDir != "" {
		o.res.Profiles = o.profile(ctx)
	}
	if o.traceDir != "" {
		o.res.Trace = o.trace(ctx)
	}
	if o.has(scPublisher) {
		o.res.Publisher = o.publisherBench(ctx)
	}
	o.res.Finished = time.Now()
	fmt.Fprint(stdout, o.res.markdown(true))
	md := o.res.markdown(false)
	out := getenv("BENCH_OUT")
	if out == "" && !o.quick && len(getenv("BENCH_PEERS")) == 0 && len(getenv("BENCH_SCENARIOS")) == 0 {
		out = filepath.Join(o.root, "docs", "benchmarks-fanout.md")
	}
	if out != "" {
		if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
			return err
		}
		o.logf("report written to %s", out)
	}
	return nil
}

func listEnv(v string, def []string) []string {
	if strings.TrimSpace(v) == "" {
		return def
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (o *orchestrator) has(sc string) bool { return slices.Contains(o.scenarios, sc) }

func (o *orchestrator) logf(format string, args ...any) {
	fmt.Fprintf(o.log, "fanbench %s: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// repoRoot is the directory holding go.work, from the working directory up.
func repoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; d != filepath.Dir(d); d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("no go.work above %s: run fanbench inside the repository", wd)
}

// startNATS runs bin/nats-server with JetStream, monitoring and its
// WebSocket listener, and makes the stream.
func (o *orchestrator) startNATS(ctx context.Context) error {
	var ports [3]int
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return err
		}
		ports[i] = p
	}
	o.wsPort = ports[2]
	conf := fmt.Sprintf(`listen: 127.0.0.1:%d
http: 127.0.0.1:%d
jetstream { store_dir: %q }
websocket { listen: "127.0.0.1:%d", no_tls: true }
`, ports[0], ports[1], filepath.Join(o.dir, "js"), ports[2])
	path := filepath.Join(o.dir, "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return err
	}
	var err error
	if o.nats, err = startChild("nats-server", o.dir, filepath.Join(o.root, "bin", "nats-server"), []string{"-c", path}, nil); err != nil {
		return err
	}
	o.natsURL = "nats://127.0.0.1:" + strconv.Itoa(ports[0])
	o.monitor = "http://127.0.0.1:" + strconv.Itoa(ports[1])
	if err := waitHTTP(ctx, o.nats, o.monitor+"/healthz?js-enabled-only=true", 30*time.Second); err != nil {
		return err
	}
	if o.nc, err = nats.Connect(o.natsURL, nats.Name("fanbench")); err != nil {
		return fmt.Errorf("connect %s: %w", o.natsURL, err)
	}
	if o.js, err = jetstream.New(o.nc); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := o.js.CreateStream(cctx, natsutil.StreamConfig(streamName, 0, -1, 1)); err != nil {
		return fmt.Errorf("create stream: %w", err)
	}
	// The status bucket exists, as a publisher makes it: without it the
	// gateway's status watch asks for it every second, JetStream API
	// errors that are no replay's.
	if _, err := natsutil.EnsureStatusBucket(cctx, o.js, 1); err != nil {
		return err
	}
	o.pub, err = newEventPublisher(o.nc)
	return err
}

func (o *orchestrator) peer(name string) (peer, error) {
	switch name {
	case peerDockcast:
		return &gatewayPeer{o: o}, nil
	case peerDockcastBatch:
		return &gatewayPeer{o: o, batch: true}, nil
	case peerNATS:
		return &natsPeer{o: o}, nil
	case peerCentrifugo:
		return &centrifugoPeer{o: o}, nil
	}
	return nil, fmt.Errorf("BENCH_PEERS: unknown peer %q (dockcast, dockcast-batch, nats, centrifugo)", name)
}

// runScenario runs one scenario against one peer on a fresh server
// process (where the peer has its own).
func (o *orchestrator) runScenario(ctx context.Context, p peer, r *peerResult, sc string) {
	if r.Unsupported != "" {
		return
	}
	o.logf("%s: %s", p.name(), sc)
	if err := p.start(ctx); err != nil {
		r.Errors[sc] = "start: " + err.Error()
		o.logf("%s: %s: %v", p.name(), sc, err)
		p.stop()
		return
	}
	defer p.stop()
	if g, ok := p.(*gatewayPeer); ok && g.batch {
		if r.Unsupported = probeBatch(ctx, g.url()); r.Unsupported != "" {
			o.logf("%s: %s", p.name(), r.Unsupported)
			return
		}
	}
	var err error
	switch sc {
	case scIdle:
		r.Idle, err = o.idle(ctx, p)
	case scFlat:
		r.Flat, err = o.flow(ctx, p, o.sc.FlatClients, o.sc.FlatEvents, 0, nil)
	case scLatency:
		r.Latency, err = o.flow(ctx, p, o.sc.LatClients, o.sc.LatRate*int(o.sc.LatDuration/time.Second), o.sc.LatRate, nil)
	case scHeld:
		r.Held, err = o.held(ctx, p)
	}
	if err != nil {
		r.Errors[sc] = err.Error()
		o.logf("%s: %s: %v", p.name(), sc, err)
	}
}

// probeBatch dials one batch=1 client: "" when the gateway takes it, else
// why not.
func probeBatch(ctx context.Context, url string) string {
	c, resp, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
	if err == nil {
		_ = c.Close()
		return ""
	}
	if resp != nil {
		var h *httpRefusal
		if errors.As(handshakeError(resp, err), &h) {
			return fmt.Sprintf("not supported (HTTP %d: %s)", h.Status, h.Body)
		}
	}
	return "batch=1 probe failed: " + err.Error()
}

// settle lets a server's memory come to rest before it is read.
func settle(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// idle measures the server's memory growth with IdleClients connected and
// idle.
func (o *orchestrator) idle(ctx context.Context, p peer) (*idleResult, error) {
	n := o.sc.IdleClients
	settle(ctx, time.Second)
	r := &idleResult{Clients: n}
	var err error
	if r.RSSBefore, err = rssBytes(p.pid()); err != nil {
		return nil, err
	}
	r.HeapBefore, _, r.HasGo = p.goStats(ctx)
	cr, ready, err := o.startClients(ctx, p.name()+"-idle", p.clients(n, 0))
	if err != nil {
		return nil, err
	}
	defer cr.stop()
	if ready.Ready != n {
		return nil, fmt.Errorf("%d of %d clients ready: %s", ready.Ready, n, ready.FirstError)
	}
	r.ConnectTook = time.Duration(ready.TookNanos)
	settle(ctx, 3*time.Second)
	if r.RSSAfter, err = rssBytes(p.pid()); err != nil {
		return nil, err
	}
	r.HeapAfter, r.Goroutines, _ = p.goStats(ctx)
	if r.ClientRSS, err = rssBytes(cr.pid()); err != nil {
		return nil, err
	}
	r.Threads = threads(p.pid())
	return r, nil
}

// flow connects clients, publishes count events at rate (0: flat out) and
// checks that every client received every one, in order. hook, if set, is
// called before the first publish and after the last receipt.
func (o *orchestrator) flow(ctx context.Context, p peer, clients, count, rate int, hook func(start bool)) (*flowResult, error) {
	cr, ready, err := o.startClients(ctx, fmt.Sprintf("%s-flow-%d", p.name(), rate), p.clients(clients, count))
	if err != nil {
		return nil, err
	}
	defer cr.stop()
	if ready.Ready != clients {
		return nil, fmt.Errorf("%d of %d clients ready: %s", ready.Ready, clients, ready.FirstError)
	}
	if hook != nil {
		hook(true)
	}
	cpu := startCPU(p.pid(), o.nats.pid(), cr.pid())
	first, acked, err := o.pub.publish(ctx, count, rate)
	if err != nil {
		return nil, err
	}
	res, err := cr.wait(10 * time.Minute)
	use := cpu.stop()
	if hook != nil {
		hook(false)
	}
	if err != nil {
		return nil, err
	}
	f := &flowResult{Clients: clients, Events: count, Rate: rate, Result: res, CPU: use,
		Published: acked.Sub(first), Took: time.Duration(res.LastRecv - first.UnixNano())}
	if f.Took > 0 {
		f.Delivered = float64(res.Total) / f.Took.Seconds()
	}
	f.Complete = res.Complete == clients && res.Min == count && res.Max == count && res.Disorder == 0
	if g, ok := p.(*gatewayPeer); ok {
		f.FeedDelay, f.Fanout = g.feedTimes(ctx)
	}
	return f, nil
}

// held connects HeldClients, measures the server, then delivers a burst
// of HeldEvents to all of them.
func (o *orchestrator) held(ctx context.Context, p peer) (*heldResult, error) {
	n := o.sc.HeldClients
	settle(ctx, time.Second)
	r := &heldResult{Clients: n}
	var err error
	if r.RSSBefore, err = rssBytes(p.pid()); err != nil {
		return nil, err
	}
	cr, ready, err := o.startClients(ctx, p.name()+"-held", p.clients(n, o.sc.HeldEvents))
	if err != nil {
		return nil, err
	}
	defer cr.stop()
	r.Ready, r.ConnectTook = ready.Ready, time.Duration(ready.TookNanos)
	if ready.Ready != n {
		return r, fmt.Errorf("%d of %d clients ready: %s", ready.Ready, n, ready.FirstError)
	}
	settle(ctx, 2*time.Second)
	if r.RSSIdle, err = rssBytes(p.pid()); err != nil {
		return nil, err
	}
	r.Heap, r.Goroutines, r.HasGo = p.goStats(ctx)
	cpu := startCPU(p.pid(), o.nats.pid(), cr.pid())
	first, _, err := o.pub.publish(ctx, o.sc.HeldEvents, 0)
	if err != nil {
		return nil, err
	}
	if r.Burst, err = cr.wait(10 * time.Minute); err != nil {
		return nil, err
	}
	r.CPU = cpu.stop()
	r.Took = time.Duration(r.Burst.LastRecv - first.UnixNano())
	if r.Took > 0 {
		r.Delivered = float64(r.Burst.Total) / r.Took.Seconds()
	}
	r.RSSAfter, _ = rssBytes(p.pid())
	r.Complete = r.Burst.Complete == n && r.Burst.Disorder == 0
	return r, nil
}

// jszAPI is the JetStream API counters of the server.
type jszAPI struct {
	API struct {
		Total  int64 `json:"total"`
		Errors int64 `json:"errors"`
	} `json:"api"`
}

// storm restarts the gateway and resumes StormClients at once, each from
// StormBack events before the stream's end.
func (o *orchestrator) storm(ctx context.Context) *stormResult {
	n := o.sc.StormClients
	r := &stormResult{Clients: n, Back: o.sc.StormBack, Dial: o.sc.StormDial}
	o.logf("dockcast: storm: %d clients resuming %d events back", n, r.Back)
	last, err := o.lastSeq(ctx)
	if err == nil && last < uint64(r.Back) {
		_, _, err = o.pub.publish(ctx, r.Back, 0)
		if err == nil {
			last, err = o.lastSeq(ctx)
		}
	}
	if err != nil {
		r.Err = err.Error()
		return r
	}
	g := &gatewayPeer{o: o, fromSeq: last - uint64(r.Back) + 1}
	if err := g.start(ctx); err != nil {
		r.Err = "start: " + err.Error()
		g.stop()
		return r
	}
	defer g.stop()
	var before, after jszAPI
	if err := getJSON(ctx, o.monitor+"/jsz", &before); err != nil {
		r.Err = err.Error()
		return r
	}
	f := g.clients(n, 0)
	f.dial = r.Dial
	cpu := startCPU(g.pid(), o.nats.pid(), 0)
	cr, ready, err := o.startClients(ctx, "dockcast-storm", f)
	r.CPU = cpu.stop()
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer cr.stop()
	if err := getJSON(ctx, o.monitor+"/jsz", &after); err != nil {
		r.Err = err.Error()
		return r
	}
	r.Ready, r.Took = ready.Ready, time.Duration(ready.TookNanos)
	r.ReplayedMin, r.ReplayedMax, r.Disorder = ready.PreReadyMin, ready.PreReadyMax, ready.Disorder
	r.APICalls, r.APIErrors = after.API.Total-before.API.Total, after.API.Errors-before.API.Errors
	if ready.Ready != n {
		r.Err = fmt.Sprintf("%d of %d clients live: %s", ready.Ready, n, ready.FirstError)
	}
	return r
}

func (o *orchestrator) lastSeq(ctx context.Context) (uint64, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := o.js.Stream(cctx, streamName)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(cctx)
	if err != nil {
		return 0, err
	}
	return info.State.LastSeq, nil
}

// payloadSize is the size of a bench event's payload.
func payloadSize() int {
	m, err := benchEvent(1, time.Now())
	if err != nil {
		return 0
	}
	return len(m.Data)
}
