package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/gorilla/websocket"

	gwapp "github.com/dockcast/dockcast/gateway/app"
	gwclient "github.com/dockcast/dockcast/gateway/client"
	gwconfig "github.com/dockcast/dockcast/gateway/config"
	"github.com/dockcast/dockcast/gateway/snapshot"
	"github.com/dockcast/dockcast/shared/containerstate"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/filter"
	"github.com/dockcast/dockcast/shared/subject"
	"github.com/dockcast/dockcast/shared/testkit"
)

// gate holds the first snapshot at each stage until the test opens it.
type gate struct {
	mu      sync.Mutex
	reached map[string]chan struct{}
	open    map[string]chan struct{}
}

func newGate(stages ...string) *gate {
	g := &gate{reached: map[string]chan struct{}{}, open: map[string]chan struct{}{}}
	for _, s := range stages {
		g.reached[s], g.open[s] = make(chan struct{}), make(chan struct{})
	}
	return g
}

// hook is snapshot.Source.Hook: the first call at a held stage says so
// and waits until release.
func (g *gate) hook(stage string) {
	g.mu.Lock()
	reached, open := g.reached[stage], g.open[stage]
	delete(g.reached, stage)
	g.mu.Unlock()
	if reached == nil {
		return
	}
	close(reached)
	<-open
}

func (g *gate) wait(t *testing.T, stage string) {
	t.Helper()
	g.mu.Lock()
	ch := g.reached[stage]
	g.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case <-ch:
	case <-time.After(eventTimeout):
		t.Fatalf("the snapshot did not reach %s", stage)
	}
}

func (g *gate) release(stage string) { close(g.open[stage]) }

// startGatewayInProcess runs the gateway in this process, with o.
func startGatewayInProcess(t *testing.T, natsURL string, o gwapp.Options) string {
	t.Helper()
	vars := map[string]string{"NATS_URL": natsURL, "GATEWAY_ADDR": "127.0.0.1:0", "LOG_LEVEL": "debug"}
	cfg, err := gwconfig.Load(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	addr := make(chan net.Addr, 1)
	o.Listening = func(a net.Addr) { addr <- a }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = gwapp.Run(ctx, cfg, testkit.Logger(t), o) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case a := <-addr:
		waitHTTP(t, "http://"+a.String()+"/readyz")
		return a.String()
	case <-time.After(startTimeout):
		t.Fatal("gateway did not listen")
	}
	return ""
}

// listClient reads a snapshot=1 connection: state frames, snapshot_end,
// then events, folded into the containers the client believes in.
type listClient struct {
	mu     sync.Mutex
	states []containerstate.State
	end    uint64
	ended  bool
	events []gwclient.Frame
	set    containerstate.Set
	err    error
}

func follow(t *testing.T, addr string, q url.Values) *listClient {
	t.Helper()
	q.Set("snapshot", "1")
	c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws?"+q.Encode(), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	lc := &listClient{}
	go func() {
		for {
			_, data, err := c.ReadMessage()
			if err != nil {
				lc.mu.Lock()
				lc.err = err
				lc.mu.Unlock()
				return
			}
			var f gwclient.Frame
			if err := json.Unmarshal(data, &f); err != nil {
				t.Errorf("frame %s: %v", data, err)
				return
			}
			lc.mu.Lock()
			switch f.Type {
			case "state":
				var ev event.Event
				if err := json.Unmarshal(f.Event, &ev); err != nil || lc.ended {
					t.Errorf("state frame %s (after snapshot_end: %v): %v", data, lc.ended, err)
				}
				st := containerstate.State{Seq: f.Seq, Event: ev}
				lc.states = append(lc.states, st)
				lc.set.Put(st)
			case "snapshot_end":
				lc.end, lc.ended = f.Seq, true
			case "event":
				ev, err := event.Decode(f.Event)
				if err != nil || !lc.ended || f.Seq <= lc.end {
					t.Errorf("event frame %s: %v (snapshot_end %v at %d)", data, err, lc.ended, lc.end)
				}
				lc.events = append(lc.events, f)
				lc.set.Apply(f.Seq, &ev)
			}
			lc.mu.Unlock()
		}
	}()
	return lc
}

