package history

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/natsutil"
	"github.com/dockcast/dockcast/shared/testkit"
)

func setup(t *testing.T) (jetstream.JetStream, jetstream.Stream, func(node, id string, at time.Time) event.Event) {
	t.Helper()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	ctx := context.Background()
	s, err := natsutil.EnsureStream(ctx, js, natsutil.StreamConfig("EV", time.Hour, 1<<30, 1), testkit.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	publish := func(node, id string, at time.Time) event.Event {
		e := event.New(node, "container", "start", "", id, nil, at)
		data, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, e.Subject(), data); err != nil {
			t.Fatal(err)
		}
		return e
	}
	return js, s, publish
}

func ids(evs []event.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Actor.ID)
	}
	return out
}

func TestRecent(t *testing.T) {
	t.Parallel()
	_, s, publish := setup(t)
	ctx := context.Background()
	if got, err := Recent(ctx, s, "n1", time.Second, 0); err != nil || len(got) != 0 {
		t.Fatalf("empty stream: %v, %v", got, err)
	}
	base := time.Now()
	publish("n1", "old", base.Add(-3*time.Second))
	publish("n1", "a", base.Add(-500*time.Millisecond))
	publish("n2", "other-node", base)
	publish("n1", "newest", base)
	publish("n1", "straggler", base.Add(-time.Millisecond)) // stored last, stamped earlier
	got, err := Recent(ctx, s, "n1", time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	if g := ids(got); len(g) != 3 || g[0] != "a" || g[1] != "newest" || g[2] != "straggler" {
		t.Fatalf("recent events of n1: %q, want [a newest straggler]", g)
	}
	got, err = Recent(ctx, s, "n1", time.Second, 10)
	if g := ids(got); err != nil || len(g) != 4 || g[0] != "old" {
		t.Fatalf("at least 10 recent events of n1: %q %v, want all four", g, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Consumers != 0 {
		t.Fatalf("%d consumers left behind", info.State.Consumers)
	}
}

// An outage split a burst: its first events were stored long before the
// rest, though their own times are within the window of the newest. The
// resume must know them all, or a restart replays the first ones and
// stores them again, after newer ones (issue 7, item 4).
func TestRecentAfterAnOutageSplitABurst(t *testing.T) {
	t.Parallel()
	_, s, publish := setup(t)
	base := time.Now()
	publish("n1", "before", base.Add(-2*time.Second))
	publish("n1", "b1", base)
	publish("n1", "b2", base.Add(time.Millisecond))
	// The outage: the rest of the burst is stored later than the stored-time
	// slack the first read looks back (this wait makes the stored times
	// differ; nothing is waited for).
	time.Sleep(storeSlack + 2*time.Second)
	publish("n1", "b3", base.Add(2*time.Millisecond))
	publish("n1", "b4", base.Add(3*time.Millisecond))
	got, err := Recent(context.Background(), s, "n1", time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	if g := ids(got); len(g) != 4 || g[0] != "b1" || g[3] != "b4" {
		t.Fatalf("recent events %q, want the whole burst [b1 b2 b3 b4]", g)
	}
}

// After the engine's clock stepped back, the run stops at the step: the
// events before it are in the engine's future.
func TestRecentStopsAtAClockStep(t *testing.T) {
	t.Parallel()
	_, s, publish := setup(t)
	base := time.Now()
	publish("n1", "pre-step", base)
	publish("n1", "post-1", base.Add(-time.Hour))
	publish("n1", "post-2", base.Add(-time.Hour+time.Millisecond))
	got, err := Recent(context.Background(), s, "n1", time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	if g := ids(got); len(g) != 2 || g[0] != "post-1" {
		t.Fatalf("recent events %q, want [post-1 post-2]", g)
	}
}

func TestLast(t *testing.T) {
	t.Parallel()
	js, _, publish := setup(t)
	nc := js.Conn()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := Last(ctx, nc, "", "EV", "n1"); !errors.Is(err, ErrNoMessage) {
		t.Fatalf("no message yet: %v", err)
	}
	if _, err := Last(ctx, nc, "", "MISSING", "n1"); !errors.Is(err, ErrStreamNotFound) {
		t.Fatalf("missing stream: %v", err)
	}
	publish("n1", "a", time.Now())
	e := publish("n1", "b", time.Now())
	publish("n2", "c", time.Now())
	last, err := Last(ctx, nc, DefaultAPIPrefix, "EV", "n1")
	if err != nil || last.Seq != 2 || last.ID != e.ID {
		t.Fatalf("last of n1: %+v %v, want seq 2 id %s", last, err, e.ID)
	}
}
