package app_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/publisher/app"
	"github.com/dockcast/dockcast/shared/containerstate"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/natsutil"
	"github.com/dockcast/dockcast/shared/testkit"
)

// stateSeqs reads the bucket of container states of js's DOCKER_EVENTS
// and checks each entry of node against the stream: its seq is the
// stream's sequence of the entry's last event.
func stateSeqs(ctx context.Context, t *testing.T, node string, c *centre) (map[string]string, error) {
	kv, err := c.js.KeyValue(ctx, containerstate.Bucket("DOCKER_EVENTS"))
	if err != nil {
		return nil, err
	}
	got, err := containerstate.ReadBucket(ctx, kv, node+".*")
	if err != nil {
		return nil, err
	}
	st, err := c.js.Stream(ctx, "DOCKER_EVENTS")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, s := range got.States.All() {
		m, err := st.GetMsg(ctx, s.Seq)
		if err != nil {
			return nil, fmt.Errorf("entry %s: seq %d: %w", s.ID(), s.Seq, err)
		}
		ev, err := event.Decode(m.Data)
		if err != nil || ev.Node != node || ev.Type != "container" || ev.Actor.ID != s.ID() {
			return nil, fmt.Errorf("entry %s: seq %d of the central stream is %s of %s (%v), not an event of its container",
				s.ID(), s.Seq, m.Subject, ev.Actor.ID, err)
		}
		out[s.ID()] = s.Event.ActionDetail
	}
	if a := got.Applied[node]; len(out) > 0 && a.Epoch == "" {
		return nil, fmt.Errorf("no watermark for %s", node)
	}
	return out, nil
}

// In edge mode the container states are kept in the central bucket with
// the central stream's sequences (the writer's are the local stream's).
func TestEdgeContainerStatesUseCentralSequences(t *testing.T) {
	c := startCentre(t)
	// Another node's events in the central stream first, so that central
	// and local sequences differ.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := natsutil.EnsureCentralStream(ctx, c.js, natsutil.CentralStreamConfig("DOCKER_EVENTS", time.Hour, 5*time.Second, 3), testkit.Logger(t)); err != nil {
		t.Fatal(err)
	}
	for i := range 7 {
		ev := event.New("other", "image", "pull", "", fmt.Sprintf("img%d", i), nil, time.Now())
		data, _ := ev.Marshal()
		// The stream is new: its replicas may still elect a leader (no
		// response until then); the id keeps a retried publish once.
		testkit.Eventually(t, time.Minute, func() error {
			pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
			defer pcancel()
			_, err := c.js.Publish(pctx, ev.Subject(), data, jetstream.WithMsgID(ev.ID))
			return err
		})
	}
	e := testkit.StartFakeEngine(t, testkit.FakeEngineOptions{})
	p := startPub(t, edgeVars(t, c, "edge_states", e.Host), func(a *app.App) {
		edgeTune(a)
		a.StatesPoll = 200 * time.Millisecond
	})
	p.WaitReady()
	for i := range 3 {
		e.Emit(testkit.Container("create", fmt.Sprintf("x%d", i), "x", nil))
		e.Emit(testkit.Container("destroy", fmt.Sprintf("x%d", i), "x", nil))
	}
	e.Emit(testkit.Container("create", "keep", "keep", map[string]string{"env": "prod"}))
	e.Emit(testkit.Container("start", "keep", "keep", map[string]string{"env": "prod"}))
	e.Emit(testkit.Container("create", "made", "made", nil))
	testkit.Eventually(t, 2*time.Minute, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		got, err := stateSeqs(ctx, t, "edge_states", c)
		if err != nil {
			return err
		}
		if len(got) != 2 || got["keep"] != "running" || got["made"] != "created" {
			return fmt.Errorf("central states %v", got)
		}
		return nil
	})
}
