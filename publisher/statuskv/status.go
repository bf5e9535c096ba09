package statuskv

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/shared/backoff"
	"github.com/dockcast/dockcast/shared/status"
)

// Defaults of the Key's fields.
const (
	DefaultRenew   = 10 * time.Second // how often the lease (and `updated`) is rewritten
	DefaultExpiry  = 30 * time.Second // a lease not renewed for this long is free
	DefaultBacklog = 64               // status changes kept while NATS is away
)

// StoppedError is the Error of the status a publisher writes when it stops
// cleanly; it also releases the lease.
const StoppedError = "publisher stopped"

// HeldError says that another publisher holds the node.
type HeldError struct {
	Node, Holder string
	Updated      time.Time
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("node %s is held by another publisher (%s, last renewed %s): two publishers must not share a PUBLISHER_NODE",
		e.Node, e.Holder, e.Updated.UTC().Format(time.RFC3339))
}

// Key is the node's key in the DOCKER_STATUS bucket: the status consumers
// read, and the lease that keeps a second publisher off the node. Every
// write expects the key's last revision; a value whose holder is not this
// process, and that is neither released (stopped) nor expired, is someone
// else's lease. Acquire once, then Run; Set never blocks.
//
// Changes wait in order while NATS is away (at most Backlog; past that the
// oldest waiting "disconnected" and the newest status are kept, so an
// outage is never hidden and the key ends at the latest state).
type Key struct {
	KV   jetstream.KeyValue
	Node string
	Log  *slog.Logger
	// Holder names this process (default NewHolder()).
	Holder string
	// Renew, Expiry and Backlog default to DefaultRenew, DefaultExpiry and
	// DefaultBacklog; Timeout bounds one write (5 s); RetryMin/RetryMax
	// bound the backoff between failed writes (250 ms, 5 s).
	Renew, Expiry, Timeout, RetryMin, RetryMax time.Duration
	Backlog                                    int

	mu      sync.Mutex
	pending []queued      // oldest first
	nextID  uint64        // of the next queued status
	current status.Status // the last status written (renewed with a new Updated)
	rev     uint64        // the key's revision after our last write
	changed chan struct{}
	once    sync.Once
}

type queued struct {
	id uint64
	s  status.Status
}

// NewHolder names this process: its host (hashed: the value reaches
// every gateway client), its pid and a random part.
func NewHolder() string {
	host, _ := os.Hostname()
	sum := sha256.Sum256([]byte(host))
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s:%d:%s", hex.EncodeToString(sum[:6]), os.Getpid(), hex.EncodeToString(b))
}

func (k *Key) init() {
	k.once.Do(func() {
		k.changed = make(chan struct{}, 1)
		if k.Holder == "" {
			k.Holder = NewHolder()
		}
		if k.Renew <= 0 {
			k.Renew = DefaultRenew
		}
		if k.Expiry <= 0 {
			k.Expiry = DefaultExpiry
		}
		if k.Timeout <= 0 {
			k.Timeout = 5 * time.Second
		}
		if k.RetryMin <= 0 {
			k.RetryMin = 250 * time.Millisecond
		}
		if k.RetryMax < k.RetryMin {
			k.RetryMax = max(5*time.Second, k.RetryMin)
		}
		if k.Backlog < 2 {
			k.Backlog = DefaultBacklog
		}
		if k.Log == nil {
			k.Log = slog.New(slog.DiscardHandler)
		}
	})
}

// Acquire takes the node's lease, writing first as its status; it retries
// while NATS is unreachable and returns a *HeldError when another
// publisher holds the node.
func (k *Key) Acquire(ctx context.Context, first status.Status) error {
	k.init()
	retry := backoff.New(k.RetryMin, k.RetryMax)
	for {
		err := k.write(ctx, first)
		var held *HeldError
		if err == nil || errors.As(err, &held) {
			return err
		}
		k.Log.Warn("cannot take the node's lease yet", "node", k.Node, "err", err)
		if err := retry.Wait(ctx); err != nil {
			return err
		}
	}
}

// Set queues s to be written after the statuses before it.
func (k *Key) Set(s status.Status) {
	k.init()
	k.mu.Lock()
	k.nextID++
	k.pending = append(k.pending, queued{k.nextID, s})
	if len(k.pending) > k.Backlog {
		newest := k.pending[len(k.pending)-1]
		kept := k.pending[:0]
		for _, q := range k.pending[:len(k.pending)-1] {
			if q.s.Docker == status.Disconnected {
				kept = append(kept, q) // the oldest disconnect
				break
			}
		}
		k.pending = append(kept, newest)
		k.Log.Warn("docker status backlog full: intermediate changes dropped", "backlog", k.Backlog)
	}
	k.mu.Unlock()
	select {
	case k.changed <- struct{}{}:
	default:
	}
}

