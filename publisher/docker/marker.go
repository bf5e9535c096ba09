package docker

import "github.com/dockcast/dockcast/shared/event"

// marker is the newest point the publisher has enqueued (or found in the
// stream): its time and the ids of the events at exactly that time.
//
// The watcher keeps one running marker (the next resume point) and, for each
// subscription, a frozen copy taken when it subscribed (the floor T): events
// are dropped against the floor only. The engine stamps an event's time
// before it takes the lock that orders its events, so two events logged at
// the same moment can arrive out of time order; dropping against the running
// marker would lose the second one.
type marker struct {
	set bool
	t   int64
	ids map[string]struct{}
}

// seen reports whether e is at or before the mark and must be dropped:
// older than t, or at t with a known id.
func (m *marker) seen(e *event.Event) bool {
	if !m.set {
		return false
	}
	if e.TimeNano != m.t {
		return e.TimeNano < m.t
	}
	_, ok := m.ids[e.ID]
	return ok
}

// add records an enqueued event.
func (m *marker) add(e *event.Event) { m.advance(e.TimeNano, e.ID) }

// clone returns an independent copy: the floor of one subscription.
func (m *marker) clone() marker {
	c := marker{set: m.set, t: m.t, ids: make(map[string]struct{}, len(m.ids))}
	for id := range m.ids {
		c.ids[id] = struct{}{}
	}
	return c
}

// advance moves the mark to (t, id) if that is not older.
func (m *marker) advance(t int64, id string) {
	switch {
	case !m.set || t > m.t:
		m.set, m.t, m.ids = true, t, map[string]struct{}{id: {}}
	case t == m.t:
		m.ids[id] = struct{}{}
	}
}
