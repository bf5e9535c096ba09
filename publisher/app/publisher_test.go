package app_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/volume"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/publisher/app"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/natsutil"
	"github.com/dockcast/dockcast/shared/status"
	"github.com/dockcast/dockcast/shared/testkit"
)

// Containers started and removed appear exactly once, in the engine's
// order, with the right subjects and payload; /metrics counts them.
func TestContainersInEngineOrder(t *testing.T) {
	t.Parallel()
	cli := testkit.Docker(t)
	testkit.EnsureProbeImage(t, cli)
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	p := startPub(t, map[string]string{"NATS_URL": ns.ClientURL()}, nil)
	p.WaitReady()

	label := testkit.Unique("order")
	engine := watchEngine(t, cli, p.Node, label)
	var ids []string
	for range 3 {
		ids = append(ids, runAndRemove(t, cli, label))
	}
	got := sameAsEngine(t, engine, js, p.Node, ids)
	for _, m := range got {
		e := m.Event
		if want := "docker.events." + p.Node + ".container." + e.Action; m.Subject != want {
			t.Errorf("subject %s, want %s", m.Subject, want)
		}
		if m.MsgID != e.ID || e.ID != event.ID(p.Node, e.TimeNano, e.Type, e.DockerAction(), e.Actor.ID) {
			t.Errorf("msg id %q / id %q do not match the event", m.MsgID, e.ID)
		}
		if e.V != 1 || e.Node != p.Node || e.Scope != "local" || e.Time.UnixNano() != e.TimeNano ||
			e.Actor.Attributes[labelKey] != label || e.Actor.Attributes["image"] != testkit.ProbeImage ||
			!strings.HasPrefix(e.Actor.Attributes["name"], "dockcast-pub-") {
			t.Errorf("bad payload: %+v", e)
		}
	}
	var actions []string
	for _, m := range got[:len(got)/len(ids)] {
		actions = append(actions, m.Event.Action)
	}
	for _, a := range []string{"create", "start", "die", "destroy"} {
		if !slices.Contains(actions, a) {
			t.Errorf("no %s event for the first container: %v", a, actions)
		}
	}

	_, body, err := p.get("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"events_received_total", "events_published_total", "duplicates_total",
		"publish_errors_total", "queue_depth", `reconnects_total{target="docker"}`, `reconnects_total{target="nats"}`,
		"gaps_total 1", "last_event_age_seconds", "go_goroutines", "process_"} {
		if !strings.Contains(body, name) && !strings.Contains(body, "dockcast_publisher_"+name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if strings.Contains(body, "dockcast_publisher_events_published_total 0\n") {
		t.Error("events_published_total is 0")
	}
	if code, _, _ := p.get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz %d", code)
	}
}

// exec_start and health_status map to their subjects with action_detail.
func TestHealthEvents(t *testing.T) {
	t.Parallel()
	cli := testkit.Docker(t)
	testkit.EnsureProbeImage(t, cli)
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	label := testkit.Unique("health")
	p := startPub(t, map[string]string{"NATS_URL": ns.ClientURL(), "PUBLISHER_FILTERS": "label=" + labelKey + "=" + label}, nil)
	p.WaitReady()
	id := testkit.RunProbe(t, cli, testkit.Probe{Name: testkit.Unique("dockcast-health"), Health: true, Start: true,
		Labels: map[string]string{labelKey: label}, Args: []string{"healthy-for", "2s", "sleep", "60s"}})
	testkit.Eventually(t, 60*time.Second, func() error {
		var health []string
		execs := 0
		for _, m := range ofActors(readNode(t, js, "DOCKER_EVENTS", p.Node), id) {
			switch m.Event.Action {
			case "exec_start":
				if m.Subject != "docker.events."+p.Node+".container.exec_start" || m.Event.ActionDetail != "/probe health" {
					return fmt.Errorf("bad exec_start: %s %q", m.Subject, m.Event.ActionDetail)
				}
				execs++
			case "health_status":
				if m.Subject != "docker.events."+p.Node+".container.health_status" {
					return fmt.Errorf("bad subject %s", m.Subject)
				}
				health = append(health, m.Event.ActionDetail)
			}
		}
		i := slices.Index(health, "healthy")
		if execs == 0 || i < 0 || !slices.Contains(health[i:], "unhealthy") {
			return fmt.Errorf("%d exec_start, health %v", execs, health)
		}
		return nil
	})
}

// kill -9 of the publisher process; containers run while it is down.
func TestKill9(t *testing.T) {
	t.Parallel()
	cli := testkit.Docker(t)
	testkit.EnsureProbeImage(t, cli)
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	node := strings.ReplaceAll(testkit.Unique("k9"), "-", "_")
	vars := map[string]string{"NATS_URL": ns.ClientURL(), "PUBLISHER_NODE": node, "PUBLISHER_HTTP_ADDR": testkit.FreeAddr(t), "LOG_LEVEL": "warn"}
	base := "http://" + vars["PUBLISHER_HTTP_ADDR"]
	first := startProc(t, vars)
	waitReady(t, base)

	engineLock.RLock()
	defer engineLock.RUnlock()
	label := testkit.Unique("kill9")
	engine := watchEngine(t, cli, node, label)
	ids := []string{runAndRemove(t, cli, label)}
	testkit.Eventually(t, 30*time.Second, func() error {
		if n := len(ofActors(readNode(t, js, "DOCKER_EVENTS", node), ids...)); n < 4 {
			return fmt.Errorf("%d events of the first container", n)
		}
		return nil
	})
	first.Stop(syscall.SIGKILL)
	for range 3 {
		ids = append(ids, runAndRemove(t, cli, label))
	}
	startProc(t, vars)
	waitReady(t, base)
	ids = append(ids, runAndRemove(t, cli, label))
	sameAsEngine(t, engine, js, node, ids)
	noGapButFirstStart(t, js, node, "unexpected gap after kill -9")
}

// NATS stopped and started again while containers run.
func TestNATSRestart(t *testing.T) {
	t.Parallel()
	cli := testkit.Docker(t)
	testkit.EnsureProbeImage(t, cli)
	np := testkit.StartNATSProcess(t)
	p := startPub(t, map[string]string{"NATS_URL": np.URL()}, func(a *app.App) { a.AckTimeout = 2 * time.Second })
	p.WaitReady()

	label := testkit.Unique("natsrestart")
	engine := watchEngine(t, cli, p.Node, label)
	ids := []string{runAndRemove(t, cli, label)}
	np.Stop(syscall.SIGTERM)
	testkit.Eventually(t, 30*time.Second, func() error {
		code, body, err := p.get("/readyz")
		if err != nil {
			return err
		}
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "nats") {
			return fmt.Errorf("readyz %d %q while nats is down", code, body)
		}
		return nil
	})
	for range 3 {
		ids = append(ids, runAndRemove(t, cli, label))
	}
	np.Start()
	ids = append(ids, runAndRemove(t, cli, label))
	p.WaitReady()
	_, js := testkit.Connect(t, np.URL())
	sameAsEngine(t, engine, js, p.Node, ids)
}

