package app_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"

	"github.com/dockcast/dockcast/gateway/app"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/filter"
	"github.com/dockcast/dockcast/shared/testkit"
)

// startPublisher runs bin/publisher against natsURL, writing to stream as node.
func startPublisher(t *testing.T, natsURL, stream, node string) {
	t.Helper()
	startPublisherAt(t, natsURL, stream, node, "127.0.0.1:0")
}

// startPublisherAt is startPublisher serving its HTTP (/metrics) on httpAddr.
func startPublisherAt(t *testing.T, natsURL, stream, node, httpAddr string) {
	t.Helper()
	cmd := exec.Command(testkit.Binary(t, "publisher"))
	cmd.Env = append(os.Environ(), "NATS_URL="+natsURL, "PUBLISHER_NODE="+node, "PUBLISHER_STREAM="+stream,
		"PUBLISHER_HTTP_ADDR="+httpAddr, "PUBLISHER_DATA_DIR="+t.TempDir(), "LOG_LEVEL=debug")
	out, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start publisher: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			t.Log("publisher: " + sc.Text())
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_ = cmd.Wait()
	})
}

// TestEndToEnd: a container run by the test reaches a WebSocket client
// filtered by its label as event frames in order: create, start, die, destroy.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	cli := testkit.Docker(t)
	testkit.EnsureProbeImage(t, cli)
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	stream := "E2E"
	node := testkit.Unique("e2e")
	startPublisher(t, ns.ClientURL(), stream, node)
	testkit.Eventually(t, 60*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := js.Stream(ctx, stream)
		return err
	})
	g := startGateway(t, ns.ClientURL(), stream, nil, app.Options{})
	label := testkit.Unique("dockcast.e2e")
	conn := dial(t, g.wsURL(q("filter", "label="+label+"=yes", "filter", "type=container")), nil)
	if f := read(t, conn, 30*time.Second); f.Type != "status" && f.Type != "live" {
		t.Fatalf("first frame %+v", f)
	}
	name := testkit.Unique("e2e-probe")
	began := time.Now()
	id := testkit.RunProbe(t, cli, testkit.Probe{Name: name, Labels: map[string]string{label: "yes"}, Args: []string{"sleep", "100ms"}, Start: true})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	testkit.WaitExited(t, cli, id)
	if err := cli.ContainerRemove(ctx, id, container.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	var actions []string
	var last uint64
	for len(actions) < 4 {
		f := read(t, conn, 60*time.Second)
		if f.Type != "event" {
			continue
		}
		if len(actions) == 0 {
			t.Logf("docker run -> first event at the client: %v", time.Since(began))
		}
		if f.Seq <= last {
			t.Fatalf("seq %d after %d", f.Seq, last)
		}
		last = f.Seq
		ev := decodeEvent(t, f)
		if ev.Actor.ID != id || ev.Node != node || ev.Type != "container" || ev.Actor.Attributes[label] != "yes" ||
			ev.Actor.Attributes["name"] != name || ev.ID == "" || ev.TimeNano == 0 || ev.Time.UnixNano() != ev.TimeNano ||
			f.Subject != ev.Subject() || ev.V != 1 {
			t.Fatalf("event frame %+v: %+v", f, ev)
		}
		if ev.Action == event.ActionState {
			continue // the publisher's start-up snapshot may include our container
		}
		actions = append(actions, ev.Action)
	}
	if strings.Join(actions, ",") != "create,start,die,destroy" {
		t.Fatalf("actions %v, want create,start,die,destroy", actions)
	}
}

// key identifies an engine event across both sides.
func key(e event.Event) string {
	return fmt.Sprintf("%d|%s|%s", e.TimeNano, e.DockerAction(), e.Actor.ID)
}

