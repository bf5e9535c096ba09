package app_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/publisher/app"
	"github.com/dockcast/dockcast/publisher/config"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/testkit"
)

const labelKey = "dockcast.test"

// engineLock: tests that rely on the engine's 256-event memory while the
// publisher is away hold it for reading; the flood of the gap test holds it
// for writing.
var engineLock sync.RWMutex

// pub is a publisher running in-process.
type pub struct {
	t      testing.TB
	App    *app.App
	Node   string
	cancel context.CancelFunc
	done   chan error
	addr   chan string
	http   string
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// startPub runs app.App with the configuration of vars (PUBLISHER_NODE and
// PUBLISHER_HTTP_ADDR are filled in when missing) and stops it at cleanup.
func startPub(t testing.TB, vars map[string]string, tune func(*app.App)) *pub {
	t.Helper()
	if vars["PUBLISHER_NODE"] == "" {
		vars["PUBLISHER_NODE"] = strings.ReplaceAll(testkit.Unique("n"), "-", "_")
	}
	if vars["PUBLISHER_HTTP_ADDR"] == "" {
		vars["PUBLISHER_HTTP_ADDR"] = "127.0.0.1:0"
	}
	cfg, err := config.Load(env(vars))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	p := &pub{t: t, Node: vars["PUBLISHER_NODE"], done: make(chan error, 1), addr: make(chan string, 1)}
	p.App = &app.App{
		Config: cfg, Log: testkit.Logger(t), Getenv: env(vars),
		DockerBackoffMin: 50 * time.Millisecond, DockerBackoffMax: 500 * time.Millisecond,
		Listening: func(a string) { p.addr <- a },
	}
	if tune != nil {
		tune(p.App)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() { p.done <- p.App.Run(ctx) }()
	select {
	case p.http = <-p.addr:
	case err := <-p.done:
		t.Fatalf("publisher stopped at start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("publisher HTTP not listening after 30s")
	}
	t.Cleanup(func() { p.Stop() })
	return p
}

// Stop stops the publisher and checks that it shut down cleanly.
func (p *pub) Stop() {
	if p.cancel == nil {
		return
	}
	p.cancel()
	p.cancel = nil
	select {
	case err := <-p.done:
		if err != nil {
			p.t.Errorf("publisher: %v", err)
		}
	case <-time.After(60 * time.Second):
		p.t.Error("publisher did not stop in 60s")
	}
}

func (p *pub) get(path string) (int, string, error) {
	return httpGet("http://" + p.http + path)
}

// metric reads one sample without labels (or with exactly the labels
// given in name, as in /metrics) from /metrics; an error when /metrics
// does not have it.
func (p *pub) metric(name string) (float64, error) {
	_, body, err := p.get("/metrics")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("/metrics has no %s", name)
}

func httpGet(url string) (int, string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func waitReady(t testing.TB, base string) {
	t.Helper()
	testkit.Eventually(t, 60*time.Second, func() error {
		code, body, err := httpGet(base + "/readyz")
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("readyz %d: %s", code, body)
		}
		return nil
	})
}

func (p *pub) WaitReady() { p.t.Helper(); waitReady(p.t, "http://"+p.http) }

// stored is one message of the stream.
type stored struct {
	Seq     uint64
	Subject string
	MsgID   string
	Event   event.Event
}

// readNode returns every message of node in the stream, in stream order.
func readNode(t *testing.T, js jetstream.JetStream, streamName, node string) []stored {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, streamName)
	if err != nil {
		t.Fatalf("stream %s: %v", streamName, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []stored
	prefix := "docker.events." + node + "."
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("get msg %d: %v", seq, err)
		}
		if !strings.HasPrefix(m.Subject, prefix) {
			continue
		}
		e, err := event.Decode(m.Data)
		if err != nil {
			t.Fatalf("msg %d on %s: %v", seq, m.Subject, err)
		}
		out = append(out, stored{Seq: seq, Subject: m.Subject, MsgID: m.Header.Get("Nats-Msg-Id"), Event: e})
	}
	return out
}

// ofActors keeps the container events of the given containers.
func ofActors(msgs []stored, ids ...string) []stored {
	var out []stored
	for _, m := range msgs {
		if m.Event.Type == "container" && m.Event.Action != event.ActionState && slices.Contains(ids, m.Event.Actor.ID) {
			out = append(out, m)
		}
	}
	return out
}

// engineWatch collects what the engine reports for the containers with a
// label: `docker events --since <start> --until <start+10m> --filter
// label=…` through the API. It is a live subscription, so it does not
// depend on the engine's 256-event memory (shared with other tests).
type engineWatch struct {
	mu     sync.Mutex
	events []event.Event
	err    error
}

func watchEngine(t testing.TB, cli *client.Client, node, label string) *engineWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	since := time.Now().Add(-time.Second)
	args := filters.NewArgs(filters.Arg("label", labelKey+"="+label), filters.Arg("type", "container"))
	msgs, errs := cli.Events(ctx, events.ListOptions{
		Since: event.SinceArg(since.UnixNano()), Until: event.SinceArg(since.Add(10 * time.Minute).UnixNano()), Filters: args,
	})
	w := &engineWatch{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case m := <-msgs:
				w.mu.Lock()
				w.events = append(w.events, event.FromDocker(node, m))
				w.mu.Unlock()
			case err := <-errs:
				w.mu.Lock()
				if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, context.Canceled) {
					w.err = err
				}
				w.mu.Unlock()
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

func (w *engineWatch) list() ([]event.Event, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.events), w.err
}

// runAndRemove runs a short-lived probe to completion and removes it.
func runAndRemove(t *testing.T, cli *client.Client, label string) string {
	t.Helper()
	id := testkit.RunProbe(t, cli, testkit.Probe{
		Name: testkit.Unique("dockcast-pub"), Labels: map[string]string{labelKey: label},
		Args: []string{"sleep", "10ms"}, Start: true,
	})
	testkit.WaitExited(t, cli, id)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true}); err != nil {
		t.Fatalf("remove %s: %v", id, err)
	}
	return id
}

