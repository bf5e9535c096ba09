package app_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/natsutil"
	"github.com/dockcast/dockcast/shared/status"
	"github.com/dockcast/dockcast/shared/subject"
	"github.com/dockcast/dockcast/shared/testkit"
)

// The tests of this file drive the publisher only through its environment
// and look only at the stream, so that each of them also runs against the
// code before the fix of the defect it covers (issue 7).

// withFakeEngine runs a publisher on a stand-in engine and an embedded
// JetStream server, ready, with tune applied (may be nil).
func withFakeEngine(t *testing.T, o testkit.FakeEngineOptions, tune func(*appT)) (jetstream.JetStream, *testkit.FakeEngine, *pub) {
	t.Helper()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	e := testkit.StartFakeEngine(t, o)
	p := startPub(t, map[string]string{"NATS_URL": ns.ClientURL(), "DOCKER_HOST": e.Host}, tune)
	p.WaitReady()
	return js, e, p
}

// containerEvent is the i-th event of a burst.
func containerEvent(i int) events.Message {
	actions := []string{"create", "start", "die", "destroy"}
	return testkit.Container(actions[i%4], fmt.Sprintf("c%07d", i/4), fmt.Sprintf("svc-%d", i/4), map[string]string{"i": fmt.Sprint(i)})
}

// waitHistory waits until the stream holds exactly the engine's history
// of node (each event once, in order) and returns the node's messages.
func waitHistory(t *testing.T, js jetstream.JetStream, e *testkit.FakeEngine, node string, timeout time.Duration) []stored {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		msgs, err := readNodeMessages(ctx, js, "DOCKER_EVENTS", node)
		cancel()
		diff := fmt.Sprint(err)
		if err == nil {
			diff = sameAsHistory(node, e.History(), msgs)
		}
		if diff == "" {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s (engine dropped %d for a slow reader)", timeout, diff, e.Dropped())
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// countNode is the number of messages of node in the stream.
func countNode(ctx context.Context, js jetstream.JetStream, node string) (uint64, error) {
	s, err := js.Stream(ctx, "DOCKER_EVENTS")
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject.Node(node)))
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n, nil
}

// stallMeter polls the node's message count and keeps the longest time it
// did not grow, from the first event stored until it is stopped (once the
// stream holds every event).
type stallMeter struct {
	mu      sync.Mutex
	longest time.Duration
	stalls  []time.Duration // those over half a second
}

func (s *stallMeter) run(ctx context.Context, js jetstream.JetStream, node string) {
	var last uint64
	since := time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		n, err := countNode(qctx, js, node)
		cancel()
		if err != nil || n == last { // a read fails while there is no leader
			continue
		}
		if d := time.Since(since); last > 0 {
			s.mu.Lock()
			s.longest = max(s.longest, d)
			if d > 500*time.Millisecond {
				s.stalls = append(s.stalls, d.Round(10*time.Millisecond))
			}
			s.mu.Unlock()
		}
		last, since = n, time.Now()
	}
}

func (s *stallMeter) Longest() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.longest
}

// Stalls are the stalls over half a second, in order.
func (s *stallMeter) Stalls() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.stalls)
}

