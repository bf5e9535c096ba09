package natsutil

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/shared/testkit"
)

func TestValidEdgeNode(t *testing.T) {
	t.Parallel()
	for node, ok := range map[string]bool{
		"web-1": true, "Ünïcode_ok": true, "": false, "a/b": false, `a\b`: false, "a.b": false,
		"a b": false, "a*": false, "a>": false, "hub": false, strings.Repeat("x", 201): false,
	} {
		err := ValidEdgeNode(node, "hub")
		if (err == nil) != ok {
			t.Errorf("ValidEdgeNode(%q) = %v, want ok=%v", node, err, ok)
		}
	}
}

func FuzzSourceNode(f *testing.F) {
	for _, s := range []string{"web-1", "hub", "", "a.b", "$JS.x.API", "x.API"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, node string) {
		got := SourceNode(&jetstream.ExternalStream{APIPrefix: DomainAPI(node)})
		if ValidEdgeNode(node, "") == nil && got != node {
			t.Fatalf("SourceNode(DomainAPI(%q)) = %q", node, got)
		}
		if got != "" && strings.Contains(got, ".") {
			t.Fatalf("SourceNode gave a node with a dot: %q", got)
		}
		_ = SourceNode(&jetstream.ExternalStream{APIPrefix: node})
	})
}

func hubJS(t *testing.T) (*testkit.Hub, jetstream.JetStream) {
	t.Helper()
	hub := testkit.StartHub(t, testkit.HubOptions{})
	_, js := testkit.Connect(t, hub.ClientURL())
	return hub, js
}

