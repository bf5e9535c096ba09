package testkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestClusterElectsANewStreamLeaderAfterAKill(t *testing.T) {
	t.Parallel()
	c := StartNATSCluster(t, ClusterOptions{})
	nc, js := Connect(t, c.URLs())
	_ = nc
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "R3", Subjects: []string{"r3.>"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	old := c.WaitStreamLeader("R3", nil, 30*time.Second)
	old.Kill()
	if old.Running() {
		t.Fatal("killed server still running")
	}
	next := c.WaitStreamLeader("R3", old, 30*time.Second)
	Eventually(t, 30*time.Second, func() error {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		defer pcancel()
		_, err := js.Publish(pctx, "r3.x", []byte("after"))
		return err
	})
	old.Start()
	c.WaitReady()
	if next == old {
		t.Fatal("the killed server is still the leader")
	}
}

func TestClusterWithDomainAndLeafListener(t *testing.T) {
	t.Parallel()
	c := StartNATSCluster(t, ClusterOptions{Size: 1, Name: "hubc", Domain: "hub", LeafNodes: true})
	_, js := Connect(t, c.URLs())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := js.AccountInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Domain != "hub" {
		t.Fatalf("domain %q, want hub", info.Domain)
	}
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(c.Servers[0].LeafURL(), "nats-leaf://"), 2*time.Second)
	if err != nil {
		t.Fatalf("leaf listener: %v", err)
	}
	_ = conn.Close()
}

