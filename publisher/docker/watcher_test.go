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
	var m marker
	a := event.New("n", "container", "start", "", "a", nil, time.Unix(0, 100))
	b := event.New("n", "container", "start", "", "b", nil, time.Unix(0, 100))
	old := event.New("n", "container", "start", "", "c", nil, time.Unix(0, 99))
	if m.seen(&a) {
		t.Fatal("empty marker has seen an event")
	}
	m.add(&a)
	if !m.seen(&a) || m.seen(&b) || !m.seen(&old) {
		t.Fatal("same-time events must be told apart by id; older ones dropped")
	}
	m.add(&b)
	m.add(&old) // never moves the mark back
	if m.t != 100 || !m.seen(&b) {
		t.Fatalf("mark %d", m.t)
	}
	later := event.New("n", "container", "die", "", "a", nil, time.Unix(0, 101))
	m.add(&later)
	if !m.seen(&a) || !m.seen(&b) || m.seen(&event.Event{TimeNano: 101, ID: "x"}) {
		t.Fatal("advance")
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
