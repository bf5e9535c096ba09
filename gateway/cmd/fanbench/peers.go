package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Peer names, as in BENCH_PEERS.
const (
	peerDockcast      = "dockcast"
	peerDockcastBatch = "dockcast-batch"
	peerNATS          = "nats"
	peerCentrifugo    = "centrifugo"
)

// peer is one server under test, fed by the shared nats-server.
type peer interface {
	// name is the peer's key; title its column heading.
	name() string
	title() string
	// start starts the server (a fresh process where it has its own).
	start(ctx context.Context) error
	stop()
	// pid is the process whose memory is measured.
	pid() int
	// clients are the flags of a client process with n clients.
	clients(n, expect int) clientFlags
	// goStats returns the Go heap in use and goroutines, where the
	// server exposes them (ok false otherwise).
	goStats(ctx context.Context) (heap float64, goroutines float64, ok bool)
}

// gatewayPeer is bin/gateway (or the in-process variant, inproc).
type gatewayPeer struct {
	o       *orchestrator
	batch   bool
	inproc  bool
	memRate int      // FANBENCH_MEMPROFILERATE for the in-process variant
	env     []string // added to the gateway's environment
	fromSeq uint64
	port    int
	debug   int // debug port of the in-process variant
	proc    *child
}

func (g *gatewayPeer) name() string {
	if g.batch {
		return peerDockcastBatch
	}
	return peerDockcast
}

func (g *gatewayPeer) title() string {
	if g.batch {
		return "dockcast `batch=1`"
	}
	return "dockcast (default)"
}

func (g *gatewayPeer) start(ctx context.Context) error {
	var err error
	if g.port, err = freePort(); err != nil {
		return err
	}
	env := []string{"NATS_URL=" + g.o.natsURL, "GATEWAY_STREAM=" + streamName,
		"GATEWAY_ADDR=127.0.0.1:" + strconv.Itoa(g.port), "GATEWAY_MAX_CLIENTS=19000",
		"GATEWAY_MAX_CLIENTS_PER_IP=19000", "LOG_LEVEL=" + g.o.gatewayLog}
	bin, args := filepath.Join(g.o.root, "bin", "gateway"), []string(nil)
	if g.o.gatewayBin != "" {
		bin = g.o.gatewayBin
	}
	env = append(env, g.env...)
	if g.inproc {
		if g.debug, err = freePort(); err != nil {
			return err
		}
		bin, args = g.o.self, []string{"gateway"}
		env = append(env, "FANBENCH_DEBUG_ADDR=127.0.0.1:"+strconv.Itoa(g.debug))
		if g.memRate > 0 {
			env = append(env, "FANBENCH_MEMPROFILERATE="+strconv.Itoa(g.memRate))
		}
	}
	if g.proc, err = startChild("gateway-"+strconv.Itoa(g.port), g.o.dir, bin, args, env); err != nil {
		return err
	}
	return waitHTTP(ctx, g.proc, g.base()+"/readyz", time.Minute)
}

func (g *gatewayPeer) base() string { return "http://127.0.0.1:" + strconv.Itoa(g.port) }
func (g *gatewayPeer) debugBase() string {
	return "http://127.0.0.1:" + strconv.Itoa(g.debug)
}
func (g *gatewayPeer) stop()    { g.proc.stop() }
func (g *gatewayPeer) pid() int { return g.proc.pid() }

func (g *gatewayPeer) url() string {
	u := "ws://127.0.0.1:" + strconv.Itoa(g.port) + "/ws?filter=type%3Dcontainer"
	if g.batch {
		u += "&batch=1"
	}
	if g.fromSeq > 0 {
		u += "&from_seq=" + strconv.FormatUint(g.fromSeq, 10)
	}
	return u
}

func (g *gatewayPeer) clients(n, expect int) clientFlags {
	return clientFlags{proto: protoDockcast, url: g.url(), clients: n, dial: 100, expect: expect,
		subject: "-", channel: "-"}
}

func (g *gatewayPeer) goStats(ctx context.Context) (float64, float64, bool) {
	m, err := promMetrics(ctx, g.base()+"/metrics")
	if err != nil {
		return 0, 0, false
	}
	return m["go_memstats_heap_inuse_bytes"], m["go_goroutines"], true
}

// feedTimes returns the gateway's mean feed delay and fan-out time
// (dockcast_gateway_feed_delay_seconds, _fanout_seconds) since it started.
func (g *gatewayPeer) feedTimes(ctx context.Context) (feed, fanout time.Duration) {
	m, err := promMetrics(ctx, g.base()+"/metrics")
	if err != nil {
		return 0, 0
	}
	mean := func(name string) time.Duration {
		if n := m[name+"_count"]; n > 0 {
			return time.Duration(m[name+"_sum"] / n * float64(time.Second))
		}
		return 0
	}
	return mean("dockcast_gateway_feed_delay_seconds"), mean("dockcast_gateway_fanout_seconds")
}

