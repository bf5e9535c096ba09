package docker

import (
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/filter"
)

func TestMarker(t *testing.T) {
	t.Parallel()
	at := func(id string, tn int64) event.Event {
		return event.New("n", "container", "start", "", id, nil, time.Unix(0, tn))
	}
	base := int64(10 * time.Second)
	a, b := at("a", base), at("b", base) // same time, other ids
	straggler := at("s", base-int64(time.Millisecond))
	old := at("o", base-2*Slack)
	var m marker
	if m.seen(&a) || m.seen(&old) {
		t.Fatal("an empty marker has seen an event")
	}
	m.add(&a)
	if !m.seen(&a) || m.seen(&b) || m.seen(&straggler) || m.seen(&old) {
		t.Fatal("only known ids are seen; an event is never dropped for its time")
	}
	if m.since() != base-Slack {
		t.Fatalf("since %d", m.since())
	}
	m.add(&straggler) // stamped before a, delivered after it
	if m.t != base || !m.seen(&straggler) {
		t.Fatalf("mark moved back to %d, or the straggler is not known", m.t)
	}
	floor := m.clone()
	later := at("l", base+3*Slack)
	m.add(&later)
	if floor.seen(&later) || !m.seen(&later) {
		t.Fatal("a clone must not follow its original")
	}
	if m.seen(&a) || len(m.ids) != 1 {
		t.Fatalf("ids older than t-Slack must be pruned: %v", m.ids)
	}

	// The engine's clock steps back an hour: the mark follows it, and the
	// ids stamped before the step stay known (the engine replays them).
	stepped := at("after-step", base+3*Slack-int64(time.Hour))
	m.stepBack(stepped.TimeNano)
	m.add(&stepped)
	if m.t != stepped.TimeNano || !m.seen(&later) || !m.seen(&stepped) {
		t.Fatalf("after a step back: t %d, ids %v", m.t, m.ids)
	}
}

func TestMarkerFromStream(t *testing.T) {
	t.Parallel()
	at := func(id string, tn int64) event.Event {
		return event.New("n", "container", "start", "", id, nil, time.Unix(0, tn))
	}
	base := int64(100 * time.Second)
	evs := []event.Event{
		at("old", base-3*Slack), at("pre-step", base+int64(time.Hour)), // stamped before a step back
		at("x", base-int64(time.Millisecond)), at("y", base+int64(time.Millisecond)), at("last", base),
	}
	var m marker
	m.fromStream(evs)
	if !m.set || m.t != base+int64(time.Millisecond) {
		t.Fatalf("t %d: want the newest time near the last event's, not the pre-step one", m.t)
	}
	if m.seen(&evs[0]) || len(m.ids) != 4 {
		t.Fatalf("known ids %v: want pre-step, x, y and last", m.ids)
	}
	for _, e := range evs[1:] {
		if !m.seen(&e) {
			t.Fatalf("%s not known", e.Actor.ID)
		}
	}
}

func TestStateEvent(t *testing.T) {
	t.Parallel()
	s := time.Unix(1_700_000_000, 5)
	e := StateEvent("web-1", container.Summary{
		ID: "abc", Names: []string{"/api"}, Image: "api:1", State: "running", Status: "Up 2 minutes (healthy)",
		Labels: map[string]string{"env": "prod"},
	}, s)
	a := e.Actor.Attributes
	if e.Subject() != "docker.events.web-1.container.state" || e.ActionDetail != "running" || e.TimeNano != s.UnixNano() ||
		a["name"] != "api" || a["image"] != "api:1" || a["health"] != "healthy" || a["env"] != "prod" ||
		e.ID != event.ID("web-1", s.UnixNano(), "container", "state: running", "abc") {
		t.Fatalf("%+v", e)
	}
	for in, want := range map[string]string{"Up 1s (unhealthy)": "unhealthy", "Up 1s (health: starting)": "starting", "Exited (0) 1s ago": ""} {
		if got := Health(in); got != want {
			t.Errorf("%q: %q", in, got)
		}
	}
}

func TestStateFilter(t *testing.T) {
	t.Parallel()
	f, _ := filter.ParseList("type=image", filter.EngineKeys)
	if _, ok := stateFilter(f); ok {
		t.Fatal("type=image admits state events")
	}
	f, _ = filter.ParseList("type=container,event=start,label=env=prod", filter.EngineKeys)
	g, ok := stateFilter(f)
	if !ok {
		t.Fatal("type=container excludes state events")
	}
	prod := StateEvent("n", container.Summary{ID: "a", State: "running", Labels: map[string]string{"env": "prod"}}, time.Now())
	dev := StateEvent("n", container.Summary{ID: "b", State: "running", Labels: map[string]string{"env": "dev"}}, time.Now())
	if !g.Match(&prod) || g.Match(&dev) {
		t.Fatal("label filter not applied to state events")
	}
}
