package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	dockerclient "github.com/docker/docker/client"

	"github.com/dockcast/dockcast/gateway/app"
	"github.com/dockcast/dockcast/gateway/client"
	"github.com/dockcast/dockcast/gateway/dockerapi"
	"github.com/dockcast/dockcast/gateway/server"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/testkit"
)

// sdkFor is the Docker Go SDK pointed at the gateway, negotiating its API
// version, with a bearer token when tok is not "".
func sdkFor(t testing.TB, g *gateway, tok string) *dockerclient.Client {
	t.Helper()
	opts := []dockerclient.Opt{dockerclient.WithHost("tcp://" + strings.TrimPrefix(g.base, "http://")), dockerclient.WithAPIVersionNegotiation()}
	if tok != "" {
		opts = append(opts, dockerclient.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + tok}))
	}
	cli, err := dockerclient.NewClientWithOpts(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// sdkEvents reads an /events answer that ends (until in the past).
func sdkEvents(t testing.TB, cli *dockerclient.Client, opts events.ListOptions) ([]events.Message, error) {
	t.Helper()
	return testkit.FiniteEvents(cli, opts, 15*time.Second)
}

// asDocker is what an engine would print for the events, in order.
func asDocker(evs ...event.Event) []events.Message {
	var out []events.Message
	for i := range evs {
		out = append(out, dockerapi.Message(&evs[i]))
	}
	return out
}

func summary(ms []events.Message) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "%s %s %s %d; ", m.Type, m.Action, m.Actor.Attributes["name"], m.TimeNano)
	}
	return b.String()
}

