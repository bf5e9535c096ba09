package app_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/publisher/app"
	"github.com/dockcast/dockcast/shared/natsutil"
	"github.com/dockcast/dockcast/shared/status"
	"github.com/dockcast/dockcast/shared/testkit"
)

// Edge mode end to end (issue 11; contract "Edge mode"): real nats-server
// processes for the centre, publishers in edge mode in-process, leaf links
// through TCP proxies the tests cut.

// centre is a 3-node central cluster (JetStream domain hub, leaf-node
// listeners) with one TCP proxy in front of each server's leaf port.
type centre struct {
	c       *testkit.NATSCluster
	proxies []*testkit.TCPProxy
	hub     string              // PUBLISHER_HUB: every proxy
	js      jetstream.JetStream // on the central cluster
}

func startCentre(t *testing.T) *centre {
	t.Helper()
	c := &centre{c: testkit.StartNATSCluster(t, testkit.ClusterOptions{Name: "hub", Domain: "hub", LeafNodes: true})}
	var hub []string
	for _, s := range c.c.Servers {
		p := testkit.StartTCPProxy(t, "127.0.0.1:"+strconv.Itoa(s.LeafPort))
		c.proxies = append(c.proxies, p)
		hub = append(hub, "nats-leaf://"+p.Addr)
	}
	c.hub = strings.Join(hub, ",")
	_, c.js = testkit.Connect(t, c.c.URLs())
	return c
}

func (c *centre) cut() {
	for _, p := range c.proxies {
		p.Cut()
	}
}

// silence loses everything on the leaf links both ways without closing
// them.
func (c *centre) silence() {
	for _, p := range c.proxies {
		p.Silence()
	}
}

func (c *centre) restore() {
	for _, p := range c.proxies {
		p.Restore()
	}
}

// edgeVars is an edge publisher's environment for node on engine host.
func edgeVars(t *testing.T, c *centre, node, host string) map[string]string {
	return map[string]string{
		"PUBLISHER_HUB": c.hub, "PUBLISHER_NODE": node, "DOCKER_HOST": host,
		"PUBLISHER_DATA_DIR": t.TempDir(), "PUBLISHER_EMBEDDED_NATS": testkit.FreeAddr(t),
		"PUBLISHER_STREAM_REPLICAS": "3", "PUBLISHER_STREAM_DUPLICATE_WINDOW": "5s",
	}
}

// edgeTune shortens edge mode's waits for the tests.
func edgeTune(a *app.App) {
	a.HubWait, a.HubReconnect, a.CentreEvery, a.LagEvery = 5*time.Second, 250*time.Millisecond, 2*time.Second, 250*time.Millisecond
}

// ticker runs fn every interval in the background until stopped.
type ticker struct {
	stop chan struct{}
	done chan struct{}
}

func every(interval time.Duration, fn func()) *ticker {
	tk := &ticker{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(tk.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-tk.stop:
				return
			case <-t.C:
				fn()
			}
		}
	}()
	return tk
}

func (tk *ticker) Stop() {
	if tk.stop != nil {
		close(tk.stop)
		<-tk.done
		tk.stop = nil
	}
}

// containerLoop runs short-lived labelled containers (no network) one
// after another on the real engine until stopped, and removes them.
type containerLoop struct {
	mu   sync.Mutex
	ids  []string
	errs []error
	*ticker
}

func runContainers(t *testing.T, cli *client.Client, label string) *containerLoop {
	t.Helper()
	testkit.EnsureProbeImage(t, cli)
	l := &containerLoop{}
	l.ticker = every(300*time.Millisecond, func() {
		id, err := runOne(cli, label)
		l.mu.Lock()
		defer l.mu.Unlock()
		if err != nil {
			l.errs = append(l.errs, err)
			return
		}
		l.ids = append(l.ids, id)
	})
	t.Cleanup(l.Stop)
	return l
}

