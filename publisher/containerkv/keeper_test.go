package containerkv

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/publisher/queue"
	"github.com/dockcast/dockcast/shared/containerstate"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/natsutil"
	"github.com/dockcast/dockcast/shared/testkit"
)

type rig struct {
	t      *testing.T
	js     jetstream.JetStream
	stream jetstream.Stream
	kv     jetstream.KeyValue
	at     time.Time
}

func newRig(t *testing.T) *rig {
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	ctx := context.Background()
	st, err := js.CreateStream(ctx, natsutil.StreamConfig("DOCKER_EVENTS", time.Hour, 1<<30, 1))
	if err != nil {
		t.Fatal(err)
	}
	kv, err := containerstate.EnsureBucket(ctx, js, "DOCKER_EVENTS", 1)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, js: js, stream: st, kv: kv, at: time.Unix(1_700_000_000, 0)}
}

// store publishes one event of node and returns it as the writer would
// hand it to Stored.
func (r *rig) store(node, typ, action, detail, id string, attrs map[string]string) (uint64, *queue.Item) {
	r.t.Helper()
	r.at = r.at.Add(time.Millisecond)
	e := event.New(node, typ, action, detail, id, attrs, r.at)
	it, err := queue.NewItem(e)
	if err != nil {
		r.t.Fatal(err)
	}
	ack, err := r.js.Publish(context.Background(), it.Subject, it.Data)
	if err != nil {
		r.t.Fatal(err)
	}
	return ack.Sequence, &it
}

func (r *rig) contents() containerstate.Contents {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := containerstate.ReadBucket(ctx, r.kv, ">")
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}

func (r *rig) waitApplied(node string, seq uint64) containerstate.Contents {
	r.t.Helper()
	var c containerstate.Contents
	testkit.Eventually(r.t, 30*time.Second, func() error {
		c = r.contents()
		if a := c.Applied[node]; a.Seq < seq {
			return fmt.Errorf("watermark of %s at %d, want %d", node, a.Seq, seq)
		}
		return nil
	})
	return c
}