func TestTCPProxyCutsRestoresAndDropsReplies(t *testing.T) {
	t.Parallel()
	ns := StartJetStream(t)
	p := StartTCPProxy(t, ns.Addr().String())
	disconnected := make(chan struct{}, 8)
	nc, err := nats.Connect("nats://"+p.Addr, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond),
		nats.PingInterval(200*time.Millisecond), nats.MaxPingsOutstanding(2),
		nats.DisconnectErrHandler(func(*nats.Conn, error) { disconnected <- struct{}{} }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("x")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	// Replies dropped: what the client sends still reaches the server (a
	// second, direct client sees it), the client hears nothing back.
	direct, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	seen, err := direct.SubscribeSync("up")
	if err != nil {
		t.Fatal(err)
	}
	if err := direct.Flush(); err != nil {
		t.Fatal(err)
	}
	p.DropReplies(true)
	if err := nc.Publish("up", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if _, err := seen.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("client -> server traffic lost while replies are dropped: %v", err)
	}
	if err := direct.Publish("x", []byte("2")); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(300 * time.Millisecond); err == nil {
		t.Fatal("a reply reached the client while replies are dropped")
	}
	select { // unanswered pings: the client notices a dead link
	case <-disconnected:
	case <-time.After(10 * time.Second):
		t.Fatal("client never noticed the dead link")
	}

	// Cut: nothing gets through, new connections are refused.
	p.Cut()
	Eventually(t, 5*time.Second, func() error {
		if p.Conns() != 0 {
			return fmt.Errorf("%d connections still open", p.Conns())
		}
		return nil
	})
	c, err := net.DialTimeout("tcp", p.Addr, time.Second)
	if err == nil {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, rerr := c.Read(make([]byte, 1)); rerr == nil {
			t.Fatal("a new connection was served while cut")
		}
		_ = c.Close()
	}
	p.Restore()
	Eventually(t, 10*time.Second, func() error {
		if !nc.IsConnected() {
			return errors.New("not reconnected")
		}
		return nc.Publish("up", []byte("3"))
	})
}

func TestFakeEngineSinceUntilMemoryAndRestart(t *testing.T) {
	t.Parallel()
	e := StartFakeEngine(t, FakeEngineOptions{Name: "fake-1", Memory: 10})
	cli := fakeClient(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	info, err := cli.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "fake-1" || cli.ClientVersion() != FakeAPIVersion {
		t.Fatalf("info %q, negotiated %s", info.Name, cli.ClientVersion())
	}
	var first events.Message
	for i := range 15 {
		m := e.Emit(Container("start", fmt.Sprintf("c%02d", i), fmt.Sprintf("n%02d", i), map[string]string{"k": fmt.Sprint(i % 2)}))
		if i == 0 {
			first = m
		}
	}
	read := func(opts events.ListOptions) []events.Message {
		t.Helper()
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		defer rcancel()
		msgs, errs := cli.Events(rctx, opts)
		var out []events.Message
		for {
			select {
			case m := <-msgs:
				out = append(out, m)
			case err := <-errs:
				if err != nil && !errors.Is(err, io.EOF) {
					t.Fatalf("events: %v", err)
				}
				return out
			}
		}
	}
	tn := time.Now().UnixNano()
	now := fmt.Sprintf("%d.%09d", tn/1e9, tn%1e9)
	got := read(events.ListOptions{Until: now})
	if len(got) != 10 || got[0].Actor.ID != "c05" {
		t.Fatalf("until: %d events from %v, want the last 10 remembered", len(got), got)
	}
	got = read(events.ListOptions{Until: now, Filters: filters.NewArgs(filters.Arg("label", "k=1"))})
	if len(got) != 5 {
		t.Fatalf("filtered until: %d events, want 5", len(got))
	}
	if got := read(events.ListOptions{Since: fmt.Sprintf("%d.%09d", first.Time, first.TimeNano%1e9), Until: now}); len(got) != 10 {
		t.Fatalf("since the forgotten first event: %d, want the 10 remembered", len(got))
	}

	// A follower gets live events; Restart ends its stream and empties the memory.
	lctx, lcancel := context.WithCancel(ctx)
	defer lcancel()
	msgs, errs := cli.Events(lctx, events.ListOptions{})
	Eventually(t, 5*time.Second, func() error {
		if e.Subscribers() != 1 {
			return errors.New("no subscriber yet")
		}
		return nil
	})
	e.Emit(Container("die", "live", "live", nil))
	select {
	case m := <-msgs:
		if m.Actor.ID != "live" || m.Status != "die" {
			t.Fatalf("live event %+v", m)
		}
	case err := <-errs:
		t.Fatal(err)
	}
	e.Restart()
	select {
	case err := <-errs:
		if err == nil {
			t.Fatal("stream ended without an error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("restart did not end the stream")
	}
	if got := read(events.ListOptions{Until: fmt.Sprintf("%d", time.Now().Unix()+1)}); len(got) != 0 {
		t.Fatalf("memory after restart: %d events", len(got))
	}
	if len(e.History()) != 16 {
		t.Fatalf("history %d, want 16", len(e.History()))
	}
	e.SetContainers([]container.Summary{{ID: "c1", Names: []string{"/one"}, State: "running"}})
	list, err := cli.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil || len(list) != 1 || list[0].ID != "c1" {
		t.Fatalf("list %v %v", list, err)
	}
	if _, err := cli.ContainerInspect(ctx, "nope"); !strings.Contains(fmt.Sprint(err), "No such container") {
		t.Fatalf("inspect of a missing container: %v", err)
	}
}

func TestFakeEngineDropsForASubscriberThatDoesNotRead(t *testing.T) {
	t.Parallel()
	e := StartFakeEngine(t, FakeEngineOptions{})
	cli := fakeClient(t, e)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, _ = cli.Events(ctx, events.ListOptions{}) // never read
	Eventually(t, 5*time.Second, func() error {
		if e.Subscribers() != 1 {
			return errors.New("no subscriber yet")
		}
		return nil
	})
	// Once the socket's buffers are full, the next event waits 100 ms and
	// is dropped for that subscriber.
	for i := 0; e.Dropped() == 0; i++ {
		if i == 1_000_000 {
			t.Fatal("a subscriber that never reads missed nothing")
		}
		e.Emit(Container("start", fmt.Sprint(i), strings.Repeat("x", 200), nil))
	}
}

func TestFakeEngineFailNextDelayAndSinceAfterUntil(t *testing.T) {
	t.Parallel()
	e := StartFakeEngine(t, FakeEngineOptions{})
	cli := fakeClient(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e.FailNext("/containers/json", 1)
	if _, err := cli.ContainerList(ctx, container.ListOptions{All: true}); err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("first list after FailNext: %v, want the injected failure", err)
	}
	if _, err := cli.ContainerList(ctx, container.ListOptions{All: true}); err != nil {
		t.Fatalf("second list: %v", err)
	}
	e.Delay("/_ping", 300*time.Millisecond)
	start := time.Now()
	if _, err := cli.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("delayed ping answered in %v", d)
	}
	e.Delay("/_ping", 0)
	msgs, errs := cli.Events(ctx, events.ListOptions{Since: "2000000000", Until: "1000000000"})
	select {
	case m := <-msgs:
		t.Fatalf("event %v for since > until", m)
	case err := <-errs:
		if err == nil || !strings.Contains(err.Error(), "cannot be after") {
			t.Fatalf("since > until: %v", err)
		}
	}
}

// fakeClient is a Docker client of e, closed when the test ends.
func fakeClient(t *testing.T, e *FakeEngine) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.WithHost(e.Host), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}