func runOne(cli *client.Client, label string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: testkit.ProbeImage, Cmd: []string{"sleep", "10ms"}, Labels: map[string]string{labelKey: label}},
		&container.HostConfig{NetworkMode: "none"}, nil, nil, testkit.Unique("dockcast-edge"))
	if err != nil {
		return "", fmt.Errorf("create: %w", err)
	}
	defer func() { _ = cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true}) }()
	if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		return "", fmt.Errorf("start: %w", err)
	}
	waitC, errC := cli.ContainerWait(ctx, c.ID, container.WaitConditionNotRunning)
	select {
	case <-waitC:
	case err := <-errC:
		return "", fmt.Errorf("wait: %w", err)
	}
	if err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil {
		return "", fmt.Errorf("remove: %w", err)
	}
	return c.ID, nil
}

func (l *containerLoop) list(t *testing.T) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) > 0 {
		t.Fatalf("containers: %v", l.errs)
	}
	return slices.Clone(l.ids)
}

// centralMsg is one message of the central stream as a reader sees it.
type centralMsg struct {
	Seq           uint64
	Subject, ID   string
	Source        string // Nats-Stream-Source
	Local         uint64 // its sequence in the node's local stream
	SourcedStream string
}

// readCentral reads the whole central stream by sequence.
func readCentral(t *testing.T, js jetstream.JetStream) []centralMsg {
	t.Helper()
	var out []centralMsg
	testkit.Eventually(t, time.Minute, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, "DOCKER_EVENTS")
		if err != nil {
			return err
		}
		st := s.CachedInfo().State
		out = out[:0]
		for seq := st.FirstSeq; seq <= st.LastSeq && st.Msgs > 0; seq++ {
			m, err := s.GetMsg(ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("get %d: %w", seq, err)
			}
			out = append(out, toCentral(seq, m.Subject, m.Header.Get("Nats-Msg-Id"), m.Header.Get("Nats-Stream-Source")))
		}
		return nil
	})
	return out
}

func toCentral(seq uint64, subj, id, source string) centralMsg {
	m := centralMsg{Seq: seq, Subject: subj, ID: id, Source: source}
	if f := strings.Fields(source); len(f) >= 2 {
		m.SourcedStream, _, _ = strings.Cut(f[0], ":") // name:hash of the external API
		m.Local, _ = strconv.ParseUint(f[1], 10, 64)
	}
	return m
}

// follower is a gateway-like reader of the central stream: an ordered
// consumer from its start on a connection to the central cluster.
type follower struct {
	mu   sync.Mutex
	msgs []centralMsg
}

func follow(t *testing.T, js jetstream.JetStream) *follower {
	t.Helper()
	// A replicated stream just made may still elect its leader, which the
	// consumer waits for: one try may time out under load.
	var c jetstream.Consumer
	testkit.Eventually(t, time.Minute, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		c, err = js.OrderedConsumer(ctx, "DOCKER_EVENTS", jetstream.OrderedConsumerConfig{})
		return err
	})
	f := &follower{}
	cc, err := c.Consume(func(m jetstream.Msg) {
		md, err := m.Metadata()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.msgs = append(f.msgs, toCentral(md.Sequence.Stream, m.Subject(), m.Headers().Get("Nats-Msg-Id"), m.Headers().Get("Nats-Stream-Source")))
		f.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Stop)
	return f
}

// sameAs waits until the follower has received exactly msgs.
func (f *follower) sameAs(t *testing.T, what string, msgs []centralMsg) {
	t.Helper()
	testkit.Eventually(t, time.Minute, func() error {
		f.mu.Lock()
		defer f.mu.Unlock()
		n := min(len(f.msgs), len(msgs))
		for i := range n {
			if f.msgs[i] != msgs[i] {
				t.Fatalf("%s: follower's message %d is %+v, the stream's %+v", what, i, f.msgs[i], msgs[i])
			}
		}
		if len(f.msgs) != len(msgs) {
			return fmt.Errorf("follower has %d of %d", len(f.msgs), len(msgs))
		}
		return nil
	})
}