// promMetrics reads the unlabelled samples of a Prometheus text page.
func promMetrics(ctx context.Context, url string) (map[string]float64, error) {
	code, body, err := httpGet(ctx, url)
	if err != nil {
		return nil, err
	}
	if code != 200 {
		return nil, fmt.Errorf("GET %s: %d", url, code)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if f, err := strconv.ParseFloat(val, 64); err == nil {
			out[name] = f
		}
	}
	return out, nil
}

// natsPeer is the shared nats-server's own WebSocket listener.
type natsPeer struct{ o *orchestrator }

func (n *natsPeer) name() string                { return peerNATS }
func (n *natsPeer) title() string               { return "NATS WebSocket" }
func (n *natsPeer) start(context.Context) error { return nil }
func (n *natsPeer) stop()                       {}
func (n *natsPeer) pid() int                    { return n.o.nats.pid() }
func (n *natsPeer) clients(c, expect int) clientFlags {
	// The subjects the gateway's filter type=container reads.
	return clientFlags{proto: protoNATS, url: "ws://127.0.0.1:" + strconv.Itoa(n.o.wsPort), clients: c, dial: 100,
		expect: expect, subject: "docker.events.*.container.>", channel: "-"}
}
func (n *natsPeer) goStats(context.Context) (float64, float64, bool) { return 0, 0, false }

// centrifugoPeer is Centrifugo v6.9.1 with a nats_jetstream consumer in
// publication data mode on the stream.
type centrifugoPeer struct {
	o       *orchestrator
	debug   bool // serve Go's /debug/pprof (for the execution trace)
	port    int
	durable string
	proc    *child
	runs    int
}

func (c *centrifugoPeer) name() string  { return peerCentrifugo }
func (c *centrifugoPeer) title() string { return "Centrifugo v6.9.1" }
func (c *centrifugoPeer) pid() int      { return c.proc.pid() }

func (c *centrifugoPeer) start(ctx context.Context) error {
	bin := filepath.Join(c.o.root, "bin", "tools", "centrifugo")
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("centrifugo: %w (make bench builds it into bin/tools)", err)
	}
	var err error
	if c.port, err = freePort(); err != nil {
		return err
	}
	c.runs++
	c.durable = fmt.Sprintf("fanbench_centrifugo_%d_%d", os.Getpid(), c.runs)
	cfg := map[string]any{
		"http_server": map[string]any{"address": "127.0.0.1", "port": c.port},
		"log":         map[string]any{"level": "warn"},
		"client":      map[string]any{"insecure": true},
		"channel": map[string]any{"without_namespace": map[string]any{
			"allow_subscribe_for_client": true}},
		"health":      map[string]any{"enabled": true},
		"usage_stats": map[string]any{"disabled": true},
		"consumers": []any{map[string]any{
			"name": "dockcast", "enabled": true, "type": "nats_jetstream",
			"nats_jetstream": map[string]any{
				"url": c.o.natsURL, "stream_name": streamName, "subjects": []string{"docker.events.>"},
				"durable_consumer_name": c.durable, "deliver_policy": "new", "max_ack_pending": 10000,
				"publication_data_mode": map[string]any{"enabled": true},
			},
		}},
	}
	if c.debug {
		cfg["debug"] = map[string]any{"enabled": true}
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	path := filepath.Join(c.o.dir, fmt.Sprintf("centrifugo-%d.json", c.runs))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return err
	}
	if c.proc, err = startChild(fmt.Sprintf("centrifugo-%d", c.runs), c.o.dir, bin, []string{"-c", path}, nil); err != nil {
		return err
	}
	if err := waitHTTP(ctx, c.proc, fmt.Sprintf("http://127.0.0.1:%d/health", c.port), time.Minute); err != nil {
		return err
	}
	// The consumer exists (and delivers what is published from now on).
	deadline := time.Now().Add(30 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := c.o.js.Consumer(cctx, streamName, c.durable)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("centrifugo's consumer %s: %w", c.durable, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *centrifugoPeer) stop() {
	c.proc.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.o.js.DeleteConsumer(ctx, streamName, c.durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		fmt.Fprintf(os.Stderr, "fanbench: delete consumer %s: %v\n", c.durable, err)
	}
}

func (c *centrifugoPeer) base() string { return fmt.Sprintf("http://127.0.0.1:%d", c.port) }

func (c *centrifugoPeer) clients(n, expect int) clientFlags {
	return clientFlags{proto: protoCentrifugo, url: fmt.Sprintf("ws://127.0.0.1:%d/connection/websocket", c.port),
		clients: n, dial: 100, expect: expect, subject: "-", channel: benchChannel}
}

func (c *centrifugoPeer) goStats(context.Context) (float64, float64, bool) { return 0, 0, false }