// Run writes the queued statuses in order and renews the lease every
// Renew, until ctx ends (then it makes one last attempt, within Timeout,
// to write what is waiting) or another publisher takes the node (a
// *HeldError).
func (k *Key) Run(ctx context.Context) error {
	k.init()
	renew := time.NewTicker(k.Renew)
	defer renew.Stop()
	retry := backoff.New(k.RetryMin, k.RetryMax)
	var wait <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return k.flush()
		case <-k.changed:
		case <-renew.C:
			k.mu.Lock()
			if len(k.pending) == 0 {
				k.nextID++
				k.pending = append(k.pending, queued{k.nextID, k.current}) // the same status, renewed
			}
			k.mu.Unlock()
		case <-wait:
		}
		wait = nil
		if err := k.writePending(ctx); err != nil {
			var held *HeldError
			if errors.As(err, &held) {
				return err
			}
			if ctx.Err() != nil {
				continue // the last attempt happens above
			}
			k.Log.Warn("write docker status", "node", k.Node, "err", err)
			wait = time.After(retry.Next())
			continue
		}
		retry.Reset()
	}
}

// writePending writes the waiting statuses, oldest first.
func (k *Key) writePending(ctx context.Context) error {
	for {
		k.mu.Lock()
		if len(k.pending) == 0 {
			k.mu.Unlock()
			return nil
		}
		q := k.pending[0]
		k.mu.Unlock()
		if err := k.write(ctx, q.s); err != nil {
			return err
		}
		k.mu.Lock()
		if len(k.pending) > 0 && k.pending[0].id == q.id { // unless an overflow removed it meanwhile
			k.pending = k.pending[1:]
		}
		k.mu.Unlock()
	}
}

// flush writes what is waiting, in order, within one Timeout.
func (k *Key) flush() error {
	ctx, cancel := context.WithTimeout(context.Background(), k.Timeout)
	defer cancel()
	if err := k.writePending(ctx); err != nil {
		var held *HeldError
		if errors.As(err, &held) {
			return err
		}
		k.Log.Warn("write docker status at shutdown", "node", k.Node, "err", err)
	}
	return nil
}

// write stores s as the node's value, with this process as holder and
// Updated now, expecting the revision of our last write; on a conflict it
// reads the key and goes on only if the lease is still ours or free.
func (k *Key) write(ctx context.Context, s status.Status) error {
	s.Node, s.Holder, s.Updated = k.Node, k.Holder, time.Now().UTC()
	for attempt := 0; ; attempt++ {
		wctx, cancel := context.WithTimeout(ctx, k.Timeout)
		var rev uint64
		var err error
		if k.rev == 0 {
			rev, err = k.KV.Create(wctx, k.Node, s.Marshal())
		} else {
			rev, err = k.KV.Update(wctx, k.Node, s.Marshal(), k.rev)
		}
		cancel()
		if err == nil {
			k.mu.Lock()
			k.rev, k.current = rev, s
			k.mu.Unlock()
			k.Log.Debug("docker status written", "node", k.Node, "docker", s.Docker, "revision", rev)
			return nil
		}
		if !conflict(err) || attempt > 3 {
			return fmt.Errorf("write status of %s: %w", k.Node, err)
		}
		// Someone wrote the key since our last write (or it exists before
		// our first): whose is it now?
		gctx, cancel := context.WithTimeout(ctx, k.Timeout)
		cur, err := k.KV.Get(gctx, k.Node)
		cancel()
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			k.rev = 0
			continue
		case err != nil:
			return fmt.Errorf("read status of %s: %w", k.Node, err)
		}
		have, derr := status.Decode(cur.Value())
		if derr == nil && !k.free(have, time.Now()) {
			return &HeldError{Node: k.Node, Holder: have.Holder, Updated: have.Updated}
		}
		k.rev = cur.Revision()
	}
}

// conflict reports a write refused because the key's revision was not
// the one expected.
func conflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
}

// free reports whether the value have leaves the node to this process:
// the lease is ours, released by a clean stop, expired (not renewed for
// Expiry), written by a publisher without leases, or held by a process of
// this host that no longer runs (a restart after kill -9; the same pid is
// a previous run in the same container).
func (k *Key) free(have status.Status, now time.Time) bool {
	switch {
	case have.Holder == k.Holder, have.Holder == "":
		return true
	case have.Docker == status.Disconnected && have.Error == StoppedError:
		return true
	case now.Sub(have.Updated) > k.Expiry:
		return true
	}
	host, pid, ok := parseHolder(have.Holder)
	myHost, myPid, _ := parseHolder(k.Holder)
	if !ok || host != myHost {
		return false
	}
	return pid == myPid || !alive(pid)
}

func parseHolder(h string) (host string, pid int, ok bool) {
	parts := strings.Split(h, ":")
	if len(parts) < 3 {
		return "", 0, false
	}
	pid, err := strconv.Atoi(parts[len(parts)-2])
	if err != nil {
		return "", 0, false
	}
	return strings.Join(parts[:len(parts)-2], ":"), pid, true
}

// alive reports whether process pid exists on this host.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
