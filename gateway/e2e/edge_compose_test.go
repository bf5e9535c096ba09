package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/testkit"
	"github.com/docker/docker/api/types/container"
	"github.com/nats-io/nats.go/jetstream"
)

// bridgeAddress is the address Docker's host-gateway stands for on this
// machine: the default bridge's, docker0's first IPv4 address.
func bridgeAddress(t *testing.T) string {
	t.Helper()
	ifc, err := net.InterfaceByName("docker0")
	if err != nil {
		t.Fatalf("the edge compose test publishes the centre's leaf ports on the docker0 bridge (what host.docker.internal:host-gateway reaches): %v", err)
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		t.Fatalf("docker0's addresses: %v", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	t.Fatalf("docker0 has no IPv4 address (%v)", addrs)
	return ""
}

// metric reads one unlabelled sample from a Prometheus endpoint.
func metric(url, name string) (float64, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	res, err := client.Get(url)
	if err != nil {
		return 0, err
	}
	defer func() { _ = res.Body.Close() }()
	if res.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", url, res.Status)
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read %s: %w", url, err)
	}
	return 0, fmt.Errorf("%s: no %s", url, name)
}

// TestEdgeCompose runs the edge-mode compose files as the README tells
// users to on one machine: deploy/edge/centre.yml (three nats-server in
// domain hub with leaf listeners, two gateways) and deploy/edge/engine.yml
// (a publisher whose embedded server is a leaf of the centre, reaching its
// leaf ports through host.docker.internal). A container's events reach a
// WebSocket client of both gateways exactly once, by way of the node's
// local stream sourced into the central one, also when they happen while
// the leaf link is cut (the centre stopped).
func TestEdgeCompose(t *testing.T) {
	t.Parallel()
	root := testkit.RepoRoot(t)
	cli := testkit.Docker(t)
	bridge := bridgeAddress(t)
	leaf := []int{testkit.FreePort(t), testkit.FreePort(t), testkit.FreePort(t)}
	natsPort, gw1, gw2, pubPort := testkit.FreePort(t), testkit.FreePort(t), testkit.FreePort(t), testkit.FreePort(t)
	node := testkit.Unique("edge")

	// The centre: its leaf ports on the bridge only, not on every interface.
	centre := newCompose(t, root, "dockcast-centre-test", "deploy/edge/centre.yml",
		"DOCKCAST_LEAF_BIND="+bridge,
		"DOCKCAST_LEAF_PORT_1="+strconv.Itoa(leaf[0]), "DOCKCAST_LEAF_PORT_2="+strconv.Itoa(leaf[1]), "DOCKCAST_LEAF_PORT_3="+strconv.Itoa(leaf[2]),
		"DOCKCAST_NATS_PORT="+strconv.Itoa(natsPort), "DOCKCAST_PORT="+strconv.Itoa(gw1), "DOCKCAST_PORT_2="+strconv.Itoa(gw2))
	var hub []string
	for _, p := range leaf {
		hub = append(hub, "nats-leaf://host.docker.internal:"+strconv.Itoa(p))
	}
	engine := newCompose(t, root, "dockcast-engine-test", "deploy/edge/engine.yml",
		"DOCKCAST_HUB="+strings.Join(hub, ","), "DOCKCAST_NODE="+node, "DOCKCAST_PUBLISHER_PORT="+strconv.Itoa(pubPort))
	centre.must("up", "-d")
	engine.must("up", "-d")

	gateways := []string{"127.0.0.1:" + strconv.Itoa(gw1), "127.0.0.1:" + strconv.Itoa(gw2)}
	for _, gw := range gateways {
		waitHTTP(t, "http://"+gw+"/readyz")
	}
	pub := "http://127.0.0.1:" + strconv.Itoa(pubPort)
	waitHTTP(t, pub+"/readyz")
	checkHardened(t, cli, centre.project, 5)
	checkHardened(t, cli, engine.project, 1)
	// gauge is a check for Eventually: the publisher's metric name is ok.
	gauge := func(name string, ok func(float64) bool) func() error {
		return func() error {
			v, err := metric(pub+"/metrics", name)
			if err != nil {
				return err
			}
			if !ok(v) {
				return fmt.Errorf("%s is %v", name, v)
			}
			return nil
		}
	}
	testkit.Eventually(t, time.Minute, gauge("dockcast_publisher_leaf_connected", func(v float64) bool { return v == 1 }))

	// The central stream sources the node's local stream.
	nc, js := testkit.Connect(t, "nats://127.0.0.1:"+strconv.Itoa(natsPort))
	local := "DOCKER_EVENTS_" + node
	testkit.Eventually(t, time.Minute, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := js.Stream(ctx, "DOCKER_EVENTS")
		if err != nil {
			return fmt.Errorf("central stream: %w", err)
		}
		if !slices.ContainsFunc(st.CachedInfo().Config.Sources, func(s *jetstream.StreamSource) bool { return s.Name == local }) {
			return fmt.Errorf("the central stream does not source %s: %+v", local, st.CachedInfo().Config.Sources)
		}
		return nil
	})
	nc.Close() // the centre is stopped below: no reconnect loop meanwhile

	label := testkit.Unique("edge")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	truth := watchEngine(ctx, t, cli, node, label, &wg)
	var clients []*wsClient
	for _, gw := range gateways {
		c := newWSClient("ws://"+gw+"/ws", label)
		clients = append(clients, c)
		wg.Add(1)
		go func() { defer wg.Done(); c.follow(ctx, t) }()
	}

	run := func(name string) {
		t.Helper()
		id := testkit.RunProbe(t, cli, testkit.Probe{Name: name, Labels: map[string]string{LabelKey: label}, Args: []string{"sleep", "100ms"}, Start: true})
		exited(t, cli, id)
		if err := cli.ContainerRemove(context.Background(), id, container.RemoveOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
	}
	names := []string{testkit.Unique("dockcast-edge")}
	run(names[0])
	for _, c := range clients {
		testkit.Eventually(t, 2*time.Minute, c.seen(names[0], "destroy"))
		checkDelivered(t, truth, c)
	}

	// The leaf link cut: the centre's three servers stopped (the leaf sees
	// its connection closed), and the second gateway with them, so that its
	// client has to come back with from_seq. Containers come and go
	// meanwhile; their events are stored in the node's local stream (the
	// sourcing lag grows by at least as many), and when the centre is back
	// the central stream catches up: both clients get each event exactly
	// once.
	lag := `dockcast_publisher_source_lag{node="` + node + `"}`
	centre.must("stop", "--timeout", "10", "gateway-2", "nats-1", "nats-2", "nats-3")
	testkit.Eventually(t, time.Minute, gauge("dockcast_publisher_leaf_connected", func(v float64) bool { return v == 0 }))
	cut := []string{testkit.Unique("dockcast-edge-cut"), testkit.Unique("dockcast-edge-cut")}
	for _, name := range cut {
		run(name)
	}
	names = append(names, cut...)
	stored := func() int { // the engine's events of the cut containers
		truth.mu.Lock()
		defer truth.mu.Unlock()
		n := 0
		for _, m := range truth.ids {
			if slices.Contains(cut, m.Actor.Attributes["name"]) {
				n++
			}
		}
		return n
	}
	testkit.Eventually(t, time.Minute, func() error {
		if n := stored(); n < 4*len(cut) {
			return fmt.Errorf("the engine reported %d events of the containers run during the cut", n)
		}
		return nil
	})
	want := stored()
	testkit.Eventually(t, time.Minute, gauge(lag, func(v float64) bool { return v >= float64(want) }))
	back := time.Now()
	centre.must("start", "nats-1", "nats-2", "nats-3")
	centre.must("start", "gateway-2")
	for _, c := range clients {
		for _, name := range cut {
			testkit.Eventually(t, 2*time.Minute, c.seen(name, "destroy"))
		}
		checkDelivered(t, truth, c)
	}
	testkit.Eventually(t, time.Minute, gauge("dockcast_publisher_leaf_connected", func(v float64) bool { return v == 1 }))
	testkit.Eventually(t, time.Minute, gauge(lag, func(v float64) bool { return v == 0 }))
	t.Logf("the centre was back and had copied the cut's events to both clients %v after its start", time.Since(back).Round(100*time.Millisecond))
	clients[1].mu.Lock()
	if clients[1].connects < 2 {
		t.Errorf("%s: connected %d times: the gateway's stop should have made it resume with from_seq", clients[1].url, clients[1].connects)
	}
	clients[1].mu.Unlock()

	// The contract's payload, from the engine's node, as the engine told it.
	truth.mu.Lock()
	defer truth.mu.Unlock()
	for _, c := range clients {
		c.mu.Lock()
		actions := map[string][]string{}
		for _, ev := range c.events {
			m, ok := truth.ids[ev.ID]
			if !ok {
				continue
			}
			want := event.FromDocker(node, m)
			name := ev.Actor.Attributes["name"]
			if ev.V != event.Version || ev.Node != node || ev.Type != want.Type || ev.Action != want.Action ||
				ev.ActionDetail != want.ActionDetail || ev.Actor.ID != want.Actor.ID || ev.Scope != want.Scope ||
				!ev.Time.Equal(want.Time) || ev.TimeNano != want.TimeNano ||
				!slices.Contains(names, name) || ev.Actor.Attributes[LabelKey] != label {
				t.Errorf("%s: got %+v, want %+v", c.url, ev, want)
			}
			actions[name] = append(actions[name], ev.Action)
		}
		for _, name := range names {
			for _, a := range []string{"create", "start", "die", "destroy"} {
				if !slices.Contains(actions[name], a) {
					t.Errorf("%s: no %s of %s among %v", c.url, a, name, actions[name])
				}
			}
		}
		if len(c.gaps) > 0 {
			t.Errorf("%s: gap frames: %v", c.url, c.gaps)
		}
		t.Logf("%s: %d events of node %s from %d containers (%d during the cut), %d connects", c.url, len(c.events), node, len(names), len(cut), c.connects)
		c.mu.Unlock()
	}
}
