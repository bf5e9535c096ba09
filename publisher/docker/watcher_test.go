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
	old := at("o", base-2*int64(Slack))
	var m marker
	if m.seen(&a) || m.seen(&old) {
		t.Fatal("an empty marker has seen an event")
	}
	m.add(&a)
	if !m.seen(&a) || m.seen(&b) || m.seen(&straggler) || !m.seen(&old) {
		t.Fatal("known ids and events older than t-Slack are dropped; unknown ones within Slack are not")
	}
	if m.since() != base-int64(Slack) {
		t.Fatalf("since %d", m.since())
	}
	m.add(&straggler) // stamped before a, delivered after it
	if m.t != base || !m.seen(&straggler) {
		t.Fatalf("mark moved back to %d, or the straggler is not known", m.t)
	}
	floor := m.clone()
	later := at("l", base+3*int64(Slack))
	m.add(&later)
	if floor.seen(&later) || !m.seen(&later) {
		t.Fatal("a clone must not follow its original")
	}
	if !m.seen(&a) || len(m.ids) != 1 {
		t.Fatalf("ids older than t-Slack must be pruned and still count as seen: %v", m.ids)
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