// TestDockerAPI: the gateway answers Docker's /_ping, /version and /events
// (also under /v1.NN/) for the Go SDK, from the stream: since/until by the
// events' own times, filters, every node the token may read (narrowing;
// 403 for another node; 401 without a token), dockcast's synthetic events
// only when asked, no dockcast.* attributes, until without since as the
// last 256 events of each node, follow mode live; 404 in Docker's shape
// for the rest of the API.
func TestDockerAPI(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	newStream(t, js, "DAPI", 0)
	nodeA, nodeB := testkit.Unique("web-a"), testkit.Unique("web-b")
	const tokAll, tokA = "dapi-token-all-0123", "dapi-token-node-a-0123"
	g := startGateway(t, ns.ClientURL(), "DAPI", map[string]string{"GATEWAY_TOKENS_FILE": writeTokens(t,
		tokAll+" docker.events.>", tokA+" docker.events."+nodeA+".>")}, app.Options{})

	// Events at known times, 1 s apart, published out of time order for
	// one (an event resumed after an outage is stored late).
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }
	var evs []event.Event
	add := func(ev event.Event) event.Event {
		publish(t, js, ev)
		evs = append(evs, ev)
		return ev
	}
	gap := add(event.New(nodeA, event.TypeDockcast, event.ActionGap, "", "", map[string]string{"reason": "first_start"}, at(0)))
	state := add(event.New(nodeA, "container", event.ActionState, "running", fmt.Sprintf("%064d", 1), map[string]string{"name": "api", "image": "api:1"}, at(0)))
	start := add(event.New(nodeA, "container", "start", "", fmt.Sprintf("%064d", 1), map[string]string{"name": "api", "image": "api:1", "env": "prod"}, at(1)))
	hc := add(event.New(nodeA, "container", "exec_die", "", fmt.Sprintf("%064d", 1), map[string]string{"name": "api", "image": "api:1", "env": "prod",
		"dockcast.healthcheck": "true", "dockcast.command": "/probe health", "exitCode": "0"}, at(2)))
	startB := add(event.New(nodeB, "container", "start", "", fmt.Sprintf("%064d", 2), map[string]string{"name": "db", "image": "db:1"}, at(3)))
	late := add(event.New(nodeB, "container", "die", "", fmt.Sprintf("%064d", 2), map[string]string{"name": "db", "image": "db:1", "exitCode": "3"}, at(2)))
	vol := add(event.New(nodeA, "volume", "create", "", "data", map[string]string{"driver": "local"}, at(4)))
	_ = gap
	_ = state

	all := sdkFor(t, g, tokAll)
	if _, err := all.Ping(context.Background()); err != nil {
		t.Fatalf("ping: %v", err)
	}
	since, until := event.SinceArg(at(1).UnixNano()), event.SinceArg(at(4).UnixNano())
	hcWithout := hc
	hcWithout.Actor.Attributes = map[string]string{"name": "api", "image": "api:1", "env": "prod", "exitCode": "0"}
	check := func(name string, cli *dockerclient.Client, opts events.ListOptions, want []events.Message) {
		t.Helper()
		got, err := sdkEvents(t, cli, opts)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got  %s\n want %s", name, summary(got), summary(want))
		}
		for _, m := range got {
			for k := range m.Actor.Attributes {
				if strings.HasPrefix(k, "dockcast.") {
					t.Errorf("%s: attribute %s in the output", name, k)
				}
			}
		}
	}
	f := func(kv ...string) filters.Args {
		a := filters.NewArgs()
		for i := 0; i+1 < len(kv); i += 2 {
			a.Add(kv[i], kv[i+1])
		}
		return a
	}
	// In stream order; late (stored after startB, timed before it) is in.
	check("window", all, events.ListOptions{Since: since, Until: until}, asDocker(start, hcWithout, startB, late, vol))
	check("type=container", all, events.ListOptions{Since: since, Until: until, Filters: f("type", "container")}, asDocker(start, hcWithout, startB, late))
	check("label", all, events.ListOptions{Since: since, Until: until, Filters: f("label", "env=prod")}, asDocker(start, hcWithout))
	check("node", all, events.ListOptions{Since: since, Until: until, Filters: f("node", nodeB)}, asDocker(startB, late))
	check("healthcheck=false", all, events.ListOptions{Since: since, Until: until, Filters: f("healthcheck", "false", "type", "container")}, asDocker(start, startB, late))
	check("synthetic not by default", all, events.ListOptions{Since: event.SinceArg(at(0).UnixNano()), Until: event.SinceArg(at(1).UnixNano())}, asDocker(start))
	check("type=dockcast", all, events.ListOptions{Since: event.SinceArg(at(0).UnixNano()), Until: until, Filters: f("type", "dockcast")}, asDocker(gap))
	check("event=state", all, events.ListOptions{Since: event.SinceArg(at(0).UnixNano()), Until: until, Filters: f("event", "state")}, asDocker(state))
	// The token for node A: narrowed without a node filter, 403 naming B.
	onlyA := sdkFor(t, g, tokA)
	check("token narrowing", onlyA, events.ListOptions{Since: since, Until: until}, asDocker(start, hcWithout, vol))
	if _, err := sdkEvents(t, onlyA, events.ListOptions{Since: since, Until: until, Filters: f("node", nodeB)}); err == nil || !strings.Contains(err.Error(), nodeB) {
		t.Errorf("token A asking for node B: %v, want 403 naming it", err)
	}
	if _, err := sdkEvents(t, sdkFor(t, g, ""), events.ListOptions{Since: since, Until: until}); err == nil || !strings.Contains(err.Error(), "missing token") {
		t.Errorf("no token: %v, want 401", err)
	}

	// until without since: the last 256 engine events of each node at or
	// before until (synthetic ones do not count).
	var manyA []event.Event
	for i := range 300 {
		manyA = append(manyA, add(event.New(nodeA, "container", "start", "", fmt.Sprintf("%064d", 1000+i), map[string]string{"name": fmt.Sprint("m", i)}, at(10+i))))
	}
	lost := add(event.New(nodeA, event.TypeDockcast, event.ActionLost, "", "", map[string]string{"reason": "too_big"}, at(400)))
	afterUntil := add(event.New(nodeA, "container", "start", "", fmt.Sprintf("%064d", 9), map[string]string{"name": "after"}, at(500)))
	_ = afterUntil
	tailUntil := event.SinceArg(at(450).UnixNano())
	check("until only, node A", all, events.ListOptions{Until: tailUntil, Filters: f("node", nodeA)}, asDocker(manyA[300-256:]...))
	check("until only, node B", all, events.ListOptions{Until: tailUntil, Filters: f("node", nodeB)}, asDocker(startB, late))
	check("until only, type=dockcast", all, events.ListOptions{Until: tailUntil, Filters: f("type", "dockcast")}, asDocker(lost))
	check("until only, filter applies to the tail", all, events.ListOptions{Until: tailUntil, Filters: f("container", "m299")}, asDocker(manyA[299]))

	// Follow: history, then live, until the client hangs up.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, errs := all.Events(ctx, events.ListOptions{Since: event.SinceArg(at(499).UnixNano()), Filters: f("node", nodeA)})
	next := func() events.Message {
		t.Helper()
		select {
		case m := <-msgs:
			return m
		case err := <-errs:
			t.Fatalf("follow: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("follow: nothing within 30 s")
		}
		return events.Message{}
	}
	if m := next(); !reflect.DeepEqual(m, asDocker(afterUntil)[0]) {
		t.Fatalf("follow history: %s", summary([]events.Message{m}))
	}
	for i := range 3 {
		publish(t, js, mkEvent(nodeB, "start", nil)) // not for this filter
		ev := add(event.New(nodeA, "container", "die", "", fmt.Sprintf("%064d", 9), map[string]string{"name": "after", "exitCode": fmt.Sprint(i)}, time.Now()))
		if m := next(); !reflect.DeepEqual(m, asDocker(ev)[0]) {
			t.Fatalf("follow live %d: %s", i, summary([]events.Message{m}))
		}
	}
	cancel()

	// The rest of the API: 404 in Docker's shape.
	for _, p := range []string{"/containers/json", "/v1.41/info", "/v1.41/containers/x/json", "/images/json"} {
		resp, err := http.Get(g.base + p)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Message string }
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || err != nil || body.Message != "page not found" {
			t.Errorf("GET %s: %d %+v %v, want 404 {\"message\":\"page not found\"}", p, resp.StatusCode, body, err)
		}
	}
	for _, p := range []string{"/_ping", "/v1.41/_ping", "/version", "/v1.24/version"} {
		if code, body := get(g.base + p); code != http.StatusOK {
			t.Errorf("GET %s: %d %s", p, code, body)
		}
	}
}

