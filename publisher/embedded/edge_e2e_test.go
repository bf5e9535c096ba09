package embedded_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/publisher/embedded"
	"github.com/dockcast/dockcast/shared/natsutil"
	"github.com/dockcast/dockcast/shared/testkit"
)

const central = "DOCKER_EVENTS"

// edgeNode is one engine host in edge mode, below the publisher's app: the
// embedded leaf server, its local stream, and a writer that publishes
// numbered events in order (each acknowledged before the next; a failed
// publish is retried with the same Nats-Msg-Id).
type edgeNode struct {
	t    *testing.T
	name string
	dir  string
	port int
	hub  []string

	srv    *embedded.Server
	nc     *nats.Conn
	js     jetstream.JetStream // the local domain
	hubJS  jetstream.JetStream // the hub's domain, through the leaf link
	stream string

	mu   sync.Mutex
	ids  []string // acknowledged, in order
	next int
	stop chan struct{}
	done chan struct{}
}

func newEdgeNode(t *testing.T, name string, hub []string) *edgeNode {
	n := &edgeNode{t: t, name: name, dir: t.TempDir(), port: testkit.FreePort(t), hub: hub}
	n.start()
	t.Cleanup(func() {
		n.pause()
		n.shutdown()
	})
	return n
}

// start starts the leaf server (on its data directory) and opens the local
// stream; it does not wait for the hub.
func (n *edgeNode) start() {
	t := n.t
	t.Helper()
	srv, err := embedded.StartEdge(embedded.Options{Host: "127.0.0.1", Port: n.port, StoreDir: n.dir, Logger: testkit.Logger(t).With("node", n.name)},
		embedded.Edge{Node: n.name, Hub: n.hub, ReconnectInterval: 250 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(srv.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	hjs, err := jetstream.NewWithDomain(nc, "hub")
	if err != nil {
		t.Fatal(err)
	}
	n.srv, n.nc, n.js, n.hubJS = srv, nc, js, hjs
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, _, err := embedded.EnsureLocalStream(ctx, js, embedded.LocalStream{
		Central: central, Node: n.name, MaxAge: time.Hour, MaxBytes: 1 << 30, Duplicates: time.Minute,
		Taken: embedded.CentralTaken(n.sources(), n.name, 2*time.Second), Log: testkit.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	n.stream = s.CachedInfo().Config.Name
}

func (n *edgeNode) sources() natsutil.Sources {
	return natsutil.Sources{JS: n.hubJS, Stream: central, Settle: 300 * time.Millisecond, Log: testkit.Logger(n.t)}
}

// attach adds the node's source to the central stream, through the leaf.
func (n *edgeNode) attach() {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := embedded.AttachSource(ctx, n.js, n.sources(), n.name, n.stream); err != nil {
		n.t.Fatalf("%s: attach source: %v", n.name, err)
	}
}

func (n *edgeNode) shutdown() {
	if n.nc != nil {
		n.nc.Close()
	}
	if n.srv != nil {
		n.srv.Shutdown()
	}
	n.nc, n.srv = nil, nil
}

// publish starts the writer: one event every interval.
func (n *edgeNode) publish(interval time.Duration) {
	n.stop, n.done = make(chan struct{}), make(chan struct{})
	js, stop, done := n.js, n.stop, n.done
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			id := fmt.Sprintf("%s-%06d", n.name, n.next)
			m := nats.NewMsg("docker.events." + n.name + ".container.start")
			m.Data = []byte(`{"id":"` + id + `"}`)
			m.Header.Set(jetstream.MsgIDHeader, id)
			// Until acknowledged, even when asked to stop: an unacknowledged
			// publish may have been stored (the local server is up whenever
			// the test pauses the writer).
			for deadline := time.Now().Add(30 * time.Second); ; {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err := js.PublishMsg(ctx, m)
				cancel()
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					n.t.Errorf("%s: %s not acknowledged in 30 s: %v", n.name, id, err)
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
			n.mu.Lock()
			n.ids = append(n.ids, id)
			n.next++
			n.mu.Unlock()
		}
	}()
}

// pause stops the writer and waits for it.
func (n *edgeNode) pause() {
	if n.stop == nil {
		return
	}
	close(n.stop)
	<-n.done
	n.stop = nil
}

func (n *edgeNode) published() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.ids...)
}

// restart is the publisher's process restarting: the writer stops, the
// embedded server stops and starts again on the same data directory.
func (n *edgeNode) restart() {
	n.pause()
	n.shutdown()
	n.start()
}

// centralMsg is one message of the central stream as a reader sees it.
type centralMsg struct {
	seq    uint64
	id     string
	source string // Nats-Stream-Source
}

// follower reads the central stream from its start with an ordered
// consumer (as the gateway does) on a connection to the central cluster.
type follower struct {
	mu   sync.Mutex
	msgs []centralMsg
	cc   jetstream.ConsumeContext
}

func follow(t *testing.T, js jetstream.JetStream) *follower {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := js.OrderedConsumer(ctx, central, jetstream.OrderedConsumerConfig{InactiveThreshold: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f := &follower{}
	f.cc, err = c.Consume(func(m jetstream.Msg) {
		md, err := m.Metadata()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.msgs = append(f.msgs, centralMsg{seq: md.Sequence.Stream, id: m.Headers().Get(jetstream.MsgIDHeader), source: m.Headers().Get("Nats-Stream-Source")})
		f.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.cc.Stop)
	return f
}

func (f *follower) received() []centralMsg {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]centralMsg(nil), f.msgs...)
}

// readCentral reads every message of the central stream by sequence.
func readCentral(t *testing.T, js jetstream.JetStream) []centralMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, central)
	if err != nil {
		t.Fatal(err)
	}
	st := s.CachedInfo().State
	var out []centralMsg
	for seq := st.FirstSeq; seq <= st.LastSeq && st.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("get %d: %v", seq, err)
		}
		out = append(out, centralMsg{seq: seq, id: m.Header.Get(jetstream.MsgIDHeader), source: m.Header.Get("Nats-Stream-Source")})
	}
	return out
}