// A 3-node cluster, an R3 stream, a burst of thousands of events per
// second, and the stream leader killed -9 twice during it: every event is
// stored exactly once, in the engine's order, and a follower on another
// server of the cluster receives the same (issue 7, item 1).
func TestClusterLeaderKilledTwice(t *testing.T) {
	const total, rate = 60000, 3000 // 20 s: room for two separate elections
	c := testkit.StartNATSCluster(t, testkit.ClusterOptions{})
	e := testkit.StartFakeEngine(t, testkit.FakeEngineOptions{})
	p := startPub(t, map[string]string{"NATS_URL": c.URLs(), "DOCKER_HOST": e.Host, "PUBLISHER_STREAM_REPLICAS": "3", "LOG_LEVEL": "info"}, nil)
	p.WaitReady()
	_, js := testkit.Connect(t, c.Servers[2].URL())

	// The follower: an ordered consumer on the third server, reading the
	// node's events as a gateway would.
	var fmu sync.Mutex
	var followed []string
	fctx, fcancel := context.WithCancel(context.Background())
	defer fcancel()
	fnc, err := nats.Connect(c.Servers[2].URL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer fnc.Close()
	fjs, _ := jetstream.New(fnc)
	// The stream is new: its replicas may still be electing a leader, and
	// the consumer waits for one (one try may time out under load).
	var fc jetstream.Consumer
	testkit.Eventually(t, time.Minute, func() error {
		fs, err := fjs.Stream(fctx, "DOCKER_EVENTS")
		if err != nil {
			return err
		}
		fc, err = fs.OrderedConsumer(fctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject.Node(p.Node)}})
		return err
	})
	cc, err := fc.Consume(func(m jetstream.Msg) {
		if ev, err := event.Decode(m.Data()); err == nil {
			fmu.Lock()
			followed = append(followed, ev.ID)
			fmu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var emitting sync.WaitGroup
	emitting.Add(1)
	go func() {
		defer emitting.Done()
		if err := e.Burst(ctx, total, rate, containerEvent); err != nil {
			t.Errorf("burst: %v", err)
		}
	}()
	stall := &stallMeter{}
	sctx, scancel := context.WithCancel(ctx)
	metered := make(chan struct{})
	go func() { defer close(metered); stall.run(sctx, js, p.Node) }()
	var once sync.Once
	stopMeter := func() { once.Do(func() { scancel(); <-metered }) }
	defer stopMeter()
	for kill, at := range []int{total / 5, total * 3 / 5} {
		// Two separate elections: each kill when the stream has caught up
		// with the engine to within a second of events.
		testkit.Eventually(t, time.Minute, func() error {
			if n := len(e.History()); n < at {
				return fmt.Errorf("%d of %d events emitted", n, at)
			}
			qctx, qcancel := context.WithTimeout(ctx, time.Second)
			defer qcancel()
			if n, err := countNode(qctx, js, p.Node); err != nil || n+rate < uint64(len(e.History())) {
				return fmt.Errorf("stream has %d of %d events (%v)", n, len(e.History()), err)
			}
			return nil
		})
		leader := c.WaitStreamLeader("DOCKER_EVENTS", nil, 30*time.Second)
		leader.Kill()
		t.Logf("kill %d: stream leader %s killed after %d events", kill+1, leader.Name, len(e.History()))
		next := c.WaitStreamLeader("DOCKER_EVENTS", leader, time.Minute)
		t.Logf("kill %d: new stream leader %s", kill+1, next.Name)
		leader.Start()
		c.WaitReady()
	}
	emitting.Wait()
	msgs := waitHistory(t, js, e, p.Node, 3*time.Minute)
	stopMeter()
	t.Logf("longest stall of the stream (no event stored) until it held every event: %v; stalls over 0.5 s: %v", stall.Longest(), stall.Stalls())
	if gaps := gapsOf(msgs); gaps["engine_lost_events"] != 0 || gaps["first_start"] != 1 {
		t.Errorf("gaps %v, want only the first start's", gaps)
	}
	if d := e.Dropped(); d != 0 {
		t.Errorf("the engine dropped %d events for a slow reader", d)
	}
	testkit.Eventually(t, 2*time.Minute, func() error {
		fmu.Lock()
		defer fmu.Unlock()
		if len(followed) < len(msgs) {
			return fmt.Errorf("follower has %d of %d events", len(followed), len(msgs))
		}
		return nil
	})
	fmu.Lock()
	defer fmu.Unlock()
	if len(followed) != len(msgs) {
		t.Fatalf("follower received %d events, the stream holds %d", len(followed), len(msgs))
	}
	for i, m := range msgs {
		if followed[i] != m.Event.ID {
			t.Fatalf("follower event %d is %s, the stream's is %s", i, followed[i], m.Event.ID)
		}
	}
}

// dupWindow is the shortened duplicate window of the lost-acks test.
const dupWindow = 2 * time.Second

// The server's acknowledgements are lost (it keeps storing), then the
// link is down for longer than the duplicate window, then back: nothing
// is stored twice, nothing out of order (issue 7, item 2).
func TestAcksLostThenLinkDownLongerThanDuplicateWindow(t *testing.T) {
	t.Parallel()
	np := testkit.StartNATSProcess(t)
	proxy := testkit.StartTCPProxy(t, fmt.Sprintf("127.0.0.1:%d", np.Port))
	e := testkit.StartFakeEngine(t, testkit.FakeEngineOptions{})
	p := startPub(t, map[string]string{"NATS_URL": "nats://" + proxy.Addr, "DOCKER_HOST": e.Host,
		"PUBLISHER_STREAM_DUPLICATE_WINDOW": dupWindow.String()}, nil)
	p.WaitReady()
	_, js := testkit.Connect(t, np.URL())

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.Burst(ctx, 500*(8+int(dupWindow/time.Second)), 500, containerEvent) }()
	time.Sleep(2 * time.Second) // events flow normally first
	proxy.DropReplies(true)
	t.Log("dropping the server's replies")
	time.Sleep(3 * time.Second)
	proxy.Cut()
	t.Logf("link cut for %v", dupWindow+5*time.Second)
	time.Sleep(dupWindow + 5*time.Second)
	proxy.Restore()
	t.Log("link restored")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	msgs := waitHistory(t, js, e, p.Node, 3*time.Minute)
	if gaps := gapsOf(msgs); gaps["engine_lost_events"] != 0 {
		t.Errorf("gaps %v", gaps)
	}
}

// A NATS outage while the engine emits far more than 10,000 events: the
// queue (in bytes) holds them all; nothing is lost, no gap (issue 7, item 3).
func TestLongNATSOutageIsQueued(t *testing.T) {
	t.Parallel()
	np := testkit.StartNATSProcess(t)
	e := testkit.StartFakeEngine(t, testkit.FakeEngineOptions{})
	p := startPub(t, map[string]string{"NATS_URL": np.URL(), "DOCKER_HOST": e.Host}, nil)
	p.WaitReady()
	np.Stop(syscall.SIGTERM)
	testkit.Eventually(t, 30*time.Second, func() error {
		if ok, why := p.App.Ready(); ok || !strings.Contains(why, "nats") {
			return fmt.Errorf("ready %v %q while NATS is down", ok, why)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := e.Burst(ctx, 25000, 5000, containerEvent); err != nil {
		t.Fatal(err)
	}
	np.Start()
	_, js := testkit.Connect(t, np.URL())
	msgs := waitHistory(t, js, e, p.Node, 3*time.Minute)
	if gaps := gapsOf(msgs); gaps["engine_lost_events"] != 0 {
		t.Errorf("gaps %v: events were lost", gaps)
	}
	if d := e.Dropped(); d != 0 {
		t.Errorf("the engine dropped %d events", d)
	}
}

// A gap announcement is all or nothing: when the engine fails between the
// replay and the container list, the next attempt announces the gap again
// with its snapshot (issue 7, item 5).
func TestGapAnnouncementAlwaysHasItsSnapshot(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	e := testkit.StartFakeEngine(t, testkit.FakeEngineOptions{Memory: 20})
	e.SetContainers([]container.Summary{
		{ID: "c-running", Names: []string{"/running"}, Image: "fake:1", State: "running", Created: 1},
		{ID: "c-exited", Names: []string{"/exited"}, Image: "fake:1", State: "exited", Created: 2},
	})
	p := startPub(t, map[string]string{"NATS_URL": ns.ClientURL(), "DOCKER_HOST": e.Host}, nil)
	p.WaitReady()
	for i := range 5 {
		e.Emit(containerEvent(i))
	}
	waitHistory(t, js, e, p.Node, time.Minute)
	e.SetDown(true)
	testkit.Eventually(t, 30*time.Second, func() error {
		if ok, why := p.App.Ready(); ok || !strings.Contains(why, "docker") {
			return fmt.Errorf("ready %v %q while docker is down", ok, why)
		}
		return nil
	})
	for i := 5; i < 60; i++ { // more than the engine remembers
		e.Emit(containerEvent(i))
	}
	e.FailNext("/containers/json", 1)
	e.SetDown(false)
	testkit.Eventually(t, time.Minute, func() error {
		msgs := nodeMessages(t, js, "DOCKER_EVENTS", p.Node)
		gap := -1
		for i, m := range msgs {
			if m.Event.Action == event.ActionGap && m.Event.Actor.Attributes["reason"] == "engine_lost_events" {
				if gap >= 0 {
					return fmt.Errorf("two engine_lost_events gaps (seq %d and %d)", msgs[gap].Seq, m.Seq)
				}
				gap = i
			}
		}
		if gap < 0 {
			return errors.New("no engine_lost_events gap yet")
		}
		states := map[string]string{}
		for _, m := range msgs[gap+1:] {
			if m.Event.Action == event.ActionState && m.Event.TimeNano == msgs[gap].Event.TimeNano {
				states[m.Event.Actor.ID] = m.Event.ActionDetail
			}
		}
		if states["c-running"] != "running" || states["c-exited"] != "exited" {
			return fmt.Errorf("the gap at seq %d has no snapshot after it: states %v", msgs[gap].Seq, states)
		}
		return nil
	})
}

// The engine's clock steps back (NTP) while the publisher follows it, and
// again while it is away: no live event is dropped, the steps are
// announced as clock_step gaps, and following goes on (issue 7, item 6).
func TestClockStepBack(t *testing.T) {
	t.Parallel()
	js, e, p := withFakeEngine(t, testkit.FakeEngineOptions{}, nil)
	emit := func(from, n int) {
		for i := from; i < from+n; i++ {
			e.Emit(containerEvent(i))
		}
	}
	emit(0, 10)
	waitHistory(t, js, e, p.Node, time.Minute)
	e.StepClock(-time.Hour) // while following
	emit(10, 10)
	waitHistory(t, js, e, p.Node, time.Minute)

	streams := e.Streams()
	e.CutStreams() // a reconnect after the step
	testkit.Eventually(t, 30*time.Second, func() error {
		if e.Subscribers() == 0 || e.Streams() == streams {
			return errors.New("not following again")
		}
		return nil
	})
	emit(20, 10)
	waitHistory(t, js, e, p.Node, time.Minute)

	e.SetDown(true) // a step while the publisher is away
	testkit.Eventually(t, 30*time.Second, func() error {
		if ok, _ := p.App.Ready(); ok {
			return errors.New("still ready")
		}
		return nil
	})
	e.StepClock(-time.Hour)
	e.SetDown(false)
	p.WaitReady()
	emit(30, 10)
	msgs := waitHistory(t, js, e, p.Node, time.Minute)
	gaps := gapsOf(msgs)
	if gaps["clock_step"] < 2 || gaps["engine_lost_events"] != 0 {
		t.Fatalf("gaps %v, want the two clock steps announced and no lost events", gaps)
	}
}

// An event too large to be stored (over the server's max_payload) is
// replaced by a stored dockcast.lost stand-in, and the writer goes on
// (issue 7, item 7).
func TestUnstorableEventIsReplacedByAStandIn(t *testing.T) {
	t.Parallel()
	js, e, p := withFakeEngine(t, testkit.FakeEngineOptions{}, nil)
	e.Emit(containerEvent(0))
	big := e.Emit(testkit.Container("start", "big", "big", map[string]string{"blob": strings.Repeat("x", 2<<20)}))
	e.Emit(containerEvent(1))
	bigID := event.FromDocker(p.Node, big).ID
	var lost stored
	testkit.Eventually(t, time.Minute, func() error {
		msgs := nodeMessages(t, js, "DOCKER_EVENTS", p.Node)
		var ids []string
		for _, m := range msgs {
			if m.Event.Type == event.TypeDockcast && m.Event.Action == "lost" {
				lost = m
				ids = append(ids, "lost")
			} else if m.Event.Type == "container" && m.Event.Action != event.ActionState {
				ids = append(ids, m.Event.Actor.ID)
			}
		}
		if strings.Join(ids, " ") != "c0000000 lost c0000000" {
			return fmt.Errorf("stream holds %v, want the first event, the stand-in, the next event", ids)
		}
		return nil
	})
	a := lost.Event.Actor.Attributes
	if lost.Subject != "docker.events."+p.Node+".dockcast.lost" || a["id"] != bigID || a["reason"] == "" || a["size"] == "" {
		t.Fatalf("stand-in %s %+v, want the lost event's id %s, size and reason", lost.Subject, lost.Event, bigID)
	}
}

// A stream that refuses writes makes /readyz say the writer is failing
// (issue 7, item 7).
func TestReadyzReportsAFailingWriter(t *testing.T) {
	t.Parallel()
	js, e, p := withFakeEngine(t, testkit.FakeEngineOptions{}, func(a *appT) { a.DrainTimeout = time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := js.Stream(ctx, "DOCKER_EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.Sealed = true
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	e.Emit(containerEvent(0))
	testkit.Eventually(t, 30*time.Second, func() error {
		code, body, err := p.get("/readyz")
		if err != nil {
			return err
		}
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "writer") {
			return fmt.Errorf("readyz %d %q while the stream refuses writes", code, body)
		}
		return nil
	})
	p.stopAnyway()
}

// A stream deleted while the publisher runs is created again and gets the
// events that follow (issue 7, item 7).
func TestDeletedStreamIsCreatedAgain(t *testing.T) {
	t.Parallel()
	js, e, p := withFakeEngine(t, testkit.FakeEngineOptions{}, nil)
	e.Emit(containerEvent(0))
	waitHistory(t, js, e, p.Node, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := js.DeleteStream(ctx, "DOCKER_EVENTS"); err != nil {
		t.Fatal(err)
	}
	want := []events.Message{e.Emit(containerEvent(1)), e.Emit(containerEvent(2))}
	testkit.Eventually(t, time.Minute, func() error {
		if _, err := js.Stream(ctx, "DOCKER_EVENTS"); err != nil {
			return fmt.Errorf("stream not created again: %w", err)
		}
		if diff := sameAsHistory(p.Node, want, nodeMessages(t, js, "DOCKER_EVENTS", p.Node)); diff != "" {
			return errors.New(diff)
		}
		return nil
	})
}

// A publisher started without PUBLISHER_STREAM_* variables never changes
// the shared stream's replicas or limits; a variable present is applied
// (issue 7, item 8).
func TestSharedStreamNeverLowered(t *testing.T) {
	c := testkit.StartNATSCluster(t, testkit.ClusterOptions{})
	_, js := testkit.Connect(t, c.URLs())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fleet := natsutil.StreamConfig("DOCKER_EVENTS", 720*time.Hour, 10<<30, 3)
	fleet.Duplicates = 5 * time.Minute
	if _, err := js.CreateStream(ctx, fleet); err != nil {
		t.Fatal(err)
	}
	check := func(age time.Duration) {
		t.Helper()
		s, err := js.Stream(ctx, "DOCKER_EVENTS")
		if err != nil {
			t.Fatal(err)
		}
		got := s.CachedInfo().Config
		if got.Replicas != 3 || got.MaxAge != age || got.MaxBytes != 10<<30 || got.Duplicates != 5*time.Minute {
			t.Fatalf("stream now R%d, max age %v, max bytes %d, duplicates %v; want R3, %v, 10GiB, 5m",
				got.Replicas, got.MaxAge, got.MaxBytes, got.Duplicates, age)
		}
	}
	e := testkit.StartFakeEngine(t, testkit.FakeEngineOptions{})
	p := startPub(t, map[string]string{"NATS_URL": c.URLs(), "DOCKER_HOST": e.Host}, nil)
	p.WaitReady()
	check(720 * time.Hour)
	p.Stop()
	p = startPub(t, map[string]string{"NATS_URL": c.URLs(), "DOCKER_HOST": e.Host, "PUBLISHER_NODE": p.Node, "PUBLISHER_STREAM_MAX_AGE": "24h"}, nil)
	p.WaitReady()
	check(24 * time.Hour)
}

// A second publisher for a node that is held refuses to start: exit 1,
// naming the node (issue 7, item 8).
func TestSecondPublisherForANodeRefused(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	e := testkit.StartFakeEngine(t, testkit.FakeEngineOptions{})
	p := startPub(t, map[string]string{"NATS_URL": ns.ClientURL(), "DOCKER_HOST": e.Host}, nil)
	p.WaitReady()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testkit.Binary(t, "publisher"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "NATS_URL=" + ns.ClientURL(), "DOCKER_HOST=" + e.Host,
		"PUBLISHER_NODE=" + p.Node, "PUBLISHER_HTTP_ADDR=127.0.0.1:0"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("second publisher: %v, want exit status 1; output:\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), p.Node) {
		t.Fatalf("the refusal does not name the node %s:\n%s", p.Node, out.String())
	}
	if ok, why := p.App.Ready(); !ok {
		t.Fatalf("the first publisher is no longer ready: %s", why)
	}
}

// Every status value carries `updated`, refreshed while nothing changes
// (issue 7, item 8; contract "Edge mode").
func TestStatusUpdatedIsRefreshed(t *testing.T) {
	t.Parallel()
	js, _, p := withFakeEngine(t, testkit.FakeEngineOptions{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kv, err := js.KeyValue(ctx, status.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	updated := func() time.Time {
		t.Helper()
		ent, err := kv.Get(ctx, p.Node)
		if err != nil {
			t.Fatal(err)
		}
		var v struct {
			Docker  string    `json:"docker"`
			Updated time.Time `json:"updated"`
		}
		if err := jsonUnmarshal(ent.Value(), &v); err != nil {
			t.Fatal(err)
		}
		if v.Docker != status.Connected || v.Updated.IsZero() {
			t.Fatalf("status %s: want connected with an updated time", ent.Value())
		}
		return v.Updated
	}
	first := updated()
	testkit.Eventually(t, 20*time.Second, func() error {
		if !updated().After(first) {
			return errors.New("updated not refreshed yet")
		}
		return nil
	})
}

// A slow Docker ping never holds up the reader: the engine drops nothing
// (issue 7, item 10).
func TestSlowPingDoesNotStallTheReader(t *testing.T) {
	t.Parallel()
	js, e, p := withFakeEngine(t, testkit.FakeEngineOptions{}, func(a *appT) { a.PingInterval = 100 * time.Millisecond })
	e.Delay("/_ping", 3*time.Second)
	// The engine waits up to 100 ms for each event a reader does not take:
	// a stalled reader makes the burst crawl.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.Burst(ctx, 20000, 5000, containerEvent); err != nil {
		t.Fatalf("burst not delivered in a minute (the reader stalled; the engine dropped %d): %v", e.Dropped(), err)
	}
	e.Delay("/_ping", 0)
	waitHistory(t, js, e, p.Node, time.Minute)
	if d := e.Dropped(); d != 0 {
		t.Fatalf("the engine dropped %d events while a ping was slow", d)
	}
}
