package replay_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/gateway/auth"
	"github.com/dockcast/dockcast/gateway/replay"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/natsutil"
	"github.com/dockcast/dockcast/shared/subject"
	"github.com/dockcast/dockcast/shared/testkit"
)

// tailMsg is what the test published, for the oracle.
type tailMsg struct {
	seq  uint64
	subj string
	ev   event.Event
}

// publishTail publishes the events, asynchronously, and returns them with
// their sequences.
func publishTail(ctx context.Context, t *testing.T, js jetstream.JetStream, evs []event.Event) []tailMsg {
	t.Helper()
	var futs []jetstream.PubAckFuture
	for _, ev := range evs {
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
	var out []tailMsg
	for i, seq := range testkit.AwaitAcks(ctx, t, futs) {
		out = append(out, tailMsg{seq, evs[i].Subject(), evs[i]})
	}
	return out
}

// wantTail is the oracle: per node the client may read, the sequences of
// its last n engine events at or before until, in stream order.
func wantTail(msgs []tailMsg, spec replay.TailSpec) map[string][]uint64 {
	out := map[string][]uint64{}
	for _, m := range msgs {
		if !auth.Matches(spec.Subjects, m.subj) || spec.Patterns != nil && !auth.Matches(spec.Patterns, m.subj) {
			continue
		}
		if m.ev.Type == event.TypeDockcast || m.ev.Action == event.ActionState || m.ev.TimeNano > spec.Until.UnixNano() {
			continue
		}
		s := append(out[m.ev.Node], m.seq)
		if len(s) > spec.N {
			s = s[1:]
		}
		out[m.ev.Node] = s
	}
	return out
}

// checkPlan: every sequence of the oracle's tails is in the plan's Early
// (which holds only what lies before Start, in stream order) or from
// Start on.
func checkPlan(t *testing.T, name string, plan replay.TailPlan, want map[string][]uint64) {
	t.Helper()
	early := map[uint64]bool{}
	for i, m := range plan.Early {
		if m.Seq >= plan.Start || i > 0 && m.Seq <= plan.Early[i-1].Seq {
			t.Errorf("%s: early message %d (start %d) out of place", name, m.Seq, plan.Start)
		}
		early[m.Seq] = true
	}
	for node, seqs := range want {
		for _, s := range seqs {
			if s < plan.Start && !early[s] {
				t.Errorf("%s: %s's tail event %d is before start %d and not early", name, node, s, plan.Start)
			}
		}
	}
}

// TestTailStart: the plan for `docker events --until T` (no since) holds
// every node's last N engine events by T (dockcast's own events and
// events after T do not count; events stored late do) and starts the
// replay where the busy nodes' tails begin, not at the stream's start; a
// quiet node's older tail is read on its own subjects (Early); a token
// that may not read a node leaves it out.
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
	var all []tailMsg
	// pub publishes n events of node on subject typ/action, the i-th at
	// at(from+i); it returns their sequences.
	pub := func(n int, node, typ, action string, from int) []uint64 {
		t.Helper()
		var evs []event.Event
		for i := 0; i < n; i++ {
			evs = append(evs, event.New(node, typ, action, "", fmt.Sprintf("%064d", i), map[string]string{"name": "c"}, at(from+i)))
		}
		var seqs []uint64
		for _, m := range publishTail(ctx, t, js, evs) {
			seqs, all = append(seqs, m.seq), append(all, m)
		}
		return seqs
	}
	onB := pub(3, b, "network", "connect", 0) // the quiet node, early
	onA := pub(5000, a, "container", "start", 10)
	onB = append(onB, pub(2, b, "network", "disconnect", 6000)...)
	block := pub(20, a, "container", "start", 7000)
	pub(3, a, "container", event.ActionState, 8000) // dockcast's: they do not count
	pub(2, a, event.TypeDockcast, event.ActionGap, 8000)
	until := at(9000)
	pub(1000, a, "container", "start", 10000)   // after until
	late := pub(15, a, "container", "die", 100) // stored late (after an outage), before until
	slices.SortFunc(all, func(x, y tailMsg) int { return int(x.seq) - int(y.seq) })

	rp := replay.New(js, "TAIL", nil, 1, testkit.Logger(t), nil)
	const n = 10
	everything := []string{subject.All}
	plan := func(name string, spec replay.TailSpec) replay.TailPlan {
		t.Helper()
		p, err := rp.TailStart(ctx, spec)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkPlan(t, name, p, wantTail(all, spec))
		return p
	}
	// a is done in the first window (80 messages: 4 × 10 per node), b has
	// too few messages left to read more of everything: its 5 are read on
	// its own subjects, early.
	last := all[len(all)-1].seq
	quiet := func(name string, p replay.TailPlan, start uint64) {
		t.Helper()
		var early []uint64
		for _, m := range p.Early {
			early = append(early, m.Seq)
		}
		if p.Start != start || !slices.Equal(early, onB) {
			t.Errorf("%s: start %d, early %v; want %d, %v", name, p.Start, early, start, onB)
		}
	}
	quiet("all", plan("all", replay.TailSpec{Subjects: everything, Until: until, N: n}), last+1-80)
	// Only node a: from its 10th last engine event by until, in stream
	// order: among those stored late.
	for name, spec := range map[string]replay.TailSpec{
		"filter":   {Subjects: []string{subject.Node(a)}, Until: until, N: n},
		"token":    {Subjects: everything, Patterns: []string{subject.Node(a)}, Until: until, N: n},
		"narrowed": {Subjects: []string{subject.Node(a)}, Patterns: []string{subject.Node(a)}, Exact: true, Until: until, N: n},
	} {
		if p := plan(name, spec); p.Start != late[len(late)-n] || len(p.Early) != 0 {
			t.Errorf("%s: start %d, %d early; want %d, none", name, p.Start, len(p.Early), late[len(late)-n])
		}
	}
	// 30 of a: the 15 stored late and the last 15 of the block before the
	// synthetic events.
	if p := plan("30 of a", replay.TailSpec{Subjects: []string{subject.Node(a)}, Until: until, N: 30}); p.Start != block[5] {
		t.Errorf("30 of a: start %d, want %d", p.Start, block[5])
	}
	// Windows of at most 60 messages on all subjects: the same, from 60
	// back.
	rp.TailWindow = 60
	quiet("window 60", plan("window 60", replay.TailSpec{Subjects: everything, Until: until, N: n}), last+1-60)
	rp.TailWindow = 500
	// More than any node holds, in small windows: every node read whole.
	plan("6000 of each", replay.TailSpec{Subjects: everything, Until: until, N: 6000})
	rp.TailWindow = 1 << 16
	// An until before every event, more than a node holds: read whole.
	if p := plan("until before everything", replay.TailSpec{Subjects: everything, Until: at(-1), N: n}); p.Start != 1 {
		t.Errorf("until before everything: start %d, want 1", p.Start)
	}
	// More than a holds, on its subjects: a read whole at once, early.
	if p := plan("6000 of a", replay.TailSpec{Subjects: []string{subject.Node(a)}, Until: until, N: 6000}); len(p.Early) == 0 || p.Early[0].Seq != onA[0] {
		t.Errorf("N over what a holds: start %d, %d early, want a's first (%d) early", p.Start, len(p.Early), onA[0])
	}
	// A node nobody may read: the stream's first, nothing to read early.
	if p := plan("no node", replay.TailSpec{Subjects: []string{subject.Node("nobody")}, Until: until, N: n}); p.Start != 1 || len(p.Early) != 0 {
		t.Errorf("no node: %+v, want the stream's first", p)
	}
}

