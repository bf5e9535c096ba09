package docker

import (
	"github.com/dockcast/dockcast/shared/event"
)

// Slack is how far before the resume point the publisher asks the engine
// to start again. The engine stamps an event's time before it takes the
// lock that orders its events, so an event stamped just before the newest
// one published can be delivered just after it; asking from T-Slack and
// dropping the ids already known catches such an event instead of losing it.
const Slack = 1_000_000_000 // one second, in nanoseconds

// marker is the newest point the publisher has enqueued (or found in the
// stream): the newest event time t, and the ids of the events the engine
// may offer again on a resume from t-Slack: those stamped at t-Slack or
// later, including any stamped in the future of t by a clock that later
// stepped back (the engine replays those too).
//
// The watcher keeps one running marker (the next resume point) and, for each
// subscription, a frozen copy taken when it subscribed (its floor): events
// are dropped against the floor's ids only, never by their time, so two
// events delivered out of time order within one subscription are both
// kept, and so are events stamped by a clock that stepped back.
type marker struct {
	set    bool
	t      int64
	ids    map[string]int64 // id -> time_nano, for time_nano >= t-Slack
	pruned int64            // t at the last prune
}

// since is where a subscription resuming from this mark starts: t-Slack.
func (m *marker) since() int64 { return m.t - Slack }

// seen reports whether e is known: it was enqueued or found in the stream.
func (m *marker) seen(e *event.Event) bool {
	_, ok := m.ids[e.ID]
	return ok
}

// add records an enqueued event; the mark moves forward only.
func (m *marker) add(e *event.Event) {
	if m.ids == nil {
		m.ids = map[string]int64{}
	}
	if !m.set || e.TimeNano > m.t {
		m.set, m.t = true, e.TimeNano
	}
	if e.TimeNano >= m.since() {
		m.ids[e.ID] = e.TimeNano
	}
	if m.t-m.pruned > Slack {
		for k, kt := range m.ids {
			if kt < m.since() {
				delete(m.ids, k)
			}
		}
		m.pruned = m.t
	}
}

// stepBack moves the mark back to t (the engine's clock stepped back);
// the ids stamped later stay known.
func (m *marker) stepBack(t int64) {
	m.set, m.t, m.pruned = true, t, t
}

// clone returns an independent copy: the floor of one subscription.
func (m *marker) clone() marker {
	c := *m
	c.ids = make(map[string]int64, len(m.ids))
	for id, t := range m.ids {
		c.ids[id] = t
	}
	return c
}

// fromStream sets the mark from the node's last events in the stream, in
// stream order (history.Recent): t is the newest time of the run within
// Slack of the last event (not a time from before a clock step), and the
// known ids are those stamped at t-Slack or later.
func (m *marker) fromStream(evs []event.Event) {
	if len(evs) == 0 {
		return
	}
	last := evs[len(evs)-1].TimeNano
	t := last
	for _, e := range evs {
		if e.TimeNano > t && e.TimeNano-last <= Slack {
			t = e.TimeNano
		}
	}
	m.set, m.t, m.pruned = true, t, t
	m.ids = make(map[string]int64, len(evs))
	for _, e := range evs {
		if e.TimeNano >= t-Slack {
			m.ids[e.ID] = e.TimeNano
		}
	}
}