// TestDockerEventsUntilOnlyReadsTheTail: `docker events --until T` without
// --since reads the stream from where each node's last 256 events begin,
// not from its start: with those in the ring of recent messages, the
// replay is one turn, served from the ring (before, it began at sequence
// 1, which the ring no longer held, and read all 5,000 from the stream in
// turns of at most 2,048 messages).
func TestDockerEventsUntilOnlyReadsTheTail(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	newStream(t, js, "DTAIL", 0)
	node := testkit.Unique("web")
	g := startGateway(t, ns.ClientURL(), "DTAIL", nil, app.Options{RecentKept: 512})
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	var evs []event.Event
	const n = 5000
	for i := range n {
		ev := event.New(node, "container", "start", "", fmt.Sprintf("%064d", i), map[string]string{"name": fmt.Sprint("c", i)}, base.Add(time.Duration(i)*time.Millisecond))
		publish(t, js, ev)
		evs = append(evs, ev)
	}
	turns := metricValue(t, g, "dockcast_gateway_replay_turns_total")
	got, err := sdkEvents(t, sdkFor(t, g, ""), events.ListOptions{Until: event.SinceArg(base.Add(time.Hour).UnixNano())})
	if err != nil {
		t.Fatal(err)
	}
	if want := asDocker(evs[n-dockerapi.EngineMemory:]...); !reflect.DeepEqual(got, want) {
		t.Fatalf("until only: %d events, want the last %d:\n got  %.300s\n want %.300s", len(got), len(want), summary(got), summary(want))
	}
	if d := metricValue(t, g, "dockcast_gateway_replay_turns_total") - turns; d != 1 {
		t.Errorf("%v replay turns, want 1 (the tail is in the ring)", d)
	}
}

