package hub

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/gateway/client"
	"github.com/dockcast/dockcast/shared/status"
)

// statusBoard is the last status frame of every node in DOCKER_STATUS.
// It is guarded by Hub.mu, so that a client joins with a consistent set
// and then gets every later change exactly once.
//
// A change is what a consumer acts on: the connection state, its error,
// since, the engine. A publisher rewrites its value every few seconds only
// to say it is alive (`updated`, and its lease holder): such a rewrite
// refreshes the frame a joining client gets but is not sent to connected
// clients, so that 1,000 nodes do not cost every client 100 frames a
// second. Instead, when a node's value has not been rewritten for
// StaleAfter (the publisher or its link is gone), its clients get the last
// value again with "stale":true, and the fresh value when it is written
// again.
type statusBoard struct {
	nodes map[string]*nodeStatus
	// loaded: the watch delivered every value of the bucket once (or the
	// bucket does not exist): clients may join.
	loaded bool
	err    error           // why the last watch failed
	seen   map[string]bool // keys of the current watch's initial values, until they are all in
}

// nodeStatus is one node's entry on the board.
type nodeStatus struct {
	frame   []byte    // what clients get: the value, marked stale when it is
	change  string    // the value without updated and holder: what a change is
	written time.Time // when the NATS server stored the value
	// refreshed: the value carries `updated` (its publisher rewrites it),
	// so it can go stale; values of older publishers never do.
	refreshed bool
	stale     bool
}

func newStatusBoard() statusBoard { return statusBoard{nodes: map[string]*nodeStatus{}} }

func (b *statusBoard) reason() string {
	if b.err == nil {
		return ""
	}
	return ": " + b.err.Error()
}

// framesFor returns the status frames c may see, by node.
func (b *statusBoard) framesFor(c *client.Client) [][]byte {
	nodes := make([]string, 0, len(b.nodes))
	for n := range b.nodes {
		if c.MayReadNode(n) {
			nodes = append(nodes, n)
		}
	}
	sort.Strings(nodes)
	out := make([][]byte, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, b.nodes[n].frame)
	}
	return out
}

// watchStatus follows the DOCKER_STATUS bucket, which may not exist yet.
func (h *Hub) watchStatus(ctx context.Context) {
	retry := h.backoff()
	for ctx.Err() == nil {
		up := time.Now()
		err := h.watchOnce(ctx)
		retry.Healthy(up)
		if errors.Is(err, errRewatch) {
			h.log.Debug("status watch", "err", err)
			continue // NATS is back: watch again at once
		}
		if err != nil && ctx.Err() == nil {
			h.mu.Lock()
			h.status.err = err
			h.mu.Unlock()
			h.log.Debug("status watch", "err", err)
			_ = retry.Wait(ctx)
		}
	}
}

// errRewatch ends a status watch when NATS reconnected.
var errRewatch = errors.New("nats reconnected: watching again")

func (h *Hub) watchOnce(ctx context.Context) error {
	octx, cancel := context.WithTimeout(ctx, 5*time.Second)
	kv, err := h.js.KeyValue(octx, status.Bucket)
	cancel()
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		// No publisher wrote a status yet: nothing to wait for. Its
		// statuses reach clients as changes once the bucket exists.
		h.mu.Lock()
		h.status.loaded = true
		h.mu.Unlock()
	}
	if err != nil {
		return fmt.Errorf("open bucket %s: %w", status.Bucket, err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	w, err := kv.WatchAll(wctx)
	if err != nil {
		return fmt.Errorf("watch bucket %s: %w", status.Bucket, err)
	}
	defer func() { _ = w.Stop() }()
	h.watches.Add(1)
	h.mu.Lock()
	h.status.seen = map[string]bool{}
	h.mu.Unlock()
	stale := time.NewTicker(min(5*time.Second, h.staleAfter()/4))
	defer stale.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-stale.C:
			h.statusStale(now)
		case <-h.watchNow:
			return errRewatch
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watch ended")
			}
			if e == nil {
				h.statusLoaded()
			} else {
				h.statusEntry(e)
			}
		}
	}
}

// statusLoaded: the watch delivered every current value. Nodes a former
// watch knew and this one did not see were deleted meanwhile.
func (h *Hub) statusLoaded() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for n := range h.status.nodes {
		if !h.status.seen[n] {
			delete(h.status.nodes, n)
		}
	}
	h.status.seen, h.status.loaded, h.status.err = nil, true, nil
}

func (h *Hub) statusEntry(e jetstream.KeyValueEntry) {
	h.mu.Lock()
	defer h.mu.Unlock()
	key := e.Key()
	if e.Operation() != jetstream.KeyValuePut {
		delete(h.status.nodes, key)
		return
	}
	value := bytes.TrimSpace(e.Value())
	if !utf8.Valid(value) {
		h.log.Warn("bad status value: not UTF-8", "key", key)
		return
	}
	st, err := status.Decode(value)
	if err != nil {
		h.log.Warn("bad status value", "key", key, "err", err)
		return
	}
	if st.Node != key {
		// Not a node's status (a lease or other bookkeeping key).
		h.log.Debug("status bucket key is not a node status", "key", key)
		return
	}
	if h.status.seen != nil {
		h.status.seen[key] = true
	}
	change := st
	change.Updated, change.Holder = time.Time{}, ""
	ns := &nodeStatus{change: string(change.Marshal()), written: e.Created(), refreshed: !st.Updated.IsZero()}
	ns.stale = ns.refreshed && time.Since(ns.written) > h.staleAfter() // an old value at start
	ns.frame = client.StatusFrame(value, ns.stale)
	old := h.status.nodes[key]
	h.status.nodes[key] = ns
	if old != nil && old.change == ns.change && old.stale == ns.stale {
		return // only "still alive": joining clients get the fresh value
	}
	h.sendStatus(key, ns.frame)
}

// statusStale marks the nodes whose value was not rewritten for StaleAfter
// and tells their clients.
func (h *Hub) statusStale(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for key, ns := range h.status.nodes {
		if ns.stale || !ns.refreshed || now.Sub(ns.written) <= h.staleAfter() {
			continue
		}
		ns.stale = true
		ns.frame = client.MarkStale(ns.frame)
		h.log.Warn("node status is stale: its publisher stopped rewriting it", "node", key, "written", ns.written)
		h.sendStatus(key, ns.frame)
	}
}

// sendStatus sends a node's status frame to every client that may read
// the node. h.mu is held.
func (h *Hub) sendStatus(node string, frame []byte) {
	for c := range h.clients {
		if c.MayReadNode(node) {
			c.Status(frame)
		}
	}
}

func (h *Hub) staleAfter() time.Duration {
	if h.StatusStaleAfter > 0 {
		return h.StatusStaleAfter
	}
	return status.StaleAfter
}
