package replay_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/gateway/replay"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/natsutil"
	"github.com/dockcast/dockcast/shared/subject"
	"github.com/dockcast/dockcast/shared/testkit"
)

// TestTailStart: the start of `docker events --until T` (no since) is
// where the nodes' last N engine events stored by T begin, not the
// stream's start; a node with fewer events than N is read whole; dockcast's
// own events and events stored after T do not count; a token that may
// not read a node leaves it out.
func TestTailStart(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, natsutil.StreamConfig("TAIL", 0, -1, 1)); err != nil {
		t.Fatal(err)
	}
	a, b := testkit.Unique("a"), testkit.Unique("b")
	base := time.Now().Add(-3 * time.Hour)
	at := func(s int) time.Time { return base.Add(time.Duration(s) * time.Second) }
	// pub publishes n events of node on subject typ/action, the i-th at
	// at(from+i); it returns their sequences.
	pub := func(n int, node, typ, action string, from int) []uint64 {
		t.Helper()
		var futs []jetstream.PubAckFuture
		for i := 0; i < n; i++ {
			ev := event.New(node, typ, action, "", fmt.Sprintf("%064d", i), map[string]string{"name": "c"}, at(from+i))
			data, err := ev.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			f, err := js.PublishAsync(ev.Subject(), data)
			if err != nil {
				t.Fatal(err)
			}
			futs = append(futs, f)
		}
		var seqs []uint64
		for _, f := range futs {
			select {
			case ack := <-f.Ok():
				seqs = append(seqs, ack.Sequence)
			case err := <-f.Err():
				t.Fatal(err)
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			}
		}
		return seqs
	}
	pub(5000, a, "container", "start", 0)
	onB := pub(5, b, "network", "connect", 6000)
	block := pub(20, a, "container", "start", 7000)
	pub(3, a, "container", event.ActionState, 8000) // dockcast's: they do not count
	pub(2, a, event.TypeDockcast, event.ActionGap, 8000)
	until := at(9000)
	pub(1000, a, "container", "start", 10000)   // after until
	late := pub(15, a, "container", "die", 100) // stored late (after an outage), before until
	rp := replay.New(js, "TAIL", nil, 1, testkit.Logger(t), nil)
	const n = 10
	all := []string{subject.All}
	start, err := rp.TailStart(ctx, replay.TailSpec{Subjects: all, Until: until, N: n})
	if err != nil {
		t.Fatal(err)
	}
	if start != onB[0] {
		t.Errorf("start %d, want %d (node b's first event: it has fewer than %d)", start, onB[0], n)
	}
	// Only node a: its 10th last engine event by until, in stream order:
	// among those stored late.
	wantA := late[len(late)-n]
	for name, spec := range map[string]replay.TailSpec{
		"filter":   {Subjects: []string{subject.Node(a)}, Until: until, N: n},
		"token":    {Subjects: all, Patterns: []string{subject.Node(a)}, Until: until, N: n},
		"narrowed": {Subjects: []string{subject.Node(a)}, Patterns: []string{subject.Node(a)}, Exact: true, Until: until, N: n},
	} {
		got, err := rp.TailStart(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		if got != wantA {
			t.Errorf("%s: start %d, want %d", name, got, wantA)
		}
	}
	// 30: the 15 stored late and the last 15 of the block before the
	// synthetic events.
	if got, err := rp.TailStart(ctx, replay.TailSpec{Subjects: []string{subject.Node(a)}, Until: until, N: 30}); err != nil || got != block[5] {
		t.Errorf("30 of a: start %d (%v), want %d", got, err, block[5])
	}
	// More than a node holds: from its first.
	if got, err := rp.TailStart(ctx, replay.TailSpec{Subjects: []string{subject.Node(a)}, Until: until, N: 6000}); err != nil || got != 1 {
		t.Errorf("N over what a holds: start %d (%v), want 1", got, err)
	}
	// A node nobody may read: nothing to read before the end.
	if got, err := rp.TailStart(ctx, replay.TailSpec{Subjects: []string{subject.Node("nobody")}, Until: until, N: n}); err != nil || got != 1 {
		t.Errorf("no node: start %d (%v), want the stream's first", got, err)
	}
}