func centralCount(js jetstream.JetStream) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, central)
	if err != nil {
		return 0, err
	}
	return s.CachedInfo().State.Msgs, nil
}

// waitCaughtUp waits until the central stream holds as many messages as
// the nodes published and returns how long that took.
func waitCaughtUp(t *testing.T, js jetstream.JetStream, timeout time.Duration, nodes ...*edgeNode) time.Duration {
	t.Helper()
	want := 0
	for _, n := range nodes {
		want += len(n.published())
	}
	return waitCentralHolds(t, js, want, timeout)
}

// waitCentralHolds waits until the central stream holds want messages and
// returns how long that took.
func waitCentralHolds(t testing.TB, js jetstream.JetStream, want int, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	testkit.Eventually(t, timeout, func() error {
		got, err := centralCount(js)
		if err != nil {
			return err
		}
		if got < uint64(want) {
			return fmt.Errorf("central stream holds %d of %d events", got, want)
		}
		return nil
	})
	return time.Since(start)
}

// checkExactlyOnce checks that msgs hold every event of every node exactly
// once, each node in its publish order, each copied by sourcing from the
// node's local stream (its origin in Nats-Stream-Source, local sequences
// rising).
func checkExactlyOnce(t *testing.T, what string, msgs []centralMsg, nodes ...*edgeNode) {
	t.Helper()
	byNode := map[string][]string{}
	lastLocal := map[string]uint64{}
	for _, m := range msgs {
		node, _, ok := strings.Cut(m.id, "-")
		if !ok {
			t.Fatalf("%s: central seq %d has id %q", what, m.seq, m.id)
		}
		f := strings.Fields(m.source)
		if len(f) < 2 || !strings.HasPrefix(f[0], natsutil.LocalStreamName(central, node)) {
			t.Fatalf("%s: central seq %d (%s) not sourced from %s's local stream: Nats-Stream-Source %q", what, m.seq, m.id, node, m.source)
		}
		local, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			t.Fatalf("%s: Nats-Stream-Source %q: %v", what, m.source, err)
		}
		if stream := f[0]; lastLocal[stream] >= local {
			t.Fatalf("%s: %s: local sequence %d after %d", what, stream, local, lastLocal[stream])
		}
		lastLocal[f[0]] = local
		byNode[node] = append(byNode[node], m.id)
	}
	total := 0
	for _, n := range nodes {
		want := n.published()
		got := byNode[n.name]
		total += len(want)
		if len(got) != len(want) {
			t.Fatalf("%s: node %s: central holds %d events, published %d", what, n.name, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s: node %s: event %d is %s, want %s (duplicate, missing or out of order)", what, n.name, i, got[i], want[i])
			}
		}
	}
	if len(msgs) != total {
		t.Fatalf("%s: central holds %d messages, the nodes published %d", what, len(msgs), total)
	}
}