// TestTailStartRandom: plans for random streams (three nodes at different
// rates, dockcast's own events among them, event times on both sides of
// until and out of order), random N, window bounds and tokens all hold
// what the brute-force oracle holds.
func TestTailStartRandom(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := js.CreateStream(ctx, natsutil.StreamConfig("TAILR", 0, -1, 1)); err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(9, uint64(time.Now().UnixNano())))
	nodes := []string{testkit.Unique("busy"), testkit.Unique("some"), testkit.Unique("rare")}
	weights := []int{85, 14, 1}
	base := time.Now().Add(-time.Hour)
	var evs []event.Event
	for i := range 3000 {
		w, k := rnd.IntN(100), 0
		for w >= weights[k] {
			w -= weights[k]
			k++
		}
		typ, action := "container", "start"
		switch rnd.IntN(20) {
		case 0:
			typ, action = event.TypeDockcast, event.ActionGap
		case 1:
			action = event.ActionState
		case 2:
			typ, action = "network", "connect"
		}
		// Mostly in order, some late (an outage's events stored later).
		at := base.Add(time.Duration(i) * time.Second)
		if rnd.IntN(30) == 0 {
			at = at.Add(-time.Duration(rnd.IntN(1000)) * time.Second)
		}
		evs = append(evs, event.New(nodes[k], typ, action, "", fmt.Sprintf("%064d", i), map[string]string{"name": "c"}, at))
	}
	all := publishTail(ctx, t, js, evs)
	slices.SortFunc(all, func(x, y tailMsg) int { return int(x.seq) - int(y.seq) })
	rp := replay.New(js, "TAILR", nil, 1, testkit.Logger(t), nil)
	for i := range 40 {
		spec := replay.TailSpec{Subjects: []string{subject.All}, N: 1 + rnd.IntN(300),
			Until: base.Add(time.Duration(rnd.IntN(3200)) * time.Second)}
		switch rnd.IntN(3) {
		case 0:
			spec.Patterns = []string{subject.Node(nodes[rnd.IntN(3)])}
		case 1:
			two := rnd.Perm(3) // the subjects a filter gives never overlap
			spec.Subjects = []string{subject.Node(nodes[two[0]]), subject.Node(nodes[two[1]])}
		}
		rp.TailWindow = 10 + rnd.IntN(5000)
		name := fmt.Sprintf("case %d (N %d, window %d, until +%v, subjects %v, patterns %v)", i, spec.N, rp.TailWindow, spec.Until.Sub(base), spec.Subjects, spec.Patterns)
		p, err := rp.TailStart(ctx, spec)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkPlan(t, name, p, wantTail(all, spec))
	}
}
