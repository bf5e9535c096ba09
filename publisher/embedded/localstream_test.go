package embedded_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/publisher/embedded"
	"github.com/dockcast/dockcast/shared/testkit"
)

func TestEnsureLocalStreamNeverReusesAName(t *testing.T) {
	t.Parallel()
	hub := testkit.StartHub(t, testkit.HubOptions{})
	edge := startEdge(t, "web-1", hub.LeafURL())
	_, js := testkit.Connect(t, edge.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	clock := time.Unix(1764097465, 0)
	l := embedded.LocalStream{Central: "DOCKER_EVENTS", Node: "web-1", MaxAge: time.Hour, MaxBytes: 1 << 20,
		Duplicates: 30 * time.Second, Now: func() time.Time { return clock }, Log: testkit.Logger(t)}

	s, made, err := embedded.EnsureLocalStream(ctx, js, l)
	if err != nil || !made || s.CachedInfo().Config.Name != "DOCKER_EVENTS_web-1" {
		t.Fatalf("first: %v %v %v", name(s), made, err)
	}
	cfg := s.CachedInfo().Config
	if cfg.Replicas != 1 || cfg.Storage != jetstream.FileStorage || cfg.Subjects[0] != "docker.events.web-1.>" ||
		cfg.MaxAge != time.Hour || cfg.MaxBytes != 1<<20 || cfg.Duplicates != 30*time.Second {
		t.Fatalf("local stream config %+v", cfg)
	}
	if _, err := js.Publish(ctx, "docker.events.web-1.container.start", []byte("{}")); err != nil {
		t.Fatal(err)
	}

	// Again: the same stream, its data kept, new limits applied.
	l.MaxAge = 2 * time.Hour
	s, made, err = embedded.EnsureLocalStream(ctx, js, l)
	if err != nil || made || name(s) != "DOCKER_EVENTS_web-1" || s.CachedInfo().State.Msgs != 1 || s.CachedInfo().Config.MaxAge != 2*time.Hour {
		t.Fatalf("second: %v made=%v %v %+v", name(s), made, err, s.CachedInfo().State)
	}

	// Gone: a new name, twice in the same second a different one.
	for _, want := range []string{"DOCKER_EVENTS_web-1_1764097465", "DOCKER_EVENTS_web-1_1764097466"} {
		if err := js.DeleteStream(ctx, name(s)); err != nil {
			t.Fatal(err)
		}
		s, made, err = embedded.EnsureLocalStream(ctx, js, l)
		if err != nil || !made || name(s) != want {
			t.Fatalf("after delete: %v made=%v %v, want %s", name(s), made, err, want)
		}
	}

	// An older one reappearing does not replace the newest.
	old := l.Config("DOCKER_EVENTS_web-1")
	old.Subjects = []string{"restored.>"} // (two streams cannot share subjects)
	if _, err := js.CreateStream(ctx, old); err != nil {
		t.Fatal(err)
	}
	s, made, err = embedded.EnsureLocalStream(ctx, js, l)
	if err != nil || made || name(s) != "DOCKER_EVENTS_web-1_1764097466" {
		t.Fatalf("reopen: %v made=%v %v", name(s), made, err)
	}
}

func TestEnsureLocalStreamAvoidsNamesTheCentreSources(t *testing.T) {
	t.Parallel()
	hub := testkit.StartHub(t, testkit.HubOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	clock := func() time.Time { return time.Unix(1764097465, 0) }
	for _, c := range []struct {
		name  string
		taken func(context.Context, string) (bool, error)
		want  string
	}{
		{"centre free", func(context.Context, string) (bool, error) { return false, nil }, "DOCKER_EVENTS_n1"},
		{"centre sources the base name", func(_ context.Context, n string) (bool, error) { return n == "DOCKER_EVENTS_n1", nil }, "DOCKER_EVENTS_n1_1764097465"},
		{"centre out of reach", func(context.Context, string) (bool, error) { return false, errors.New("no responders") }, "DOCKER_EVENTS_n1_1764097465"},
	} {
		t.Run(c.name, func(t *testing.T) {
			edge := startEdge(t, "n1", hub.LeafURL()) // a fresh data directory each time
			_, js := testkit.Connect(t, edge.ClientURL())
			s, made, err := embedded.EnsureLocalStream(ctx, js, embedded.LocalStream{Central: "DOCKER_EVENTS", Node: "n1", MaxAge: time.Hour, Taken: c.taken, Now: clock})
			if err != nil || !made || name(s) != c.want {
				t.Fatalf("%v made=%v %v, want %s", name(s), made, err, c.want)
			}
		})
	}
}

func name(s jetstream.Stream) string {
	if s == nil {
		return "<nil>"
	}
	return s.CachedInfo().Config.Name
}