// checkPhase pauses the writers, waits for the central stream and the
// follower to hold everything, checks both, and starts the writers again.
func checkPhase(t *testing.T, what string, hubJS jetstream.JetStream, f *follower, interval time.Duration, nodes ...*edgeNode) time.Duration {
	t.Helper()
	for _, n := range nodes {
		n.pause()
	}
	took := waitCaughtUp(t, hubJS, 2*time.Minute, nodes...)
	msgs := readCentral(t, hubJS)
	checkExactlyOnce(t, what+" (central stream)", msgs, nodes...)
	testkit.Eventually(t, time.Minute, func() error {
		if got := len(f.received()); got < len(msgs) {
			return fmt.Errorf("follower has %d of %d", got, len(msgs))
		}
		return nil
	})
	got := f.received()
	if len(got) != len(msgs) {
		t.Fatalf("%s: follower received %d messages, the stream holds %d", what, len(got), len(msgs))
	}
	for i := range msgs {
		if got[i] != msgs[i] {
			t.Fatalf("%s: follower's message %d is %+v, the stream's %+v", what, i, got[i], msgs[i])
		}
	}
	counts := ""
	for _, n := range nodes {
		counts += fmt.Sprintf(" %s=%d", n.name, len(n.published()))
		n.publish(interval)
	}
	t.Logf("%s: %d events exactly once, in order, follower identical (%s); caught up %v after the writers paused", what, len(msgs), strings.TrimSpace(counts), took.Round(time.Millisecond))
	return took
}

// Two edge nodes behind leaf links that the test cuts, a 3-node central
// cluster (R3 central stream, 5 s duplicate window) that the test kills,
// a node restarted during a cut: after each, the central stream and a
// follower on the central cluster hold every event of both nodes exactly
// once, each node in its publish order.
func TestEdgeNodesSurviveCutsCentralOutageAndRestarts(t *testing.T) {
	c := testkit.StartNATSCluster(t, testkit.ClusterOptions{Name: "hubc", Domain: "hub", LeafNodes: true})
	var proxies []*testkit.TCPProxy
	var hub []string
	for _, s := range c.Servers { // one proxy per central server: the link moves when a server dies
		p := testkit.StartTCPProxy(t, fmt.Sprintf("127.0.0.1:%d", s.LeafPort))
		proxies = append(proxies, p)
		hub = append(hub, "nats-leaf://"+p.Addr)
	}
	cut := func() {
		for _, p := range proxies {
			p.Cut()
		}
	}
	restore := func() {
		for _, p := range proxies {
			p.Restore()
		}
	}
	_, hubJS := testkit.Connect(t, c.URLs())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := natsutil.EnsureCentralStream(ctx, hubJS, natsutil.CentralStreamConfig(central, time.Hour, 5*time.Second, 3), testkit.Logger(t)); err != nil {
		t.Fatal(err)
	}
	nodes := []*edgeNode{newEdgeNode(t, "n1", hub), newEdgeNode(t, "n2", hub)}
	for _, n := range nodes {
		waitLeaf(t, n.srv)
		n.attach()
	}
	f := follow(t, hubJS)
	const every = 4 * time.Millisecond
	for _, n := range nodes {
		n.publish(every)
	}
	// busy lets d pass while the writers run: the scenario's durations
	// (a cut longer than the duplicate window), not a synchronisation.
	busy := func(d time.Duration) { time.Sleep(d) }

	busy(2 * time.Second)
	checkPhase(t, "link up", hubJS, f, every, nodes...)

	// 1. The leaf links cut for longer than the duplicate window.
	cut()
	busy(7 * time.Second)
	for _, n := range nodes {
		n.pause()
	}
	backlog := 0
	for _, n := range nodes {
		backlog += len(n.published())
	}
	if got, _ := centralCount(hubJS); got >= uint64(backlog) {
		t.Fatalf("the cut did not hold anything back (%d of %d)", got, backlog)
	}
	held, _ := centralCount(hubJS)
	restore()
	took := waitCaughtUp(t, hubJS, 2*time.Minute, nodes...)
	t.Logf("catch-up after a 7 s cut: %d events in %v", uint64(backlog)-held, took.Round(time.Millisecond))
	checkPhase(t, "after a 7 s cut", hubJS, f, every, nodes...)

	// 2. The central cluster entirely down, then back.
	c.StopAll(syscall.SIGKILL)
	busy(5 * time.Second)
	c.StartAll()
	checkPhase(t, "after the central cluster was down", hubJS, f, every, nodes...)

	// 3. A node restarted during a cut.
	cut()
	busy(3 * time.Second)
	nodes[0].restart()
	nodes[0].publish(every)
	busy(3 * time.Second)
	restore()
	checkPhase(t, "after a node restarted during a cut", hubJS, f, every, nodes...)
	for _, n := range nodes {
		n.pause()
	}
}