func runKeeper(t *testing.T, r *rig, node string, maxPending int) (*Keeper, context.CancelFunc) {
	k := &Keeper{KV: r.kv, Stream: r.stream, Node: node, Log: testkit.Logger(t), MaxPending: maxPending, RetryMin: 50 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = k.Run(ctx) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return k, stop
}

func stateOf(c containerstate.Contents, node, id string) string {
	st, ok := c.States.Get(node, id)
	if !ok {
		return "absent"
	}
	return st.Event.ActionDetail
}

// The keeper folds what the writer stored into <node>.<id> entries and a
// watermark; on restart it folds what was stored while it was away; a
// gap forgets the node's containers until its state events; overflow
// falls back to the stream.
func TestKeeper(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	labels := map[string]string{"name": "api", "image": "api:1", "env": "prod"}
	// Before the keeper: the node's first start (gap + state) and an event.
	r.store("n1", event.TypeDockcast, event.ActionGap, "", "n1", map[string]string{"reason": "first_start"})
	r.store("n1", "container", event.ActionState, "running", "old", map[string]string{"name": "old", "image": "x", "health": ""})
	r.store("n1", "container", "create", "", "c1", labels)
	k, stop := runKeeper(t, r, "n1", 0)
	seq, it := r.store("n1", "container", "start", "", "c1", labels)
	k.Stored(seq, it)
	c := r.waitApplied("n1", seq)
	if stateOf(c, "n1", "old") != "running" || stateOf(c, "n1", "c1") != "running" {
		t.Fatalf("after start: old %s, c1 %s", stateOf(c, "n1", "old"), stateOf(c, "n1", "c1"))
	}
	st, _ := c.States.Get("n1", "c1")
	if st.Seq != seq || st.Event.Actor.Attributes["env"] != "prod" || st.Event.Actor.Attributes["name"] != "api" {
		t.Fatalf("entry %+v", st)
	}
	// Another node's events and other types move the watermark, nothing else.
	seq, it = r.store("n1", "image", "pull", "", "busybox", nil)
	k.Stored(seq, it)
	r.waitApplied("n1", seq)

	// Stopped: events stored meanwhile are folded on the next start.
	stop()
	r.store("n1", "container", "die", "", "c1", map[string]string{"name": "api", "image": "api:1", "exitCode": "0"})
	seq, _ = r.store("n1", "container", "destroy", "", "old", map[string]string{"name": "old", "image": "x"})
	k, _ = runKeeper(t, r, "n1", 2)
	c = r.waitApplied("n1", seq)
	if stateOf(c, "n1", "c1") != "exited" || stateOf(c, "n1", "old") != "absent" {
		t.Fatalf("after restart: c1 %s, old %s", stateOf(c, "n1", "c1"), stateOf(c, "n1", "old"))
	}

	// A gap: the node's containers are those of the state events after it.
	var last uint64
	for _, e := range []struct{ typ, action, detail, id string }{
		{event.TypeDockcast, event.ActionGap, "", "n1"},
		{"container", event.ActionState, "running", "c2"},
	} {
		seq, it := r.store("n1", e.typ, e.action, e.detail, e.id, map[string]string{"name": e.id, "image": "y"})
		k.Stored(seq, it)
		last = seq
	}
	c = r.waitApplied("n1", last)
	if stateOf(c, "n1", "c1") != "absent" || stateOf(c, "n1", "c2") != "running" {
		t.Fatalf("after the gap: c1 %s, c2 %s", stateOf(c, "n1", "c1"), stateOf(c, "n1", "c2"))
	}

	// More than MaxPending (2) waiting: dropped, folded from the stream.
	for i := range 20 {
		seq, it := r.store("n1", "container", "create", "", fmt.Sprintf("m%02d", i), map[string]string{"name": "m", "image": "z"})
		k.Stored(seq, it)
		last = seq
	}
	c = r.waitApplied("n1", last)
	for i := range 20 {
		if s := stateOf(c, "n1", fmt.Sprintf("m%02d", i)); s != "created" {
			t.Fatalf("m%02d: %s", i, s)
		}
	}
}

// countingKV counts the key writes (puts and deletes) into the bucket.
type countingKV struct {
	jetstream.KeyValue
	writes atomic.Int64
}

func (c *countingKV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	c.writes.Add(1)
	return c.KeyValue.Put(ctx, key, value)
}

func (c *countingKV) Delete(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	c.writes.Add(1)
	return c.KeyValue.Delete(ctx, key, opts...)
}

// A burst of events on a few containers costs a few key writes per
// interval, not one per event, and the bucket ends as the fold of the
// stream: each entry the last state with its last event's sequence, the
// watermark the last event.
func TestKeeperCoalescesBursts(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	kv := &countingKV{KeyValue: r.kv}
	k := &Keeper{KV: kv, Stream: r.stream, Node: "n1", Log: testkit.Logger(t), Interval: time.Second, RetryMin: 50 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = k.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	const n, containers = 2000, 4
	actions := []string{"create", "start", "die", "start", "pause", "unpause", "die", "destroy"}
	var last uint64
	for i := range n {
		id := fmt.Sprintf("c%d", i%containers)
		action := actions[(i/containers)%len(actions)]
		seq, it := r.store("n1", "container", action, "", id, map[string]string{"name": id, "image": "x", "env": "prod"})
		k.Stored(seq, it)
		last = seq
	}
	// The last survivor: c0 restarted after the last round's destroy.
	seq, it := r.store("n1", "container", "create", "", "c0", map[string]string{"name": "c0", "image": "x"})
	k.Stored(seq, it)
	last = seq
	c := r.waitApplied("n1", last)

	var want containerstate.Set
	if _, err := containerstate.Fold(context.Background(), r.stream, "n1", 0, 0, func(seq uint64, e *event.Event) {
		want.Apply(seq, e)
	}); err != nil {
		t.Fatal(err)
	}
	got, wantAll := c.States.All(), want.All()
	if len(got) != len(wantAll) {
		t.Fatalf("bucket has %d containers, the fold %d", len(got), len(wantAll))
	}
	for i := range got {
		g, w := got[i], wantAll[i]
		if g.ID() != w.ID() || g.Seq != w.Seq || g.Event.ActionDetail != w.Event.ActionDetail || g.Event.ID != w.Event.ID {
			t.Fatalf("entry %s: seq %d %s (%s), the fold: %s seq %d %s (%s)", g.ID(), g.Seq, g.Event.ActionDetail, g.Event.ID, w.ID(), w.Seq, w.Event.ActionDetail, w.Event.ID)
		}
	}
	if st, ok := c.States.Get("n1", "c0"); !ok || st.Event.ActionDetail != containerstate.Created {
		t.Fatalf("c0: %+v, %v", st, ok)
	}
	// Publishing 2,000 events here takes well under a few seconds: a few
	// intervals of at most 4 entries and a watermark each.
	if w := kv.writes.Load(); w > n/20 {
		t.Fatalf("%d key writes for %d events on %d containers, want far fewer", w, n, containers)
	}
	t.Logf("%d key writes for %d events", kv.writes.Load(), n+1)
}