// TestDockerEventsSlowClient: a follow-mode /events client that stops
// reading is a slow consumer like a /ws one: once its queue overflows its
// response ends (counted in slow_consumers_total), while a client that
// reads gets every event.
func TestDockerEventsSlowClient(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	newStream(t, js, "DSLOW", 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, ns.ClientURL(), "DSLOW", nil, app.Options{Listener: testkit.SmallSendBuffers(ln),
		Server: server.Options{Client: client.Options{MaxQueueBytes: 1 << 20}}})
	node := testkit.Unique("dslow")
	filter := url.QueryEscape(`{"node":{"` + node + `":true}}`)

	slow, err := testkit.DialStalling("tcp", strings.TrimPrefix(g.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if _, err := fmt.Fprintf(slow, "GET /v1.41/events?filters=%s HTTP/1.1\r\nHost: gateway\r\n\r\n", filter); err != nil {
		t.Fatal(err)
	}
	good := sdkFor(t, g, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, errs := good.Events(ctx, events.ListOptions{Filters: filters.NewArgs(filters.Arg("node", node))})
	testkit.Eventually(t, 30*time.Second, func() error {
		if v, _ := sample(scrape(t, g.base+"/metrics"), "dockcast_gateway_clients"); v < 2 {
			return fmt.Errorf("%v clients connected, want 2", v)
		}
		return nil
	})
	// The reading client, in the background.
	var mu sync.Mutex
	var names []string
	var goodErr error
	go func() {
		for {
			select {
			case m := <-msgs:
				mu.Lock()
				names = append(names, m.Actor.Attributes["name"])
				mu.Unlock()
			case err := <-errs:
				mu.Lock()
				goodErr = err
				mu.Unlock()
				return
			}
		}
	}()
	// Published in chunks of 100 (about 200 KiB, well under the 1 MiB
	// queue): before the next chunk the reading client has every event so
	// far, so only the client that never reads can fall behind (the small
	// send buffers apply to both: publishing flat out, a reading client
	// would fall behind too on an idle machine).
	pad := strings.Repeat("x", 2000)
	var sent []string
	for i := 0; i < 20000; i++ {
		ev := mkEvent(node, "start", map[string]string{"pad": pad})
		publish(t, js, ev)
		sent = append(sent, ev.Actor.Attributes["name"])
		if i%100 == 99 {
			testkit.Eventually(t, 60*time.Second, func() error {
				mu.Lock()
				defer mu.Unlock()
				if goodErr != nil {
					t.Fatalf("the reading client ended after %d of %d events: %v", len(names), len(sent), goodErr)
				}
				if len(names) < len(sent) {
					return fmt.Errorf("the reading client got %d of %d events", len(names), len(sent))
				}
				return nil
			})
			if v, _ := sample(scrape(t, g.base+"/metrics"), "dockcast_gateway_clients"); v < 2 {
				break // the slow client was cut off
			}
		}
	}
	body := scrape(t, g.base+"/metrics")
	if v, _ := sample(body, "dockcast_gateway_clients"); v != 1 {
		t.Fatalf("%v clients after %d events: the slow one was not cut off", v, len(sent))
	}
	// Its queue overflowed, or (on a loaded machine, publishing slowly) a
	// write to it timed out first: either way its response ends.
	slowConsumers, _ := sample(body, "dockcast_gateway_slow_consumers_total")
	// The slow response ends: reading it reaches its end.
	_ = slow.SetReadDeadline(time.Now().Add(60 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(slow), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Ended cleanly, or cut where the timed-out write stopped.
	n, err := io.Copy(io.Discard, resp.Body)
	if (err != nil && !errors.Is(err, io.ErrUnexpectedEOF)) || resp.StatusCode != http.StatusOK {
		t.Fatalf("the slow client's response did not end: %s %v after %d bytes", resp.Status, err, n)
	}
	testkit.Eventually(t, 60*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if goodErr != nil {
			return fmt.Errorf("the reading client ended after %d of %d events: %w", len(names), len(sent), goodErr)
		}
		if len(names) < len(sent) {
			return fmt.Errorf("the reading client got %d of %d events", len(names), len(sent))
		}
		return nil
	})
	mu.Lock()
	if !slices.Equal(names, sent) {
		t.Errorf("the reading client got other events than were published")
	}
	mu.Unlock()
	t.Logf("slow client cut off after %d events of %d bytes (slow consumers counted: %v); the reading client got all", len(sent), len(pad), slowConsumers)
}
