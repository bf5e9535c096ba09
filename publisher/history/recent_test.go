package stream

import (
	"context"
	"testing"
	"time"

	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/natsutil"
	"github.com/dockcast/dockcast/shared/testkit"
)

func TestRecentEvents(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	ctx := context.Background()
	s, err := natsutil.EnsureStream(ctx, js, natsutil.StreamConfig("EV", time.Hour, 1<<30, 1), testkit.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := RecentEvents(ctx, s, "n1", time.Second); err != nil || len(got) != 0 {
		t.Fatalf("empty stream: %v, %v", got, err)
	}
	base := time.Now()
	publish := func(node, id string, at time.Time) {
		e := event.New(node, "container", "start", "", id, nil, at)
		data, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, e.Subject(), data); err != nil {
			t.Fatal(err)
		}
	}
	publish("n1", "old", base.Add(-3*time.Second))
	publish("n1", "a", base.Add(-500*time.Millisecond))
	publish("n2", "other-node", base)
	publish("n1", "newest", base)
	publish("n1", "straggler", base.Add(-time.Millisecond)) // stored last, stamped earlier
	got, err := RecentEvents(ctx, s, "n1", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range got {
		ids = append(ids, e.Actor.ID)
	}
	if len(ids) != 3 || ids[0] != "a" || ids[1] != "newest" || ids[2] != "straggler" {
		t.Fatalf("recent events of n1: %q, want [a newest straggler]", ids)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Consumers != 0 {
		t.Fatalf("%d consumers left behind", info.State.Consumers)
	}
}
