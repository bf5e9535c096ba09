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
type statusBoard struct {
	frames map[string][]byte // node -> status frame
	// loaded: the watch delivered every value of the bucket once (or the
	// bucket does not exist): clients may join.
	loaded bool
	err    error           // why the last watch failed
	seen   map[string]bool // keys of the current watch's initial values, until they are all in
}

func newStatusBoard() statusBoard { return statusBoard{frames: map[string][]byte{}} }

func (b *statusBoard) reason() string {
	if b.err == nil {
		return ""
	}
	return ": " + b.err.Error()
}

// framesFor returns the status frames c may see, by node.
func (b *statusBoard) framesFor(c *client.Client) [][]byte {
	nodes := make([]string, 0, len(b.frames))
	for n := range b.frames {
		if c.MayReadNode(n) {
			nodes = append(nodes, n)
		}
	}
	sort.Strings(nodes)
	out := make([][]byte, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, b.frames[n])
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
		if err != nil && ctx.Err() == nil {
			h.mu.Lock()
			h.status.err = err
			h.mu.Unlock()
			h.log.Debug("status watch", "err", err)
			_ = retry.Wait(ctx)
		}
	}
}

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
	h.mu.Lock()
	h.status.seen = map[string]bool{}
	h.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-h.watchNow:
			return errors.New("nats reconnected: watching again")
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
	for n := range h.status.frames {
		if !h.status.seen[n] {
			delete(h.status.frames, n)
		}
	}
	h.status.seen, h.status.loaded, h.status.err = nil, true, nil
}

func (h *Hub) statusEntry(e jetstream.KeyValueEntry) {
	h.mu.Lock()
	defer h.mu.Unlock()
	key := e.Key()
	if e.Operation() != jetstream.KeyValuePut {
		delete(h.status.frames, key)
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
	frame := client.StatusFrame(value)
	if bytes.Equal(h.status.frames[key], frame) {
		return
	}
	h.status.frames[key] = frame
	for c := range h.clients {
		if c.MayReadNode(key) {
			c.Status(frame)
		}
	}
}