// checkSourced checks that every message of the central stream came by
// sourcing from its node's local stream (Nats-Stream-Source names it), at
// most once per local sequence and in local order.
func checkSourced(t *testing.T, what string, msgs []centralMsg) {
	t.Helper()
	last := map[string]uint64{}
	for _, m := range msgs {
		node := strings.Split(m.Subject, ".")[2]
		if !strings.HasPrefix(m.SourcedStream, natsutil.LocalStreamName("DOCKER_EVENTS", node)) {
			t.Fatalf("%s: central seq %d (%s) not sourced from %s's local stream: Nats-Stream-Source %q", what, m.Seq, m.Subject, node, m.Source)
		}
		if m.Local <= last[m.SourcedStream] {
			t.Fatalf("%s: central seq %d: local sequence %d of %s after %d (twice or out of order)", what, m.Seq, m.Local, m.SourcedStream, last[m.SourcedStream])
		}
		last[m.SourcedStream] = m.Local
	}
}

// edgePair is the scene of the edge tests: the centre, a publisher on a
// stand-in engine emitting a steady flow, and one on the machine's engine
// (through a socket proxy) running labelled containers.
type edgePair struct {
	t        *testing.T
	c        *centre
	fake     *testkit.FakeEngine
	fakePub  *pub
	fakeVars map[string]string
	flow     *ticker
	n        int

	cli     *client.Client
	label   string
	watch   *engineWatch
	realPub *pub
	loop    *containerLoop
	ids     []string // every container run so far
	f       *follower
}

func startEdgePair(t *testing.T) *edgePair {
	t.Helper()
	p := &edgePair{t: t, c: startCentre(t)}
	p.fake = testkit.StartFakeEngine(t, testkit.FakeEngineOptions{Name: "edge-fake", Memory: 100000})
	p.fakeVars = edgeVars(t, p.c, "edge_fake", p.fake.Host)
	p.fakePub = startPub(t, p.fakeVars, edgeTune)

	p.cli = testkit.Docker(t)
	testkit.EnsureProbeImage(t, p.cli)
	dp := testkit.StartDockerProxy(t, "/var/run/docker.sock")
	p.label = testkit.Unique("edge")
	realVars := edgeVars(t, p.c, "edge_real", dp.Host())
	realVars["PUBLISHER_FILTERS"] = "type=container,label=" + labelKey + "=" + p.label
	p.watch = watchEngine(t, p.cli, "edge_real", p.label)
	p.realPub = startPub(t, realVars, edgeTune)
	p.fakePub.WaitReady()
	p.realPub.WaitReady()
	p.f = follow(t, p.c.js)
	p.resume()
	return p
}

// resume starts the events on both engines again.
func (p *edgePair) resume() {
	p.flow = every(20*time.Millisecond, func() {
		p.fake.Emit(containerEvent(p.n))
		p.n++
	})
	p.loop = runContainers(p.t, p.cli, p.label)
}

// check pauses the events, waits until the central stream holds each
// node's events exactly once in its engine's order, checks that a follower
// on the central cluster received the same, and resumes the events.
func (p *edgePair) check(what string) {
	t := p.t
	t.Helper()
	p.flow.Stop()
	p.loop.Stop()
	p.ids = append(p.ids, p.loop.list(t)...)
	start := time.Now()
	waitHistory(t, p.c.js, p.fake, "edge_fake", 2*time.Minute)
	sameAsEngine(t, p.watch, p.c.js, "edge_real", p.ids)
	caught := time.Since(start)
	msgs := readCentral(t, p.c.js)
	checkSourced(t, what, msgs)
	p.f.sameAs(t, what, msgs)
	t.Logf("%s: central stream holds %d messages (stand-in engine %d events, real engine %d containers), each once, in engine order; follower identical; caught up %v after the events paused",
		what, len(msgs), len(p.fake.History()), len(p.ids), caught.Round(time.Millisecond))
	p.resume()
}

