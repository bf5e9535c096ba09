package app_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/subject"
)

// nodeMessages reads every message of node in the stream, in stream order,
// with one ordered consumer (fast enough for tens of thousands of events).
func nodeMessages(t testing.TB, js jetstream.JetStream, streamName, node string) []stored {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := readNodeMessages(ctx, js, streamName, node)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// readNodeMessages is nodeMessages returning its error (a server of a
// cluster that restarts may leave one request unanswered: callers retry).
func readNodeMessages(ctx context.Context, js jetstream.JetStream, streamName, node string) ([]stored, error) {
	s, err := js.Stream(ctx, streamName)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", streamName, err)
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject.Node(node)}})
	if err != nil {
		return nil, fmt.Errorf("ordered consumer: %w", err)
	}
	var out []stored
	for {
		batch, err := c.Fetch(2000, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return nil, fmt.Errorf("fetch: %w", err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			meta, err := m.Metadata()
			if err != nil {
				return nil, err
			}
			e, err := event.Decode(m.Data())
			if err != nil {
				return nil, fmt.Errorf("msg %d on %s: %v", meta.Sequence.Stream, m.Subject(), err)
			}
			out = append(out, stored{Seq: meta.Sequence.Stream, Subject: m.Subject(), MsgID: m.Headers().Get("Nats-Msg-Id"), Event: e})
		}
		if n > 0 {
			continue
		}
		info, err := c.Info(ctx)
		if err != nil {
			return nil, fmt.Errorf("consumer info: %w", err)
		}
		if info.NumPending == 0 {
			return out, nil
		}
	}
}

// engineEvents keeps the events that came from the engine (no dockcast
// synthetic event, no container.state).
func engineEvents(msgs []stored) []stored {
	var out []stored
	for _, m := range msgs {
		if m.Event.Type != event.TypeDockcast && m.Event.Action != event.ActionState {
			out = append(out, m)
		}
	}
	return out
}

// gapsOf returns the dockcast.gap events of msgs, by reason.
func gapsOf(msgs []stored) map[string]int {
	out := map[string]int{}
	for _, m := range msgs {
		if m.Event.Type == event.TypeDockcast && m.Event.Action == event.ActionGap {
			out[m.Event.Actor.Attributes["reason"]]++
		}
	}
	return out
}

// sameAsHistory reports how the engine events in msgs differ from what
// the engine emitted (history, in order): "" when they are the same
// events, each once, in the same order.
func sameAsHistory(node string, history []events.Message, msgs []stored) string {
	want := make([]string, len(history))
	for i, m := range history {
		want[i] = event.FromDocker(node, m).ID
	}
	got := engineEvents(msgs)
	seen := map[string]int{}
	twice := 0
	for _, m := range got {
		seen[m.Event.ID]++
		if seen[m.Event.ID] == 2 {
			twice++
		}
	}
	missing := 0
	for _, id := range want {
		if seen[id] == 0 {
			missing++
		}
	}
	if twice == 0 && missing == 0 && len(got) == len(want) {
		for i := range want {
			if got[i].Event.ID != want[i] {
				return fmt.Sprintf("out of order: stream event %d is %s (seq %d), the engine's is %s", i, got[i].Event.ID, got[i].Seq, want[i])
			}
		}
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "engine emitted %d events; the stream holds %d of them: %d missing, %d stored twice", len(want), len(got), missing, twice)
	for i := range min(len(got), len(want)) {
		if got[i].Event.ID != want[i] {
			fmt.Fprintf(&b, "; first difference at %d (seq %d)", i, got[i].Seq)
			break
		}
	}
	return b.String()
}
