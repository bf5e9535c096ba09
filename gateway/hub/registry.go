package hub

import (
	"fmt"

	"github.com/dockcast/dockcast/gateway/client"
	"github.com/dockcast/dockcast/shared/event"
)

// JoinLive registers a client for live events only: it gets the status
// frames and {"type":"live","seq":lastSeq,"epoch":…}, then every later
// match. It returns false when the client is already closed.
func (h *Hub) JoinLive(c *client.Client) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !c.JoinLive(h.status.framesFor(c), h.lastSeq, h.epoch, &h.pos) {
		return false
	}
	h.addLocked(c)
	return true
}

// JoinBuffering registers a replaying client that reads the stream from
// next (0: not known yet, for since): live events from the returned
// liveFrom on are held for it until it goes live; events below minSeq are
// never sent. An epoch that is not the stream's (a from_seq of an earlier
// incarnation) ends the client with stream_reset instead.
func (h *Hub) JoinBuffering(c *client.Client, next, minSeq uint64, epoch string) (liveFrom uint64, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if epoch != "" && epoch != h.epoch {
		c.Reset(h.epoch, fmt.Sprintf("epoch %s is not the stream's: stream %s was made again since (now epoch %s), its sequences restarted", epoch, h.stream, h.epoch))
		return 0, false
	}
	liveFrom = h.lastSeq + 1
	if !c.JoinBuffering(h.status.framesFor(c), liveFrom, next, minSeq, h.epoch, &h.pos) {
		return 0, false
	}
	h.addLocked(c)
	return liveFrom, true
}

// Leave unregisters a client.
func (h *Hub) Leave(c *client.Client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removeLocked(c)
}

// Clients returns the registered clients.
func (h *Hub) Clients() []*client.Client {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*client.Client, 0, len(h.clients))
	for c := range h.clients {
		out = append(out, c)
	}
	return out
}

func (h *Hub) addLocked(c *client.Client) {
	if _, ok := h.clients[c]; ok {
		return
	}
	key := groupKey(c)
	g := h.groups[key]
	if g == nil {
		g = &group{key: key, pos: map[*client.Client]int{}}
		h.groups[key] = g
		for _, s := range c.Spec.Subjects {
			if err := h.index.Insert(s, g); err != nil {
				h.log.Error("index client subject", "subject", s, "err", err)
			}
		}
	}
	g.add(c)
	h.clients[c] = g
}

func (h *Hub) removeLocked(c *client.Client) {
	g, ok := h.clients[c]
	if !ok {
		return
	}
	delete(h.clients, c)
	if g.remove(c) {
		delete(h.groups, g.key)
		for _, s := range c.Spec.Subjects {
			_ = h.index.Remove(s, g)
		}
	}
}

// fanout offers an event's frame (built once, shared) to every client
// that wants it, deciding once per group of clients with the same filter.
// h.mu is held.
func (h *Hub) fanout(seq uint64, subj string, frame []byte, ev *event.Event) {
	h.index.Match(subj, func(g *group) {
		if len(g.members) == 0 || !g.members[0].Wants(subj, ev) {
			return
		}
		for _, c := range g.members {
			c.Live(seq, frame)
		}
	})
}

// resetLocked ends every client with stream_reset (naming the new epoch)
// and restarts the live feed at the new stream's end. h.mu is held.
func (h *Hub) resetLocked(epoch string, lastSeq uint64) {
	h.log.Warn("stream was reset: closing clients so that they start over",
		"stream", h.stream, "old_epoch", h.epoch, "epoch", epoch, "old_last_seq", h.lastSeq, "new_last_seq", lastSeq, "clients", len(h.clients))
	reason := fmt.Sprintf("stream %s was deleted and made again (epoch %s), its sequences restarted", h.stream, epoch)
	for c := range h.clients {
		c.Reset(epoch, reason)
		h.removeLocked(c)
	}
	h.lastSeq, h.epoch = lastSeq, epoch
	h.pos.Store(lastSeq)
	h.recent.reset(epoch, h.RecentKept)
	h.times.reset()
	h.invalid.reset()
}