// The leaf links cut for longer than the duplicate window while both
// engines keep producing events; then the whole central cluster down and
// back; then a publisher restarted during a cut: after each, the central
// stream (and a follower on it) holds every event of both nodes exactly
// once, each node in its engine's order (issue 11).
func TestEdgeModeSurvivesCutsCentralOutageAndRestart(t *testing.T) {
	p := startEdgePair(t)
	busy := func(d time.Duration) { time.Sleep(d) } // the scenario's durations, not a synchronisation
	busy(2 * time.Second)
	p.check("links up")

	// (a) A cut three times the duplicate window.
	p.c.cut()
	busy(15 * time.Second)
	lag, err := p.fakePub.metric(`dockcast_publisher_source_lag{node="edge_fake"}`)
	if err != nil || lag == 0 {
		t.Errorf("during the cut, the sourcing lag is %v (%v), want > 0", lag, err)
	}
	p.c.restore()
	p.check("after a 15 s cut")
	testkit.Eventually(t, time.Minute, func() error {
		lag, err := p.fakePub.metric(`dockcast_publisher_source_lag{node="edge_fake"}`)
		if err == nil && lag != 0 {
			err = fmt.Errorf("lag %v", lag)
		}
		return err
	})

	// (b) The whole central cluster down while events keep coming.
	p.c.c.StopAll(syscall.SIGKILL)
	busy(8 * time.Second)
	p.c.c.StartAll()
	p.check("after the central cluster was down")

	// (c) A publisher restarted during a cut.
	p.c.cut()
	busy(4 * time.Second)
	p.fakePub.Stop()
	busy(2 * time.Second)
	p.fakePub = startPub(t, p.fakeVars, edgeTune)
	busy(4 * time.Second)
	p.c.restore()
	p.check("after a publisher restarted during a cut")

	p.flow.Stop()
	p.loop.Stop()
	st := readStatus(t, p.c.js, "edge_fake")
	if st.Holder == "" || st.Docker != status.Connected {
		t.Errorf("central DOCKER_STATUS of edge_fake: %+v", st)
	}
}

func readStatus(t *testing.T, js jetstream.JetStream, node string) status.Status {
	t.Helper()
	var st status.Status
	testkit.Eventually(t, time.Minute, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		kv, err := js.KeyValue(ctx, status.Bucket)
		if err != nil {
			return err
		}
		e, err := kv.Get(ctx, node)
		if err != nil {
			return err
		}
		st, err = status.Decode(e.Value())
		return err
	})
	return st
}

// A leaf link cut silently (nothing closes it: a cable pulled, a NAT
// mapping dropped) is noticed by the leaf's pings, not after nats-server's
// default of minutes: leaf_connected goes to 0, the events of the cut are
// stored on the node, and once the link is back the centre holds every
// event once, in engine order.
func TestEdgeSilentCutIsNoticed(t *testing.T) {
	c := startCentre(t)
	e := testkit.StartFakeEngine(t, testkit.FakeEngineOptions{})
	p := startPub(t, edgeVars(t, c, "edge_silent", e.Host), func(a *app.App) {
		edgeTune(a)
		a.HubPing = 500 * time.Millisecond
	})
	p.WaitReady()
	leaf := func(want float64) func() error {
		return func() error {
			v, err := p.metric("dockcast_publisher_leaf_connected")
			if err == nil && v != want {
				err = fmt.Errorf("leaf_connected %v, want %v", v, want)
			}
			return err
		}
	}
	testkit.Eventually(t, time.Minute, leaf(1))
	e.Emit(containerEvent(0))
	waitHistory(t, c.js, e, "edge_silent", time.Minute)

	c.silence()
	for i := 1; i <= 20; i++ {
		e.Emit(containerEvent(i))
	}
	// 3 pings of 0.5 s unanswered; nats-server's default would be 2 min × 2.
	testkit.Eventually(t, 30*time.Second, leaf(0))
	c.restore()
	testkit.Eventually(t, time.Minute, leaf(1))
	waitHistory(t, c.js, e, "edge_silent", 2*time.Minute)
}