// The Docker connection cut mid-stream: reconnect, resume with since,
// nothing lost; DOCKER_STATUS goes disconnected then connected; /readyz follows.
func TestDockerCut(t *testing.T) {
	t.Parallel()
	cli := testkit.Docker(t)
	testkit.EnsureProbeImage(t, cli)
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	proxy := testkit.StartDockerProxy(t, "/var/run/docker.sock")
	p := startPub(t, map[string]string{"NATS_URL": ns.ClientURL(), "DOCKER_HOST": proxy.Host()}, nil)
	p.WaitReady()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	kv, err := js.KeyValue(ctx, status.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	w, err := kv.Watch(ctx, p.Node)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	statuses := make(chan status.Status, 100)
	go func() {
		for e := range w.Updates() {
			if e == nil {
				continue
			}
			s, err := status.Decode(e.Value())
			if err == nil {
				statuses <- s
			}
		}
	}()
	expect := func(state string) status.Status {
		t.Helper()
		for {
			select {
			case s := <-statuses:
				if s.Docker == state {
					return s
				}
			case <-ctx.Done():
				t.Fatalf("status never became %s", state)
			}
		}
	}
	if s := expect(status.Connected); s.Engine.Version == "" || s.Engine.APIVersion == "" || s.Node != p.Node {
		t.Errorf("connected status without engine: %+v", s)
	}

	engineLock.RLock()
	defer engineLock.RUnlock()
	label := testkit.Unique("cut")
	engine := watchEngine(t, cli, p.Node, label)
	ids := []string{runAndRemove(t, cli, label)}
	proxy.Cut()
	if s := expect(status.Disconnected); s.Error == "" {
		t.Errorf("disconnected status without error: %+v", s)
	}
	if code, body, _ := p.get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "docker") {
		t.Errorf("readyz %d %q while docker is cut", code, body)
	}
	for range 2 {
		ids = append(ids, runAndRemove(t, cli, label))
	}
	proxy.Restore()
	expect(status.Connected)
	p.WaitReady()
	ids = append(ids, runAndRemove(t, cli, label))
	sameAsEngine(t, engine, js, p.Node, ids)
	noGapButFirstStart(t, js, p.Node, "gap announced although the engine covered the resume point")
}