func TestEnsureCentralStreamCreatesOnceAndLeavesLimits(t *testing.T) {
	t.Parallel()
	_, js := hubJS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := CentralStreamConfig("CENTRAL", time.Hour, 5*time.Second, 1)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 { // several publishers starting at once
		wg.Go(func() {
			_, err := EnsureCentralStream(ctx, js, cfg, testkit.Logger(t))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	other := CentralStreamConfig("CENTRAL", 2*time.Hour, time.Minute, 1)
	s, err := EnsureCentralStream(ctx, js, other, testkit.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	got := s.CachedInfo().Config
	if got.MaxAge != time.Hour || got.Duplicates != 5*time.Second || got.MaxBytes != -1 || got.Subjects[0] != "docker.events.>" {
		t.Fatalf("existing stream changed or created wrong: age %v dup %v bytes %d subjects %v", got.MaxAge, got.Duplicates, got.MaxBytes, got.Subjects)
	}
}

func sourceNames(t *testing.T, js jetstream.JetStream, stream string) map[string]int {
	t.Helper()
	s, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, src := range s.CachedInfo().Config.Sources {
		out[src.Name+"@"+SourceNode(src.External)]++
	}
	return out
}

// Many publishers adding their sources at the same moment: a single
// read-modify-write would lose some (each update replaces the whole list).
func TestSourcesAddConvergesWhenManyAddAtOnce(t *testing.T) {
	t.Parallel()
	_, js := hubJS(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := EnsureCentralStream(ctx, js, CentralStreamConfig("CENTRAL", time.Hour, time.Minute, 1), nil); err != nil {
		t.Fatal(err)
	}
	const n = 24
	src := Sources{JS: js, Stream: "CENTRAL", Settle: 200 * time.Millisecond, Log: testkit.Logger(t)}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			node := fmt.Sprintf("n%d", i)
			errs <- src.Add(ctx, EdgeSource(node, LocalStreamName("CENTRAL", node)))
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got := sourceNames(t, js, "CENTRAL")
	for i := range n {
		key := fmt.Sprintf("CENTRAL_n%d@n%d", i, i)
		if got[key] != 1 {
			t.Errorf("source %s present %d times, want 1 (all: %v)", key, got[key], got)
		}
	}
	if len(got) != n {
		t.Fatalf("%d sources, want %d: %v", len(got), n, got)
	}
	// Adding again changes nothing.
	if err := src.Add(ctx, EdgeSource("n3", "CENTRAL_n3")); err != nil {
		t.Fatal(err)
	}
	if again := sourceNames(t, js, "CENTRAL"); len(again) != n {
		t.Fatalf("second add changed the sources: %v", again)
	}
}

func TestSourcesMoveKeepsTheOthers(t *testing.T) {
	t.Parallel()
	_, js := hubJS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := EnsureCentralStream(ctx, js, CentralStreamConfig("CENTRAL", time.Hour, time.Minute, 1), nil); err != nil {
		t.Fatal(err)
	}
	src := Sources{JS: js, Stream: "CENTRAL", Settle: 50 * time.Millisecond}
	for _, node := range []string{"a", "b", "c"} {
		if err := src.Add(ctx, EdgeSource(node, "CENTRAL_"+node)); err != nil {
			t.Fatal(err)
		}
	}
	if err := src.Move(ctx, EdgeSource("b", "CENTRAL_b"), EdgeSource("b", "CENTRAL_b_1764000000")); err != nil {
		t.Fatal(err)
	}
	got := sourceNames(t, js, "CENTRAL")
	want := map[string]int{"CENTRAL_a@a": 1, "CENTRAL_b_1764000000@b": 1, "CENTRAL_c@c": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("sources %v, want %v", got, want)
	}
	of, err := src.OfNode(ctx, "b")
	if err != nil || len(of) != 1 || of[0].Name != "CENTRAL_b_1764000000" || of[0].OptStartSeq != 1 {
		t.Fatalf("OfNode(b) = %+v, %v", of, err)
	}
	if err := src.Add(ctx, jetstream.StreamSource{Name: "bad.name"}); err == nil {
		t.Fatal("an invalid source was accepted")
	}
	if err := (Sources{JS: js, Stream: "MISSING"}).Add(ctx, EdgeSource("a", "x")); err == nil {
		t.Fatal("adding to a missing stream did not fail")
	}
}

// publishN publishes n events of node into the stream that captures them
// (the leaf's local one), in order, each with its Nats-Msg-Id.
func publishN(t *testing.T, js jetstream.JetStream, node string, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		m := nats.NewMsg("docker.events." + node + ".container.start")
		m.Data = []byte(fmt.Sprintf(`{"i":%d}`, i))
		m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s-%d", node, i))
		if _, err := js.PublishMsg(context.Background(), m); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
}

func streamMsgs(t *testing.T, js jetstream.JetStream, stream string) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.Msgs
}

func localStream(t *testing.T, js jetstream.JetStream, name, node string) {
	t.Helper()
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: name, Subjects: []string{"docker.events." + node + ".>"}, Storage: jetstream.FileStorage,
	}); err != nil {
		t.Fatal(err)
	}
}

func TestLagsPerSourceAcrossALeafLink(t *testing.T) {
	t.Parallel()
	hub, js := hubJS(t)
	proxy := testkit.StartTCPProxy(t, hub.LeafAddr)
	leaf := testkit.StartLeaf(t, "n1", "nats-leaf://"+proxy.Addr)
	testkit.WaitLeafConnected(t, leaf, 10*time.Second)
	_, ljs := testkit.Connect(t, leaf.ClientURL())
	localStream(t, ljs, "CENTRAL_n1", "n1")
	publishN(t, ljs, "n1", 0, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := EnsureCentralStream(ctx, js, CentralStreamConfig("CENTRAL", time.Hour, time.Minute, 1), nil); err != nil {
		t.Fatal(err)
	}
	src := Sources{JS: js, Stream: "CENTRAL", Settle: 50 * time.Millisecond}
	if err := src.Add(ctx, EdgeSource("n1", "CENTRAL_n1")); err != nil {
		t.Fatal(err)
	}
	if err := src.Add(ctx, EdgeSource("ghost", "CENTRAL_ghost")); err != nil { // a node never seen
		t.Fatal(err)
	}
	testkit.Eventually(t, 20*time.Second, func() error {
		lags, err := src.Lags(ctx)
		if err != nil {
			return err
		}
		if len(lags) != 2 || lags[1].Node != "n1" || lags[1].Stream != "CENTRAL_n1" || lags[1].Seq != 10 || lags[1].Lag != 0 {
			return fmt.Errorf("lags %+v", lags)
		}
		if lags[1].Active < 0 || lags[1].Active > 5*time.Second {
			return fmt.Errorf("n1 not active: %v", lags[1].Active)
		}
		if lags[0].Node != "ghost" || lags[0].Seq != 0 {
			return fmt.Errorf("ghost %+v", lags[0])
		}
		return nil
	})
	if got := streamMsgs(t, js, "CENTRAL"); got != 10 {
		t.Fatalf("central holds %d, want 10", got)
	}
	proxy.Cut()
	publishN(t, ljs, "n1", 10, 5) // stored locally while the link is down
	proxy.Restore()
	testkit.Eventually(t, 30*time.Second, func() error {
		lags, err := src.Lags(ctx)
		if err != nil {
			return err
		}
		if lags[1].Seq != 15 {
			return fmt.Errorf("n1 at %d, want 15", lags[1].Seq)
		}
		return nil
	})
	if got := streamMsgs(t, js, "CENTRAL"); got != 15 {
		t.Fatalf("central holds %d, want 15", got)
	}
}

// A source added to a central stream whose first sequence is above 1 (it
// has aged out or lost a message) must still copy the local stream from its
// start: nats-server, given no start, begins at the central stream's last
// stored time and skips what the node stored earlier.
func TestEdgeSourceCopiesEverythingIntoAnAgedCentralStream(t *testing.T) {
	t.Parallel()
	hub, js := hubJS(t)
	leaf := testkit.StartLeaf(t, "n1", hub.LeafURL())
	testkit.WaitLeafConnected(t, leaf, 10*time.Second)
	_, ljs := testkit.Connect(t, leaf.ClientURL())
	localStream(t, ljs, "CENTRAL_n1", "n1")
	publishN(t, ljs, "n1", 0, 20) // the node's events, stored while the centre did not source it yet

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := EnsureCentralStream(ctx, js, CentralStreamConfig("CENTRAL", time.Hour, time.Minute, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 { // later events of a direct-mode node, then the oldest one ages out
		if _, err := js.Publish(ctx, "docker.events.direct.container.start", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := cs.DeleteMsg(ctx, 1); err != nil {
		t.Fatal(err)
	}
	src := Sources{JS: js, Stream: "CENTRAL", Settle: 50 * time.Millisecond}
	if err := src.Add(ctx, EdgeSource("n1", "CENTRAL_n1")); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 20*time.Second, func() error {
		if got := streamMsgs(t, js, "CENTRAL"); got != 22 {
			return fmt.Errorf("central holds %d messages, want 2 direct + 20 sourced", got)
		}
		return nil
	})
}