// A second edge publisher for a node another one holds refuses to start
// (exit 1, naming the node): the lease lives in the central DOCKER_STATUS,
// reached through the leaf link.
func TestEdgeSecondPublisherForANodeRefused(t *testing.T) {
	c := startCentre(t)
	e := testkit.StartFakeEngine(t, testkit.FakeEngineOptions{})
	p := startPub(t, edgeVars(t, c, "edge_lease", e.Host), edgeTune)
	p.WaitReady()
	readStatus(t, c.js, "edge_lease")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testkit.Binary(t, "publisher"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "DOCKER_HOST=" + e.Host, "PUBLISHER_HUB=" + c.hub,
		"PUBLISHER_NODE=edge_lease", "PUBLISHER_HTTP_ADDR=127.0.0.1:0", "PUBLISHER_DATA_DIR=" + t.TempDir(),
		"PUBLISHER_EMBEDDED_NATS=" + testkit.FreeAddr(t), "PUBLISHER_STREAM_REPLICAS=3"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("second publisher: %v, want exit status 1; output:\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "edge_lease") || !strings.Contains(out.String(), "held") {
		t.Fatalf("the refusal does not name the node:\n%s", out.String())
	}
	if ok, why := p.App.Ready(); !ok {
		t.Fatalf("the first publisher is no longer ready: %s", why)
	}
}

// A local stream deleted while its publisher runs is made again under a
// new name (DOCKER_EVENTS_<node>_<unix seconds>) and the central source
// moved to it: the events from then on reach the centre exactly once, in
// the engine's order, and the central stream sources only the new one.
func TestEdgeLocalStreamDeletedIsRemadeUnderANewName(t *testing.T) {
	hub := testkit.StartHub(t, testkit.HubOptions{})
	_, hubJS := testkit.Connect(t, hub.ClientURL())
	e := testkit.StartFakeEngine(t, testkit.FakeEngineOptions{Memory: 100000})
	vars := map[string]string{
		"PUBLISHER_HUB": hub.LeafURL(), "PUBLISHER_NODE": "edge_lost", "DOCKER_HOST": e.Host,
		"PUBLISHER_DATA_DIR": t.TempDir(), "PUBLISHER_EMBEDDED_NATS": testkit.FreeAddr(t),
	}
	p := startPub(t, vars, edgeTune)
	p.WaitReady()
	n := 0
	emit := func(k int) {
		for range k {
			e.Emit(containerEvent(n))
			n++
		}
	}
	emit(50)
	waitHistory(t, hubJS, e, "edge_lost", time.Minute)

	_, local := testkit.Connect(t, "nats://"+vars["PUBLISHER_EMBEDDED_NATS"])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := local.DeleteStream(ctx, "DOCKER_EVENTS_edge_lost"); err != nil {
		t.Fatal(err)
	}
	emit(50)
	msgs := waitHistory(t, hubJS, e, "edge_lost", time.Minute)
	central := readCentral(t, hubJS)
	checkSourced(t, "after the local stream was deleted", central)
	last := central[len(central)-1].SourcedStream
	if !strings.HasPrefix(last, "DOCKER_EVENTS_edge_lost_") {
		t.Fatalf("the last events came from %s, want a new local stream DOCKER_EVENTS_edge_lost_<unix seconds>", last)
	}
	s, err := hubJS.Stream(ctx, "DOCKER_EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	srcs := s.CachedInfo().Config.Sources
	if len(srcs) != 1 || srcs[0].Name != last {
		t.Fatalf("central sources %+v, want only %s", srcs, last)
	}
	t.Logf("%d events exactly once across the local stream's loss; now sourced from %s", len(msgs), last)
}