// sameAsEngine waits until the engine reports a destroy for every id and
// the stream holds exactly the engine's events of those containers, in
// the engine's order, each once.
func sameAsEngine(t *testing.T, engine *engineWatch, js jetstream.JetStream, node string, ids []string) []stored {
	t.Helper()
	var got []stored
	testkit.Eventually(t, 60*time.Second, func() error {
		want, err := engine.list()
		if err != nil {
			t.Fatalf("engine events: %v", err)
		}
		destroyed := 0
		for _, e := range want {
			if e.Action == "destroy" && slices.Contains(ids, e.Actor.ID) {
				destroyed++
			}
		}
		if destroyed != len(ids) {
			return fmt.Errorf("engine reports %d of %d destroys", destroyed, len(ids))
		}
		got = ofActors(readNode(t, js, "DOCKER_EVENTS", node), ids...)
		if len(got) != len(want) {
			return fmt.Errorf("stream has %d events of the containers, engine %d:\nstream %v\nengine %v", len(got), len(want), describe(got), describeEv(want))
		}
		for i := range want {
			if got[i].Event.ID != want[i].ID {
				return fmt.Errorf("event %d: stream %s, engine %s", i, describe(got[i:i+1]), describeEv(want[i:i+1]))
			}
		}
		return nil
	})
	ids1 := map[string]bool{}
	keys := map[string]bool{}
	for _, m := range got {
		k := fmt.Sprintf("%s|%s|%d", m.Event.DockerAction(), m.Event.Actor.ID, m.Event.TimeNano)
		if ids1[m.Event.ID] || keys[k] {
			t.Fatalf("event twice in the stream: %s", k)
		}
		ids1[m.Event.ID], keys[k] = true, true
	}
	return got
}

func describe(ms []stored) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "[%s %.12s %d] ", m.Event.DockerAction(), m.Event.Actor.ID, m.Event.TimeNano)
	}
	return b.String()
}

func describeEv(es []event.Event) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "[%s %.12s %d] ", e.DockerAction(), e.Actor.ID, e.TimeNano)
	}
	return b.String()
}

// startProc runs bin/publisher as a process with vars added to the environment.
func startProc(t *testing.T, vars map[string]string) *testkit.Process {
	t.Helper()
	var env []string
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return testkit.StartProcess(t, "publisher", nil, env...)
}