// TestFiltersMatchDocker: every filter key, alone and combined, selects the
// same events through the gateway as Docker's own engine filtering.
func TestFiltersMatchDocker(t *testing.T) {
	t.Parallel()
	cli := testkit.Docker(t)
	img := testkit.EnsureProbeImage(t, cli)
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	stream := "FILTERS"
	newStream(t, js, stream, 0)
	node := testkit.Unique("filters")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Produce real engine events: a volume, a network, two containers. The
	// engine's answers are read from streaming subscriptions opened before
	// the events happen (since t0, until t0+window), so that they do not
	// depend on the engine's 256-event memory, which other tests fill.
	u := testkit.Unique("dcf")
	lk := "dockcast.filters." + u
	t0 := time.Now()
	const window = 25 * time.Second
	vol, err := cli.VolumeCreate(ctx, volume.CreateOptions{Name: u + "-vol", Labels: map[string]string{lk: "vol"}})
	if err != nil {
		t.Fatal(err)
	}
	volGone := false
	t.Cleanup(func() {
		if !volGone {
			_ = cli.VolumeRemove(context.Background(), vol.Name, true)
		}
	})
	netw, err := cli.NetworkCreate(ctx, u+"-net", network.CreateOptions{Driver: "bridge", Internal: true, Labels: map[string]string{lk: "net"}})
	if err != nil {
		t.Fatal(err)
	}
	netGone := false
	t.Cleanup(func() {
		if !netGone {
			_ = cli.NetworkRemove(context.Background(), netw.ID)
		}
	})
	create := func(name, value, netMode string) string {
		c, err := cli.ContainerCreate(ctx, &container.Config{Image: img, Cmd: []string{"sleep", "50ms"}, Labels: map[string]string{lk: value}},
			&container.HostConfig{NetworkMode: container.NetworkMode(netMode)}, nil, nil, name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true}) })
		return c.ID
	}
	c1 := create(u+"-one", "one", u+"-net")
	c2 := create(u+"-two", "two", "none")
	ours := map[string]bool{c1: true, c2: true, netw.ID: true, vol.Name: true}

	cases := [][]string{
		{"type=container"}, {"type=volume"}, {"type=network"},
		{"event=create"}, {"event=start"}, {"event=die"}, {"event=destroy"}, {"event=connect"}, {"event=disconnect"},
		{"container=" + u + "-one"}, {"container=" + c2[:12]}, {"container=" + u + "-one", "container=" + u + "-two"},
		{"image=" + img}, {"image=dockcast-probe"},
		{"label=" + lk}, {"label=" + lk + "=one"}, {"label=" + lk + "=net"}, {"label=" + lk + "=vol"},
		{"network=" + u + "-net"}, {"network=" + netw.ID}, {"volume=" + vol.Name},
		{"scope=local"},
		{"type=container", "event=start"}, {"type=container", "label=" + lk + "=two"},
		{"event=create", "event=destroy"}, {"type=network", "event=connect"},
		{"label=" + lk, "event=die"}, {"type=volume", "volume=" + vol.Name},
		{"type=container", "type=network", "event=destroy"}, {"container=" + c1[:10], "event=die", "label=" + lk + "=one"},
	}
	type sub struct {
		done chan struct{}
		evs  []event.Event
		err  error
	}
	subscribe := func(args filters.Args) *sub {
		s := &sub{done: make(chan struct{})}
		msgs, errs := cli.Events(ctx, events.ListOptions{Since: event.SinceArg(t0.UnixNano()), Until: event.SinceArg(t0.Add(window).UnixNano()), Filters: args})
		go func() {
			defer close(s.done)
			for {
				select {
				case m := <-msgs:
					s.evs = append(s.evs, event.FromDocker(node, m))
				case err := <-errs:
					if err != nil && !errors.Is(err, io.EOF) {
						s.err = err
					}
					return
				}
			}
		}()
		return s
	}
	allSub := subscribe(filters.NewArgs())
	subs := make([]*sub, len(cases))
	for i, terms := range cases {
		f, err := filter.Parse(terms, filter.EngineKeys)
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = subscribe(f.Args())
	}
	for _, id := range []string{c1, c2} {
		if err := cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
			t.Fatal(err)
		}
		testkit.WaitExited(t, cli, id)
		if err := cli.ContainerRemove(ctx, id, container.RemoveOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cli.NetworkRemove(ctx, netw.ID); err != nil {
		t.Fatal(err)
	}
	netGone = true
	if err := cli.VolumeRemove(ctx, vol.Name, false); err != nil {
		t.Fatal(err)
	}
	volGone = true
	if time.Since(t0) > window-2*time.Second {
		t.Fatalf("making the events took %v, longer than the %v window", time.Since(t0), window)
	}
	ourSet := func(evs []event.Event) map[string]bool {
		out := map[string]bool{}
		for _, e := range evs {
			if ours[e.Actor.ID] {
				out[key(e)] = true
			}
		}
		return out
	}
	<-allSub.done
	if allSub.err != nil {
		t.Fatal(allSub.err)
	}
	// The stream gets the engine's unfiltered events of the window.
	for _, e := range allSub.evs {
		publish(t, js, e)
	}
	all := ourSet(allSub.evs)
	if len(all) < 14 {
		t.Fatalf("only %d of our events in the engine's window", len(all))
	}
	t.Logf("%d engine events in the window, %d of them ours", len(allSub.evs), len(all))

	g := startGateway(t, ns.ClientURL(), stream, nil, app.Options{})
	gatewaySet := func(terms []string) map[string]bool {
		args := []string{"from_seq", "1"}
		for _, tm := range terms {
			args = append(args, "filter", tm)
		}
		conn := dial(t, g.wsURL(q(args...)), nil)
		defer conn.Close()
		out := map[string]bool{}
		for {
			f := read(t, conn, 30*time.Second)
			if f.Type == "live" {
				return out
			}
			if f.Type == "event" {
				if e := decodeEvent(t, f); ours[e.Actor.ID] {
					out[key(e)] = true
				}
			}
		}
	}
	for i, terms := range cases {
		<-subs[i].done
		if subs[i].err != nil {
			t.Fatal(subs[i].err)
		}
		want := ourSet(subs[i].evs)
		for _, withNode := range []bool{false, true} {
			gterms := terms
			if withNode {
				gterms = append(append([]string(nil), terms...), "node="+node)
			}
			got := gatewaySet(gterms)
			if !sameSet(got, want) {
				t.Errorf("filter %v: gateway %v, engine %v", gterms, sorted(got), sorted(want))
			}
		}
		if len(want) == 0 {
			t.Logf("filter %v selects nothing", terms)
		}
	}
	if got := gatewaySet([]string{"node=other-node"}); len(got) != 0 {
		t.Errorf("node=other-node: %d events", len(got))
	}
}

func sameSet(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func sorted(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