// startCentre starts the 3-node hub cluster with the R3 central stream and
// returns its leaf URLs and a JetStream context on it.
func startCentre(t *testing.T) ([]string, jetstream.JetStream) {
	t.Helper()
	c := testkit.StartNATSCluster(t, testkit.ClusterOptions{Name: "hubc", Domain: "hub", LeafNodes: true})
	var hub []string
	for _, s := range c.Servers {
		hub = append(hub, s.LeafURL())
	}
	_, hubJS := testkit.Connect(t, c.URLs())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := natsutil.EnsureCentralStream(ctx, hubJS, natsutil.CentralStreamConfig(central, time.Hour, 5*time.Second, 3), testkit.Logger(t)); err != nil {
		t.Fatal(err)
	}
	return hub, hubJS
}

// publishCount lets node n publish until it has published want events.
func (n *edgeNode) publishCount(want int) {
	n.t.Helper()
	n.publish(time.Millisecond)
	testkit.Eventually(n.t, time.Minute, func() error {
		if got := len(n.published()); got < want {
			return fmt.Errorf("%s published %d of %d", n.name, got, want)
		}
		return nil
	})
	n.pause()
}

// Several publishers attaching their sources at the same moment, each
// through its own leaf link: every one ends up sourced, nothing twice.
func TestEdgeNodesAttachingAtOnceAllGetSourced(t *testing.T) {
	hub, hubJS := startCentre(t)
	var nodes []*edgeNode
	for i := range 6 {
		n := newEdgeNode(t, fmt.Sprintf("n%d", i), hub)
		waitLeaf(t, n.srv)
		n.publishCount(50 * (i + 1))
		nodes = append(nodes, n)
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, n := range nodes {
		wg.Go(func() {
			<-start
			n.attach()
		})
	}
	close(start)
	wg.Wait()
	waitCaughtUp(t, hubJS, 2*time.Minute, nodes...)
	checkExactlyOnce(t, "after 6 attached at once", readCentral(t, hubJS), nodes...)
	lags, err := natsutil.Sources{JS: hubJS, Stream: central}.Lags(context.Background())
	if err != nil || len(lags) != len(nodes) {
		t.Fatalf("sources %+v, %v", lags, err)
	}
}

// A local stream that disappears while its node runs is made again under a
// new name and the central source moved to it: what the node stores from
// then on, before and after the move, reaches the centre exactly once.
func TestEdgeLocalStreamLostIsRemadeUnderANewNameAndSourceMoved(t *testing.T) {
	hub, hubJS := startCentre(t)
	n := newEdgeNode(t, "n1", hub)
	waitLeaf(t, n.srv)
	n.attach()
	first := n.stream
	n.publishCount(100)
	waitCaughtUp(t, hubJS, time.Minute, n)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.js.DeleteStream(ctx, first); err != nil {
		t.Fatal(err)
	}
	s, made, err := embedded.EnsureLocalStream(ctx, n.js, embedded.LocalStream{
		Central: central, Node: n.name, MaxAge: time.Hour, Duplicates: time.Minute,
		Taken: embedded.CentralTaken(n.sources(), n.name, 2*time.Second), Log: testkit.Logger(t),
	})
	if err != nil || !made || s.CachedInfo().Config.Name == first {
		t.Fatalf("remade %v made=%v: %v", name(s), made, err)
	}
	n.stream = s.CachedInfo().Config.Name
	n.publishCount(150) // stored before the source moves
	n.attach()
	n.publishCount(200) // and after
	waitCaughtUp(t, hubJS, time.Minute, n)
	checkExactlyOnce(t, "after the local stream was remade", readCentral(t, hubJS), n)
	of, err := n.sources().OfNode(ctx, n.name)
	if err != nil || len(of) != 1 || of[0].Name != n.stream {
		t.Fatalf("n1's sources %+v (%v), want only %s", of, err, n.stream)
	}
}