// First start: gap then state events. Then more than 256 engine events
// while cut off: a gap (engine_lost_events) followed by state events.
func TestGap(t *testing.T) {
	t.Parallel()
	cli := testkit.Docker(t)
	testkit.EnsureProbeImage(t, cli)
	label := testkit.Unique("gap")
	labels := map[string]string{labelKey: label, "other": "x"}
	running := testkit.RunProbe(t, cli, testkit.Probe{Name: testkit.Unique("dockcast-gap"), Labels: labels, Args: []string{"sleep", "120s"}, Start: true})
	created := testkit.RunProbe(t, cli, testkit.Probe{Name: testkit.Unique("dockcast-gap"), Labels: labels, Args: []string{"sleep", "1s"}})

	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	proxy := testkit.StartDockerProxy(t, "/var/run/docker.sock")
	p := startPub(t, map[string]string{"NATS_URL": ns.ClientURL(), "DOCKER_HOST": proxy.Host()}, nil)
	p.WaitReady()

	// checkGap asserts msgs[i] is a gap with reason, followed by state events
	// that include ours.
	checkGap := func(msgs []stored, i int, reason string) error {
		g := msgs[i].Event
		if g.Type != event.TypeDockcast || g.Action != event.ActionGap || msgs[i].Subject != "docker.events."+p.Node+".dockcast.gap" ||
			g.Actor.Attributes["reason"] != reason || g.Actor.Attributes["until"] == "" {
			return fmt.Errorf("bad gap event %s %+v", msgs[i].Subject, g)
		}
		if reason == "first_start" && g.Actor.Attributes["from"] != "" || reason != "first_start" && g.Actor.Attributes["from"] == "" {
			return fmt.Errorf("bad gap window %v", g.Actor.Attributes)
		}
		found := map[string]string{}
		for _, m := range msgs[i+1:] {
			e := m.Event
			if e.Type != "container" || e.Action != event.ActionState {
				continue
			}
			if m.Subject != "docker.events."+p.Node+".container.state" || e.TimeNano != g.TimeNano {
				return fmt.Errorf("bad state event %s %+v", m.Subject, e)
			}
			if e.Actor.ID == running || e.Actor.ID == created {
				a := e.Actor.Attributes
				if a[labelKey] != label || a["other"] != "x" || a["image"] != testkit.ProbeImage ||
					!strings.HasPrefix(a["name"], "dockcast-gap-") || a["health"] != "" {
					return fmt.Errorf("bad state attributes %v", a)
				}
				found[e.Actor.ID] = e.ActionDetail
			}
		}
		if found[running] != "running" || found[created] != "created" {
			return fmt.Errorf("states of our containers: %v", found)
		}
		return nil
	}
	testkit.Eventually(t, 30*time.Second, func() error {
		msgs := readNode(t, js, "DOCKER_EVENTS", p.Node)
		if len(msgs) == 0 {
			return errors.New("stream empty")
		}
		return checkGap(msgs, 0, "first_start")
	})

	engineLock.Lock()
	proxy.Cut()
	testkit.Eventually(t, 30*time.Second, func() error {
		if ok, why := p.App.Ready(); ok || !strings.Contains(why, "docker") {
			return fmt.Errorf("still ready: %s", why)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := range 160 {
		name := fmt.Sprintf("%s-v%d", label, i)
		if _, err := cli.VolumeCreate(ctx, volume.CreateOptions{Name: name}); err != nil {
			engineLock.Unlock()
			t.Fatal(err)
		}
		if err := cli.VolumeRemove(ctx, name, true); err != nil {
			engineLock.Unlock()
			t.Fatal(err)
		}
	}
	proxy.Restore()
	engineLock.Unlock()
	testkit.Eventually(t, 60*time.Second, func() error {
		msgs := readNode(t, js, "DOCKER_EVENTS", p.Node)
		for i := 1; i < len(msgs); i++ {
			if msgs[i].Event.Action == event.ActionGap {
				return checkGap(msgs, i, "engine_lost_events")
			}
		}
		return errors.New("no second gap event yet")
	})
}

// Stream limits set in the environment are applied to an existing stream
// (one absent is left as it is); data is kept.
func TestStreamLimitsSetAreApplied(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	old := natsutil.StreamConfig("DOCKER_EVENTS", time.Hour, 1<<20, 1)
	old.Duplicates = time.Minute
	if _, err := js.CreateStream(ctx, old); err != nil {
		t.Fatal(err)
	}
	e := event.New("elsewhere", "container", "start", "", "abc", nil, time.Now())
	data, _ := e.Marshal()
	if _, err := js.Publish(ctx, e.Subject(), data, jetstream.WithMsgID(e.ID)); err != nil {
		t.Fatal(err)
	}
	p := startPub(t, map[string]string{"NATS_URL": ns.ClientURL(), "PUBLISHER_STREAM_MAX_AGE": "48h", "PUBLISHER_STREAM_MAX_BYTES": "64MiB"}, nil)
	p.WaitReady()
	s, err := js.Stream(ctx, "DOCKER_EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := info.Config; c.MaxAge != 48*time.Hour || c.MaxBytes != 64<<20 || c.Duplicates != time.Minute || !c.AllowAtomicPublish {
		t.Errorf("limits: age %v bytes %d dup %v atomic %v; want the two set (48h, 64MiB), the window left at 1m, atomic batches on",
			c.MaxAge, c.MaxBytes, c.Duplicates, c.AllowAtomicPublish)
	}
	m, err := s.GetMsg(ctx, 1)
	if err != nil {
		t.Fatalf("first message lost: %v", err)
	}
	if got, err := event.Decode(m.Data); err != nil || got.ID != e.ID {
		t.Errorf("first message changed: %v %v", got, err)
	}
}

// noGapButFirstStart fails the test if the node's stream holds a gap event
// other than the first start's.
func noGapButFirstStart(t *testing.T, js jetstream.JetStream, node, why string) {
	t.Helper()
	for _, m := range readNode(t, js, "DOCKER_EVENTS", node) {
		if m.Event.Action == event.ActionGap && m.Event.Actor.Attributes["reason"] != "first_start" {
			t.Errorf("%s: %v", why, m.Event.Actor.Attributes)
		}
	}
}
