package docker

import (
	"time"

	"github.com/dockcast/dockcast/shared/event"
)

// Slack is how far before the resume point the publisher asks the engine
// to start again. The engine stamps an event's time before it takes the
// lock that orders its events, so an event stamped just before the newest
// one published can be delivered just after it; asking from T-Slack and
// dropping the ids already known catches such an event instead of losing it.
const Slack = time.Second

// marker is the newest point the publisher has enqueued (or found in the
// stream): the newest event time t, and the ids of the events at most
// Slack older than t, which are the ones a resume from t-Slack offers again.
//
// The watcher keeps one running marker (the next resume point) and, for each
// subscription, a frozen copy taken when it subscribed (its floor): events
// are dropped against the floor only, so two events delivered out of time
// order within one subscription are both kept.
type marker struct {
	set     bool
	t       int64
	ids     map[string]int64 // id -> time_nano, for time_nano >= t-Slack
	pruned  int64            // t at the last prune
	horizon int64            // Slack in nanoseconds (0: Slack)
}

func (m *marker) slack() int64 {
	if m.horizon > 0 {
		return m.horizon
	}
	return int64(Slack)
}

// since is where a subscription resuming from this mark starts: t-Slack.
func (m *marker) since() int64 { return m.t - m.slack() }

// seen reports whether e must be dropped: older than t-Slack, or known.
func (m *marker) seen(e *event.Event) bool {
	if !m.set {
		return false
	}
	if e.TimeNano < m.since() {
		return true
	}
	_, ok := m.ids[e.ID]
	return ok
}

// add records an enqueued event.
func (m *marker) add(e *event.Event) { m.advance(e.TimeNano, e.ID) }

// clone returns an independent copy: the floor of one subscription.
func (m *marker) clone() marker {
	c := *m
	c.ids = make(map[string]int64, len(m.ids))
	for id, t := range m.ids {
		c.ids[id] = t
	}
	return c
}

// advance records an event at t with id; the mark moves forward only.
func (m *marker) advance(t int64, id string) {
	if m.ids == nil {
		m.ids = map[string]int64{}
	}
	if !m.set || t > m.t {
		m.set, m.t = true, t
	}
	if t >= m.since() {
		m.ids[id] = t
	}
	if m.t-m.pruned > m.slack() {
		for k, kt := range m.ids {
			if kt < m.since() {
				delete(m.ids, k)
			}
		}
		m.pruned = m.t
	}
}