// view is what a client or docker ps -a says of one container (not the
// image: ps shows its id once another test builds the probe image again).
type view struct{ Name, State string }

func (lc *listClient) view() (map[string]view, bool) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	out := map[string]view{}
	for _, st := range lc.set.All() {
		a := st.Event.Actor.Attributes
		out[st.ID()] = view{a["name"], st.Event.ActionDetail}
	}
	return out, lc.ended
}

func dockerPS(t *testing.T, cli *client.Client, label string) map[string]view {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelKey+"="+label))})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]view{}
	for _, c := range list {
		out[c.ID] = view{strings.TrimPrefix(c.Names[0], "/"), string(c.State)}
	}
	return out
}

var allEvents filter.Filter

// waitStored waits until the stream holds an event of container id with action.
func waitStored(t *testing.T, s *services, id, action string) uint64 {
	t.Helper()
	var seq uint64
	testkit.Eventually(t, eventTimeout, func() error {
		all, err := s.stored(allEvents)
		if err != nil {
			return err
		}
		for _, m := range all {
			if m.Event.Actor.ID == id && m.Event.Action == action {
				seq = m.Seq
				return nil
			}
		}
		return fmt.Errorf("no %s of %s stored yet", action, id[:12])
	})
	return seq
}

// List-then-watch against the real engine and publisher: containers that
// exist before (running, exited, created), one started while the snapshot
// reads (between the bucket and the stream's position: in the states) and
// one killed after the position was taken (in the events): the client's
// fold of states and events equals docker ps -a. Filter terms select the
// containers (type/event terms only the events); bad combinations are 400.
func TestSnapshotListThenWatch(t *testing.T) {
	t.Parallel()
	cli := testkit.Docker(t)
	testkit.EnsureProbeImage(t, cli)
	label := testkit.Unique("snap")
	s := &services{t: t, NATS: testkit.StartNATSProcess(t), Node: testkit.Unique("snap")}
	s.PubAddr = "127.0.0.1:" + strconv.Itoa(testkit.FreePort(t))
	testkit.StartProcess(t, "publisher", nil, "NATS_URL="+s.NATS.URL(), "PUBLISHER_NODE="+s.Node,
		"PUBLISHER_HTTP_ADDR="+s.PubAddr, "PUBLISHER_FILTERS=label="+LabelKey+"="+label, "LOG_LEVEL=debug")
	waitHTTP(t, "http://"+s.PubAddr+"/readyz")
	_, s.js = testkit.Connect(t, s.NATS.URL())
	g := newGate(snapshot.StageBucketRead, snapshot.StageStreamRead)
	addr := startGatewayInProcess(t, s.NATS.URL(), gwapp.Options{SnapshotHook: g.hook})

	labels := map[string]string{LabelKey: label}
	probe := func(name string, start bool, args ...string) string {
		return testkit.RunProbe(t, cli, testkit.Probe{Name: testkit.Unique("dockcast-snap-" + name), Labels: labels, Start: start, Args: args})
	}
	running := probe("running", true, "sleep", "120s")
	exited := probe("exited", true)
	testkit.WaitExited(t, cli, exited)
	created := probe("created", false)
	victim := probe("victim", true, "sleep", "120s")
	waitStored(t, s, exited, "die")
	waitStored(t, s, created, "create")
	waitStored(t, s, victim, "start")
	waitStored(t, s, running, "start")

	// Bad combinations are refused before the upgrade.
	for _, q := range []string{"snapshot=1&since=1m", "snapshot=1&from_seq=3", "snapshot=2", "snapshot=1&snapshot=1"} {
		res, err := http.Get("http://" + addr + "/ws?" + q)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "snapshot") {
			t.Errorf("%s: %d %s, want 400 naming snapshot", q, res.StatusCode, body)
		}
	}

	lc := follow(t, addr, url.Values{"filter": {"label=" + LabelKey + "=" + label}})
	g.wait(t, snapshot.StageBucketRead)
	late := probe("late", true, "sleep", "120s") // after the bucket was read, before the position
	lateStart := waitStored(t, s, late, "start")
	g.release(snapshot.StageBucketRead)
	g.wait(t, snapshot.StageStreamRead)
	kctx, kcancel := context.WithTimeout(context.Background(), 30*time.Second)
	if err := cli.ContainerKill(kctx, victim, "KILL"); err != nil {
		t.Fatal(err)
	}
	kcancel()
	victimDie := waitStored(t, s, victim, "die")
	g.release(snapshot.StageStreamRead)

	want := dockerPS(t, cli, label)
	testkit.Eventually(t, eventTimeout, func() error {
		got, ended := lc.view()
		if !ended {
			return fmt.Errorf("no snapshot_end yet")
		}
		if !maps.Equal(got, want) {
			return fmt.Errorf("client holds %v\ndocker ps -a %v", got, want)
		}
		return nil
	})
	lc.mu.Lock()
	end, states, evs := lc.end, slices.Clone(lc.states), slices.Clone(lc.events)
	lc.mu.Unlock()
	if lateStart > end || victimDie <= end {
		t.Fatalf("snapshot_end %d: the late start (%d) must be in it, the kill's die (%d) after it", end, lateStart, victimDie)
	}
	stateOf := map[string]containerstate.State{}
	for _, st := range states {
		stateOf[st.ID()] = st
	}
	for id, want := range map[string]string{running: "running", exited: "exited", created: "created", victim: "running", late: "running"} {
		st, ok := stateOf[id]
		if !ok || st.Event.ActionDetail != want || st.Seq > end || st.Event.Subject() != subject.For(s.Node, "container", "state") ||
			st.Event.Actor.Attributes["image"] != testkit.ProbeImage || st.Event.Actor.Attributes[LabelKey] != label {
			t.Errorf("state of %s: %+v (present %v), want %s at or below %d", id[:12], st, ok, want, end)
		}
	}
	if st := stateOf[late]; st.Seq != lateStart {
		t.Errorf("the late container's state has seq %d, its start was stored at %d", st.Seq, lateStart)
	}
	sawDie := false
	for _, f := range evs {
		ev, _ := event.Decode(f.Event)
		if ev.Actor.ID == late && ev.Action == "start" {
			t.Errorf("the late start is both in the snapshot and after it (seq %d)", f.Seq)
		}
		sawDie = sawDie || (ev.Actor.ID == victim && ev.Action == "die" && f.Seq == victimDie)
	}
	if !sawDie {
		t.Errorf("the kill's die (%d) was not sent after snapshot_end", victimDie)
	}

	// Filter terms: container selects; event applies to the events only.
	one := follow(t, addr, url.Values{"filter": {"label=" + LabelKey + "=" + label, "container=" + want[running].Name}})
	evOnly := follow(t, addr, url.Values{"filter": {"label=" + LabelKey + "=" + label, "event=destroy"}})
	other := follow(t, addr, url.Values{"filter": {"label=" + LabelKey + "=" + label, "node=elsewhere"}})
	testkit.Eventually(t, eventTimeout, func() error {
		for name, c := range map[string]*listClient{"container": one, "event": evOnly, "node": other} {
			if _, ended := c.view(); !ended {
				return fmt.Errorf("%s: no snapshot_end yet", name)
			}
		}
		return nil
	})
	if got, _ := one.view(); len(got) != 1 || got[running] != want[running] {
		t.Errorf("container=%s: %v", want[running].Name, got)
	}
	if got, _ := evOnly.view(); !maps.Equal(got, want) {
		t.Errorf("event=destroy selects every container's state: %v, want %v", got, want)
	}
	if got, _ := other.view(); len(got) != 0 {
		t.Errorf("node=elsewhere: %v", got)
	}

	// /sse takes the same snapshot: event: state per container, then snapshot_end.
	sctx, scancel := context.WithTimeout(context.Background(), eventTimeout)
	defer scancel()
	req, _ := http.NewRequestWithContext(sctx, http.MethodGet, "http://"+addr+"/sse?"+url.Values{"snapshot": {"1"}, "filter": {"label=" + LabelKey + "=" + label}}.Encode(), nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sseStates := 0
	for sc.Scan() {
		if sc.Text() == "event: state" {
			sseStates++
		}
		if sc.Text() == "event: snapshot_end" {
			break
		}
	}
	if sseStates != len(want) {
		t.Errorf("/sse sent %d states before snapshot_end (%v), want %d", sseStates, sc.Err(), len(want))
	}
}
